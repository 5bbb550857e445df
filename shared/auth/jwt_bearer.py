"""`Bearer <JWT>` authentication (contract section 3; configuration in section 10).

An access token is accepted when it names a configured issuer (`iss`, exact), uses an asymmetric
algorithm that issuer is configured for (RS256 or ES256; never `none`, never HS*), verifies against
a key of the matching type from the issuer's JWKS, names the audience, has `exp` in the future (no
leeway) and `nbf`/`iat` not more than 60 s in the future, and has a sensible `sub`.

The JWKS of each issuer is fetched over HTTP(S) and cached; a fetch ends within
`http_timeout_s` (and the request's deadline) in all, however slowly the answer comes. An unknown
`kid` (or a cache older than `max_key_age_s`) causes a refetch, but at most one fetch attempt
per issuer per `min_refetch_interval_s`, successful or not, so a flood of tokens with random
`kid`s costs one request a minute. Until a first fetch has succeeded, though, the limit is
`first_fetch_retry_s` (1 s): with no keys at all every token fails, and a JWKS endpoint that was
down at start must not keep every caller out for a minute after it is back. Header-supplied
keys (`jwk`, `jku`, `x5u`, `x5c`) are never used.

No lock is held across a fetch. While one is in flight, a token whose key the cached set has
(even a stale set) is served from it, other issuers' tokens are not concerned, and a token that
needs the fetch waits for it, up to MAX_WAITING_FOR_FETCH threads per issuer; beyond them it is
refused at once, so a slow JWKS cannot take every thread of the server.

Error messages say which check failed and never contain the token or anything taken from it
beyond a well-known algorithm name.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import logging
import math
import re
import ssl
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeGuard, get_args
from urllib.parse import urlsplit

import jwt
import pydantic
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from shared.errors import VendError, unauthenticated
from shared.principal import Caller
from shared.upstream.bounded import BoundedHTTPConnection, BoundedHTTPSConnection, tls_context
from shared.upstream.deadline import Deadline

log = logging.getLogger("vend.jwks")  # its lines are `jwks` lines (shared.logs)

Algorithm = Literal["RS256", "ES256"]
# The only algorithms ever accepted, whatever an IssuerConfig says (even one built without
# validation): asymmetric, and each bound to one key type.
_ACCEPTABLE: frozenset[str] = frozenset(get_args(Algorithm))

NBF_IAT_LEEWAY_S = 60.0
MAX_TOKEN_CHARS = 16 * 1024
MAX_SUBJECT_CHARS = 256
MAX_JWKS_BYTES = 1024 * 1024
# Tokens whose signature and claims were verified, kept until their expiry: a caller sends the
# same token for many requests, and verifying it again costs more CPU than the rest of the check.
MAX_VERIFIED_TOKENS = 1024
MIN_RSA_BITS = 2048
# Threads that may wait for an issuer's fetch in flight, its own aside. A token that needs the
# keys beyond them is refused at once: a JWKS that answers slowly (or trickles) then holds at
# most 1 + this many of the server's threads, whatever the number of its tokens.
MAX_WAITING_FOR_FETCH = 4
# A fetch is not started with less time than this left to the request.
MIN_FETCH_S = 0.05
# How long past a fetch's end its waiters wait for it to hand over what it got.
FETCH_GRACE_S = 0.05

# Algorithm names that may be repeated in an error message. Anything else the token's header says
# is not echoed: the message never carries attacker-chosen text.
_KNOWN_ALGORITHMS = frozenset(
    {"none", "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
    | {"ES256", "ES384", "ES512", "ES256K", "EdDSA", "Ed25519", "Ed448"}
)
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class IssuerConfig(pydantic.BaseModel):
    """One entry of `VEND_JWT_ISSUERS`."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True)

    name: str
    issuer: str
    jwks_url: str
    audience: str | None = None
    algorithms: tuple[Algorithm, ...] = ("RS256", "ES256")

    @pydantic.field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not _NAME_RE.fullmatch(value):
            raise ValueError("must be 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-'")
        return value

    @pydantic.field_validator("issuer")
    @classmethod
    def _check_issuer(cls, value: str) -> str:
        if not value:
            raise ValueError("must not be empty")
        return value

    @pydantic.field_validator("jwks_url")
    @classmethod
    def _check_jwks_url(cls, value: str) -> str:
        try:
            parts = urlsplit(value)
            host = parts.hostname
        except ValueError:
            host = None
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not host:
            raise ValueError("must be an http:// or https:// URL with a host")
        return value

    @pydantic.field_validator("audience")
    @classmethod
    def _check_audience(cls, value: str | None) -> str | None:
        if value is not None and not value:
            raise ValueError("must not be empty (leave it out to use VEND_AUDIENCE)")
        return value

    @pydantic.field_validator("algorithms")
    @classmethod
    def _check_algorithms(cls, value: tuple[Algorithm, ...]) -> tuple[Algorithm, ...]:
        if not value:
            raise ValueError("must name at least one of RS256, ES256")
        return tuple(dict.fromkeys(value))


def _check_unique(issuers: Sequence[IssuerConfig], where: str) -> None:
    names: set[str] = set()
    iss_values: set[str] = set()
    for config in issuers:
        if config.name in names:
            raise ValueError(f"{where}: issuer name {config.name!r} appears more than once")
        if config.issuer in iss_values:
            raise ValueError(f"{where}: issuer {config.issuer!r} appears more than once")
        names.add(config.name)
        iss_values.add(config.issuer)


def parse_issuers(raw: str) -> tuple[IssuerConfig, ...]:
    """Parse the JSON list of `VEND_JWT_ISSUERS`. Raises ValueError naming the variable."""
    try:
        data = json.loads(raw)
    except ValueError as error:
        raise ValueError(f"VEND_JWT_ISSUERS is not valid JSON: {error}") from None
    if not isinstance(data, list):
        raise ValueError("VEND_JWT_ISSUERS must be a JSON list of issuer objects")
    issuers: list[IssuerConfig] = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"VEND_JWT_ISSUERS[{index}] must be a JSON object")
        try:
            issuers.append(IssuerConfig.model_validate(item))
        except pydantic.ValidationError as error:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in e['loc']) or '(entry)'}: {e['msg']}"
                for e in error.errors(include_url=False)
            )
            raise ValueError(f"VEND_JWT_ISSUERS[{index}]: {problems}") from None
    _check_unique(issuers, "VEND_JWT_ISSUERS")
    return tuple(issuers)


# --- the keys of one issuer ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Jwk:
    """One key of a JWKS as we understood it: the one algorithm it can verify, or why none."""

    kid: str | None
    alg: Algorithm | None
    key: jwt.PyJWK | None
    problem: str  # why it is unusable, when `alg` is None
    kind: str  # "RSA", "EC P-256", ...: for messages


def _describe(jwk: dict[str, Any]) -> str:
    kty = jwk.get("kty")
    if kty == "EC":
        crv = jwk.get("crv")
        return f"EC {crv}" if crv in ("P-256", "P-384", "P-521", "secp256k1") else "EC"
    if kty in ("RSA", "oct", "OKP"):
        return str(kty)
    return "unknown type"


def _load_jwk(jwk: dict[str, Any]) -> _Jwk:
    raw_kid = jwk.get("kid")
    kid = raw_kid if isinstance(raw_kid, str) else None
    kind = _describe(jwk)

    def unusable(problem: str) -> _Jwk:
        return _Jwk(kid, None, None, problem, kind)

    kty = jwk.get("kty")
    alg: Algorithm
    if kty == "RSA":
        alg = "RS256"
    elif kty == "EC" and jwk.get("crv") == "P-256":
        alg = "ES256"
    else:
        return unusable(f"the key is {kind}, which is neither RSA nor EC P-256")
    declared = jwk.get("alg")
    if declared is not None and declared != alg:
        shown = declared if declared in _KNOWN_ALGORITHMS else "another algorithm"
        return unusable(f"the key is for {shown}")
    if jwk.get("use", "sig") != "sig":
        return unusable("the key is not a signing key")
    if "d" in jwk:
        return unusable("the key set publishes a private key")
    try:
        key = jwt.PyJWK(jwk, algorithm=alg)
    except (jwt.PyJWTError, ValueError, TypeError):
        return unusable("the key cannot be loaded")
    public = key.key
    if alg == "RS256":
        if not isinstance(public, rsa.RSAPublicKey):
            return unusable("the key is not an RSA public key")
        if public.key_size < MIN_RSA_BITS:
            return unusable(f"the RSA key is shorter than {MIN_RSA_BITS} bits")
    elif not (
        isinstance(public, ec.EllipticCurvePublicKey) and isinstance(public.curve, ec.SECP256R1)
    ):
        return unusable("the key is not an EC P-256 public key")
    return _Jwk(kid, alg, key, "", kind)


@dataclass(frozen=True)
class _KeySet:
    fetched_at: float
    # (kid, alg) -> the key, or the message why that kid cannot verify that algorithm
    by_kid_alg: dict[tuple[str, str], jwt.PyJWK | str]
    # alg -> the key for tokens without `kid`, or the message why there is none to pick
    single: dict[str, jwt.PyJWK | str]

    @classmethod
    def build(cls, keys: list[Any], fetched_at: float) -> _KeySet:
        loaded = [_load_jwk(k) for k in keys if isinstance(k, dict)]
        by_kid: dict[str, list[_Jwk]] = {}
        for jwk in loaded:
            if jwk.kid is not None:
                by_kid.setdefault(jwk.kid, []).append(jwk)
        by_kid_alg: dict[tuple[str, str], jwt.PyJWK | str] = {}
        for kid, jwks in by_kid.items():
            for alg in ("RS256", "ES256"):
                usable = [j.key for j in jwks if j.alg == alg and j.key is not None]
                if len(usable) == 1:
                    by_kid_alg[kid, alg] = usable[0]
                elif len(usable) > 1:
                    by_kid_alg[kid, alg] = (
                        f"the issuer's key set has more than one {alg} key with the token's kid"
                    )
                else:
                    problems = [j.problem for j in jwks if j.alg is None]
                    kinds = sorted({j.kind for j in jwks})
                    by_kid_alg[kid, alg] = (
                        f"the issuer's key with the token's kid cannot verify {alg}: "
                        + (problems[0] if problems else f"the key is {', '.join(kinds)}")
                    )
        single: dict[str, jwt.PyJWK | str] = {}
        for alg in ("RS256", "ES256"):
            usable = [j.key for j in loaded if j.alg == alg and j.key is not None]
            if len(usable) == 1:
                single[alg] = usable[0]
            elif len(usable) > 1:
                single[alg] = (
                    f"the token has no kid and the issuer's key set has more than one {alg} key"
                )
        return cls(fetched_at, by_kid_alg, single)

    def find(self, alg: str, kid: str | None) -> jwt.PyJWK | str | None:
        """The key, or a message why the token cannot be verified, or None: not in this set."""
        if kid is None:
            return self.single.get(alg)
        return self.by_kid_alg.get((kid, alg))


class _FetchError(Exception):
    pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """The JWKS comes from the configured URL, never from wherever a redirect points."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _BoundedHttp(urllib.request.HTTPHandler):
    """urllib's http handler, on connections that end by `end` (time.monotonic())."""

    def __init__(self, end: float) -> None:
        super().__init__()
        self._end = end

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)

    def _connection(self, host: str, **kwargs: Any) -> BoundedHTTPConnection:
        conn = BoundedHTTPConnection(host, **kwargs)
        conn.until(self._end)
        return conn


class _BoundedHttps(urllib.request.HTTPSHandler):
    """urllib's https handler, on connections that end by `end` (time.monotonic()) and verify
    the server with `tls` (None: the system's CAs)."""

    def __init__(self, end: float, tls: ssl.SSLContext | None) -> None:
        super().__init__()
        self._end = end
        self._tls = tls

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(self._connection, req)

    def _connection(self, host: str, **kwargs: Any) -> BoundedHTTPSConnection:
        kwargs.pop("context", None)  # ours, whose sockets keep to the deadline
        kwargs.pop("check_hostname", None)  # the context checks it
        tls = self._tls if self._tls is not None else _tls()
        conn = BoundedHTTPSConnection(host, context=tls, **kwargs)
        conn.until(self._end)
        return conn


_TLS: ssl.SSLContext | None = None
_TLS_LOCK = threading.Lock()


def _tls() -> ssl.SSLContext:
    """One context for every issuer, with the system's CAs (as urllib's default), built at the
    first https fetch: loading the CAs is the cost."""
    global _TLS  # noqa: PLW0603
    with _TLS_LOCK:
        if _TLS is None:
            _TLS = tls_context()
        return _TLS


def _fetch_jwks(url: str, timeout_s: float, tls: ssl.SSLContext | None) -> list[Any]:
    """The `keys` of the JWKS at `url`, fetched within `timeout_s` in all (connecting, sending,
    and the answer, however slowly it comes), or _FetchError. `tls`: see _BoundedHttps."""
    request = urllib.request.Request(  # noqa: S310 - the scheme is checked by IssuerConfig
        url, headers={"Accept": "application/json", "User-Agent": "secret-vending"}
    )
    end = time.monotonic() + timeout_s
    # urllib, for the proxy of the environment (an issuer may be outside the cloud); a new
    # opener per fetch, whose connections keep to this fetch's deadline.
    opener = urllib.request.build_opener(_NoRedirect, _BoundedHttp(end), _BoundedHttps(end, tls))
    try:
        with opener.open(request, timeout=timeout_s) as response:
            if response.status != 200:
                raise _FetchError(f"HTTP {response.status}")
            chunks: list[bytes] = []
            size = 0
            while True:
                chunk = response.read(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > MAX_JWKS_BYTES:
                    raise _FetchError(f"response larger than {MAX_JWKS_BYTES} bytes")
                chunks.append(chunk)
        document = json.loads(b"".join(chunks))
    except _FetchError:
        raise
    except Exception as error:  # any failure to fetch is reported the same way
        raise _FetchError(f"{type(error).__name__}: {error}") from None
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise _FetchError("the response is not a JWKS (no 'keys' list)")
    keys: list[Any] = document["keys"]
    return keys


class _Fetch:
    """One fetch of an issuer's key set, in flight: whoever needs its outcome waits for `done`,
    until `ends` (on the authenticator's monotonic clock) at the latest."""

    def __init__(self, ends: float) -> None:
        self.ends = ends
        self.done = threading.Event()
        self.ok = False
        self.waiting = 0  # threads waiting for it, its own aside (under the issuer's lock)


class _IssuerState:
    def __init__(self, config: IssuerConfig, audience: str) -> None:
        self.config = config
        self.audience = config.audience if config.audience is not None else audience
        # Guards the fields below, and is never held across I/O: a fetch in flight is `fetch`.
        self.lock = threading.Lock()
        self.keys: _KeySet | None = None
        self.last_attempt: float | None = None
        self.fetch: _Fetch | None = None


@dataclass(frozen=True)
class _Verified:
    """A token that verified: who it proves, its time claims, and the key that verified it."""

    caller: Caller
    times: dict[str, Any]
    state: _IssuerState
    alg: str
    kid: str | None
    key: jwt.PyJWK


# --- the authenticator --------------------------------------------------------------------------


def _is_number(value: object) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _valid_subject(sub: object) -> TypeGuard[str]:
    return (
        isinstance(sub, str)
        and 0 < len(sub) <= MAX_SUBJECT_CHARS
        and sub.isprintable()
        and not any(c.isspace() for c in sub)
    )


class JwtAuthenticator:
    """Verifies bearer JWTs from the configured issuers. Thread-safe; one instance per process."""

    def __init__(
        self,
        issuers: Sequence[IssuerConfig],
        audience: str,
        *,
        http_timeout_s: float = 3.0,
        min_refetch_interval_s: float = 60.0,
        first_fetch_retry_s: float = 1.0,
        max_key_age_s: float = 3600.0,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        """`clock`: the time tokens and key sets are judged by; `monotonic`: the clock of the
        fetches' and the requests' deadlines, and so of how long a token waits for a fetch in
        flight. `tls`: the context an https JWKS is verified with, made by
        shared.upstream.bounded.tls_context (None: the system's CAs)."""
        if not audience:
            raise ValueError("VEND_AUDIENCE must not be empty")
        _check_unique(issuers, "JWT issuers")
        self._by_iss = {c.issuer: _IssuerState(c, audience) for c in issuers}
        self._timeout = http_timeout_s
        self._interval = min_refetch_interval_s
        self._first_retry = min(first_fetch_retry_s, min_refetch_interval_s)
        self._max_age = max_key_age_s
        self._clock = clock
        self._monotonic = monotonic
        self._tls = tls
        self._verified: OrderedDict[bytes, _Verified] = OrderedDict()
        self._verified_lock = threading.Lock()

    def authenticate(self, token: str, deadline: Deadline | None = None) -> Caller:
        """The caller a bearer token (without the `Bearer ` prefix) proves, or 401. A fetch of
        the issuer's keys, or the wait for one in flight, ends by `deadline` too."""
        if not isinstance(token, str) or not token:
            raise unauthenticated("malformed bearer token")
        if len(token) > MAX_TOKEN_CHARS:
            raise unauthenticated("malformed bearer token: too long")
        # A JWT is base64url and dots. An event's JSON may carry any string, even a lone
        # surrogate, which nothing below could encode.
        if not token.isascii():
            raise unauthenticated("malformed bearer token")
        now = self._clock()
        digest = hashlib.sha256(token.encode()).digest()
        known = self._recall(digest, now)
        if known is not None:
            return known
        try:
            # Unverified, only to pick the issuer and the key; everything is checked below.
            parts = jwt.decode_complete(token, options={"verify_signature": False})
        except (jwt.PyJWTError, RecursionError):  # a header or payload nested too deep too
            raise unauthenticated("malformed bearer token") from None
        header: dict[str, Any] = parts["header"]
        unverified: dict[str, Any] = parts["payload"]

        iss = unverified.get("iss")
        state = self._by_iss.get(iss) if isinstance(iss, str) else None
        if state is None:
            raise unauthenticated("unknown issuer")
        config = state.config

        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in _ACCEPTABLE or alg not in config.algorithms:
            shown = alg if isinstance(alg, str) and alg in _KNOWN_ALGORITHMS else "(unnamed)"
            raise unauthenticated(f"algorithm {shown} not allowed for issuer {config.name}")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise unauthenticated("malformed bearer token: kid is not a string")

        end = None if deadline is None else self._monotonic() + deadline.remaining()
        key = self._key(state, alg, kid, now, end)

        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=state.audience,
                issuer=config.issuer,
                options={
                    "verify_exp": False,  # checked below, against our clock and with no leeway
                    "verify_nbf": False,
                    "verify_iat": False,
                    "verify_jti": False,
                    "verify_sub": False,  # checked below, with our own rules
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.InvalidSignatureError:
            raise unauthenticated("signature does not verify") from None
        except (jwt.InvalidAudienceError, jwt.MissingRequiredClaimError):
            raise unauthenticated("audience mismatch") from None
        except jwt.InvalidIssuerError:
            raise unauthenticated("unknown issuer") from None
        except jwt.InvalidAlgorithmError:
            raise unauthenticated(f"algorithm not allowed for issuer {config.name}") from None
        except jwt.DecodeError:
            raise unauthenticated("malformed bearer token") from None
        except jwt.PyJWTError:
            raise unauthenticated("invalid bearer token") from None

        self._check_times(claims, now)
        sub = claims.get("sub")
        if sub is None:
            raise unauthenticated("token has no subject (sub)")
        if not _valid_subject(sub):
            raise unauthenticated(
                f"subject (sub) must be 1 to {MAX_SUBJECT_CHARS} printable characters "
                "without whitespace"
            )
        caller = Caller.jwt(sub, config.name)
        times: dict[str, Any] = {k: claims[k] for k in ("exp", "nbf", "iat") if k in claims}
        with self._verified_lock:
            self._verified[digest] = _Verified(caller, times, state, alg, kid, key)
            while len(self._verified) > MAX_VERIFIED_TOKENS:
                self._verified.popitem(last=False)
        return caller

    def _recall(self, digest: bytes, now: float) -> Caller | None:
        """The caller of a token verified before, if its key is still the issuer's current one
        for its kid (a refreshed or stale key set verifies it afresh); its times are checked
        again now, so an expired token is refused as it would be the first time."""
        with self._verified_lock:
            entry = self._verified.get(digest)
        if entry is None:
            return None
        keys = entry.state.keys
        if (
            keys is None
            or now - keys.fetched_at >= self._max_age
            or keys.find(entry.alg, entry.kid) is not entry.key
        ):
            with self._verified_lock:
                self._verified.pop(digest, None)
            return None
        try:
            self._check_times(entry.times, now)
        except VendError:
            with self._verified_lock:
                self._verified.pop(digest, None)
            raise
        return entry.caller

    @staticmethod
    def _check_times(claims: dict[str, Any], now: float) -> None:
        exp = claims.get("exp")
        if exp is None:
            raise unauthenticated("token has no expiry (exp)")
        if not _is_number(exp):
            raise unauthenticated("token expiry (exp) is not a number")
        if not exp > now:
            raise unauthenticated("token expired")
        for claim, what in (("nbf", "not yet valid (nbf)"), ("iat", "issued in the future (iat)")):
            value = claims.get(claim)
            if value is None:
                continue
            if not _is_number(value):
                raise unauthenticated(f"token {claim} is not a number")
            if value > now + NBF_IAT_LEEWAY_S:
                raise unauthenticated(f"token {what}")

    def _key(
        self, state: _IssuerState, alg: str, kid: str | None, now: float, end: float | None
    ) -> jwt.PyJWK:
        """The issuer's key for the token, from the cached set while it is fresh; else after a
        fetch, or after the fetch in flight, which this thread waits for until `end`
        (on `monotonic`; None: the fetch's own end) at the latest."""
        keys = state.keys
        found = keys.find(alg, kid) if keys is not None else None
        if keys is not None and now - keys.fetched_at < self._max_age:
            if isinstance(found, jwt.PyJWK):
                return found
            if isinstance(found, str):
                raise unauthenticated(found)
        # The set is stale or lacks the token's key. A stale set that has it serves the token
        # while another thread refreshes it: only a token that needs the fetch waits for it.
        timeout = self._timeout if end is None else min(self._timeout, end - self._monotonic())
        fetch, mine = self._claim(state, now, timeout, join=not isinstance(found, jwt.PyJWK))
        fetch_failed = False
        if fetch is not None:
            if mine:
                fetch_failed = not self._run(state, fetch, now, timeout)
            else:
                fetch_failed = not self._wait(state, fetch, end)
        keys = state.keys
        if keys is None:
            raise unauthenticated(self._cannot_fetch(state))
        found = keys.find(alg, kid)
        if isinstance(found, jwt.PyJWK):
            return found
        if isinstance(found, str):
            raise unauthenticated(found)
        if fetch_failed:
            raise unauthenticated(self._cannot_fetch(state))
        if kid is None:
            raise unauthenticated(f"the issuer's key set has no {alg} key")
        raise unauthenticated("no key in the issuer's key set has the token's kid")

    def _claim(
        self, state: _IssuerState, now: float, timeout_s: float, *, join: bool = True
    ) -> tuple[_Fetch | None, bool]:
        """(the fetch in flight, False) for a thread that may wait for it (`join`, and fewer
        than MAX_WAITING_FOR_FETCH wait already); else (a new fetch, True) for the thread to
        run, when the refetch limits allow one now and `timeout_s` leaves time for it; else
        (None, False): the thread goes on with the keys there are."""
        with state.lock:
            fetch = state.fetch
            if fetch is not None:
                if not join or fetch.waiting >= MAX_WAITING_FOR_FETCH:
                    return None, False
                fetch.waiting += 1
                return fetch, False
            interval = self._interval if state.keys is not None else self._first_retry
            too_soon = state.last_attempt is not None and now - state.last_attempt < interval
            if too_soon or timeout_s < MIN_FETCH_S:
                return None, False
            state.last_attempt = now
            state.fetch = fetch = _Fetch(self._monotonic() + timeout_s)
            return fetch, True

    def _run(self, state: _IssuerState, fetch: _Fetch, now: float, timeout_s: float) -> bool:
        """Runs the fetch `_claim` gave this thread, without the lock; keeps the set if it came.
        False (and a warning in the log) if it did not."""
        keys: _KeySet | None = None
        try:
            keys = _KeySet.build(_fetch_jwks(state.config.jwks_url, timeout_s, self._tls), now)
        except _FetchError as error:
            log.warning(
                "could not fetch the JWKS of issuer %s from %s: %s",
                state.config.name,
                state.config.jwks_url,
                error,
            )
        finally:
            with state.lock:
                if keys is not None:
                    state.keys = keys
                state.fetch = None
            fetch.ok = keys is not None
            fetch.done.set()
        return fetch.ok

    def _wait(self, state: _IssuerState, fetch: _Fetch, end: float | None) -> bool:
        """Waits for a fetch `_claim` let this thread join, until it ends or `end`: whether it
        came back with a key set."""
        until = fetch.ends + FETCH_GRACE_S
        if end is not None:
            until = min(until, end)
        try:
            fetch.done.wait(max(0.0, until - self._monotonic()))
        finally:
            with state.lock:
                fetch.waiting -= 1
        return fetch.done.is_set() and fetch.ok

    def refresh(self) -> dict[str, str | None]:
        """Fetches every issuer's key set now and keeps what arrives, as a token's first use
        would: issuer name -> None when the set came and holds a key that can verify a token,
        else why not. For checks (`vend doctor`); tokens never trigger it."""
        result: dict[str, str | None] = {}
        for state in self._by_iss.values():
            now = self._clock()
            with state.lock:
                state.last_attempt = now
            try:
                keys = _KeySet.build(
                    _fetch_jwks(state.config.jwks_url, self._timeout, self._tls), now
                )
            except _FetchError as error:
                result[state.config.name] = f"could not fetch the JWKS: {error}"
                continue
            with state.lock:
                state.keys = keys
            allowed = state.config.algorithms
            usable = any(
                isinstance(k, jwt.PyJWK) and alg in allowed
                for (_, alg), k in keys.by_kid_alg.items()
            ) or any(isinstance(k, jwt.PyJWK) and alg in allowed for alg, k in keys.single.items())
            result[state.config.name] = (
                None if usable else f"the JWKS has no key for {', '.join(allowed)}"
            )
        return result

    def fetched_once(self, timeout_s: float) -> dict[str, bool]:
        """Issuer name -> whether its key set has been fetched since start (for `/v1/ready`).
        An issuer never fetched is fetched now (or its fetch in flight waited for), within
        `timeout_s` for all of them and no more often than a token's first fetch may
        (`first_fetch_retry_s`), so that probes never flood an issuer; one fetched before is
        not fetched again."""
        deadline = self._monotonic() + timeout_s
        result: dict[str, bool] = {}
        for state in self._by_iss.values():
            if state.keys is None:
                now = self._clock()
                timeout = min(self._timeout, deadline - self._monotonic())
                fetch, mine = self._claim(state, now, timeout)
                if fetch is not None and mine:
                    self._run(state, fetch, now, timeout)
                elif fetch is not None:
                    self._wait(state, fetch, deadline)
            result[state.config.name] = state.keys is not None
        return result

    @staticmethod
    def _cannot_fetch(state: _IssuerState) -> str:
        return f"could not fetch the issuer's keys (issuer {state.config.name})"


__all__ = ["IssuerConfig", "JwtAuthenticator", "parse_issuers"]
