"""The STS sessions of the service (issue 17, item 7): the cache is bounded (least recently used
out), AssumeRole is rate-limited per instance (beyond it 429 `Throttled` with `Retry-After`, and
nothing sent to STS), and a key's lock lives only while a request uses it. Against the
emulator's STS over real HTTP; the rate's clock is injected where the test drives it."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator

import pytest
import sdk_clients as sdk
from pytest_httpserver import HTTPServer
from stack import Stack, running_stack
from werkzeug import Request, Response

from infra.emulator import EmulatorServer, Seed
from shared.errors import VendError
from shared.upstream.deadline import Deadline
from shared.upstream.identity import FunctionIdentity
from shared.upstream.rpc import Credentials, RpcTransport
from shared.upstream.sts import ASSUME_ROLE_BURST, ASSUME_ROLE_PER_S, ScopedSessions
from shared.upstream.token_bucket import TokenBucket
from shared.wire.endpoint import Endpoint
from vend_client import VendApiError

pytestmark = pytest.mark.contract("7")

OBTAIN = "eiam:ObtainApplicationClientSecret"
# Far more than the rate lets through in the seconds they take; the test stops at the first 429.
MAX_REQUESTS = 400


def arn(secret: str) -> str:
    return f"acs:eiam:cn-hangzhou:{sdk.ACCOUNT}:instance/idaas_demo/application/app_billing/secret/{secret}"


class Ticks:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# -- the token bucket ----------------------------------------------------------------------------


def test_the_bucket_gives_its_burst_then_its_rate() -> None:
    ticks = Ticks()
    bucket = TokenBucket(rate_per_s=4.0, burst=3, clock=ticks)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.25)  # a token comes every 0.25 s
    ticks.now += 0.25
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.25)
    ticks.now += 60  # a long pause refills it to its burst, no more
    assert [bucket.take() for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(0.25)]


def test_a_refusal_takes_no_token() -> None:
    ticks = Ticks()
    bucket = TokenBucket(rate_per_s=1.0, burst=1, clock=ticks)
    assert bucket.take() == 0.0
    for _ in range(5):
        assert bucket.take() == pytest.approx(1.0)
    ticks.now += 1.0
    assert bucket.take() == 0.0


# -- ScopedSessions against the emulator's STS ---------------------------------------------------


@pytest.fixture
def transport() -> Iterator[RpcTransport]:
    rpc = RpcTransport()
    yield rpc
    rpc.close()


def sessions_of(
    emulator: EmulatorServer, transport: RpcTransport, **kwargs: object
) -> ScopedSessions:
    return ScopedSessions(
        transport,
        Endpoint("http", emulator.endpoint),
        FunctionIdentity(Credentials(*sdk.FUNCTION)),
        sdk.ROLE_ARN,
        **kwargs,  # type: ignore[arg-type]
    )


def assumed(emulator: EmulatorServer) -> int:
    return len(emulator.emulator.calls("AssumeRole"))


def test_the_cache_keeps_the_most_recently_used_sessions_and_no_more(
    emulator: EmulatorServer, transport: RpcTransport
) -> None:
    sessions = sessions_of(emulator, transport, max_sessions=3, rate_per_s=1000.0, burst=1000)
    first = {s: sessions.get(OBTAIN, arn(s), Deadline(5)) for s in ("a", "b", "c")}
    assert assumed(emulator) == 3
    assert sessions.get(OBTAIN, arn("a"), Deadline(5)) == first["a"]  # a hit: "a" is recent
    assert assumed(emulator) == 3
    sessions.get(OBTAIN, arn("d"), Deadline(5))  # "b", the least recently used, goes
    assert len(sessions) == 3
    assert assumed(emulator) == 4
    assert sessions.get(OBTAIN, arn("a"), Deadline(5)) == first["a"]
    assert sessions.get(OBTAIN, arn("c"), Deadline(5)) == first["c"]
    assert assumed(emulator) == 4
    assert sessions.get(OBTAIN, arn("b"), Deadline(5)) != first["b"]  # assumed afresh
    assert assumed(emulator) == 5
    for n in range(20):
        sessions.get(OBTAIN, arn(f"s{n}"), Deadline(5))
        assert len(sessions) <= 3


def test_a_refused_session_is_dropped_but_not_the_one_that_replaced_it(
    emulator: EmulatorServer, transport: RpcTransport
) -> None:
    """Found by `make mutate`: a session an upstream refused is forgotten, and the next request
    assumes the role again; a request that drops the same stale session later (it was slower)
    keeps the fresh one another request has put in its place."""
    sessions = sessions_of(emulator, transport, rate_per_s=1000.0, burst=1000)
    stale = sessions.get(OBTAIN, arn("a"), Deadline(5))
    sessions.drop(OBTAIN, arn("a"), stale)
    fresh = sessions.get(OBTAIN, arn("a"), Deadline(5))
    assert fresh != stale
    assert assumed(emulator) == 2
    sessions.drop(OBTAIN, arn("a"), stale)
    assert sessions.get(OBTAIN, arn("a"), Deadline(5)) == fresh
    assert assumed(emulator) == 2


def test_a_session_is_assumed_again_a_minute_before_it_expires(
    emulator: EmulatorServer, transport: RpcTransport
) -> None:
    """Found by `make mutate`: a cached session is used until a minute before STS's expiry, then
    assumed again, under a session name an operator can tell apart in ActionTrail."""
    wall = Ticks()
    wall.now = time.time()
    sessions = sessions_of(emulator, transport, clock=wall, rate_per_s=1000.0, burst=1000)
    first = sessions.get(OBTAIN, arn("a"), Deadline(5))
    (params,) = emulator.emulator.params("AssumeRole")
    digest = hashlib.sha256(f"{OBTAIN}\n{arn('a')}".encode()).hexdigest()
    assert params["RoleSessionName"] == "vend-" + digest[:24]
    wall.now += 900 - 63  # STS's 900 s, less 63 (Expiration is in whole seconds)
    assert sessions.get(OBTAIN, arn("a"), Deadline(5)) == first
    wall.now += 6  # 57 s before it expires
    assert sessions.get(OBTAIN, arn("a"), Deadline(5)) != first
    assert assumed(emulator) == 2


def test_a_patient_request_over_the_rate_waits_for_its_turn(
    emulator: EmulatorServer, transport: RpcTransport
) -> None:
    """Found by `make mutate`: the rotation's sessions wait for a token instead of refusing, and
    one woken before its turn (here the first sleep ends half-way) waits again."""
    ticks = Ticks()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        ticks.now += seconds if slept else seconds / 2
        slept.append(seconds)

    sessions = sessions_of(
        emulator, transport, rate_per_s=2.0, burst=1, monotonic=ticks, patient=True, sleep=sleep
    )
    sessions.get(OBTAIN, arn("a"), Deadline(5))
    sessions.get(OBTAIN, arn("b"), Deadline(5))
    assert slept == [pytest.approx(0.5), pytest.approx(0.25)]
    assert assumed(emulator) == 2


def test_beyond_the_rate_nothing_is_sent_and_the_refusal_says_when_to_retry(
    emulator: EmulatorServer, transport: RpcTransport
) -> None:
    ticks = Ticks()
    sessions = sessions_of(emulator, transport, rate_per_s=2.0, burst=2, monotonic=ticks)
    sessions.get(OBTAIN, arn("a"), Deadline(5))
    sessions.get(OBTAIN, arn("b"), Deadline(5))
    with pytest.raises(VendError) as info:
        sessions.get(OBTAIN, arn("c"), Deadline(5))
    err = info.value
    assert (err.status, err.code) == (429, "Throttled")
    assert err.message == "Too many new STS sessions at once on this instance; retry after 1 s."
    assert err.headers == {"Retry-After": "1"}
    assert (err.service, err.attempts) == ("STS", 0)  # the audit: STS's stage, no call made
    assert assumed(emulator) == 2
    # Cached sessions are not limited: they cost STS nothing.
    sessions.get(OBTAIN, arn("a"), Deadline(5))
    assert assumed(emulator) == 2
    ticks.now += 0.5
    sessions.get(OBTAIN, arn("c"), Deadline(5))
    assert assumed(emulator) == 3


def test_a_keys_lock_is_dropped_once_no_request_uses_it(
    emulator: EmulatorServer, transport: RpcTransport
) -> None:
    sessions = sessions_of(emulator, transport, rate_per_s=1000.0, burst=1000)
    errors: list[BaseException] = []

    def worker(t: int) -> None:
        try:
            for n in range(10):
                # Threads share half their keys, so that some wait for another's AssumeRole.
                sessions.get(OBTAIN, arn(f"k{(t % 2) * 100 + n}"), Deadline(5))
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert len(sessions) == 20
    assert assumed(emulator) == 20  # one AssumeRole per key, however many asked at once
    assert sessions.keys_in_use == 0


def test_a_lone_requests_key_lock_is_dropped(
    emulator: EmulatorServer, transport: RpcTransport
) -> None:
    sessions = sessions_of(emulator, transport)
    sessions.get(OBTAIN, arn("alone"), Deadline(5))
    assert sessions.keys_in_use == 0


def test_a_request_that_waited_for_a_refused_assume_role_holds_the_key_while_it_tries(
    httpserver: HTTPServer, transport: RpcTransport
) -> None:
    """A's AssumeRole is refused after B began to wait for it: B then sends its own, and while
    that one is in flight the key is still in use (a third request would wait for it rather
    than send another); once B has its session, no key is."""
    first_in, release_first = threading.Event(), threading.Event()
    second_in, release_second = threading.Event(), threading.Event()
    received: list[int] = []

    def sts(request: Request) -> Response:
        received.append(1)
        if len(received) == 1:
            first_in.set()
            release_first.wait(10)
            refusal = {"RequestId": "r1", "Code": "NoPermission", "Message": "denied"}
            return Response(json.dumps(refusal), status=403, content_type="application/json")
        second_in.set()
        release_second.wait(10)
        creds = {"AccessKeyId": "STS.k", "AccessKeySecret": "s", "SecurityToken": "t"}
        body = {"RequestId": "r2", "Credentials": {**creds, "Expiration": "2099-01-01T00:00:00Z"}}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/").respond_with_handler(sts)
    sessions = ScopedSessions(
        transport,
        Endpoint("http", f"{httpserver.host}:{httpserver.port}"),
        FunctionIdentity(Credentials(*sdk.FUNCTION)),
        sdk.ROLE_ARN,
    )
    outcomes: dict[str, object] = {}

    def ask(name: str, deadline: Deadline) -> None:
        try:
            outcomes[name] = sessions.get(OBTAIN, arn("a"), deadline)
        except VendError as exc:
            outcomes[name] = exc

    # B's deadline is first read when B waits for the key's lock, after it has joined the key.
    b_waits = threading.Event()
    made = False

    def b_clock() -> float:
        if made:
            b_waits.set()
        return time.monotonic()

    a = threading.Thread(target=ask, args=("a", Deadline(5)))
    a.start()
    b: threading.Thread | None = None
    try:
        assert first_in.wait(10)
        b_deadline = Deadline(5, clock=b_clock)
        made = True
        b = threading.Thread(target=ask, args=("b", b_deadline))
        b.start()
        assert b_waits.wait(10)
        release_first.set()
        assert second_in.wait(10)  # B's own AssumeRole, in flight
        assert sessions.keys_in_use == 1
    finally:
        release_first.set()
        release_second.set()
        a.join(10)
        if b is not None:
            b.join(10)
    assert isinstance(outcomes["a"], VendError)
    assert isinstance(outcomes["b"], Credentials)
    assert len(received) == 2
    assert sessions.keys_in_use == 0


def test_a_request_waiting_for_anothers_assume_role_keeps_to_its_own_deadline(
    httpserver: HTTPServer, transport: RpcTransport
) -> None:
    """STS hangs on one request's AssumeRole; another request for the same key waits for it
    only as long as its own deadline lets it, then 504, having sent nothing."""
    gate = threading.Event()

    def slow_sts(request: Request) -> Response:
        gate.wait(10)
        expires = "2099-01-01T00:00:00Z"
        creds = {"AccessKeyId": "STS.k", "AccessKeySecret": "s", "SecurityToken": "t"}
        body = {"RequestId": "r", "Credentials": {**creds, "Expiration": expires}}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/").respond_with_handler(slow_sts)
    sessions = ScopedSessions(
        transport,
        Endpoint("http", f"{httpserver.host}:{httpserver.port}"),
        FunctionIdentity(Credentials(*sdk.FUNCTION)),
        sdk.ROLE_ARN,
    )
    first = threading.Thread(target=sessions.get, args=(OBTAIN, arn("a"), Deadline(5)))
    first.start()
    try:
        time.sleep(0.3)  # the first is waiting for STS
        started = time.monotonic()
        with pytest.raises(VendError) as info:
            sessions.get(OBTAIN, arn("a"), Deadline(0.3))
        assert info.value.code == "UpstreamTimeout"
        assert info.value.message == "the request's deadline ran out waiting for STS"
        assert time.monotonic() - started < 2.0  # its 0.3 s, not the first one's wait
        assert len(httpserver.log) == 0  # the first's request is still being answered
    finally:
        gate.set()
        first.join(10)
    assert sessions.keys_in_use == 0


# -- over HTTP: a caller approved on a wildcard asks for many secrets that do not exist ----------


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed) as running:
        yield running


def test_many_missing_secrets_cannot_make_the_instance_hammer_sts(stack: Stack) -> None:
    """The billing caller may obtain any secret of app_billing (`secret/*`). It asks for
    distinct secrets that do not exist, from as many threads as the server has, until one is
    refused: the AssumeRole calls never exceed the instance's burst and rate, and the refused
    requests answer 429 `Throttled` with `Retry-After`, having sent nothing to STS."""
    numbers = iter(range(MAX_REQUESTS))
    lock = threading.Lock()
    codes: list[str] = []
    waits: list[float | None] = []
    throttled = threading.Event()

    def worker() -> None:
        client = stack.client(sdk.BILLING)
        while not throttled.is_set():
            with lock:
                n = next(numbers, None)
            if n is None:
                return
            try:
                client.obtain("idaas_demo", "app_billing", f"sct_missing_{n}")
            except VendApiError as error:
                with lock:
                    codes.append(error.code)
                    waits.append(error.retry_after)
                if error.code == "Throttled":
                    throttled.set()

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    elapsed = time.monotonic() - started

    assert set(codes) == {"NotFound", "Throttled"}
    assert all(w == 1.0 for c, w in zip(codes, waits, strict=True) if c == "Throttled")
    # One AssumeRole per NotFound, none for a refusal, no more than the bucket could give.
    calls = len(stack.calls("AssumeRole"))
    assert calls == codes.count("NotFound")
    assert calls <= ASSUME_ROLE_BURST + ASSUME_ROLE_PER_S * elapsed + 1
    audit = [json.loads(r.getMessage()) for r in stack.audit.records]
    refused = [a for a in audit if a["outcome"] == "Throttled"]
    assert len(refused) == codes.count("Throttled")
    assert all(a["upstream"] == "sts" and a["attempts"] == 0 for a in refused)


def test_the_rate_is_the_operators_to_set(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> None:
    """VEND_ASSUME_ROLE_RATE=0.5,1: one new session, then none for 2 s."""
    env = {"VEND_ASSUME_ROLE_RATE": "0.5,1"}
    with running_stack(monkeypatch, demo_seed, env=env) as running:
        client = running.client(sdk.BILLING)
        with pytest.raises(VendApiError) as first:
            client.obtain("idaas_demo", "app_billing", "sct_missing_a")
        with pytest.raises(VendApiError) as second:
            client.obtain("idaas_demo", "app_billing", "sct_missing_b")
        assert (first.value.code, second.value.code) == ("NotFound", "Throttled")
        assert second.value.retry_after == 2.0
        assert len(running.calls("AssumeRole")) == 1


def test_a_create_refused_by_the_rate_leaves_its_key_free_for_a_retry(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed
) -> None:
    """A keyed create needs two new sessions (to list, to create); with one to spare it is
    refused before anything is created, and its retry, once the rate allows, makes the one
    secret."""
    env = {"VEND_ASSUME_ROLE_RATE": "1,1"}
    with running_stack(monkeypatch, demo_seed, env=env) as running:
        client = running.client(sdk.BILLING)
        before = running.secret_ids("app_empty")
        with pytest.raises(VendApiError) as refused:
            client.create("idaas_demo", "app_empty", idempotency_key="rate-1")
        assert refused.value.code == "Throttled"
        assert running.calls("CreateApplicationClientSecret") == []
        time.sleep(refused.value.retry_after or 1.0)
        made = client.create("idaas_demo", "app_empty", idempotency_key="rate-1")
        assert running.secret_ids("app_empty") == [*before, made.secret_id]


@pytest.mark.parametrize(
    "credentials",
    [
        {"AccessKeyId": "", "AccessKeySecret": "s", "SecurityToken": "t"},
        {"AccessKeyId": "STS.k", "AccessKeySecret": 5, "SecurityToken": "t"},
        {"AccessKeyId": "STS.k", "AccessKeySecret": "s"},
    ],
    ids=["empty-key", "secret-not-a-string", "no-token"],
)
def test_an_sts_answer_without_usable_credentials_is_502(
    httpserver: HTTPServer, transport: RpcTransport, credentials: dict[str, object]
) -> None:
    """Found by `make mutate`: an AssumeRole answer whose credentials are empty, not strings or
    missing is refused in words, not used."""
    body = {"RequestId": "r", "Credentials": {**credentials, "Expiration": "2099-01-01T00:00:00Z"}}
    httpserver.expect_request("/").respond_with_json(body)
    sessions = ScopedSessions(
        transport,
        Endpoint("http", f"{httpserver.host}:{httpserver.port}"),
        FunctionIdentity(Credentials(*sdk.FUNCTION)),
        sdk.ROLE_ARN,
    )
    with pytest.raises(VendError) as info:
        sessions.get(OBTAIN, arn("a"), Deadline(5))
    assert (info.value.status, info.value.code, info.value.message) == (
        502,
        "UpstreamError",
        "STS answered AssumeRole without usable credentials",
    )
