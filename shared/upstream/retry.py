"""The one retry policy of every upstream call: throttling, 5xx and connection errors only, with
capped exponential backoff and full jitter, inside the request's deadline.

An attempt is one exchange of `shared.upstream.transport`, which raises tea-openapi's own
exceptions for an error answer and WireError for the rest; this module decides whether to try
again."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)

from shared.errors import MaybeActed, UpstreamFailure, VendError, decided_by
from shared.upstream.deadline import Deadline
from shared.upstream.transport import WireError

T = TypeVar("T")
Kind = Literal[
    "throttle", "server", "unreadable", "connection", "dropped", "timeout", "client", "other"
]

# Never start an attempt with less than this left: it could not finish anyway.
MIN_ATTEMPT_S = 0.05
# The attribute a refusal raised as it is carries its number of attempts under (attempts_of).
_ATTEMPTS = "vend_attempts"


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
    if isinstance(exc, WireError):
        # "connection": nothing was sent. "dropped", "timeout" and "unreadable" may come after
        # the upstream read the request and acted on it (a create!).
        return exc.kind
    if isinstance(exc, ThrottlingException):
        return "throttle"
    if isinstance(exc, (ClientException, ServerException)):
        code = str(getattr(exc, "code", "") or "")
        if exc.status_code == 429 or "throttl" in code.lower():
            return "throttle"
        return "server" if exc.status_code >= 500 else "client"
    return "other"


def call(
    attempt: Callable[[int], T],
    deadline: Deadline,
    *,
    service: str,
    policy: RetryPolicy = DEFAULT,
    sleep: Callable[[float], None] = time.sleep,
    retry_server_errors: bool = True,
) -> T:
    """Runs `attempt(timeout_ms)` (which must end within `timeout_ms`) until it succeeds, fails
    for good, or the deadline ends. Client errors (4xx) are raised as they are, for the caller
    to map; the rest become UpstreamFailures (429, 502 or 504).

    A call that is not idempotent (EIAM's create) passes `retry_server_errors=False`: it is
    sent again only when nothing was sent (a refused or timed-out connect). Any other failure
    (a 5xx, throttling, a read timeout, a dropped connection, an unreadable answer) may come
    after the upstream acted, and is raised as MaybeActed for the caller to resolve. Such a call
    keeps a third of the deadline (at most 1 s) for that: its attempts end earlier."""
    last: Kind = "timeout"
    code: str | None = None
    status: int | None = None
    request_id: str | None = None
    tries = 0
    reserve_s = 0.0 if retry_server_errors else min(1.0, deadline.remaining() / 3)
    for n in range(policy.max_attempts):
        if deadline.remaining() - reserve_s < MIN_ATTEMPT_S:
            break
        tries += 1
        try:
            return attempt(max(1, int((deadline.remaining() - reserve_s) * 1000)))
        except (ClientException, ServerException, ThrottlingException, WireError) as exc:
            last = classify(exc)
            code = _code_of(exc) or code
            status = getattr(exc, "status_code", None) or status
            request_id = getattr(exc, "request_id", None) or request_id
            if last == "client":
                # For the refusal's mapping (eiam_error, kms_error, ...): how many calls it took.
                setattr(exc, _ATTEMPTS, tries)
                raise
            if not retry_server_errors and last != "connection":
                failure = exhausted(
                    last,
                    service,
                    deadline,
                    code=code,
                    status=status,
                    request_id=request_id,
                    attempts=tries,
                )
                raise MaybeActed(
                    failure.status,
                    failure.code,
                    f"{service} failed after the request was sent ({_describe(last, code)})",
                    settled=last in ("throttle", "server", "unreadable"),
                    **failure.facts(),
                ) from None
            if last not in ("throttle", "server", "unreadable", "connection", "dropped"):
                break
            pause = policy.backoff(n)
            retry_after = getattr(exc, "retry_after", None)
            if last == "throttle" and retry_after:
                pause = max(pause, float(retry_after))
            if n + 1 < policy.max_attempts and pause + MIN_ATTEMPT_S < deadline.remaining():
                sleep(pause)
            else:
                break
    raise exhausted(
        last, service, deadline, code=code, status=status, request_id=request_id, attempts=tries
    )


def attempts_of(exc: BaseException) -> int | None:
    """How many calls `call` made before it raised this refusal (a 4xx) as it is; None when it
    did not come through `call`."""
    attempts = getattr(exc, _ATTEMPTS, None)
    return attempts if isinstance(attempts, int) else None


def refused(err: VendError, exc: BaseException, service: str) -> VendError:
    """`err`, the contract's error for the refusal `exc` of `service`, carrying what the audit
    record says of it: the upstream's code, status and request id, and the calls made."""
    return decided_by(
        err,
        service,
        code=_code_of(exc),
        status=getattr(exc, "status_code", None),
        request_id=getattr(exc, "request_id", None),
        attempts=attempts_of(exc),
    )


def _code_of(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    return str(code) if code else None


def _describe(kind: Kind, code: str | None) -> str:
    what = {
        "throttle": "throttled",
        "server": "a server error",
        "connection": "no connection",
        "dropped": "the connection was lost",
        "timeout": "no answer in time",
        "client": "refused",
        "unreadable": "an answer that is not JSON",
        "other": "an unexpected failure",
    }[kind]
    return f"{what}: {code}" if code else what


def exhausted(
    kind: Kind,
    service: str,
    deadline: Deadline,
    *,
    code: str | None = None,
    status: int | None = None,
    request_id: str | None = None,
    attempts: int = 0,
) -> UpstreamFailure:
    if kind == "throttle":
        http, name, message = 429, "Throttled", f"{service} kept throttling the request"
    elif kind == "timeout" or deadline.expired():
        http, name = 504, "UpstreamTimeout"
        message = f"the request's deadline ran out waiting for {service}"
    else:
        http, name, message = 502, "UpstreamError", f"{service} failed and retries did not cure it"
    return UpstreamFailure(
        http,
        name,
        message,
        service=service,
        upstream_code=code,
        upstream_status=status,
        upstream_request_id=request_id,
        attempts=attempts,
    )
