"""A JWKS that trickles its answer (issue 17, item 4) holds nothing else up: while as many JWT
requests for its issuer as the server has threads wait on it, `/v1/health` answers within
100 ms, a RAM-proof obtain in its usual time and `/v1/ready` within its budget; and each JWT
request ends with 401 within its deadline."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import jwt
import pytest
import requests
import sdk_clients as sdk
from cryptography.hazmat.primitives.asymmetric import rsa
from stack import Stack, running_stack
from trickle import TrickleServer, http_answer

from infra.emulator import Seed
from shared.fc import deadline_for

ISSUER = "https://idaas.example.com/api/v2/app/oauth2"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OBTAIN = {
    "instance_id": "idaas_demo",
    "application_id": "app_reports",
    "secret_id": "sct_reports_1",
}
SERVER_THREADS = 8  # functions.wsgi_server.WsgiServer's default, which the stack runs
FUNCTION_TIMEOUT_S = 15  # tests/stack.py's LocalFc


@pytest.fixture
def trickle() -> Iterator[TrickleServer]:
    # A whole JWKS would take minutes at a byte every 0.5 s; the server gives up after 12 s,
    # past the requests' deadline (10 s), so that a service that waits for it all fails this
    # test instead of hanging it.
    with TrickleServer(http_answer(b'{"keys": []}' + b" " * 400), every_s=0.5, for_s=12) as server:
        yield server


@pytest.fixture
def stack(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, trickle: TrickleServer
) -> Iterator[Stack]:
    issuers = [{"name": "demo", "issuer": ISSUER, "jwks_url": trickle.url()}]
    with running_stack(
        monkeypatch,
        demo_seed,
        timeout_s=FUNCTION_TIMEOUT_S,
        env={"VEND_JWT_ISSUERS": json.dumps(issuers)},
    ) as running:
        yield running


def _token() -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "app_reports",
        "aud": "vend-local",
        "iat": now,
        "exp": now + 300,
    }
    return jwt.encode(claims, KEY, algorithm="RS256", headers={"kid": "k1"})


def test_a_trickling_jwks_holds_up_neither_health_nor_ram_proofs(
    stack: Stack, trickle: TrickleServer
) -> None:
    url = stack.api.url
    client = stack.client(sdk.BILLING)
    client.obtain("idaas_demo", "app_billing", "sct_billing_1")  # the instance is warm

    answers: list[tuple[int, str, float]] = []

    def jwt_obtain() -> None:
        started = time.monotonic()
        resp = requests.post(
            f"{url}/v1/secrets/obtain",
            json=OBTAIN,
            headers={"Authorization": f"Bearer {_token()}"},
            timeout=30,
        )
        answers.append((resp.status_code, resp.json()["error"]["code"], time.monotonic() - started))

    callers = [threading.Thread(target=jwt_obtain) for _ in range(SERVER_THREADS)]
    for caller in callers:
        caller.start()
    time.sleep(0.5)  # they reach the service, and the fetch is trickling
    assert trickle.requests == 1

    started = time.monotonic()
    health = requests.get(f"{url}/v1/health", timeout=5)
    assert health.status_code == 200
    assert time.monotonic() - started < 0.1

    started = time.monotonic()
    assert client.obtain("idaas_demo", "app_billing", "sct_billing_1").secret_id == "sct_billing_1"
    assert time.monotonic() - started < 1.0  # usually tens of ms; never the JWKS's seconds

    started = time.monotonic()
    ready = requests.get(f"{url}/v1/ready", timeout=5)
    assert (ready.status_code, ready.json()) == (
        503,
        {"status": "not ready", "failing": ["jwks:demo"]},
    )
    assert time.monotonic() - started < 2.0  # READY_BUDGET_S, under FC's 2 s health check

    for caller in callers:
        caller.join(30)
    deadline = deadline_for(FUNCTION_TIMEOUT_S)
    assert len(answers) == SERVER_THREADS
    assert all(status == 401 and code == "Unauthenticated" for status, code, _ in answers)
    assert max(seconds for _, _, seconds in answers) < deadline
