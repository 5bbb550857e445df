"""The one retry policy of every upstream call: throttling, 5xx and connection errors only, with
capped exponential backoff and full jitter, inside the request's deadline.

tea-openapi 0.4.6 ignores `RuntimeOptions.autoretry`; a client is tried once, and this module
decides whether to try again."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import requests
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from darabonba.exceptions import UnretryableException
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from shared.errors import VendError, throttled, upstream_error, upstream_timeout
from shared.upstream.deadline import Deadline

T = TypeVar("T")
Kind = Literal["throttle", "server", "connection", "dropped", "timeout", "client", "other"]

# Never start an attempt with less than this left: it could not finish anyway.
MIN_ATTEMPT_S = 0.05


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 4
    base_s: float = 0.05
    cap_s: float = 1.0

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt))."""
        return rand() * min(self.cap_s, self.base_s * 2.0**attempt)


DEFAULT = RetryPolicy()


def classify(exc: BaseException) -> Kind:
    if isinstance(exc, ThrottlingException):
        return "throttle"
    if isinstance(exc, (ClientException, ServerException)):
        code = str(getattr(exc, "code", "") or "")
        if exc.status_code == 429 or "throttl" in code.lower():
            return "throttle"
        return "server" if exc.status_code >= 500 else "client"
    inner = _transport_error(exc)
    # A read timeout may come after the upstream acted (a create!), so it is not retried.
    if isinstance(inner, requests.exceptions.ReadTimeout):
        return "timeout"
    if isinstance(inner, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        # Refused or timed out while connecting: nothing was sent. Anything else (a reset, a
        # dropped connection) may come after the upstream read the request and acted on it.
        return "connection" if _while_connecting(inner) else "dropped"
    return "other"


def _while_connecting(error: BaseException) -> bool:
    if isinstance(error, requests.exceptions.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _transport_error(exc: BaseException) -> BaseException | None:
    """The requests exception behind an SDK failure. tea-openapi wraps what an attempt raised in
    UnretryableException, and darabonba's `do_action` replaces requests' exception with its own
    RetryError (raised inside `except IOError`), so the original is that one's __context__."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, requests.exceptions.RequestException):
            return current
        if isinstance(current, UnretryableException):
            current = current.inner_exception
        else:
            current = current.__cause__ or current.__context__
    return None


def call(
    attempt: Callable[[int], T],
    deadline: Deadline,
    *,
    service: str,
    policy: RetryPolicy = DEFAULT,
    sleep: Callable[[float], None] = time.sleep,
    retry_server_errors: bool = True,
) -> T:
    """Runs `attempt(read_timeout_ms)` until it succeeds, fails for good, or the deadline ends.
    Client errors (4xx) are raised as they are, for the caller to map; the rest become
    VendErrors (429, 502 or 504). A call that is not idempotent (EIAM's create) passes
    `retry_server_errors=False`: after a 5xx or a dropped connection the upstream may have
    acted, as after a read timeout; it is retried only when nothing was sent."""
    last: Kind = "timeout"
    for n in range(policy.max_attempts):
        if deadline.remaining() < MIN_ATTEMPT_S:
            break
        try:
            return attempt(max(1, deadline.remaining_ms()))
        except (ClientException, ServerException, ThrottlingException, UnretryableException) as exc:
            last = classify(exc)
            if last == "client":
                raise
            if last in ("server", "dropped") and not retry_server_errors:
                break
            if last not in ("throttle", "server", "connection", "dropped"):
                break
            pause = policy.backoff(n)
            retry_after = getattr(exc, "retry_after", None)
            if last == "throttle" and retry_after:
                pause = max(pause, float(retry_after))
            if n + 1 < policy.max_attempts and pause + MIN_ATTEMPT_S < deadline.remaining():
                sleep(pause)
            else:
                break
    raise exhausted(last, service, deadline)


def exhausted(kind: Kind, service: str, deadline: Deadline) -> VendError:
    if kind == "throttle":
        return throttled(f"{service} kept throttling the request")
    if kind == "timeout" or deadline.expired():
        return upstream_timeout(f"the request's deadline ran out waiting for {service}")
    return upstream_error(f"{service} failed and retries did not cure it")
