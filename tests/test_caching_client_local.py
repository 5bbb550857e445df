"""`CachingClient` against the whole local stack, as `vend local` runs it (the emulator, and the FC
HTTP handler behind the local FC bridge), with the demo caller's keys: a second `get` is served
from memory (no request reaches the service or EIAM), `refresh_now` goes all the way again."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from collections.abc import Iterator

import pytest
import requests
import sdk_clients as sdk
from stack import Stack, running_stack

from infra.emulator import Seed
from infra.local.cli import _local_banner
from vend_client import CachingClient, Credentials, VendApiError

pytestmark = pytest.mark.contract("13")

BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"
IDS = ("idaas_demo", "app_billing", "sct_billing_1")


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed) as running:
        yield running


def _cache(stack: Stack, key: tuple[str, str] = sdk.BILLING) -> CachingClient:
    return CachingClient(
        stack.api.url,
        audience="vend-local",
        credentials=Credentials(*key),
        sts_endpoint=stack.emulator.url,
        kms_endpoint=stack.emulator.url,
    )


def _eiam_obtains(stack: Stack) -> int:
    """How many ObtainApplicationClientSecret calls EIAM (the emulator) has answered, as its
    admin API counts them."""
    calls = requests.get(stack.emulator.url + "/_emulator/calls", timeout=5).json()["calls"]
    return int(calls.get("ObtainApplicationClientSecret", 0))


def _service_requests(stack: Stack) -> list[dict[str, object]]:
    """The service's audit records: one per request it served."""
    return [json.loads(r.getMessage()) for r in stack.audit.records]


def test_a_second_get_is_served_from_memory_and_refresh_now_asks_again(stack: Stack) -> None:
    with _cache(stack) as cache:
        assert cache.get(*IDS) == BILLING_SECRET
        assert (len(_service_requests(stack)), _eiam_obtains(stack)) == (1, 1)
        assert cache.get(*IDS) == BILLING_SECRET
        assert (len(_service_requests(stack)), _eiam_obtains(stack)) == (1, 1)
        assert cache.refresh_now(*IDS).client_secret == BILLING_SECRET
        assert (len(_service_requests(stack)), _eiam_obtains(stack)) == (2, 2)
        assert cache.get(*IDS) == BILLING_SECRET
        assert len(_service_requests(stack)) == 2
    assert all(r["outcome"] == "ok" for r in _service_requests(stack))


def test_get_secret_answers_what_oauth_and_rotation_need(stack: Stack) -> None:
    with _cache(stack) as cache:
        vended = cache.get_secret(*IDS)
        assert cache.get_secret(*IDS) is vended  # the same cached answer
    assert (vended.instance_id, vended.application_id, vended.secret_id) == IDS
    assert (vended.client_id, vended.client_secret) == ("app_billing", BILLING_SECRET)
    assert vended.status == "enabled"
    assert vended.expiration_time is None
    assert BILLING_SECRET not in repr(vended) + str(vended)
    assert len(_service_requests(stack)) == 1


def test_a_denial_is_neither_retried_nor_cached(stack: Stack) -> None:
    with _cache(stack, sdk.REPORTS) as cache:
        for asked in (1, 2):
            with pytest.raises(VendApiError) as info:
                cache.get(*IDS)
            assert (info.value.status, info.value.code) == (403, "AccessDenied")
            assert len(_service_requests(stack)) == asked
    assert _eiam_obtains(stack) == 0


def test_from_env_needs_only_what_vend_local_says_to_export(stack: Stack, demo_seed: Seed) -> None:
    """A caller's process with nothing but the `export` lines of `vend local`'s banner (the demo
    caller's keys, VEND_URL, VEND_AUDIENCE, VEND_STS_ENDPOINT, VEND_KMS_ENDPOINT):
    `CachingClient.from_env()` gets the secret."""
    banner = _local_banner(stack.api.url, stack.emulator.url, demo_seed)
    exported: dict[str, str] = {}
    for line in banner.splitlines():
        if line.strip().startswith("export "):
            for word in shlex.split(line.strip())[1:]:
                name, _, value = word.partition("=")
                exported[name] = value
    assert {"VEND_URL", "VEND_AUDIENCE", "ALIBABA_CLOUD_ACCESS_KEY_ID"} <= set(exported)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_"))}
    code = (
        "from vend_client import CachingClient\n"
        "with CachingClient.from_env() as cache:\n"
        f"    print(cache.get(*{IDS!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**env, **exported},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == BILLING_SECRET
