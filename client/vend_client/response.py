"""The vend response and its envelope (contract sections 2 and 4), read from the service's JSON.
Plain dataclasses: a caller needs no validation library to read four strings and a dict."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import EnvelopeError, api_error
from .wire.envelope import ALG, FORMAT

# What a request id may be (contract section 7): anything else is not shown.
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True)
class Envelope:
    key_id: str
    # Not in a repr: the wrapped data key and what it seals are nothing a log needs.
    encrypted_data_key: str = field(repr=False)
    iv: str = field(repr=False)
    ciphertext: str = field(repr=False)
    encryption_context: dict[str, str]
    format: str = FORMAT
    alg: str = ALG

    @classmethod
    def from_dict(cls, data: Any) -> Envelope:
        """Raises EnvelopeError (a ValueError) for anything but a `vend-envelope/1` envelope."""
        fields = ("key_id", "encrypted_data_key", "iv", "ciphertext")
        if (
            not isinstance(data, dict)
            or data.get("format") != FORMAT
            or data.get("alg") != ALG
            or not all(isinstance(data.get(f), str) for f in fields)
            or not isinstance(data.get("encryption_context"), dict)
            or not all(
                isinstance(k, str) and isinstance(v, str)
                for k, v in data["encryption_context"].items()
            )
        ):
            raise EnvelopeError(f"not a {FORMAT} envelope")
        return cls(
            key_id=data["key_id"],
            encrypted_data_key=data["encrypted_data_key"],
            iv=data["iv"],
            ciphertext=data["ciphertext"],
            encryption_context=dict(data["encryption_context"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VendResponse:
    request_id: str
    upstream_request_id: str | None
    instance_id: str
    application_id: str
    client_id: str | None
    secret_id: str
    status: str | None
    expiration_time: int | None
    last_used_time: int | None
    envelope: Envelope

    @classmethod
    def from_dict(cls, data: Any, *, request_id: str | None = None) -> VendResponse:
        """Raises VendApiError (`BadResponse`) for a body that is not a vend response, naming
        the body's request id, else `request_id` (the answer's header)."""
        try:
            if not isinstance(data, dict):
                raise ValueError
            texts = ("request_id", "instance_id", "application_id", "secret_id")
            if not all(isinstance(data.get(f), str) for f in texts):
                raise ValueError
            return cls(
                request_id=data["request_id"],
                upstream_request_id=_optional(data.get("upstream_request_id"), str),
                instance_id=data["instance_id"],
                application_id=data["application_id"],
                client_id=_optional(data.get("client_id"), str),
                secret_id=data["secret_id"],
                status=_optional(data.get("status"), str),
                expiration_time=_optional(data.get("expiration_time"), int),
                last_used_time=_optional(data.get("last_used_time"), int),
                envelope=Envelope.from_dict(data.get("envelope")),
            )
        except ValueError:
            said = data.get("request_id") if isinstance(data, dict) else None
            raise api_error(
                200,
                "BadResponse",
                "the answer is not a vend response",
                request_id_of(said) or request_id,
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "envelope": self.envelope.to_dict()}


def _optional(value: Any, kind: type) -> Any:
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise ValueError


def request_id_of(value: object) -> str | None:
    """A request id as the contract bounds them (section 7), else None: an answerer's header
    is shown in messages and logs only when it is one."""
    if isinstance(value, str) and _REQUEST_ID.fullmatch(value):
        return value
    return None
