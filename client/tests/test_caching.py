"""`CachingClient` over real HTTP: pytest-httpserver plays the service (its obtain answers from a
plan the test writes, and can be held open to catch concurrent askers), STS and KMS; the clock,
the sleeps and the jitter are the test's, so nothing here waits for a TTL or a backoff."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sealed
from pytest_httpserver import HTTPServer
from threads import in_call, thread_named, wait_until
from together import ask_together
from werkzeug import Request, Response

from vend_client import (
    CachingClient,
    Credentials,
    EnvelopeError,
    ServiceTimeout,
    ServiceUnreachable,
    VendApiError,
    VendClient,
    parse_endpoint,
)

ACCOUNT = "1234567890123456"
ME = f"acs:ram::{ACCOUNT}:user/billing"
KEYS = Credentials("LTAI5tCallerKey000001", "caller-secret-never-sent")
DATA_KEY = bytes(range(32))
IDS = ("idaas_x", "app_y", "sct_z")


class Clock:
    """Monotonic seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Service:
    """The service's `POST /v1/secrets/obtain` and `/v1/secrets/current`: each request takes the
    next planned error (status, headers), or once none is left, answers `secret` sealed for the
    IDs asked, the current secret being `current_id` (sealed for `sealed_for` when set: an
    answer that names one secret and is sealed for another). While `gate` is clear, requests
    wait for it (up to 10 s)."""

    secret: str = "v1"
    errors: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    expiration_time: int | None = None
    current_id: str = "sct_current"
    sealed_for: str | None = None
    paths: list[str] = field(default_factory=list)
    requests: int = 0
    arrived: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.gate.set()

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.requests += 1
            self.paths.append(request.path)
            planned = self.errors.pop(0) if self.errors else None
            secret = self.secret
        self.arrived.set()
        assert self.gate.wait(10)
        if planned is not None:
            status, headers = planned
            body = {"error": {"code": f"E{status}", "message": "planned", "request_id": "r-e"}}
            return Response(
                json.dumps(body), status, headers=headers, content_type="application/json"
            )
        asked = json.loads(request.data)
        secret_id = asked.get("secret_id", self.current_id)
        answer = vend_response(
            secret, asked["instance_id"], asked["application_id"], self.sealed_for or secret_id
        )
        answer["secret_id"] = secret_id
        answer["expiration_time"] = self.expiration_time
        return Response(json.dumps(answer), 200, content_type="application/json")


def vend_response(secret: str, instance: str, application: str, secret_id: str) -> dict[str, Any]:
    arn = (
        f"acs:eiam:cn-hangzhou:{ACCOUNT}:instance/{instance}/application/{application}"
        f"/secret/{secret_id}"
    )
    return sealed.vend_response(
        secret=secret,
        arn=arn,
        principal=ME,
        data_key=DATA_KEY,
        ids=(instance, application, secret_id),
    )


@pytest.fixture
def service(httpserver: HTTPServer) -> Iterator[Service]:
    """The service, and STS and KMS as the caller's opening needs them."""
    httpserver.expect_request("/", headers={"x-acs-action": "GetCallerIdentity"}).respond_with_json(
        {"Arn": ME, "AccountId": ACCOUNT, "RequestId": "sts-1"}
    )
    httpserver.expect_request("/", headers={"x-acs-action": "Decrypt"}).respond_with_json(
        {"KeyId": "key-billing", "Plaintext": base64.b64encode(DATA_KEY).decode()}
    )
    planned = Service()
    for path in ("/v1/secrets/obtain", "/v1/secrets/current"):
        httpserver.expect_request(path, method="POST").respond_with_handler(planned.handle)
    yield planned
    planned.gate.set()  # never leave the server's thread held


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pauses() -> list[float]:
    return []


@pytest.fixture
def make(httpserver: HTTPServer, clock: Clock, pauses: list[float]) -> Iterator[Any]:
    made: list[CachingClient] = []

    def build(**kw: Any) -> CachingClient:
        base = httpserver.url_for("").rstrip("/")
        fields: dict[str, Any] = {
            "audience": "vend-prod",
            "credentials": KEYS,
            "sts_endpoint": base,
            "kms_endpoint": base,
            "timeout_s": 5,
            "clock": clock,
            "sleep": pauses.append,
            "rng": lambda: 0.5,
            "refresh_ahead_s": 0,
        }
        cache = CachingClient(kw.pop("url", base), **{**fields, **kw})
        made.append(cache)
        return cache

    yield build
    for cache in made:
        cache.close()


# -- TTL and LRU ---------------------------------------------------------------------------------


def test_a_value_is_served_from_memory_until_its_ttl_then_fetched_again(
    make: Any, service: Service, clock: Clock
) -> None:
    cache = make(ttl_s=300)
    assert cache.get(*IDS) == "v1"
    service.secret = "v2"
    clock.now = 299.9
    assert cache.get(*IDS) == "v1"
    assert service.requests == 1
    clock.now = 300.0
    assert cache.get(*IDS) == "v2"
    assert service.requests == 2
    assert cache.get(*IDS) == "v2"
    assert service.requests == 2


def test_a_value_never_outlives_the_secrets_own_expiration(
    make: Any, service: Service, clock: Clock
) -> None:
    service.expiration_time = int((time.time() + 10) * 1000)
    cache = make(ttl_s=300)
    assert cache.get(*IDS) == "v1"
    clock.now = 5
    assert cache.get(*IDS) == "v1"
    assert service.requests == 1
    clock.now = 11  # the TTL is far off, but the secret has expired
    assert cache.get(*IDS) == "v1"
    assert service.requests == 2


def test_an_expired_secret_is_not_cached(make: Any, service: Service) -> None:
    service.expiration_time = int((time.time() - 60) * 1000)
    cache = make()
    assert cache.get(*IDS) == "v1"
    assert cache.get(*IDS) == "v1"
    assert service.requests == 2
    assert len(cache) == 0


def test_the_least_recently_used_secret_is_evicted_first(make: Any, service: Service) -> None:
    cache = make(max_entries=2)
    a, b, c = (("idaas_x", "app_y", f"sct_{n}") for n in "abc")
    cache.get(*a)
    cache.get(*b)
    cache.get(*a)  # a is now the most recently used: b goes first
    cache.get(*c)
    assert service.requests == 3
    assert len(cache) == 2
    cache.get(*a)
    cache.get(*c)
    assert service.requests == 3
    cache.get(*b)
    assert service.requests == 4


# -- single flight -------------------------------------------------------------------------------


def test_many_threads_asking_at_once_make_one_request(make: Any, service: Service) -> None:
    cache = make()
    got = ask_together(16, lambda: cache.get(*IDS), service)
    assert got == ["v1"] * 16
    assert service.requests == 1


def test_many_threads_asking_at_once_share_one_error(make: Any, service: Service) -> None:
    cache = make()
    service.errors = [(403, {})]
    got = ask_together(8, lambda: cache.get(*IDS), service)
    assert all(isinstance(e, VendApiError) and e.status == 403 for e in got), got
    assert service.requests == 1
    assert cache.get(*IDS) == "v1"  # the error was not cached
    assert service.requests == 2


# -- refresh ahead, in the background -------------------------------------------------------------


def test_a_refresh_ahead_of_expiry_runs_in_the_background_while_the_old_value_is_served(
    make: Any, service: Service, clock: Clock
) -> None:
    cache = make(ttl_s=300, refresh_ahead_s=60)
    assert cache.get(*IDS) == "v1"
    clock.now = 239
    assert cache.get(*IDS) == "v1"
    assert service.requests == 1  # not yet in the last 60 s
    service.secret = "v2"
    service.gate.clear()
    service.arrived.clear()
    clock.now = 250
    assert cache.get(*IDS) == "v1"  # at once: the refresh is held by the service
    assert service.arrived.wait(5)
    assert cache.get(*IDS) == "v1"
    assert cache.get(*IDS) == "v1"
    assert service.requests == 2  # one refresh, however many gets meanwhile
    service.gate.set()
    assert cache.wait_for_refreshes(5)
    assert cache.get(*IDS) == "v2"
    clock.now = 350  # past the first value's expiry; the refreshed one was asked for at 250
    assert cache.get(*IDS) == "v2"
    assert service.requests == 2


def test_a_failed_background_refresh_keeps_the_old_value_and_is_retried_on_the_next_get(
    make: Any, service: Service, clock: Clock
) -> None:
    cache = make(ttl_s=300, refresh_ahead_s=60, max_attempts=1)
    assert cache.get(*IDS) == "v1"
    service.secret = "v2"
    service.errors = [(503, {})]
    clock.now = 250
    assert cache.get(*IDS) == "v1"
    assert cache.wait_for_refreshes(5)
    assert service.requests == 2
    assert cache.get(*IDS) == "v1"  # still served, and a new refresh started
    assert cache.wait_for_refreshes(5)
    assert service.requests == 3
    assert cache.get(*IDS) == "v2"


def test_a_value_whose_refreshes_failed_is_not_served_past_its_expiry(
    make: Any, service: Service, clock: Clock
) -> None:
    cache = make(ttl_s=300, refresh_ahead_s=60, max_attempts=1)
    assert cache.get(*IDS) == "v1"
    service.errors = [(503, {}), (503, {})]
    clock.now = 250
    assert cache.get(*IDS) == "v1"
    assert cache.wait_for_refreshes(5)
    clock.now = 300
    with pytest.raises(VendApiError) as info:
        cache.get(*IDS)
    assert info.value.status == 503
    assert service.requests == 3


def test_close_cuts_a_background_refresh_short_and_drops_the_values(
    httpserver: HTTPServer, service: Service, clock: Clock
) -> None:
    base = httpserver.url_for("").rstrip("/")
    cache = CachingClient(
        base,
        audience="vend-prod",
        credentials=KEYS,
        sts_endpoint=base,
        kms_endpoint=base,
        clock=clock,
        ttl_s=300,
        refresh_ahead_s=60,
    )  # real sleeps: the background refresh would wait the 20 s the service asks for
    assert cache.get(*IDS) == "v1"
    service.errors = [(503, {"Retry-After": "20"})]
    service.arrived.clear()
    clock.now = 250
    assert cache.get(*IDS) == "v1"
    assert service.arrived.wait(5)
    refresh = thread_named("vend-cache-refresh")
    assert refresh is not None
    wait_until(
        lambda: in_call(refresh.ident, threading.Event.wait),
        "the refresh has its 503 and waits out the Retry-After",
    )
    cache.close(timeout_s=10)  # far less than the 20 s: only if the wait was cut short
    assert cache.wait_for_refreshes(0)
    assert len(cache) == 0
    assert service.requests == 2  # it gave up rather than try again
    with pytest.raises(RuntimeError):
        cache.get(*IDS)


# -- the current secret --------------------------------------------------------------------------

APP = IDS[:2]


def test_the_current_secret_is_cached_on_its_own_and_names_its_secret(
    make: Any, service: Service, clock: Clock
) -> None:
    cache = make(ttl_s=300)
    current = cache.get_current(*APP)
    assert (current.secret_id, current.client_secret) == ("sct_current", "v1")
    assert cache.get_current(*APP).client_secret == "v1"
    assert service.paths == ["/v1/secrets/current"]  # two gets, one request
    # The same secret asked for by its ID is another entry, asked for by obtain.
    assert cache.get(*APP, "sct_current") == "v1"
    assert service.paths == ["/v1/secrets/current", "/v1/secrets/obtain"]
    service.current_id, service.secret = "sct_next", "v2"  # rotated
    clock.now = 299.9
    assert cache.get_current(*APP).secret_id == "sct_current"
    clock.now = 300.0  # a rotation reaches the caller within one TTL
    assert (cache.get_current(*APP).secret_id, len(service.paths)) == ("sct_next", 3)


def test_the_current_secret_never_outlives_its_own_expiration(
    make: Any, service: Service, clock: Clock
) -> None:
    service.expiration_time = int((time.time() + 10) * 1000)
    cache = make(ttl_s=300)
    assert cache.get_current(*APP).client_secret == "v1"
    clock.now = 5
    assert cache.get_current(*APP).client_secret == "v1"
    assert service.requests == 1
    clock.now = 11  # the TTL is far off, but the secret has expired
    cache.get_current(*APP)
    assert service.requests == 2


def test_refresh_now_without_a_secret_id_asks_for_the_current_secret_anew(
    make: Any, service: Service
) -> None:
    cache = make()
    assert cache.get_current(*APP).secret_id == "sct_current"
    service.current_id, service.secret = "sct_next", "v2"
    assert cache.get_current(*APP).secret_id == "sct_current"
    fresh = cache.refresh_now(*APP)
    assert (fresh.secret_id, fresh.client_secret) == ("sct_next", "v2")
    assert cache.get_current(*APP).secret_id == "sct_next"
    assert service.paths == ["/v1/secrets/current"] * 2


@pytest.mark.parametrize(
    ("named", "sealed_for"),
    [
        ("sct_current", "sct_other"),  # names one secret, sealed for another
        ("*", "*"),  # sealed for every secret of the application: a create's, not a secret's
    ],
)
def test_a_current_answer_not_sealed_for_the_secret_it_names_is_refused(
    make: Any, service: Service, named: str, sealed_for: str
) -> None:
    service.current_id, service.sealed_for = named, sealed_for
    with pytest.raises(EnvelopeError):
        make().get_current(*APP)


# -- refresh_now ---------------------------------------------------------------------------------


def test_refresh_now_fetches_and_replaces_the_cached_value(make: Any, service: Service) -> None:
    cache = make()
    assert cache.get(*IDS) == "v1"
    service.secret = "v2"  # rotated
    assert cache.get(*IDS) == "v1"
    assert service.requests == 1
    assert cache.refresh_now(*IDS).client_secret == "v2"
    assert service.requests == 2
    assert cache.get(*IDS) == "v2"
    assert service.requests == 2


def test_refresh_now_and_gets_at_once_make_one_request(make: Any, service: Service) -> None:
    cache = make()
    turn = iter(range(100))

    def ask() -> str:
        first = next(turn) % 2 == 0
        return cache.refresh_now(*IDS).client_secret if first else cache.get(*IDS)

    assert ask_together(10, ask, service) == ["v1"] * 10
    assert service.requests == 1


def test_a_failed_refresh_now_raises_and_leaves_the_cached_value(
    make: Any, service: Service
) -> None:
    cache = make()
    assert cache.get(*IDS) == "v1"
    service.errors = [(404, {})]
    with pytest.raises(VendApiError) as info:
        cache.refresh_now(*IDS)
    assert info.value.status == 404
    assert cache.get(*IDS) == "v1"
    assert service.requests == 2


# -- retries -------------------------------------------------------------------------------------


def test_retry_after_is_waited_for(make: Any, service: Service, pauses: list[float]) -> None:
    cache = make()
    service.errors = [(429, {"Retry-After": "7"})]
    assert cache.get(*IDS) == "v1"
    assert pauses == [7.0]
    assert service.requests == 2


def test_a_retry_after_too_long_to_wait_is_raised_at_once(
    make: Any, service: Service, pauses: list[float]
) -> None:
    cache = make(max_retry_after_s=30)
    service.errors = [(503, {"Retry-After": "120"})]
    with pytest.raises(VendApiError) as info:
        cache.get(*IDS)
    assert (info.value.status, info.value.retry_after) == (503, 120.0)
    assert pauses == []
    assert service.requests == 1


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_a_passing_failure_is_retried_with_jittered_exponential_backoff(
    make: Any, service: Service, pauses: list[float], status: int
) -> None:
    cache = make(backoff_base_s=0.2, backoff_cap_s=5)
    service.errors = [(status, {}), (status, {})]
    assert cache.get(*IDS) == "v1"
    assert service.requests == 3
    assert pauses == pytest.approx([0.1, 0.2])  # rng 0.5 of 0.2 s, then of 0.4 s


def test_retries_stop_after_max_attempts_with_capped_pauses(
    make: Any, service: Service, pauses: list[float]
) -> None:
    cache = make(max_attempts=4, backoff_base_s=0.2, backoff_cap_s=0.3)
    service.errors = [(502, {})] * 4
    with pytest.raises(VendApiError) as info:
        cache.get(*IDS)
    assert info.value.status == 502
    assert service.requests == 4
    assert pauses == pytest.approx([0.1, 0.15, 0.15])


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 500])
def test_other_errors_are_not_retried(
    make: Any, service: Service, pauses: list[float], status: int
) -> None:
    cache = make()
    service.errors = [(status, {})]
    with pytest.raises(VendApiError) as info:
        cache.get(*IDS)
    assert info.value.status == status
    assert service.requests == 1
    assert pauses == []


def test_errors_are_not_cached(make: Any, service: Service) -> None:
    cache = make(max_attempts=1)
    service.errors = [(503, {}), (404, {})]
    for status in (503, 404):
        with pytest.raises(VendApiError) as info:
            cache.get(*IDS)
        assert info.value.status == status
    assert cache.get(*IDS) == "v1"
    assert service.requests == 3


def test_a_refused_connection_is_retried(make: Any, pauses: list[float]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cache = make(url=f"http://127.0.0.1:{port}", max_attempts=3)
    with pytest.raises(ServiceUnreachable) as info:
        cache.get(*IDS)
    assert info.value.detail == "connection refused"
    assert len(pauses) == 2


def test_a_tls_failure_is_not_retried(
    make: Any, service: Service, httpserver: HTTPServer, pauses: list[float]
) -> None:
    """https:// to a server that speaks plain HTTP: a handshake that fails will again."""
    cache = make(url=f"https://127.0.0.1:{httpserver.port}", max_attempts=3)
    with pytest.raises(ServiceUnreachable) as info:
        cache.get(*IDS)
    assert info.value.detail.startswith("TLS failed")
    assert pauses == []


def test_a_read_timeout_is_not_retried(make: Any, service: Service, pauses: list[float]) -> None:
    """The service got the request and spent its deadline: asking again would multiply the
    caller's wait."""
    service.gate.clear()  # held until the client gave up
    cache = make(timeout_s=0.3, max_attempts=3)
    with pytest.raises(ServiceTimeout):
        cache.get(*IDS)
    service.gate.set()
    assert service.requests == 1
    assert pauses == []


# -- Retry-After on VendApiError -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"Retry-After": " 0 "}, 0.0),
        ({}, None),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({"Retry-After": "-3"}, None),
    ],
)
def test_a_vend_api_error_carries_the_answers_retry_after(
    httpserver: HTTPServer, header: dict[str, str], expected: float | None
) -> None:
    httpserver.expect_request("/v1/secrets/obtain").respond_with_json(
        {"error": {"code": "Throttled", "message": "slow down", "request_id": "r"}},
        status=429,
        headers=header,
    )
    vend = VendClient(url=httpserver.url_for(""), token="a-jwt", timeout_s=5)
    with pytest.raises(VendApiError) as info:
        vend.obtain(*IDS)
    assert (info.value.status, info.value.retry_after) == (429, expected)


def test_a_gateways_page_carries_its_retry_after_too(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/secrets/obtain").respond_with_data(
        "<html>busy</html>", status=503, headers={"Retry-After": "5"}
    )
    vend = VendClient(url=httpserver.url_for(""), token="a-jwt", timeout_s=5)
    with pytest.raises(VendApiError) as info:
        vend.obtain(*IDS)
    assert (info.value.code, info.value.retry_after) == ("BadResponse", 5.0)


# -- construction --------------------------------------------------------------------------------


def test_an_existing_vend_client_can_be_wrapped(
    httpserver: HTTPServer, service: Service, clock: Clock
) -> None:
    base = httpserver.url_for("").rstrip("/")
    vend = VendClient(
        url=base,
        audience="vend-prod",
        credentials=KEYS,
        sts_endpoint=parse_endpoint(base),
        kms_endpoint=parse_endpoint(base),
        timeout_s=5,
    )
    with CachingClient(client=vend, clock=clock) as cache:
        assert cache.client is vend
        assert cache.get(*IDS) == cache.get(*IDS) == "v1"
    assert service.requests == 1


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({}, "url"),
        ({"url": "http://x", "client": VendClient(url="http://x")}, "url"),
        ({"url": "http://x", "ttl_s": 0}, "ttl_s"),
        ({"url": "http://x", "ttl_s": 60, "refresh_ahead_s": 60}, "refresh_ahead_s"),
        ({"url": "http://x", "max_entries": 0}, "max_entries"),
        ({"url": "http://x", "max_attempts": 0}, "max_attempts"),
    ],
)
def test_what_cannot_work_is_refused_at_once(kw: dict[str, Any], why: str) -> None:
    with pytest.raises(ValueError, match=why):
        CachingClient(**kw)
