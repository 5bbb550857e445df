"""The models at the service's edges (contract sections 1, 2 and 4). Unknown fields are refused,
and every ID is checked here, before anything else sees it."""

from __future__ import annotations

import json
import re
import time
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    field_validator,
)

from shared.errors import VendError, invalid, malformed
from shared.lifecycle.current import Secret

DAY_MS = 24 * 3600 * 1000
MAX_EXPIRATION_MS = 3 * 365 * DAY_MS

Id = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
# An idempotency key (the Idempotency-Key header, an event's idempotency_key): create only.
IDEMPOTENCY_KEY_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY_PATTERN)
MAX_BODY_BYTES = 64 * 1024
# The models nest two levels at most; anything far deeper is hostile (and Python's parser would
# run out of stack on it).
MAX_JSON_DEPTH = 32


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObtainRequest(_Strict):
    """POST /v1/secrets/obtain"""

    instance_id: Id
    application_id: Id
    secret_id: Id


class CurrentRequest(_Strict):
    """POST /v1/secrets/current: the application's current secret (contract section 14)"""

    instance_id: Id
    application_id: Id


class CreateRequest(_Strict):
    """POST /v1/secrets/create"""

    instance_id: Id
    application_id: Id
    expiration_time: StrictInt | None = Field(
        default=None, description="ms since the epoch, 1 day to 3 years from now"
    )

    @field_validator("expiration_time")
    @classmethod
    def _bounded(cls, value: int | None) -> int | None:
        # Checked here, against the clock at validation; the error code is set by the caller.
        if value is None:
            return None
        now = int(time.time() * 1000)
        if not now + DAY_MS <= value <= now + MAX_EXPIRATION_MS:
            raise ValueError("expiration_time must be 1 day to 3 years from now, in milliseconds")
        return value


class RotateRequest(_Strict):
    """POST /v1/secrets/rotate"""

    instance_id: Id
    application_id: Id
    dry_run: StrictBool = Field(
        default=False, description="only say which step would be taken; change nothing"
    )


class SecretState(_Strict):
    """A client secret as EIAM lists it: no value."""

    secret_id: str
    status: Literal["enabled", "disabled"] | None
    expiration_time: int | None

    @classmethod
    def of(cls, secret: Secret) -> SecretState:
        """From the lifecycle's listing (`shared.lifecycle.current.Secret`); a status EIAM
        has no name for here is None."""
        status: Literal["enabled", "disabled"] | None = None
        if secret.status == "enabled":
            status = "enabled"
        elif secret.status == "disabled":
            status = "disabled"
        return cls(
            secret_id=secret.secret_id, status=status, expiration_time=secret.expiration_time
        )


class RotationResponse(_Strict):
    """What a rotation did (or, with dry_run, would do), and the application's state after."""

    step: Literal["create", "disable", "delete", "none"]
    reason: str
    current_secret_id: str | None
    secrets: list[SecretState]
    secrets_before: list[SecretState] = Field(
        description="the state the step was planned on (listed again under the application's "
        "lease before a step is taken); an addition to the contract's answer"
    )
    next_step_at: int | None = Field(
        description="ms since the epoch when a step may come due next; null: not without an "
        "operator"
    )


class Envelope(_Strict):
    format: Literal["vend-envelope/1"] = "vend-envelope/1"
    alg: Literal["AES-256-GCM"] = "AES-256-GCM"
    key_id: str
    encrypted_data_key: str
    iv: str
    ciphertext: str
    encryption_context: dict[str, str]


class VendResponse(_Strict):
    request_id: str
    upstream_request_id: str | None
    instance_id: str
    application_id: str
    client_id: str | None
    secret_id: str
    status: Literal["enabled", "disabled"] | None
    expiration_time: int | None
    last_used_time: int | None
    envelope: Envelope


class ErrorDetail(_Strict):
    code: str
    message: str
    request_id: str


class ErrorResponse(_Strict):
    error: ErrorDetail


class Health(_Strict):
    status: Literal["ok"] = "ok"


def check_idempotency_key(key: object, action: str) -> None:
    """The same rule for the HTTP header and the event field; refused before anything else."""
    if action != "create" or not isinstance(key, str) or not _IDEMPOTENCY_KEY.fullmatch(key):
        raise invalid("an idempotency key must be 1 to 128 of A-Z a-z 0-9 _ . : - (create only)")


def parse_json_object(raw: bytes | str, what: str) -> dict[str, Any]:
    """A request body or an event: at most 64 KiB of JSON, and an object."""
    if len(raw) > MAX_BODY_BYTES:
        raise VendError(413, "PayloadTooLarge", f"the {what} is over 64 KiB")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise malformed(f"the {what} is not JSON in UTF-8") from None
    except RecursionError:
        raise malformed(f"the {what} nests deeper than {MAX_JSON_DEPTH} levels") from None
    if not isinstance(data, dict):
        raise malformed(f"the {what} must be a JSON object")
    if _depth_over(data, MAX_JSON_DEPTH):
        raise malformed(f"the {what} nests deeper than {MAX_JSON_DEPTH} levels")
    return data


def _depth_over(value: object, limit: int) -> bool:
    """True if `value` nests containers more than `limit` deep; iterative, so never recursion."""
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            if isinstance(child, (dict, list)):
                if depth + 1 > limit:
                    return True
                stack.append((child, depth + 1))
    return False
