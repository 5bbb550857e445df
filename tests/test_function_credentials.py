"""The function's own credentials outlive nothing (issue 20, item 6): a custom-runtime instance
(`functions.custom_runtime`, what FC runs for `vend-http-custom`, and `vend serve`) starts with
the function role's keys in its environment, and FC hands the current keys over with every
request. Over real HTTP, against the emulator, whose clock is moved past the environment's keys
instead of waiting for them to expire."""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests
import sdk_clients as sdk
from function_role import (
    FC_ITSELF,
    THE_ROLE,
    as_environment,
    as_headers,
    expire,
    fc_hands_over,
    function_role_seed,
    signers,
)
from processes import custom_runtime

from functions.custom_runtime import request_of
from infra.emulator import EmulatorServer, Seed
from infra.local.cli import DEMO_POLICY, DEMO_SEED, local_environment
from shared.wire.credentials import Credentials
from vend_client import Credentials as CallerCredentials
from vend_client import VendClient, VendResponse
from vend_client import parse_endpoint as endpoint

# FC's system variables of an instance (infra/ASSUMPTIONS.md F25).
IN_FC = {"FC_FUNCTION_NAME": "vend-http-custom", "FC_INSTANCE_ID": "c-6789abcd-0123"}
BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"
OBTAIN_BILLING = {
    "instance_id": "idaas_demo",
    "application_id": "app_billing",
    "secret_id": "sct_billing_1",
}


@pytest.fixture
def world(demo_seed: Seed) -> Iterator[EmulatorServer]:
    with EmulatorServer(function_role_seed(demo_seed)) as server:
        yield server


@dataclass
class Instance:
    url: str
    client: VendClient
    output: str = ""  # everything the instance printed, once it stopped


@contextmanager
def _instance(
    emulator: EmulatorServer, started_with: Credentials, extra: Mapping[str, str]
) -> Iterator[Instance]:
    """The custom runtime as its own process, with `started_with` in its environment as FC puts
    the role's keys there, and `extra` (FC's instance variables, or none: outside FC)."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_", "FC_"))
    }
    env.update(local_environment(emulator.url, DEMO_SEED, DEMO_POLICY))
    env.update(as_environment(started_with))
    env.update(extra)
    server, url = custom_runtime(env)
    client = VendClient(
        url=url,
        audience="vend-local",
        credentials=CallerCredentials(*sdk.BILLING),
        sts_endpoint=endpoint(emulator.url),
        kms_endpoint=endpoint(emulator.url),
    )
    instance = Instance(url, client)
    try:
        yield instance
    finally:
        out, log = server.stop()
        instance.output = out + log
    assert BILLING_SECRET not in instance.output


def _obtain(instance: Instance, headers: Mapping[str, str] = {}) -> requests.Response:
    return requests.post(
        f"{instance.url}/v1/secrets/obtain",
        json=OBTAIN_BILLING,
        headers={"Authorization": instance.client.authorization(), **headers},
        timeout=15,
    )


def _opened(instance: Instance, answer: requests.Response) -> str:
    assert answer.status_code == 200, answer.text
    return instance.client.open(VendResponse.from_dict(answer.json()), **OBTAIN_BILLING)


def _secrets(*sets: Credentials) -> list[str]:
    return [v for c in sets for v in (c.access_key_secret, c.security_token or "")]


def test_inside_fc_the_keys_fc_sends_sign_after_the_environments_keys_expire(
    world: EmulatorServer,
) -> None:
    """An instance outlives the keys of its environment: every request still succeeds with the
    keys FC sent along, and once FC has sent newer keys the expired ones are never used again,
    even by a request that carries none."""
    started_with = fc_hands_over(world, "fc-start")
    with _instance(world, started_with, IN_FC) as instance:
        assert _opened(instance, _obtain(instance)) == BILLING_SECRET  # the environment's keys
        expire(world, started_with)
        fresh = fc_hands_over(world, "fc-refresh")
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda _: _obtain(instance, as_headers(fresh)), range(16)))
        for answer in answers:
            assert _opened(instance, answer) == BILLING_SECRET
            assert not any(s in answer.text for s in _secrets(started_with, fresh))
            assert "x-fc-access-key" not in str(answer.headers).lower()
        assert _opened(instance, _obtain(instance)) == BILLING_SECRET  # no headers: fresh kept
    roles = {FC_ITSELF, THE_ROLE + "fc-start", THE_ROLE + "fc-refresh"}
    assert signers(world, "AssumeRole") == roles
    assert THE_ROLE + "fc-refresh" in signers(world, "GenerateDataKey")
    assert not any(s in instance.output for s in _secrets(started_with, fresh))


def test_inside_fc_without_the_headers_the_environments_keys_are_all_there_is(
    world: EmulatorServer,
) -> None:
    """Where FC sent no keys, the environment's are used as before: once they expire, STS
    refuses the function and the caller gets a 502 naming the upstream."""
    started_with = fc_hands_over(world, "fc-start")
    with _instance(world, started_with, IN_FC) as instance:
        assert _opened(instance, _obtain(instance)) == BILLING_SECRET
        expire(world, started_with)
        answer = _obtain(instance)
    assert answer.status_code == 502, answer.text
    assert answer.json()["error"]["code"] == "UpstreamError"
    assert "STS" in answer.json()["error"]["message"]


def test_outside_fc_a_callers_x_fc_keys_never_sign(world: EmulatorServer) -> None:
    """Outside FC (`vend serve`, no FC instance variables) the x-fc-access-key-* headers are
    a caller's: another principal's valid keys in them sign nothing, and once the environment's
    keys expire, fresh role keys in them do not rescue the request either."""
    started_with = fc_hands_over(world, "fc-start")
    with _instance(world, started_with, {}) as instance:
        operator = Credentials(*sdk.OPERATOR)
        assert _opened(instance, _obtain(instance, as_headers(operator))) == BILLING_SECRET
        assert signers(world, "AssumeRole") == {FC_ITSELF, THE_ROLE + "fc-start"}
        assert signers(world, "GenerateDataKey") == {THE_ROLE + "fc-start"}
        expire(world, started_with)
        answer = _obtain(instance, as_headers(fc_hands_over(world, "fc-refresh")))
    assert answer.status_code == 502, answer.text
    assert answer.json()["error"]["code"] == "UpstreamError"
    assert signers(world, "AssumeRole") == {FC_ITSELF, THE_ROLE + "fc-start"}


def _environ(**headers: str) -> dict[str, object]:
    """A WSGI request as waitress hands it over, with `headers` (HTTP_* names)."""
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/v1/health",
        "wsgi.input": io.BytesIO(b""),
        **{f"HTTP_{name.upper()}": value for name, value in headers.items()},
    }


FC_SET = {
    "x_fc_access_key_id": "STS.NaFromFc",
    "x_fc_access_key_secret": "secret-from-fc",
    "x_fc_security_token": "CAISfromfc",
}


@pytest.mark.parametrize("in_fc", [True, False])
def test_fcs_credential_headers_never_reach_the_api(in_fc: bool) -> None:
    """Inside FC or out, the credential headers are taken off the request before anything
    (the API, the audit, an error's answer) sees it; only inside FC do they become a set."""
    request, platform = request_of(_environ(**FC_SET, x_fc_request_id="fc-1"), in_fc=in_fc)
    assert not [h for h in request.headers if h.startswith(("x-fc-access", "x-fc-security"))]
    assert not [v for v in request.headers.values() if v in FC_SET.values()]
    expected = Credentials("STS.NaFromFc", "secret-from-fc", "CAISfromfc") if in_fc else None
    assert platform == expected


@pytest.mark.parametrize("missing", ["x_fc_access_key_id", "x_fc_access_key_secret"])
def test_a_set_without_its_key_id_or_secret_is_no_set(missing: str) -> None:
    """A part of a set cannot sign: the instance keeps the set it has."""
    partial = {name: value for name, value in FC_SET.items() if name != missing}
    _, platform = request_of(_environ(**partial, **{missing: " "}), in_fc=True)
    assert platform is None
