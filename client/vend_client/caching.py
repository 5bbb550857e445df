"""`CachingClient`: a caller's client secrets, opened once and served from memory while fresh.

Without it every read goes to the service, and through it to STS, EIAM and KMS: a busy caller
pays four round trips per read and spends the service's (and EIAM's) rate limits. With it:

    with CachingClient("https://...", audience="vend-prod") as secrets:
        secret = secrets.get("idaas_x", "app_y", "sct_z")   # the opened client secret
        vended = secrets.get_secret("idaas_x", "app_y", "sct_z")  # with client_id, expiry...
        current = secrets.get_current("idaas_x", "app_y")  # whichever secret is current
        ...
        vended = secrets.refresh_now("idaas_x", "app_y", "sct_z")  # after it stopped working
        current = secrets.refresh_now("idaas_x", "app_y")  # the current secret, asked anew

What it promises, and why:

- Memory only. An opened secret is never written anywhere (no file, no pickle); `close()`
  drops every cached value. (Python cannot wipe a `str`; dropping it is what there is.)
- A bounded number of entries (`max_entries`, least recently used evicted first), so a caller
  that asks for many secrets cannot grow without bound.
- One request in flight per secret, however many threads ask (single flight): the others wait
  for that answer and share it, or share its error. A cold start of a hundred workers is one
  request, not a hundred.
- Refresh ahead: a `get` within `refresh_ahead_s` of a value's expiry returns the cached value
  at once and starts a refresh in a background daemon thread. A failed background refresh keeps
  the old value in service until it really expires, and the next `get` tries again. A value
  nobody asks for is never refreshed (no timer polls the service for it).
- Retries, with capped exponential backoff and full jitter, of what may pass: the service's
  429, 502, 503 and 504, waiting at least its `Retry-After` (seconds form) when it sends one, and
  connection errors (refused, reset, a connect timeout): `obtain` only reads, so sending it
  again is harmless. Not a read timeout (the service already spent its own deadline; trying
  again would multiply the caller's wait), and never a 4xx other than 429: a denial, a missing
  secret or bad credentials do not cure themselves.
- Errors are never cached: the next `get` asks again.
- Only `obtain` and `current` are cached. A `create` makes a new secret each time: not
  something to cache.
- The current secret (`get_current`) is cached on its own, under (instance, application, None):
  for the TTL, as any secret, and then asked for again, so a rotation reaches a caller within
  one TTL (a rotation's grace period must be at least that long). It is not the same entry as
  that secret asked for by its ID.

Expiry: a value is fresh for `ttl_s` from when it was asked for, and never past the secret's own
`expiration_time` (if EIAM gives it one), so a cached secret does not outlive itself.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from . import settings
from .credentials import Credentials
from .errors import ConfigurationError, ServiceUnreachable, VendApiError
from .http import VendClient, from_env_settings
from .response import VendResponse
from .vended import VendedSecret
from .wire.endpoint import Endpoint

__all__ = ["RETRYABLE_STATUSES", "CachingClient"]

log = logging.getLogger("vend_client.caching")

# What the service answers when trying again later may work (contract section 7: throttling
# that persisted, an upstream failure, its deadline; 503 from a gateway or FC itself).
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

Key = tuple[str, str, str | None]  # (instance_id, application_id, secret_id; None: current)


@dataclass(frozen=True)
class _Entry:
    value: VendedSecret  # whose repr leaves the opened secret out
    refresh_at: float  # from here on, a get starts a background refresh
    expires_at: float  # from here on, the value is never served


class CachingClient:
    """Opened client secrets, cached in memory by (instance_id, application_id, secret_id), and
    each application's current secret by (instance_id, application_id, None).

    Thread-safe: one instance is meant to be shared by all of a process's threads. Either give
    the service's `url` and the rest as `VendClient` takes them (`audience` for RAM proofs or a
    bearer `token`, a string or a callable; `credentials` or the default chain; `sts_endpoint`,
    `kms_endpoint`, `region`, `timeout_s`), or an existing `client=VendClient(...)`, not both;
    or build it from the `VEND_*` variables with `CachingClient.from_env()`.

    `clock` (monotonic seconds), `wall_clock` (epoch seconds, read against a secret's
    `expiration_time`), `sleep` and `rng` (uniform in [0, 1)) are there to be replaced in tests.
    `sleep` None waits with `time.sleep` in a caller's thread, and in a background refresh with a
    wait that `close()` cuts short.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: VendClient | None = None,
        audience: str | None = None,
        token: str | Callable[[], str] | None = None,
        credentials: Credentials | None = None,
        sts_endpoint: str | Endpoint | None = None,
        kms_endpoint: str | Endpoint | None = None,
        region: str = settings.DEFAULT_REGION,
        timeout_s: float = settings.DEFAULT_TIMEOUT_S,
        expected_principal: str | None = None,
        ttl_s: float = 300.0,
        refresh_ahead_s: float | None = None,
        max_entries: int = 1000,
        max_attempts: int = 4,
        backoff_base_s: float = 0.2,
        backoff_cap_s: float = 5.0,
        max_retry_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        """Defaults: fresh for 5 minutes, refreshed in the background in the last fifth of that
        (`refresh_ahead_s` None: `ttl_s / 5`; 0: never ahead), at most 1000 secrets, 4 attempts
        per fetch with backoff from 0.2 s capped at 5 s, and a `Retry-After` over 30 s not
        waited for (the error is raised at once: a caller blocked for minutes is worse off than
        one told to come back). STS defaults to `sts.aliyuncs.com` and KMS to
        `kms.{region}.aliyuncs.com`, as the `vend` command's do. `expected_principal` skips
        asking STS who the caller is before each opening (see `VendClient.open`).
        ConfigurationError (a ValueError) for settings that cannot work."""
        if url is None and client is None:
            raise ConfigurationError(
                "CachingClient needs the service's url (or CachingClient.from_env() with "
                "VEND_URL set), or an existing client=VendClient(...)",
                setting="url",
            )
        if client is not None:
            given = {
                "url": url,
                "audience": audience,
                "token": token,
                "credentials": credentials,
                "sts_endpoint": sts_endpoint,
                "kms_endpoint": kms_endpoint,
            }
            both = [name for name, value in given.items() if value is not None]
            if both:
                raise ConfigurationError(
                    f"give either an existing client= or the settings to make one "
                    f"({', '.join(both)}), not both",
                    setting=both[0],
                )
        if ttl_s <= 0:
            raise ConfigurationError("ttl_s must be positive", setting="ttl_s")
        ahead = ttl_s / 5 if refresh_ahead_s is None else refresh_ahead_s
        if not 0 <= ahead < ttl_s:
            raise ConfigurationError(
                "refresh_ahead_s must be at least 0 and less than ttl_s", setting="refresh_ahead_s"
            )
        if max_entries < 1 or max_attempts < 1:
            raise ConfigurationError(
                "max_entries and max_attempts must be at least 1", setting="max_entries"
            )
        if client is None:
            assert url is not None
            client = VendClient(
                url=url,
                audience=audience,
                token=token,
                credentials=credentials,
                sts_endpoint=sts_endpoint,
                kms_endpoint=kms_endpoint,
                region=region,
                timeout_s=timeout_s,
            )
        self.client = client
        self._expected_principal = expected_principal
        self._ttl_s = ttl_s
        self._ahead_s = ahead
        self._max_entries = max_entries
        self._max_attempts = max_attempts
        self._base_s = backoff_base_s
        self._cap_s = backoff_cap_s
        self._max_retry_after_s = max_retry_after_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._rng = rng
        # One lock guards all three maps; no request is ever made while holding it.
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._entries: OrderedDict[Key, _Entry] = OrderedDict()  # least recently used first
        self._flights: dict[Key, Future[VendedSecret]] = {}  # the one fetch in flight per secret
        self._background: set[threading.Thread] = set()
        self._closed = False
        self._stop = threading.Event()  # set by close(): cuts a background refresh's waits

    def __repr__(self) -> str:
        # Its client's repr (no token, no key), never an entry (each holds an opened secret).
        return (
            f"{type(self).__name__}(client={self.client!r}, ttl_s={self._ttl_s!r}, "
            f"max_entries={self._max_entries!r})"
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> CachingClient:
        """A caching client configured as `VendClient.from_env()` is (`VEND_URL`,
        `VEND_AUDIENCE`, `VEND_STS_ENDPOINT`, `VEND_KMS_ENDPOINT`, `VEND_REGION`, `VEND_TIMEOUT`,
        the default credential chain), each keyword given here winning over its variable; any
        of the constructor's keywords (`ttl_s`, `token`, ...) may be given. ConfigurationError,
        naming the variable, as `VendClient.from_env`."""
        return cls(**from_env_settings(overrides))

    # -- asking ----------------------------------------------------------------------------

    def get(self, instance_id: str, application_id: str, secret_id: str) -> str:
        """The opened client secret alone: `get_secret(...).client_secret`."""
        return self.get_secret(instance_id, application_id, secret_id).client_secret

    def get_secret(self, instance_id: str, application_id: str, secret_id: str) -> VendedSecret:
        """The opened client secret with its client id, status and expiry: from memory while
        fresh, else fetched (once, whoever else asks meanwhile). Raises what the fetch raised
        (a VendClientError), after the retries described in the module's docstring."""
        return self._get((instance_id, application_id, secret_id))

    def get_current(self, instance_id: str, application_id: str) -> VendedSecret:
        """The application's current secret (contract section 14), opened, as `get_secret`
        serves a named one: cached for the TTL and never past that secret's own expiration;
        `secret_id` says which secret it is."""
        return self._get((instance_id, application_id, None))

    def _get(self, key: Key) -> VendedSecret:
        with self._lock:
            self._check_open()
            now = self._clock()
            entry = self._entries.get(key)
            if entry is not None and now < entry.expires_at:
                self._entries.move_to_end(key)
                if now >= entry.refresh_at and key not in self._flights:
                    self._start_background_locked(key)
                return entry.value
            if entry is not None:
                del self._entries[key]  # expired: never served again, so not kept either
            flight, mine = self._join_or_start_locked(key)
        if mine:
            self._complete(key, flight, background=False)
        return flight.result()

    def refresh_now(
        self, instance_id: str, application_id: str, secret_id: str | None = None
    ) -> VendedSecret:
        """Fetches the secret now (`secret_id` None: the application's current secret, as
        `get_current` caches it), whatever the cache holds, and caches what comes back: for
        when the cached value stopped working (rotated, disabled). If a fetch of it is already in
        flight (a get's or a background refresh's), its answer is this one's: it was asked for
        no earlier than the cached value. Gets meanwhile keep being served the cached value. On
        an error the cached value stays as it was (errors are not cached) and the error is
        raised."""
        key = (instance_id, application_id, secret_id)
        with self._lock:
            self._check_open()
            flight, mine = self._join_or_start_locked(key)
        if mine:
            self._complete(key, flight, background=False)
        return flight.result()

    # -- lifetime --------------------------------------------------------------------------

    def wait_for_refreshes(self, timeout_s: float | None = None) -> bool:
        """Waits until no background refresh is running; False if `timeout_s` ran out first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._background, timeout_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Drops every cached value, starts no more background refreshes, and waits (up to
        `timeout_s`) for those running, which give up at their next retry. A fetch that a
        caller's thread is making still answers that caller, but is not cached. `get` after
        `close` raises RuntimeError."""
        with self._lock:
            self._closed = True
            self._entries.clear()
        self._stop.set()
        self.wait_for_refreshes(timeout_s)

    def __enter__(self) -> CachingClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __len__(self) -> int:
        """How many secrets are cached (fresh or not yet dropped)."""
        with self._lock:
            return len(self._entries)

    # -- fetching --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("this CachingClient is closed")

    def _join_or_start_locked(self, key: Key) -> tuple[Future[VendedSecret], bool]:
        """The fetch in flight for `key`, and whether the caller just started it (and so must
        run it)."""
        flight = self._flights.get(key)
        if flight is not None:
            return flight, False
        flight = self._flights[key] = Future()
        return flight, True

    def _start_background_locked(self, key: Key) -> None:
        flight, _ = self._join_or_start_locked(key)
        thread = threading.Thread(
            target=self._run_background, args=(key, flight), name="vend-cache-refresh", daemon=True
        )
        self._background.add(thread)
        thread.start()

    def _run_background(self, key: Key, flight: Future[VendedSecret]) -> None:
        try:
            self._complete(key, flight, background=True)
        finally:
            with self._changed:
                self._background.discard(threading.current_thread())
                self._changed.notify_all()

    def _complete(self, key: Key, flight: Future[VendedSecret], *, background: bool) -> None:
        """Runs the fetch of `flight` and settles it: caches a value, never an error."""
        try:
            value, entry = self._fetch(key, background=background)
        except BaseException as exc:
            with self._lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
            flight.set_exception(exc)
            if background:
                log.warning(
                    "background refresh of %s failed, the cached value is served until it "
                    "expires: %s: %s",
                    _shown(key),
                    type(exc).__name__,
                    exc,
                )
            return
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
            if not self._closed and entry is not None:
                self._entries[key] = entry
                self._entries.move_to_end(key)
                while len(self._entries) > self._max_entries:
                    self._entries.popitem(last=False)
        flight.set_result(value)

    def _fetch(self, key: Key, *, background: bool) -> tuple[VendedSecret, _Entry | None]:
        """Obtains (with retries) and opens one secret; the entry to cache, None when it may
        not be cached (the secret has already expired)."""
        instance_id, application_id, secret_id = key
        asked_at = self._clock()
        response = self._obtain(key, background=background)
        if secret_id is None:
            opened = self.client.open_current(
                response,
                instance_id=instance_id,
                application_id=application_id,
                expected_principal=self._expected_principal,
            )
        else:
            opened = self.client.open(
                response,
                instance_id=instance_id,
                application_id=application_id,
                secret_id=secret_id,
                expected_principal=self._expected_principal,
            )
        value = VendedSecret.of(response, opened)
        fresh_for = self._ttl_s
        if response.expiration_time is not None:
            fresh_for = min(fresh_for, response.expiration_time / 1000 - self._wall_clock())
        if fresh_for <= 0:
            return value, None
        # Ahead of the TTL only: a refresh before the secret's own expiry would bring back the
        # same secret, expiring at the same time.
        entry = _Entry(
            value,
            refresh_at=asked_at + self._ttl_s - self._ahead_s,
            expires_at=asked_at + fresh_for,
        )
        return value, entry

    def _obtain(self, key: Key, *, background: bool) -> VendResponse:
        last: Exception | None = None
        for attempt in range(self._max_attempts):
            if attempt:
                if background and self._closed:
                    break
                self._wait(self._pause(attempt - 1, last), background=background)
                if background and self._closed:
                    break  # closed while waiting: nobody is left to want the answer
            try:
                instance_id, application_id, secret_id = key
                if secret_id is None:
                    return self.client.current(instance_id, application_id)
                return self.client.obtain(instance_id, application_id, secret_id)
            except VendApiError as exc:
                if exc.status not in RETRYABLE_STATUSES:
                    raise
                if exc.retry_after is not None and exc.retry_after > self._max_retry_after_s:
                    raise
                last = exc
            except ServiceUnreachable as exc:
                # A connection that failed is retried; not a read timeout (ServiceTimeout), a
                # TLS certificate that does not verify, or an answer that broke off.
                if not exc.retryable:
                    raise
                last = exc
            log.debug(
                "obtain %s failed (attempt %d of %d): %s",
                _shown(key),
                attempt + 1,
                self._max_attempts,
                last,
            )
        assert last is not None
        raise last

    def _pause(self, retry: int, error: Exception | None) -> float:
        """Full jitter, uniform in [0, min(cap, base * 2**retry)), and at least the service's
        Retry-After when it sent one."""
        pause = self._rng() * min(self._cap_s, self._base_s * 2.0**retry)
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None:
            pause = max(pause, float(retry_after))
        return pause

    def _wait(self, seconds: float, *, background: bool) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
        elif background:
            self._stop.wait(seconds)
        else:
            time.sleep(seconds)


def _shown(key: Key) -> str:
    instance_id, application_id, secret_id = key
    return f"{instance_id}/{application_id}/{secret_id or 'current'}"
