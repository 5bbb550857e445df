"""Scoped credentials: STS AssumeRole on the vending role with an inline session policy that
allows one EIAM action on one secret ARN, cached per (action, ARN) until a minute before they
expire.

STS allows AssumeRole 100 times a second per account, for every instance together. So the
cache is bounded (MAX_SESSIONS, least recently used first out), and an instance assumes the
role at most ASSUME_ROLE_PER_S times a second, with a burst of ASSUME_ROLE_BURST: a request that
needs a new session beyond that is refused at once with 429 `Throttled` and `Retry-After`, and
nothing is sent to STS. A caller approved on many secrets (a wildcard) cannot make the instance
hammer STS or hold a session per secret."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime

from alibabacloud_tea_openapi.exceptions import ClientException

from shared.arns import session_policy
from shared.errors import (
    UpstreamFailure,
    VendError,
    access_denied,
    upstream_error,
    upstream_timeout,
)
from shared.upstream import retry, rpc
from shared.upstream.deadline import Deadline
from shared.upstream.identity import FunctionIdentity
from shared.upstream.rpc import STS_VERSION, Credentials, RpcTransport
from shared.upstream.token_bucket import TokenBucket
from shared.wire.endpoint import Endpoint

DURATION_S = 900
REFRESH_BEFORE_S = 60
# About 2 KB each (the security token is most of it): 1,024 sessions hold about 2 MB.
MAX_SESSIONS = 1024
# Five instances at this rate reach STS's 100 a second (VEND_ASSUME_ROLE_RATE overrides it).
ASSUME_ROLE_PER_S = 20.0
# A cold instance needs a session per (action, ARN) it serves at once: the burst covers that.
ASSUME_ROLE_BURST = 50

_Key = tuple[str, str]


class _KeyLock:
    """One AssumeRole per key at a time; the lock lives while a request uses or awaits it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.users = 0


class ScopedSessions:
    def __init__(
        self,
        transport: RpcTransport,
        endpoint: Endpoint,
        identity: FunctionIdentity,
        role_arn: str,
        clock: Callable[[], float] = time.time,
        *,
        max_sessions: int = MAX_SESSIONS,
        rate_per_s: float = ASSUME_ROLE_PER_S,
        burst: int = ASSUME_ROLE_BURST,
        monotonic: Callable[[], float] = time.monotonic,
        patient: bool = False,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """`patient`: a new session over the rate waits for its turn (within the request's
        deadline) instead of being refused at once; for an instance that serves no caller
        (the scheduled rotation's, whose applications would otherwise fail in bulk)."""
        self._transport = transport
        self._endpoint = endpoint
        self._identity = identity
        self._role_arn = role_arn
        self._clock = clock
        self._max = max_sessions
        self._bucket = TokenBucket(rate_per_s, burst, monotonic)
        self._patient = patient
        self._sleep = sleep
        self._cache: OrderedDict[_Key, tuple[Credentials, float]] = OrderedDict()
        self._locks: dict[_Key, _KeyLock] = {}
        self._guard = threading.Lock()

    def __len__(self) -> int:
        """How many sessions are cached (at most `max_sessions`)."""
        with self._guard:
            return len(self._cache)

    @property
    def keys_in_use(self) -> int:
        """How many keys have an AssumeRole in flight or awaited: their locks, dropped when no
        request uses them any more."""
        with self._guard:
            return len(self._locks)

    def get(self, action: str, resource: str, deadline: Deadline) -> Credentials:
        key = (action, resource)
        cached = self._fresh(key)
        if cached is not None:
            return cached
        with self._guard:
            entry = self._locks.get(key)
            if entry is None:
                entry = self._locks[key] = _KeyLock()
            entry.users += 1
        try:
            # One AssumeRole per key at a time; the others wait (within their deadline) and
            # reuse what it got.
            if not entry.lock.acquire(timeout=deadline.remaining()):
                raise upstream_timeout("the request's deadline ran out waiting for STS")
            try:
                cached = self._fresh(key)
                if cached is not None:
                    return cached
                wait_s = self._bucket.take()
                while wait_s:
                    if not self._patient or wait_s >= deadline.remaining():
                        raise _over_rate(wait_s)
                    self._sleep(wait_s)
                    wait_s = self._bucket.take()
                creds, expires = self._assume(action, resource, deadline)
                self._keep(key, creds, expires)
                return creds
            finally:
                entry.lock.release()
        finally:
            with self._guard:
                entry.users -= 1
                if entry.users == 0:
                    del self._locks[key]

    def drop(self, action: str, resource: str, stale: Credentials) -> None:
        """Forgets `stale`, which an upstream refused (a restarted STS, a revoked session, a
        re-created role); the next `get` assumes the role afresh. A newer session that another
        thread has put in its place is kept."""
        with self._guard:
            entry = self._cache.get((action, resource))
            if entry is not None and entry[0] == stale:
                del self._cache[(action, resource)]

    def _fresh(self, key: _Key) -> Credentials | None:
        with self._guard:
            entry = self._cache.get(key)
            if entry is not None:
                self._cache.move_to_end(key)
        if entry is not None and self._clock() < entry[1] - REFRESH_BEFORE_S:
            return entry[0]
        return None

    def _keep(self, key: _Key, creds: Credentials, expires: float) -> None:
        with self._guard:
            self._cache[key] = (creds, expires)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)

    def _assume(self, action: str, resource: str, deadline: Deadline) -> tuple[Credentials, float]:
        query = {
            "RoleArn": self._role_arn,
            "RoleSessionName": "vend-"
            + hashlib.sha256(f"{action}\n{resource}".encode()).hexdigest()[:24],
            "DurationSeconds": str(DURATION_S),
            "Policy": session_policy(action, resource),
        }
        try:
            body = rpc.call(
                self._transport,
                self._endpoint,
                self._identity.current(),
                "AssumeRole",
                STS_VERSION,
                query,
                deadline,
                service="STS",
            )
        except ClientException as exc:
            raise _sts_error(exc) from None
        try:
            raw = body["Credentials"]
            creds = Credentials(raw["AccessKeyId"], raw["AccessKeySecret"], raw["SecurityToken"])
            expires = datetime.fromisoformat(raw["Expiration"].replace("Z", "+00:00")).timestamp()
            if not all(
                isinstance(v, str) and v
                for v in (creds.access_key_id, creds.access_key_secret, creds.security_token)
            ):
                raise ValueError
        except (KeyError, AttributeError, TypeError, ValueError):
            raise upstream_error("STS answered AssumeRole without usable credentials") from None
        return creds, expires


def _sts_error(exc: ClientException) -> VendError:
    if exc.status_code == 403:
        err = access_denied("STS refused to assume the vending role")
    else:
        err = upstream_error(f"STS refused AssumeRole: {exc.code}")
    return retry.refused(err, exc, "STS")


def _over_rate(wait_s: float) -> UpstreamFailure:
    """The refusal of a request over this instance's AssumeRole rate: nothing was sent."""
    seconds = max(1, math.ceil(wait_s))
    err = UpstreamFailure(
        429,
        "Throttled",
        f"Too many new STS sessions at once on this instance; retry after {seconds} s.",
        service="STS",
        attempts=0,
    )
    err.headers["Retry-After"] = str(seconds)
    return err
