"""`GET /v1/ready` (contract section 2; issue 12, part 4): 503 naming the failing checks while the
store does not answer, an issuer's JWKS was never fetched or the configuration does not load,
200 once they do; `/v1/health` answers 200 all along, and the service starts and stays up with
Redis down. The answer names checks, never a secret: not the Redis password, not a value."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import requests
import sdk_clients as sdk
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from processes import free_port
from redis_server import PersistentRedis, redis_binary
from stack import DEMO_POLICY, DEMO_SEED, running_stack

from functions import custom_runtime
from functions.wsgi_server import WsgiServer
from infra.emulator import EmulatorServer, Seed
from infra.local.cli import local_environment
from shared import composition_root
from shared.idempotency.redis_store import EPOCH_KEY
from vend_client import Credentials, VendClient
from vend_client import parse_endpoint as endpoint

pytestmark = pytest.mark.contract("2")

OBTAIN = ("idaas_demo", "app_billing", "sct_billing_1")
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _ready(url: str) -> tuple[int, dict[str, Any]]:
    resp = requests.get(f"{url}/v1/ready", timeout=5)
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.headers["X-Request-Id"]
    return resp.status_code, resp.json()


def _healthy(url: str) -> bool:
    resp = requests.get(f"{url}/v1/health", timeout=5)
    return resp.status_code == 200 and resp.json() == {"status": "ok"}


def _until_ready(url: str, seconds: float = 10) -> tuple[int, dict[str, Any]]:
    deadline = time.monotonic() + seconds
    while True:
        answer = _ready(url)
        if answer[0] == 200 or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


NOT_READY_STORE = (503, {"status": "not ready", "failing": ["store"]})
LOST = (503, {"status": "not ready", "failing": ["store:lost"]})
READY = (200, {"status": "ready"})


# -- the store: the custom runtime's server, started with Redis down -----------------------------


@pytest.fixture
def redis_later() -> Iterator[PersistentRedis]:
    """A redis-server with its port chosen now, not started: down until the test starts it."""
    server = PersistentRedis(redis_binary())
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def custom_runtime_url(
    monkeypatch: pytest.MonkeyPatch, emulator: EmulatorServer, redis_later: PersistentRedis
) -> Iterator[str]:
    """functions.custom_runtime's app (what s.custom.yaml runs, and `vend serve`), built as its
    main() builds it, with VEND_IDEMPOTENCY_URL naming a Redis that is down."""
    env = {
        **local_environment(emulator.url, DEMO_SEED, DEMO_POLICY),
        "VEND_IDEMPOTENCY_URL": redis_later.url,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    composition_root.reset_instance()
    app = custom_runtime.build_app()  # starts: the store is not reached at start
    with WsgiServer(app) as server:
        yield server.url
    composition_root.reset_instance()


def test_ready_follows_redis_while_health_stays_ok(
    custom_runtime_url: str, redis_later: PersistentRedis, emulator: EmulatorServer
) -> None:
    url = custom_runtime_url
    assert _healthy(url)
    assert _ready(url) == NOT_READY_STORE
    # Alive and serving what needs no store.
    client = VendClient(
        url=url,
        audience="vend-local",
        credentials=Credentials(*sdk.BILLING),
        sts_endpoint=endpoint(emulator.url),
        kms_endpoint=endpoint(emulator.url),
    )
    assert client.obtain(*OBTAIN).secret_id == OBTAIN[2]
    assert _healthy(url)

    redis_later.start()
    assert _until_ready(url) == READY
    assert _healthy(url)

    redis_later.kill()
    assert _ready(url) == NOT_READY_STORE
    assert _healthy(url)

    redis_later.start()
    assert _until_ready(url) == READY


def test_a_redis_password_is_never_echoed(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> None:
    password = "s3cret-redis-pw"
    env = {"VEND_IDEMPOTENCY_URL": f"redis://:{password}@127.0.0.1:{free_port()}/0"}
    with running_stack(monkeypatch, demo_seed, env=env) as stack:
        resp = requests.get(f"{stack.api.url}/v1/ready", timeout=5)
        assert (resp.status_code, resp.json()) == NOT_READY_STORE
        assert password not in resp.text
        assert password not in stack.logs.text()
        assert _healthy(stack.api.url)


# -- the JWKS: never fetched, then fetched -------------------------------------------------------


def _jwks_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    jwk = json.loads(RSAAlgorithm.to_jwk(KEY.public_key()))
    body = json.dumps({"keys": [{**jwk, "kid": "r1", "use": "sig"}]}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]


def test_an_issuer_whose_jwks_was_never_fetched_is_not_ready_until_it_is(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed
) -> None:
    port = free_port()
    issuers = [
        {"name": "later", "issuer": "https://idaas.example.com/later",
         "jwks_url": f"http://127.0.0.1:{port}/jwks"},
    ]  # fmt: skip
    env = {"VEND_JWT_ISSUERS": json.dumps(issuers)}
    with running_stack(monkeypatch, demo_seed, env=env) as stack:
        url = stack.api.url
        assert _ready(url) == (503, {"status": "not ready", "failing": ["jwks:later"]})
        assert _healthy(url)
        with WsgiServer(_jwks_app, port=port):
            assert _until_ready(url) == READY
        # Fetched once is enough: the issuer going away later is the requests' business.
        assert _ready(url) == READY
        assert _healthy(url)
        # Readiness never calls EIAM.
        assert stack.calls("ObtainApplicationClientSecret") == []
        assert stack.calls("ListApplicationClientSecrets") == []


# -- the configuration, and the memory store -------------------------------------------------------


def test_the_memory_store_is_ready(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> None:
    with running_stack(monkeypatch, demo_seed) as stack:
        assert _ready(stack.api.url) == READY
        assert _healthy(stack.api.url)
        assert stack.emulator.emulator.calls() == []  # no upstream asked
        wrong = requests.post(f"{stack.api.url}/v1/ready", timeout=5)
        assert (wrong.status_code, wrong.headers["Allow"]) == (405, "GET")


@pytest.mark.parametrize(
    ("variable", "value", "check"),
    [
        ("VEND_POLICY", '{"Version": "1", "Statement": [{"Effect": "Maybe"}]}', "policy"),
        ("VEND_ROLE_ARN", "arn:aws:iam::123:role/not-ours", "config"),
    ],
)
def test_a_configuration_that_does_not_load_is_named_not_quoted(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, variable: str, value: str, check: str
) -> None:
    """FC's handler builds the service on first use: until it builds, /v1/ready says which part
    fails (the log says why), and /v1/health still answers."""
    with running_stack(monkeypatch, demo_seed, env={variable: value}) as stack:
        resp = requests.get(f"{stack.api.url}/v1/ready", timeout=5)
        assert (resp.status_code, resp.json()) == (503, {"status": "not ready", "failing": [check]})
        assert "not-ours" not in resp.text and "Maybe" not in resp.text
        assert _healthy(stack.api.url)


# -- a store that may forget (issue 17, item 3) --------------------------------------------------


def test_ready_names_a_redis_that_may_evict_or_came_back_empty(
    custom_runtime_url: str, redis_later: PersistentRedis
) -> None:
    """An evicting Redis dropped the record of a create of unknown outcome and its retry made a
    second secret: /v1/ready names such a store (`store:eviction`), and one that came back empty
    since the instance first looked (`store:lost`, on the probe that sees it)."""
    redis_later.start()
    url = custom_runtime_url
    assert _ready(url) == READY  # a new store, empty when first seen, has lost nothing
    admin = redis.Redis.from_url(redis_later.url)
    admin.config_set("maxmemory", "100mb")
    admin.config_set("maxmemory-policy", "volatile-lru")
    assert _ready(url) == (503, {"status": "not ready", "failing": ["store:eviction"]})
    admin.config_set("maxmemory-policy", "noeviction")
    assert _ready(url) == READY
    for _ in range(2):  # each time it comes back empty
        admin.flushall()
        assert _ready(url) == LOST
    assert _ready(url) == READY
    assert _healthy(url)


def test_ready_names_a_store_replaced_by_one_another_instance_marked(
    custom_runtime_url: str, redis_later: PersistentRedis
) -> None:
    """The marker `vend:epoch` another instance wrote before this one first looked is the
    store's own: not a loss. A store whose marker changed since was replaced: named on the
    probe that sees it, each time."""
    redis_later.start()
    admin = redis.Redis.from_url(redis_later.url)
    admin.set(EPOCH_KEY, "written-by-another-instance")
    url = custom_runtime_url
    assert _ready(url) == READY
    assert _ready(url) == READY
    for marker in ("another-store", "yet-another-store"):
        admin.set(EPOCH_KEY, marker)
        assert _ready(url) == LOST
    assert _ready(url) == READY
    assert admin.get(EPOCH_KEY) == b"yet-another-store"  # the probe never rewrites it
