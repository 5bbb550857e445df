"""The one retry policy and the request deadline (shared/upstream/retry.py, deadline.py), as units.

An attempt is one exchange of `shared.upstream.transport`: an error answer raises tea-openapi's
own exception classes (built here with their own constructors), anything else the transport's
WireError, whose kind says how far the exchange got ("connection": nothing was sent; "dropped",
"timeout", "unreadable": after sending). The last section checks that a real RpcTransport raises
those kinds from a real socket. The attempt function, the clock and `sleep` are the test's own:
they script what an upstream does and record what the policy does about it."""

from __future__ import annotations

import random
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)

from shared.errors import MaybeActed, VendError
from shared.upstream import retry
from shared.upstream.deadline import Deadline
from shared.upstream.retry import MIN_ATTEMPT_S, RetryPolicy
from shared.upstream.transport import RpcTransport, WireError
from shared.wire.credentials import Credentials
from shared.wire.endpoint import Endpoint

# Contract section 7 and the README: an upstream call is tried at most four times. A literal, not
# `retry.DEFAULT.max_attempts`: what the code under test says it does is not what it must do.
ATTEMPTS = 4


# -- what an attempt raises: the SDK's exceptions for an error answer, WireError for the rest -----


def server_error(status: int = 503, code: str = "ServiceUnavailable") -> ServerException:
    body = {"RequestId": "req-5xx", "HostId": "eiam", "Code": code, "Message": "try later"}
    return ServerException(
        status_code=status,
        code=code,
        message=f"code: {status}, try later request id: req-5xx",
        data=body,
        request_id="req-5xx",
    )


def client_error(status: int = 400, code: str = "InvalidParameter") -> ClientException:
    body = {"RequestId": "req-4xx", "HostId": "eiam", "Code": code, "Message": "no"}
    return ClientException(
        status_code=status,
        code=code,
        message=f"code: {status}, no request id: req-4xx",
        data=body,
        request_id="req-4xx",
    )


def throttling(retry_after: int | None = 1, status: int = 429) -> ThrottlingException:
    body = {"RequestId": "req-th", "Code": "Throttling.User", "Message": "slow down"}
    return ThrottlingException(
        status_code=status,
        code="Throttling.User",
        message=f"code: {status}, slow down request id: req-th",
        data=body,
        request_id="req-th",
        retry_after=retry_after,
    )


# The transport's own failures, with the messages it gives them.


def read_timeout() -> WireError:
    return WireError("timeout", "no answer from eiam.cn-hangzhou.aliyuncs.com in time")


def connect_timeout() -> WireError:
    return WireError("connection", "no connection to eiam.cn-hangzhou.aliyuncs.com: TimeoutError")


def connection_refused() -> WireError:
    return WireError(
        "connection", "no connection to eiam.cn-hangzhou.aliyuncs.com: ConnectionRefusedError"
    )


def dropped() -> WireError:
    return WireError(
        "dropped", "the connection to eiam.cn-hangzhou.aliyuncs.com was lost: RemoteDisconnected"
    )


def unreadable(status: int = 200) -> WireError:
    return WireError("unreadable", "an answer that is not JSON", status=status)


# -- the test's own upstream, clock and sleep ------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Upstream:
    """Answers attempt n with script[n]: an exception to raise, or a value to return. Each attempt
    costs `cost_s` of the fake clock. Records the read timeout each attempt was given and what
    the deadline had left when it started."""

    clock: FakeClock
    script: list[BaseException | str]
    cost_s: float = 0.0
    read_timeouts_ms: list[int] = field(default_factory=list)
    remaining_at_start: list[float] = field(default_factory=list)
    deadline: Deadline | None = None

    def __call__(self, read_timeout_ms: int) -> str:
        n = len(self.read_timeouts_ms)
        self.read_timeouts_ms.append(read_timeout_ms)
        if self.deadline is not None:
            self.remaining_at_start.append(self.deadline.remaining())
        self.clock.now += self.cost_s
        outcome = self.script[min(n, len(self.script) - 1)]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    @property
    def attempts(self) -> int:
        return len(self.read_timeouts_ms)


@dataclass
class Sleeper:
    clock: FakeClock
    pauses: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        assert seconds >= 0
        self.pauses.append(seconds)
        self.clock.now += seconds


@dataclass
class Run:
    clock: FakeClock
    deadline: Deadline
    upstream: Upstream
    sleeper: Sleeper

    def call(
        self, policy: RetryPolicy = retry.DEFAULT, service: str = "EIAM", idempotent: bool = True
    ) -> str:
        return retry.call(
            self.upstream,
            self.deadline,
            service=service,
            policy=policy,
            sleep=self.sleeper,
            retry_server_errors=idempotent,
        )

    def fails(self, policy: RetryPolicy = retry.DEFAULT, idempotent: bool = True) -> VendError:
        with pytest.raises(VendError) as info:
            self.call(policy, idempotent=idempotent)
        return info.value


def run(script: list[BaseException | str], deadline_s: float = 10.0, cost_s: float = 0.0) -> Run:
    clock = FakeClock()
    deadline = Deadline(deadline_s, clock=clock)
    upstream = Upstream(clock, script, cost_s, deadline=deadline)
    return Run(clock, deadline, upstream, Sleeper(clock))


# -- the deadline ---------------------------------------------------------------------------------


def test_deadline_counts_down_on_its_clock_and_never_goes_negative() -> None:
    clock = FakeClock()
    deadline = Deadline(2.0, clock=clock)
    assert deadline.remaining() == 2.0
    assert deadline.remaining_ms() == 2000
    assert not deadline.expired()
    clock.now += 1.5
    assert deadline.remaining() == pytest.approx(0.5)
    assert deadline.remaining_ms() == 500
    clock.now += 1.0
    assert deadline.remaining() == 0.0
    assert deadline.remaining_ms() == 0
    assert deadline.expired()


# -- success after transient failures --------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(server_error(500, "InternalError"), id="500"),
        pytest.param(server_error(502, "BadGateway"), id="502"),
        pytest.param(server_error(503), id="503"),
        pytest.param(server_error(504, "GatewayTimeout"), id="504"),
    ],
)
def test_success_after_5xx(failure: ServerException) -> None:
    r = run([failure, failure, "ok"])
    assert r.call() == "ok"
    assert r.upstream.attempts == 3
    assert len(r.sleeper.pauses) == 2


@pytest.mark.parametrize(
    "failure",
    [
        pytest.param(throttling(retry_after=None), id="throttling-exception"),
        pytest.param(client_error(429, "Throttling"), id="429"),
        pytest.param(client_error(400, "Throttling.User"), id="400-throttling-code"),
        pytest.param(client_error(429, "Rejected.Throttling"), id="kms-429"),
        pytest.param(server_error(503, "Throttling.Api"), id="503-throttling-code"),
    ],
)
def test_success_after_throttling(failure: Exception) -> None:
    r = run([failure, "ok"])
    assert r.call() == "ok"
    assert r.upstream.attempts == 2
    assert len(r.sleeper.pauses) == 1


@pytest.mark.parametrize("retry_after", [1, 2])
def test_retry_after_is_a_lower_bound_on_the_pause(retry_after: int) -> None:
    r = run([throttling(retry_after), throttling(retry_after), "ok"])
    assert r.call() == "ok"
    assert len(r.sleeper.pauses) == 2
    assert all(p >= retry_after for p in r.sleeper.pauses)
    # ...and only a lower bound: not stretched beyond the longer of it and the backoff.
    assert all(p <= max(retry_after, retry.DEFAULT.cap_s) for p in r.sleeper.pauses)


def test_retry_after_that_does_not_fit_the_deadline_is_throttled_at_once() -> None:
    r = run([throttling(retry_after=5), "ok"], deadline_s=2.0)
    err = r.fails()
    assert (err.status, err.code) == (429, "Throttled")
    assert r.upstream.attempts == 1
    assert r.sleeper.pauses == []  # it did not sleep past the deadline, nor up to it


# -- client errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (400, "InvalidParameter"),
        (400, "SignatureDoesNotMatch"),
        (403, "Forbidden.RAM"),
        (403, "NoPermission"),
        (404, "EntityNotExists.Secret"),
        (409, "QuotaExceeded.ClientSecret"),
    ],
)
def test_client_errors_are_raised_unchanged_and_not_retried(status: int, code: str) -> None:
    exc = client_error(status, code)
    r = run([exc, "ok"])
    with pytest.raises(ClientException) as info:
        r.call()
    assert info.value is exc
    assert r.upstream.attempts == 1
    assert r.sleeper.pauses == []


# -- transport failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("idempotent", [True, False], ids=["read", "create"])
def test_read_timeout_is_not_retried_and_is_504(idempotent: bool) -> None:
    # Time has not run out on the deadline: it is the kind of failure that decides, since the
    # upstream may have acted (a create!) before the answer was lost.
    r = run([read_timeout(), "ok"])
    err = r.fails(idempotent=idempotent)
    assert (err.status, err.code) == (504, "UpstreamTimeout")
    assert r.upstream.attempts == 1
    assert r.sleeper.pauses == []
    # A create is told that it may have acted, and that the upstream may still be at it.
    assert isinstance(err, MaybeActed) is not idempotent
    if isinstance(err, MaybeActed):
        assert not err.settled


@pytest.mark.parametrize("idempotent", [True, False], ids=["read", "create"])
@pytest.mark.parametrize(
    "transport",
    [connect_timeout, connection_refused],
    ids=["connect-timeout", "connection-refused"],
)
def test_connect_errors_are_retried(idempotent: bool, transport: Callable[[], WireError]) -> None:
    # Nothing was sent: safe to send again, a create too.
    r = run([transport(), transport(), "ok"])
    assert r.call(idempotent=idempotent) == "ok"
    assert r.upstream.attempts == 3
    assert len(r.sleeper.pauses) == 2


@pytest.mark.parametrize("idempotent", [True, False], ids=["read", "create"])
def test_connect_errors_that_persist_are_502(idempotent: bool) -> None:
    r = run([connection_refused()])
    err = r.fails(idempotent=idempotent)
    assert (err.status, err.code) == (502, "UpstreamError")
    assert not isinstance(err, MaybeActed)  # nothing was ever sent
    assert r.upstream.attempts == ATTEMPTS


def test_a_dropped_connection_is_retried_only_when_idempotent() -> None:
    r = run([dropped(), dropped(), "ok"])
    assert r.call() == "ok"
    assert r.upstream.attempts == 3
    # The request was sent: a create must not be sent again blindly.
    r = run([dropped(), "ok"])
    err = r.fails(idempotent=False)
    assert isinstance(err, MaybeActed)
    assert (err.status, err.code, err.settled) == (502, "UpstreamError", False)
    assert r.upstream.attempts == 1
    assert r.sleeper.pauses == []


@pytest.mark.parametrize("status", [200, 502, 503], ids=["garbled-200", "html-502", "html-503"])
def test_an_unreadable_answer_is_502_with_its_status(status: int) -> None:
    """An answer that is not JSON (a gateway's HTML page, a garbled 200) is tried again as a 5xx
    would be (README, Known limits; tests/test_upstream_faults.py holds it end to end), is a 502
    when that does not cure it, and keeps its HTTP status for the audit record."""
    r = run([unreadable(status)])
    err = r.fails()
    assert (err.status, err.code) == (502, "UpstreamError")
    assert r.upstream.attempts == ATTEMPTS
    assert getattr(err, "upstream_status", None) == status
    r = run([unreadable(status), "ok"])
    assert r.call() == "ok"
    assert r.upstream.attempts == 2


def test_an_unreadable_answer_to_a_create_is_not_sent_again() -> None:
    # It was an answer: whatever the upstream did is done (settled), but a create is not sent
    # again blindly; its caller lists the secrets first.
    r = run([unreadable(200), "ok"])
    err = r.fails(idempotent=False)
    assert isinstance(err, MaybeActed)
    assert (err.status, err.code, err.settled) == (502, "UpstreamError", True)
    assert r.upstream.attempts == 1


def test_classify_reads_the_transports_kind() -> None:
    assert retry.classify(read_timeout()) == "timeout"
    assert retry.classify(connect_timeout()) == "connection"
    assert retry.classify(connection_refused()) == "connection"
    assert retry.classify(dropped()) == "dropped"
    assert retry.classify(unreadable(503)) == "unreadable"
    # Anything the transport does not raise is no kind the policy retries.
    assert retry.classify(RuntimeError("boom")) == "other"
    assert retry.classify(TimeoutError()) == "other"


def test_an_exception_of_another_kind_is_not_caught() -> None:
    # The policy handles what the transport raises, and nothing else: a bug stays a bug.
    r = run([RuntimeError("a bug"), "ok"])
    with pytest.raises(RuntimeError, match="a bug"):
        r.call()
    assert r.upstream.attempts == 1


# -- the transport's own exceptions, from a real socket -------------------------------------------

KEY = Credentials("LTAI5tTestOnly000001", "test-only-secret")


def _transport_call(port: int, timeout_ms: int) -> WireError:
    """What a real RpcTransport raises for one call to 127.0.0.1:port."""
    transport = RpcTransport()
    try:
        transport.call(
            Endpoint("http", f"127.0.0.1:{port}"),
            KEY,
            "ObtainApplicationClientSecret",
            "2021-12-01",
            {"InstanceId": "i"},
            connect_timeout_ms=timeout_ms,
            timeout_ms=timeout_ms,
        )
    except WireError as exc:
        return exc
    finally:
        transport.close()
    raise AssertionError("the call was expected to fail")


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts connections (the kernel's backlog does) and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server.getsockname()[1]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _assert_attempts(exc: BaseException, *, idempotent: bool, attempts: int) -> None:
    """How often a call is tried when every attempt fails with `exc` (3 attempts allowed)."""
    calls: list[int] = []

    def attempt(read_timeout_ms: int) -> None:
        calls.append(read_timeout_ms)
        raise exc

    with pytest.raises(VendError) as info:
        retry.call(
            attempt,
            Deadline(100.0),
            service="EIAM",
            sleep=lambda s: None,
            policy=RetryPolicy(max_attempts=3),
            retry_server_errors=idempotent,
        )
    assert (info.value.code, len(calls)) == ("UpstreamError", attempts)


def test_the_transports_own_read_timeout_is_classified_as_a_timeout(silent_port: int) -> None:
    exc = _transport_call(silent_port, timeout_ms=100)
    assert retry.classify(exc) == "timeout"
    r = run([exc, "ok"])
    assert (r.fails().status, r.upstream.attempts) == (504, 1)


def test_the_transports_own_connection_refused_is_retried() -> None:
    exc = _transport_call(_closed_port(), timeout_ms=500)
    assert retry.classify(exc) == "connection"  # nothing was sent: safe for a create too
    _assert_attempts(exc, idempotent=False, attempts=3)
    r = run([exc, exc, "ok"])
    assert r.call() == "ok"
    assert r.upstream.attempts == 3


def test_the_transports_own_dropped_connection_is_retried_only_when_idempotent() -> None:
    """A server that reads the request and closes the connection without answering (a pooled
    connection gone stale): the request was sent, so a create (not idempotent) must not be sent
    again."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)

        def drop() -> None:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(5)
                received = b""
                while b"\r\n\r\n" not in received:  # the whole request (it has no body)
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    received += chunk

        dropper = threading.Thread(target=drop, daemon=True)
        dropper.start()
        exc = _transport_call(server.getsockname()[1], timeout_ms=2000)
        dropper.join(5)
    assert retry.classify(exc) == "dropped"
    _assert_attempts(exc, idempotent=True, attempts=3)
    _assert_attempts(exc, idempotent=False, attempts=1)


# -- limits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_attempts", [1, 2, 4, 6])
def test_attempts_are_capped(max_attempts: int) -> None:
    r = run([server_error()], deadline_s=100.0)
    err = r.fails(RetryPolicy(max_attempts=max_attempts))
    assert (err.status, err.code) == (502, "UpstreamError")
    assert r.upstream.attempts == max_attempts
    assert len(r.sleeper.pauses) == max_attempts - 1  # no pause after the last attempt


def test_backoff_is_capped_exponential_with_full_jitter() -> None:
    policy = RetryPolicy(max_attempts=10, base_s=0.05, cap_s=0.3)
    for n in range(10):
        ceiling = min(policy.cap_s, policy.base_s * 2**n)
        assert policy.backoff(n, rand=lambda: 0.0) == 0.0
        assert policy.backoff(n, rand=lambda: 0.5) == pytest.approx(ceiling / 2)
        assert policy.backoff(n, rand=lambda: 0.999999) == pytest.approx(ceiling, rel=1e-5)
    assert policy.backoff(9, rand=lambda: 0.999999) <= policy.cap_s


def test_pauses_stay_within_the_jittered_capped_bounds_and_vary() -> None:
    policy = RetryPolicy(max_attempts=8, base_s=0.05, cap_s=0.4)
    by_attempt: dict[int, list[float]] = {n: [] for n in range(policy.max_attempts - 1)}
    for _ in range(100):
        r = run([server_error()], deadline_s=1000.0)
        r.fails(policy)
        assert len(r.sleeper.pauses) == policy.max_attempts - 1
        for n, pause in enumerate(r.sleeper.pauses):
            assert 0.0 <= pause <= min(policy.cap_s, policy.base_s * 2**n)
            by_attempt[n].append(pause)
    for n, pauses in by_attempt.items():
        ceiling = min(policy.cap_s, policy.base_s * 2**n)
        assert len(set(pauses)) > 50, f"attempt {n}: no jitter"
        # Full jitter spreads over the whole range, not a sliver of it.
        assert min(pauses) < ceiling * 0.25 < ceiling * 0.75 < max(pauses)


@pytest.mark.parametrize("seed", range(20))
def test_nothing_sleeps_past_the_deadline(seed: int) -> None:
    rng = random.Random(seed)
    deadline_s = rng.uniform(0.1, 1.5)
    cost_s = rng.uniform(0.0, 0.3)
    script: list[BaseException | str] = [
        rng.choice([server_error(), throttling(None), connection_refused()]) for _ in range(20)
    ]
    r = run(script, deadline_s=deadline_s, cost_s=cost_s)
    end = r.clock.now + deadline_s
    slept_at: list[float] = []
    sleeper = r.sleeper

    def recording_sleep(seconds: float) -> None:
        # Every pause leaves room for one more attempt before the deadline.
        assert r.clock.now + seconds + MIN_ATTEMPT_S < end
        slept_at.append(r.clock.now)
        sleeper(seconds)

    with pytest.raises(VendError):
        retry.call(
            r.upstream,
            r.deadline,
            service="EIAM",
            policy=RetryPolicy(max_attempts=20, base_s=0.05, cap_s=1.0),
            sleep=recording_sleep,
        )
    assert all(remaining >= MIN_ATTEMPT_S for remaining in r.upstream.remaining_at_start)
    assert len(slept_at) == len(r.sleeper.pauses)
    assert r.clock.now <= end + cost_s  # only an attempt already started may run past it


def test_throttling_that_persists_is_429() -> None:
    r = run([throttling(None)])
    err = r.fails()
    assert (err.status, err.code) == (429, "Throttled")
    assert "EIAM" in err.message
    assert r.upstream.attempts == ATTEMPTS


def test_5xx_that_persists_is_502() -> None:
    r = run([server_error()])
    err = r.fails()
    assert (err.status, err.code) == (502, "UpstreamError")
    assert "EIAM" in err.message
    assert r.upstream.attempts == ATTEMPTS


def test_the_last_failure_decides_the_error() -> None:
    r = run([throttling(None), throttling(None), throttling(None), server_error()])
    assert r.fails().status == 502
    r = run([server_error(), server_error(), server_error(), throttling(None)])
    assert r.fails().status == 429


def test_a_deadline_already_spent_makes_no_attempt_and_is_504() -> None:
    r = run(["ok"], deadline_s=0.0)
    err = r.fails()
    assert (err.status, err.code) == (504, "UpstreamTimeout")
    assert r.upstream.attempts == 0
    r = run(["ok"], deadline_s=MIN_ATTEMPT_S / 2)
    assert r.fails().status == 504
    assert r.upstream.attempts == 0


def test_5xx_until_the_deadline_runs_out_is_504() -> None:
    r = run([server_error()], deadline_s=0.5, cost_s=0.3)
    err = r.fails(RetryPolicy(max_attempts=10))
    assert (err.status, err.code) == (504, "UpstreamTimeout")
    assert 1 <= r.upstream.attempts < 10
    assert r.deadline.expired()


@pytest.mark.parametrize(("deadline_s", "first_ms"), [(10.0, 9000), (1.5, 1000)])
def test_a_create_keeps_a_third_of_the_deadline_at_most_1_s_to_resolve_a_lost_answer(
    deadline_s: float, first_ms: int
) -> None:
    """A call that is not idempotent (EIAM's create) ends its attempts early, keeping time to
    find out what a lost answer did: a third of the deadline, never more than 1 s. An
    idempotent call's first attempt has the whole deadline."""
    r = run(["ok"], deadline_s=deadline_s)
    assert r.call(idempotent=False) == "ok"
    assert r.upstream.read_timeouts_ms == [first_ms]
    r = run(["ok"], deadline_s=deadline_s)
    assert r.call() == "ok"
    assert r.upstream.read_timeouts_ms == [int(deadline_s * 1000)]


def test_a_create_with_too_little_left_beside_its_reserve_makes_no_attempt() -> None:
    # 70 ms: a third (23 ms) kept leaves 47 ms, less than an attempt needs.
    r = run(["ok"], deadline_s=0.07)
    err = r.fails(idempotent=False)
    assert (err.status, err.code) == (504, "UpstreamTimeout")
    assert r.upstream.attempts == 0
    r = run(["ok"], deadline_s=0.07)
    assert r.call() == "ok"  # nothing kept back: 70 ms is enough


def test_exactly_the_least_an_attempt_needs_is_enough() -> None:
    clock = FakeClock()
    clock.now = 0.0  # so that the deadline leaves MIN_ATTEMPT_S exactly, with no rounding
    deadline = Deadline(MIN_ATTEMPT_S, clock=clock)
    r = Run(clock, deadline, Upstream(clock, ["ok"], 0.0, deadline=deadline), Sleeper(clock))
    assert r.call() == "ok"
    assert r.upstream.read_timeouts_ms == [int(MIN_ATTEMPT_S * 1000)]


def test_failures_without_a_request_id_name_none() -> None:
    """Connections that never reached the upstream: the error (and so the audit record) has no
    upstream request id, not an empty one."""
    err = run([connect_timeout()] * 4).fails()
    assert err.status == 502
    assert err.upstream_request_id is None


@pytest.mark.parametrize("cost_s", [0.0, 0.05, 0.4, 1.3])
def test_each_attempts_read_timeout_fits_the_remaining_deadline(cost_s: float) -> None:
    r = run(
        [server_error(), throttling(None), connect_timeout(), server_error()],
        deadline_s=3.0,
        cost_s=cost_s,
    )
    with pytest.raises(VendError):
        r.call(RetryPolicy(max_attempts=8))
    assert r.upstream.attempts >= 1
    for given_ms, remaining_s in zip(
        r.upstream.read_timeouts_ms, r.upstream.remaining_at_start, strict=True
    ):
        assert 1 <= given_ms <= remaining_s * 1000
    # The first attempt has the whole deadline to itself.
    assert r.upstream.read_timeouts_ms[0] == 3000
    # Later ones get less, as time goes by.
    assert r.upstream.read_timeouts_ms == sorted(r.upstream.read_timeouts_ms, reverse=True)
