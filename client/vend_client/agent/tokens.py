"""M2M access tokens for the agent's `/v1/token`: the OAuth 2.0 client credentials grant (RFC
6749 section 4.4) at the IDaaS instance's token endpoint, with a client secret the agent holds
and the caller never sees, and a cache of the tokens it got.

- The endpoint is a URL that may name `{instance_id}` and `{application_id}`: IDaaS serves one
  per instance (`https://INSTANCE-DOMAIN/api/v2/iauths_system/oauth2/token`, per its "M2M client
  token" examples); a per-application form costs nothing to allow.
- Client authentication is `client_secret_basic` (RFC 6749 section 2.3.1: the form-encoded
  client id and secret, joined by a colon, in base64) or `client_secret_post` (both in the body).
- A token is cached per (instance, application, secret, scope) until shortly before it expires:
  for 90% of its `expires_in`, and at least 30 s less. One exchange in flight per key; errors are
  never cached. An `invalid_client` refusal means the secret may have been rotated or disabled
  since it was cached: the secret is fetched again once, and the exchange tried once more."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote, urlsplit

import requests

from ..errors import VendClientError
from ..vended import VendedSecret

__all__ = [
    "AUTH_METHODS",
    "AccessToken",
    "TokenCache",
    "TokenEndpoint",
    "TokenEndpointError",
    "check_scope",
    "fresh_for",
    "secret_of",
]

AUTH_METHODS = ("client_secret_basic", "client_secret_post")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_KNOWN = {"instance_id", "application_id"}
# RFC 6749 appendix A.7 (error) and A.4 (scope-token): printable ASCII but " and \.
_OAUTH_CHARS = r"\x21\x23-\x5b\x5d-\x7e"
_ERROR_CODE = re.compile(rf"[{_OAUTH_CHARS}]{{1,64}}")
_SCOPE = re.compile(rf"[{_OAUTH_CHARS}]+( [{_OAUTH_CHARS}]+)*")
MAX_SCOPE_CHARS = 1024
MAX_ANSWER_BYTES = 64 * 1024


class TokenEndpointError(VendClientError):
    """The token endpoint refused or failed the exchange. `status` is its HTTP status (None: it
    never answered), `error` its OAuth error code (RFC 6749 section 5.2) when it sent one that
    reads as one; the message holds neither its body nor anything of the secret."""

    def __init__(self, message: str, *, status: int | None = None, error: str | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.error = error


@dataclass(frozen=True)
class AccessToken:
    access_token: str = field(repr=False)
    token_type: str
    expires_in: int | None  # seconds, as issued; None when the endpoint did not say
    issued_at: float  # epoch seconds when it was asked for

    @property
    def expires_at(self) -> int | None:
        return None if self.expires_in is None else int(self.issued_at + self.expires_in)

    def answer(self, now: float) -> dict[str, Any]:
        """The agent's `/v1/token` answer at epoch second `now`: `expires_in` is what is left."""
        left = None if self.expires_at is None else max(0, int(self.expires_at - now))
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": left,
            "expires_at": self.expires_at,
        }


def fresh_for(expires_in: int | None) -> float:
    """How long a token is served from the cache: 90% of its life, and at least 30 s short of
    its end (a caller must have time to use it); 0 (not cached) when its life is unknown."""
    if expires_in is None:
        return 0.0
    return max(0.0, min(0.9 * expires_in, expires_in - 30.0))


def check_scope(scope: str) -> str:
    """`scope` if it is a space-separated list of RFC 6749 scope tokens; ValueError if not."""
    if len(scope) > MAX_SCOPE_CHARS or not _SCOPE.fullmatch(scope):
        raise ValueError(
            f'scope must be scope tokens (printable ASCII but " and \\) separated by single '
            f"spaces, at most {MAX_SCOPE_CHARS} characters"
        )
    return scope


class TokenEndpoint:
    """The exchange at one token endpoint (a URL template, see the module's docstring)."""

    def __init__(
        self,
        template: str,
        *,
        auth_method: str = "client_secret_basic",
        timeout_s: float = 15.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        parts = urlsplit(template)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the token endpoint {template!r} is not an http(s):// URL")
        unknown = set(_PLACEHOLDER.findall(template)) - _KNOWN
        if unknown:
            raise ValueError(
                f"the token endpoint may name only {{instance_id}} and {{application_id}}, "
                f"not {', '.join('{' + u + '}' for u in sorted(unknown))}"
            )
        if auth_method not in AUTH_METHODS:
            raise ValueError(f"the token auth method must be one of {', '.join(AUTH_METHODS)}")
        self.template = template
        self.auth_method = auth_method
        self.timeout_s = timeout_s
        self._wall_clock = wall_clock
        self._http = requests.Session()

    def __repr__(self) -> str:
        return (
            f"TokenEndpoint({self.template!r}, auth_method={self.auth_method!r}, "
            f"timeout_s={self.timeout_s!r})"
        )

    def url_for(self, instance_id: str, application_id: str) -> str:
        # IDs are 1 to 64 of [A-Za-z0-9_-] (checked before anything is asked): safe in a URL.
        return self.template.replace("{instance_id}", instance_id).replace(
            "{application_id}", application_id
        )

    def exchange(self, secret: VendedSecret, scope: str | None) -> AccessToken:
        """An access token for `secret`'s application; TokenEndpointError if none is given."""
        url = self.url_for(secret.instance_id, secret.application_id)
        client_id = secret.client_id or secret.application_id  # IDaaS: the application's ID
        form = {"grant_type": "client_credentials"}
        if scope:
            form["scope"] = scope
        headers = {"Accept": "application/json"}
        if self.auth_method == "client_secret_basic":
            pair = f"{quote(client_id, safe='')}:{quote(secret.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        else:
            form.update(client_id=client_id, client_secret=secret.client_secret)
        asked_at = self._wall_clock()
        try:
            with self._http.post(
                url,
                data=form,
                headers=headers,
                timeout=self.timeout_s,
                allow_redirects=False,
                stream=True,
            ) as reply:
                status, body = reply.status_code, _read_bounded(reply)
        except requests.exceptions.Timeout:
            raise TokenEndpointError(
                f"the token endpoint {url} did not answer within {self.timeout_s:g} s"
            ) from None
        except requests.exceptions.RequestException as exc:
            raise TokenEndpointError(
                f"cannot reach the token endpoint {url}: {_why(exc)}"
            ) from None
        return _token_of(url, status, _json_object(body), asked_at)


def _read_bounded(reply: requests.Response) -> bytes | None:
    """The answer's body, None when it is over MAX_ANSWER_BYTES (not read further)."""
    chunks: list[bytes] = []
    size = 0
    for chunk in reply.iter_content(16384):
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _json_object(body: bytes | None) -> dict[str, Any] | None:
    if body is None:
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
        return None
    return data if isinstance(data, dict) else None


def _token_of(url: str, status: int, data: dict[str, Any] | None, asked_at: float) -> AccessToken:
    if status != 200:
        error = data.get("error") if data is not None else None
        code = error if isinstance(error, str) and _ERROR_CODE.fullmatch(error) else None
        said = f": {code}" if code else " (no OAuth error code)"
        raise TokenEndpointError(
            f"the token endpoint {url} refused: {status}{said}", status=status, error=code
        )
    token = data.get("access_token") if data is not None else None
    if data is None or not isinstance(token, str) or not token:
        raise TokenEndpointError(
            f"the token endpoint {url} answered 200 without an access token", status=status
        )
    token_type = data.get("token_type")
    expires_in = data.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():  # some servers send a string
        expires_in = int(expires_in)
    if expires_in is not None and (
        not isinstance(expires_in, int) or isinstance(expires_in, bool) or expires_in < 0
    ):
        raise TokenEndpointError(
            f"the token endpoint {url} answered an expires_in that is not a number of seconds",
            status=status,
        )
    return AccessToken(
        access_token=token,
        token_type=token_type if isinstance(token_type, str) and token_type else "Bearer",
        expires_in=expires_in,
        issued_at=asked_at,
    )


def _why(exc: Exception) -> str:
    text = str(exc).lower()
    if "refused" in text:
        return "connection refused"
    if any(m in text for m in ("name or service", "nodename", "getaddrinfo", "resolution")):
        return "unknown host"
    return f"connection failed ({type(exc).__name__})"


# -- the cache -------------------------------------------------------------------------------


class Secrets(Protocol):
    """Where the agent gets a client secret: a `CachingClient`. `secret_id` None is the
    application's current secret."""

    def get_secret(self, instance_id: str, application_id: str, secret_id: str) -> VendedSecret: ...

    def get_current(self, instance_id: str, application_id: str) -> VendedSecret: ...

    def refresh_now(
        self, instance_id: str, application_id: str, secret_id: str | None = None
    ) -> VendedSecret: ...


def secret_of(
    secrets: Secrets, instance_id: str, application_id: str, secret_id: str | None
) -> VendedSecret:
    """The secret named, or the application's current one when `secret_id` is None."""
    if secret_id is None:
        return secrets.get_current(instance_id, application_id)
    return secrets.get_secret(instance_id, application_id, secret_id)


class Exchange(Protocol):
    def exchange(self, secret: VendedSecret, scope: str | None) -> AccessToken: ...


# (instance_id, application_id, secret_id or None for the current secret, scope or "")
Key = tuple[str, str, str | None, str]


@dataclass(frozen=True)
class _Entry:
    token: AccessToken
    until: float  # monotonic seconds: served from the cache before this


class TokenCache:
    """Access tokens by (instance, application, secret, scope), the secret None for the
    application's current one (whose token stays valid after a rotation until it expires);
    thread-safe. `clock` is monotonic seconds, there to be replaced in tests."""

    def __init__(
        self,
        secrets: Secrets,
        endpoint: Exchange,
        *,
        max_entries: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._secrets = secrets
        self._endpoint = endpoint
        self._max_entries = max_entries
        self._clock = clock
        self._lock = threading.Lock()  # never held while asking anyone
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()  # least recently used first
        self._flights: dict[Key, Future[AccessToken]] = {}

    def get(
        self,
        instance_id: str,
        application_id: str,
        secret_id: str | None,
        scope: str | None = None,
        *,
        refresh: bool = False,
    ) -> AccessToken:
        """A token from the cache while fresh (unless `refresh`), else a new one: one exchange
        per key at a time, whose answer or error every asker meanwhile shares."""
        key = (instance_id, application_id, secret_id, scope or "")
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and not refresh and self._clock() < entry.until:
                self._entries.move_to_end(key)
                return entry.token
            flight = self._flights.get(key)
            mine = flight is None
            if flight is None:
                flight = self._flights[key] = Future()
        if mine:
            self._complete(key, flight)
        return flight.result()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _complete(self, key: Key, flight: Future[AccessToken]) -> None:
        asked_at = self._clock()
        try:
            token = self._exchange(key)
        except BaseException as exc:
            with self._lock:
                del self._flights[key]
            flight.set_exception(exc)
            return
        with self._lock:
            del self._flights[key]
            life = fresh_for(token.expires_in)
            if life > 0:
                self._entries[key] = _Entry(token, asked_at + life)
                self._entries.move_to_end(key)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
            else:
                self._entries.pop(key, None)
        flight.set_result(token)

    def _exchange(self, key: Key) -> AccessToken:
        instance_id, application_id, secret_id, scope = key
        secret = secret_of(self._secrets, instance_id, application_id, secret_id)
        try:
            return self._endpoint.exchange(secret, scope or None)
        except TokenEndpointError as exc:
            if exc.error != "invalid_client":
                raise
        # The cached secret no longer works (rotated, disabled): the service's word, once.
        secret = self._secrets.refresh_now(instance_id, application_id, secret_id)
        return self._endpoint.exchange(secret, scope or None)
