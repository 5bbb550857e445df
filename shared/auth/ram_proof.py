"""RAM proofs (contract section 3, `RAM <proof>`): proof of a RAM identity without a shared secret.

The caller signs an STS `GetCallerIdentity` request with its own credentials (ACS3-HMAC-SHA256,
with the `x-acs-vend-audience` header signed in) and hands it over unsent; the service checks it,
sends it to an allow-listed STS endpoint and takes the `Arn` STS answers with as the principal.
STS accepts a signature nonce once, so a proof is single-use, and the audience header binds it to
one service: another service that receives our proof cannot replay it to us.

This is the verifier: `ProofPolicy`, `allowed_sts_targets` and `RamProofVerifier`. The proof's
producer is the caller's package (`vend_client.proof`); the form both read is `shared.wire.proof`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError

from shared.errors import (
    VendError,
    decided_by,
    throttled,
    unauthenticated,
    upstream_error,
    upstream_timeout,
)
from shared.principal import Caller
from shared.upstream.transport import MAX_BODY_BYTES, Answer, RpcTransport, WireError
from shared.wire.endpoint import Endpoint
from shared.wire.proof import (
    AUDIENCE_HEADER,
    DEFAULT_STS_HOST,
    HEADER_VALUE,
    MAX_PROOF_BYTES,
    STS_ACTION,
    STS_VERSION,
    host_port,
    principal_arn,
)

__all__ = [
    "AUDIENCE_HEADER",
    "ProofPolicy",
    "RamProofVerifier",
    "allowed_sts_targets",
]

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
DATE_FORMAT = "%Y-%m-%dT%H:%M:%SZ"

# The headers the checks below act on: each must be present and signed, or an attacker holding a
# proof could add or change it without breaking the signature.
REQUIRED_SIGNED = frozenset(
    {
        "host",
        "x-acs-action",
        "x-acs-version",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-content-sha256",
        AUDIENCE_HEADER,
    }
)
# Besides `x-acs-*`, the only headers a proof may carry: what the SDKs send for an RPC call with
# an empty body. Framing and hop-by-hop headers (content-length, transfer-encoding, connection,
# expect...) and anything else the service would be forwarding blindly are refused.
_PLAIN_HEADERS = frozenset({"host", "authorization", "accept", "user-agent", "content-type"})

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
_B64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")
_AUTHORIZATION = re.compile(
    r"ACS3-HMAC-SHA256 Credential=[A-Za-z0-9._-]{1,128},"
    r"SignedHeaders=(?P<signed>[a-z0-9._-]+(?:;[a-z0-9._-]+)*),"
    r"Signature=[0-9a-f]{64}"
)
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")
_STS_CODE = re.compile(r"[A-Za-z0-9._-]{1,100}")

_ACCOUNT = re.compile(r"[0-9]{1,32}")
_ROOT_ARN = re.compile(r"acs:ram::(?P<account>[0-9]{1,32}):root")

_REGION = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


# -- service side: configuration -----------------------------------------------------------------


@dataclass(frozen=True)
class ProofPolicy:
    """What the service accepts: the audience a proof must name, the (scheme, host[:port]) STS
    targets it will send a proof to, and how far `x-acs-date` may be from now."""

    audience: str
    allowed: frozenset[tuple[str, str]]
    max_skew_s: int = 300

    def __post_init__(self) -> None:
        if not self.audience:
            raise ValueError("the RAM proof audience must not be empty")
        if self.max_skew_s <= 0:
            raise ValueError("max_skew_s must be positive")
        for scheme, _host in self.allowed:
            if scheme not in ("http", "https"):
                raise ValueError(f"STS target scheme must be http or https, not {scheme!r}")


def allowed_sts_targets(
    region: str, sts_endpoint: str | None, extra_hosts: Sequence[str]
) -> frozenset[tuple[str, str]]:
    """The STS targets a proof may name (contract section 10): `sts.aliyuncs.com` and the
    region's public and VPC hosts over https, the configured `VEND_STS_ENDPOINT` (with its scheme;
    a bare host means https) and each extra `host[:port]` of `VEND_STS_PROOF_HOSTS` over https.
    Host names are lower-cased. Raises ValueError naming the first bad entry."""
    if not _REGION.fullmatch(region):
        raise ValueError(f"invalid region {region!r}")
    targets = {
        ("https", DEFAULT_STS_HOST),
        ("https", f"sts.{region}.aliyuncs.com"),
        ("https", f"sts-vpc.{region}.aliyuncs.com"),
    }
    if sts_endpoint:
        targets.add(_endpoint_target(sts_endpoint))
    for entry in extra_hosts:
        item = entry.strip()
        if not item:
            continue  # "a,b," splits into an empty last entry
        try:
            targets.add(("https", host_port(item)))
        except ValueError as exc:
            raise ValueError(f"invalid STS proof host {entry!r}: {exc}") from None
    return frozenset(targets)


def _endpoint_target(value: str) -> tuple[str, str]:
    text = value.strip()
    scheme = "https"
    if "://" in text:
        scheme, _, text = text.partition("://")
        scheme = scheme.lower()
        if text.endswith("/"):
            text = text[:-1]
    try:
        if scheme not in ("http", "https"):
            raise ValueError("the scheme must be http or https")
        return scheme, host_port(text)
    except ValueError as exc:
        raise ValueError(f"invalid STS endpoint {value!r}: {exc}") from None


# -- service side: verification ------------------------------------------------------------------


class _Proof(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    method: str
    url: str
    headers: dict[str, str]
    body: str


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey
        result[key] = value
    return result


class RamProofVerifier:
    """Checks a RAM proof, then has STS verify it. Thread-safe; keep one per process. The proof
    is sent over `transport` (the service's own, so that its pooled connections to STS serve the
    proofs too; by default one of the verifier's own)."""

    def __init__(
        self,
        policy: ProofPolicy,
        *,
        transport: RpcTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._policy = policy
        self._transport = transport if transport is not None else RpcTransport()
        self._clock = clock
        self._urls = frozenset(f"{scheme}://{host}/" for scheme, host in policy.allowed)

    def authenticate(self, proof: str, *, timeout_s: float) -> Caller:
        """The caller the proof proves, or VendError: 401 for a bad or refused proof, 502 when STS
        fails or answers strangely, 504 when it does not answer within `timeout_s`: the whole
        exchange (connecting, sending, the answer, however slowly it comes) ends within it.
        Every check is made before the proof is sent; it is sent once (STS accepts its nonce
        once)."""
        target, headers = self._check(proof)
        return self._send(target, headers, timeout_s)

    # -- the checks, in order, all before anything is sent --------------------------------------

    def _check(self, proof: str) -> tuple[Endpoint, dict[str, str]]:
        parsed = _decode(proof)
        headers = _headers(parsed)
        if parsed.method != "POST":
            raise unauthenticated("The RAM proof's method must be POST.")
        if parsed.body != "":
            raise unauthenticated("The RAM proof's body must be empty.")
        target = self._check_url(parsed.url)
        if headers.get("host") != target.host:
            raise unauthenticated("The RAM proof's host header must equal the host of its URL.")
        if headers.get("x-acs-action") != STS_ACTION:
            raise unauthenticated("The RAM proof's x-acs-action must be GetCallerIdentity.")
        if headers.get("x-acs-version") != STS_VERSION:
            raise unauthenticated("The RAM proof's x-acs-version must be 2015-04-01.")
        _check_signed_headers(headers)
        audience = headers[AUDIENCE_HEADER]  # present: checked with the signed headers
        if not hmac.compare_digest(audience.encode(), self._policy.audience.encode()):
            raise unauthenticated("The RAM proof was made for another audience.")
        self._check_date(headers["x-acs-date"])
        return target, headers

    def _check_url(self, url: str) -> Endpoint:
        """The STS target, if the URL is exactly `scheme://host[:port]/` of an allowed one."""
        try:
            parts = urlsplit(url)
        except ValueError:
            raise unauthenticated("The RAM proof's URL is not a valid URL.") from None
        if "@" in parts.netloc:
            raise unauthenticated("The RAM proof's URL must not contain user information.")
        if (parts.scheme, parts.netloc) not in self._policy.allowed:
            raise unauthenticated("The RAM proof's STS endpoint is not in the allow-list.")
        if parts.fragment or "#" in url:
            raise unauthenticated("The RAM proof's URL must not have a fragment.")
        if parts.path != "/":
            raise unauthenticated("The RAM proof's URL path must be /.")
        if parts.query or "?" in url:
            raise unauthenticated(
                "The RAM proof's URL must have no query: GetCallerIdentity has none."
            )
        if url not in self._urls:
            raise unauthenticated("The RAM proof's URL is not in canonical form.")
        return Endpoint(parts.scheme, parts.netloc)

    def _check_date(self, value: str) -> None:
        try:
            if not _DATE.fullmatch(value):
                raise ValueError
            sent = datetime.strptime(value, DATE_FORMAT).replace(tzinfo=timezone.utc).timestamp()
        except ValueError:
            raise unauthenticated(
                "The RAM proof's x-acs-date must look like 2026-01-01T00:00:00Z."
            ) from None
        if abs(self._clock() - sent) > self._policy.max_skew_s:
            raise unauthenticated(
                f"The RAM proof's x-acs-date is more than {self._policy.max_skew_s} s from now."
            )

    # -- sending it ---------------------------------------------------------------------------

    def _send(self, target: Endpoint, headers: dict[str, str], timeout_s: float) -> Caller:
        if not timeout_s > 0:
            raise upstream_timeout("No time was left to have STS verify the RAM proof.")
        timeout_ms = max(1, int(timeout_s * 1000))
        end = time.monotonic() + timeout_ms / 1000  # the exchange's own end is no earlier
        try:
            # Exactly the proof's headers go (http.client adds Content-Length: 0 and
            # Accept-Encoding: identity), to its URL's path ("/", checked); no redirect is
            # followed. Connecting may take all the time, as it could before.
            answer = self._transport.exchange(
                target, "/", headers, connect_timeout_ms=timeout_ms, timeout_ms=timeout_ms
            )
        except WireError as exc:
            # A connect that took all the time is a timeout too, as for the other upstreams
            # (shared.upstream.retry.exhausted).
            if exc.kind == "timeout" or time.monotonic() >= end:
                err = upstream_timeout("STS did not answer in time to verify the RAM proof.")
            else:
                err = upstream_error("STS could not be reached to verify the RAM proof.")
            raise decided_by(err, "STS", attempts=1) from exc
        try:
            return _caller_from(answer)
        except VendError as err:
            if err.status != 401:  # STS failed (sent once): the audit record names it
                decided_by(
                    err,
                    "STS",
                    code=_sts_code(answer),
                    status=answer.status,
                    request_id=answer.headers.get("x-acs-request-id"),
                    attempts=1,
                )
            raise


def _decode(proof: str) -> _Proof:
    text = proof.strip()
    if len(text) > (MAX_PROOF_BYTES * 4 + 2) // 3 + 2:
        raise unauthenticated("The RAM proof is longer than 16 KiB.")
    if not text or not _B64URL.fullmatch(text):
        raise unauthenticated("The RAM proof is not base64url.")
    text = text.rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise unauthenticated("The RAM proof is not base64url.") from None
    if len(raw) > MAX_PROOF_BYTES:
        raise unauthenticated("The RAM proof is longer than 16 KiB.")
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicate_keys)
    except _DuplicateKey:
        raise unauthenticated("The RAM proof's JSON has a duplicate key.") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise unauthenticated("The RAM proof is not UTF-8 JSON.") from None
    if not isinstance(data, dict):
        raise unauthenticated("The RAM proof is not a JSON object.")
    try:
        return _Proof.model_validate(data)
    except ValidationError:
        raise unauthenticated(
            "The RAM proof must have exactly the keys method, url, headers and body: strings, "
            "and headers an object of strings."
        ) from None


def _headers(proof: _Proof) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in proof.headers.items():
        if not _TOKEN.fullmatch(name):
            raise unauthenticated("The RAM proof has a header name that is not an HTTP token.")
        lower = name.lower()
        if lower in headers:
            raise unauthenticated(
                "The RAM proof has the same header twice (header names are case-insensitive)."
            )
        if lower not in _PLAIN_HEADERS and not lower.startswith("x-acs-"):
            raise unauthenticated(
                "The RAM proof may carry only host, authorization, accept, user-agent, "
                "content-type and x-acs-* headers."
            )
        if not HEADER_VALUE.fullmatch(value):
            raise unauthenticated("The RAM proof has a header value with forbidden characters.")
        headers[lower] = value
    return headers


def _check_signed_headers(headers: dict[str, str]) -> None:
    absent = sorted(REQUIRED_SIGNED - headers.keys())
    if absent:
        raise unauthenticated(f"The RAM proof lacks the headers {', '.join(absent)}.")
    match = _AUTHORIZATION.fullmatch(headers.get("authorization", ""))
    if match is None:
        raise unauthenticated(
            "The RAM proof's authorization header is not an ACS3-HMAC-SHA256 signature."
        )
    signed = match["signed"].split(";")
    if signed != sorted(set(signed)):
        raise unauthenticated("The RAM proof's SignedHeaders must be sorted and unique.")
    required = set(REQUIRED_SIGNED)
    if "x-acs-security-token" in headers:
        required.add("x-acs-security-token")
    missing = sorted(required - set(signed))
    if missing:
        raise unauthenticated(f"The RAM proof's SignedHeaders must include {', '.join(missing)}.")
    if any(name not in headers for name in signed):
        raise unauthenticated("The RAM proof's SignedHeaders name a header it does not carry.")
    if any(name not in signed for name in headers if name != "authorization"):
        raise unauthenticated("Every header of the RAM proof but authorization must be signed.")
    if headers["x-acs-content-sha256"] != EMPTY_SHA256:
        raise unauthenticated("The RAM proof's x-acs-content-sha256 is not that of an empty body.")


def _caller_from(answer: Answer) -> Caller:
    status = answer.status
    if status == 200:
        return _identity(answer)
    if 400 <= status < 500:
        code = _sts_code(answer)
        if status == 429 or (code or "").startswith("Throttling"):
            # STS is busy, not the proof wrong: the caller may try again with a fresh proof.
            raise throttled("STS throttled the verification of the RAM proof.")
        if code is None:
            raise unauthenticated(f"STS rejected the proof (HTTP {status}).")
        raise unauthenticated(f"STS rejected the proof: {code}")
    if status >= 500:
        raise upstream_error(f"STS failed to verify the RAM proof (HTTP {status}).")
    raise upstream_error(f"STS answered the RAM proof with an unexpected HTTP {status}.")


def _json(answer: Answer) -> Any:
    """The answer's body as JSON; ValueError if it is not (or was cut at MAX_BODY_BYTES)."""
    if len(answer.body) > MAX_BODY_BYTES:
        raise ValueError("the body was cut")
    try:
        return json.loads(answer.body)
    except RecursionError:
        raise ValueError("the body is nested too deeply") from None


def _sts_code(answer: Answer) -> str | None:
    try:
        body = _json(answer)
    except ValueError:
        return None
    code = body.get("Code") if isinstance(body, dict) else None
    return code if isinstance(code, str) and _STS_CODE.fullmatch(code) else None


def _identity(answer: Answer) -> Caller:
    try:
        body = _json(answer)
    except ValueError:
        raise upstream_error("STS answered the RAM proof with a body that is not JSON.") from None
    arn = body.get("Arn") if isinstance(body, dict) else None
    account = body.get("AccountId") if isinstance(body, dict) else None
    if not isinstance(arn, str) or not isinstance(account, str) or not _ACCOUNT.fullmatch(account):
        raise upstream_error("STS answered the RAM proof without a valid Arn and AccountId.")
    root = _ROOT_ARN.fullmatch(arn)
    if root is not None and root["account"] == account:
        # Root keys are not meant for workloads: policies name RAM users and roles.
        raise unauthenticated(
            "The RAM proof was signed by the account's root credentials: use a RAM user or role."
        )
    principal = principal_arn(arn, account)
    if principal is None:
        raise upstream_error("STS answered the RAM proof with an identity of an unexpected form.")
    return Caller.ram(principal, account)
