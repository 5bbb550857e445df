"""Scoped credentials: STS AssumeRole on the vending role with an inline session policy that
allows one EIAM action on one secret ARN, cached per (action, ARN) until a minute before they
expire (AssumeRole is limited to 100 QPS per account)."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from datetime import datetime

from alibabacloud_tea_openapi.exceptions import ClientException

from shared.arns import session_policy
from shared.errors import VendError, access_denied, upstream_error
from shared.upstream import retry, rpc
from shared.upstream.deadline import Deadline
from shared.upstream.identity import FunctionIdentity
from shared.upstream.rpc import STS_VERSION, Credentials, RpcTransport
from shared.wire.endpoint import Endpoint

DURATION_S = 900
REFRESH_BEFORE_S = 60


class ScopedSessions:
    def __init__(
        self,
        transport: RpcTransport,
        endpoint: Endpoint,
        identity: FunctionIdentity,
        role_arn: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._transport = transport
        self._endpoint = endpoint
        self._identity = identity
        self._role_arn = role_arn
        self._clock = clock
        self._cache: dict[tuple[str, str], tuple[Credentials, float]] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def get(self, action: str, resource: str, deadline: Deadline) -> Credentials:
        key = (action, resource)
        cached = self._fresh(key)
        if cached is not None:
            return cached
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:  # one AssumeRole per key at a time; the others wait and reuse it
            cached = self._fresh(key)
            if cached is not None:
                return cached
            creds, expires = self._assume(action, resource, deadline)
            with self._guard:
                now = self._clock()
                self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
                self._cache[key] = (creds, expires)
            return creds

    def drop(self, action: str, resource: str, stale: Credentials) -> None:
        """Forgets `stale`, which an upstream refused (a restarted STS, a revoked session, a
        re-created role); the next `get` assumes the role afresh. A newer session that another
        thread has put in its place is kept."""
        with self._guard:
            entry = self._cache.get((action, resource))
            if entry is not None and entry[0] == stale:
                del self._cache[(action, resource)]

    def _fresh(self, key: tuple[str, str]) -> Credentials | None:
        with self._guard:
            entry = self._cache.get(key)
        if entry is not None and self._clock() < entry[1] - REFRESH_BEFORE_S:
            return entry[0]
        return None

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
