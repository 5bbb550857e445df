"""Verification of Alibaba Cloud's signature V3 (ACS3-HMAC-SHA256), from the server's side.

Written from the published algorithm rather than borrowed from the SDK's signer, so that the
emulator checks the SDK instead of agreeing with it by construction.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from .errors import ApiError

ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()

# Headers whose values the emulator acts on: if any were unsigned, a man in the middle could
# change them (or add them) without breaking the signature.
REQUIRED_SIGNED = frozenset(
    {
        "host",
        "x-acs-action",
        "x-acs-version",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-content-sha256",
    }
)

_AUTH = re.compile(
    r"^ACS3-HMAC-SHA256 Credential=(?P<key>[^,\s]+),\s*SignedHeaders=(?P<headers>[a-z0-9;._-]+),"
    r"\s*Signature=(?P<sig>[0-9a-f]{64})$"
)


@dataclass(frozen=True)
class Request:
    """What the verifier needs of an HTTP request. Header names are lower case."""

    method: str
    path: str
    query: Sequence[tuple[str, str]]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Authorization:
    access_key_id: str
    signed_headers: tuple[str, ...]
    signature: str


def parse_authorization(request: Request) -> Authorization:
    value = request.headers.get("authorization")
    if not value:
        raise ApiError(400, "MissingAuthorization", "The Authorization header is missing.")
    match = _AUTH.match(value.strip())
    if not match:
        raise ApiError(
            400,
            "IncompleteSignature",
            "The Authorization header is not a valid ACS3-HMAC-SHA256 signature.",
        )
    signed = tuple(match["headers"].split(";"))
    if list(signed) != sorted(set(signed)):
        raise ApiError(400, "IncompleteSignature", "SignedHeaders must be sorted and unique.")
    required = set(REQUIRED_SIGNED)
    if "x-acs-security-token" in request.headers:
        required.add("x-acs-security-token")
    unsigned = sorted(required - set(signed))
    if unsigned:
        raise ApiError(
            400, "IncompleteSignature", f"These headers must be signed: {', '.join(unsigned)}."
        )
    absent = [name for name in signed if name not in request.headers]
    if absent:
        raise ApiError(
            400, "IncompleteSignature", f"Signed headers are absent: {', '.join(absent)}."
        )
    return Authorization(match["key"], signed, match["sig"])


def _encode(value: str) -> str:
    # RFC 3986: unreserved characters stay, everything else is %XX (space is %20, * is %2A).
    return quote(value, safe="-_.~", encoding="utf-8")


def canonical_request(request: Request, signed_headers: Sequence[str]) -> str:
    query = "&".join(f"{_encode(name)}={_encode(value)}" for name, value in sorted(request.query))
    headers = "".join(f"{name}:{request.headers[name].strip()}\n" for name in signed_headers)
    return "\n".join(
        (
            request.method.upper(),
            quote(request.path or "/", safe="/-_.~"),
            query,
            headers,
            ";".join(signed_headers),
            request.headers.get("x-acs-content-sha256", ""),
        )
    )


def string_to_sign(request: Request, signed_headers: Sequence[str]) -> str:
    digest = hashlib.sha256(canonical_request(request, signed_headers).encode("utf-8")).hexdigest()
    return f"{ALGORITHM}\n{digest}"


def check_payload_hash(request: Request) -> None:
    claimed = request.headers.get("x-acs-content-sha256", "")
    actual = hashlib.sha256(request.body).hexdigest()
    if not hmac.compare_digest(claimed.lower(), actual):
        raise ApiError(
            400, "SignatureDoesNotMatch", "x-acs-content-sha256 does not match the request body."
        )


def verify(request: Request, auth: Authorization, secret: str) -> None:
    """Raises SignatureDoesNotMatch unless `auth` signs `request` with `secret`."""
    check_payload_hash(request)
    expected = hmac.new(
        secret.encode("utf-8"),
        string_to_sign(request, auth.signed_headers).encode("utf-8"),
        hashlib.sha256,
    ).hexdigest()
    if not hmac.compare_digest(expected, auth.signature):
        raise ApiError(
            400,
            "SignatureDoesNotMatch",
            "The request signature does not conform to Alibaba Cloud standards.",
        )
