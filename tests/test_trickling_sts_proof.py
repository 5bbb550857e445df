"""An STS that trickles its answer to a RAM proof (issue 17, item 4) cannot hold the request past
its deadline: a byte every 0.3 s keeps any per-read timeout from firing, yet each RAM-proof
request ends within its deadline with what an STS that does not answer in time gets (504
UpstreamTimeout), and `/v1/health` answers at once meanwhile."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import requests
import sdk_clients as sdk
from stack import Stack, running_stack
from trickle import TrickleServer, http_answer

from infra.emulator import Seed
from shared.fc import deadline_for
from vend_client.proof import build_proof

FUNCTION_TIMEOUT_S = 5
DEADLINE_S = deadline_for(FUNCTION_TIMEOUT_S)  # 4 s
MARGIN_S = 0.5  # the way in and out of the local FC bridge
CALLERS = 3  # fewer than the server's threads: the point is the deadline, not thread exhaustion
OBTAIN = {
    "instance_id": "idaas_demo",
    "application_id": "app_billing",
    "secret_id": "sct_billing_1",
}


@pytest.fixture
def sts() -> Iterator[TrickleServer]:
    # GetCallerIdentity's answer would take about 45 s at a byte every 0.3 s. The server gives up
    # after 10 s, well past the deadline, so that a service that waits for it all fails this
    # test instead of hanging it.
    identity = {
        "RequestId": "r",
        "Arn": f"acs:ram::{sdk.ACCOUNT}:user/billing",
        "AccountId": sdk.ACCOUNT,
    }
    answer = http_answer(json.dumps(identity).encode())
    with TrickleServer(answer, every_s=0.3, for_s=10) as server:
        yield server


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, sts: TrickleServer) -> Iterator[Stack]:
    # The proofs' STS is the service's (VEND_STS_ENDPOINT is allow-listed, over http too). No
    # request here gets as far as AssumeRole.
    env = {"VEND_STS_ENDPOINT": f"http://127.0.0.1:{sts.port}"}
    with running_stack(monkeypatch, demo_seed, timeout_s=FUNCTION_TIMEOUT_S, env=env) as running:
        yield running


def _proof(sts: TrickleServer) -> str:
    return build_proof(
        audience="vend-local",
        sts_endpoint=f"127.0.0.1:{sts.port}",
        protocol="http",
        access_key_id=sdk.BILLING[0],
        access_key_secret=sdk.BILLING[1],
    )


def test_a_trickling_sts_ends_a_ram_proof_request_at_its_deadline(
    stack: Stack, sts: TrickleServer
) -> None:
    url = stack.api.url
    # The instance is built (a cold start is not part of any deadline), and STS is not asked.
    warm = requests.post(f"{url}/v1/secrets/obtain", json=OBTAIN, timeout=30)
    assert warm.status_code == 401

    answers: list[tuple[int, dict[str, str], float]] = []

    def ram_obtain() -> None:
        headers = {"Authorization": f"RAM {_proof(sts)}"}
        started = time.monotonic()
        resp = requests.post(f"{url}/v1/secrets/obtain", json=OBTAIN, headers=headers, timeout=30)
        answers.append((resp.status_code, resp.json()["error"], time.monotonic() - started))

    callers = [threading.Thread(target=ram_obtain) for _ in range(CALLERS)]
    for caller in callers:
        caller.start()
    until = time.monotonic() + DEADLINE_S / 2
    while sts.requests < CALLERS and time.monotonic() < until:
        time.sleep(0.02)
    assert sts.requests == CALLERS  # every proof was sent, and its answer is trickling

    started = time.monotonic()
    health = requests.get(f"{url}/v1/health", timeout=5)
    assert health.status_code == 200
    assert time.monotonic() - started < 0.5  # not the STS's seconds

    for caller in callers:
        caller.join(30)
    assert len(answers) == CALLERS
    for status, error, seconds in answers:
        assert (status, error["code"], error["message"]) == (
            504,
            "UpstreamTimeout",
            "STS did not answer in time to verify the RAM proof.",
        )
        assert seconds < DEADLINE_S + MARGIN_S
