"""`vend serve`: the custom runtime's server (`functions.custom_runtime`) on this machine, against
the emulator. It serves the HTTP API straight from WSGI, and FC's invoke API only when asked."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import fc2
import pytest
import requests
import sdk_clients as sdk
from processes import VEND, Server

from infra.emulator import EmulatorServer
from infra.local.cli import DEMO_POLICY, DEMO_SEED, local_environment
from vend_client import Credentials, EventsClient, VendClient
from vend_client import parse_endpoint as endpoint

BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"
INVOKE_PATH = "/2016-08-15/services/any/functions/vend-events/invocations"


def _serve(emulator: EmulatorServer, *flags: str) -> Iterator[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_"))}
    env.update(local_environment(emulator.url, DEMO_SEED, DEMO_POLICY))
    server = Server([*VEND, "serve", "--port", "0", *flags], "vend serve", env)
    try:
        yield server.wait_for(r"HTTP API at (http://127\.0\.0\.1:[0-9]+)/v1/").group(1)
    finally:
        out, log = server.stop()
    assert BILLING_SECRET not in out + log


@pytest.fixture
def plain(emulator: EmulatorServer) -> Iterator[str]:
    yield from _serve(emulator)


@pytest.fixture
def with_invoke_api(emulator: EmulatorServer) -> Iterator[str]:
    yield from _serve(emulator, "--fc-invoke-api")


def _client(url: str, emulator: EmulatorServer, key: tuple[str, str] = sdk.BILLING) -> VendClient:
    return VendClient(
        url=url,
        audience="vend-local",
        credentials=Credentials(*key),
        sts_endpoint=endpoint(emulator.url),
        kms_endpoint=endpoint(emulator.url),
    )


def test_the_api_answers_straight_from_wsgi(plain: str, emulator: EmulatorServer) -> None:
    assert requests.get(f"{plain}/v1/health", timeout=5).json() == {"status": "ok"}
    client = _client(plain, emulator)
    response = client.obtain("idaas_demo", "app_billing", "sct_billing_1")
    opened = client.open(
        response, instance_id="idaas_demo", application_id="app_billing", secret_id="sct_billing_1"
    )
    assert opened == BILLING_SECRET
    refused = requests.post(f"{plain}/v1/secrets/obtain", data=b"[", timeout=5)
    assert (refused.status_code, refused.json()["error"]["code"]) == (400, "MalformedRequest")
    assert refused.headers["X-Request-Id"] == refused.json()["error"]["request_id"]


def test_a_plain_server_has_no_invoke_api(plain: str) -> None:
    """In production the custom runtime serves the HTTP API only: FC's invoke path is a 404,
    and nothing behind it runs."""
    answer = requests.post(f"{plain}{INVOKE_PATH}", data=b'{"action": "obtain"}', timeout=5)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "NotFound"


def test_the_invoke_api_when_asked_for(with_invoke_api: str, emulator: EmulatorServer) -> None:
    fc = fc2.Client(
        endpoint=with_invoke_api, accessKeyID=sdk.BILLING[0], accessKeySecret=sdk.BILLING[1]
    )
    events = EventsClient(_client(with_invoke_api, emulator), fc, service="any")
    response = events.obtain("idaas_demo", "app_billing", "sct_billing_1")
    assert response.secret_id == "sct_billing_1"
    unauthenticated = json.loads(
        fc.invoke_function("any", "vend-events", payload=b'{"action": "doctor"}', headers={}).data
    )
    assert (unauthenticated["status"], unauthenticated["error"]["code"]) == (401, "Unauthenticated")
    operator = EventsClient(_client(with_invoke_api, emulator, sdk.OPERATOR), fc, service="any")
    assert operator.doctor()["ok"] is True
