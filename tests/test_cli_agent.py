"""`vend-client agent` against the whole local stack (the emulator, and the service as `vend local`
runs it), asked from outside Python: `curl`, and a POSIX shell script (tests/agent_smoke.sh),
as a Go, Java or Node program would ask it over plain HTTP."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from agent_process import curl, running_agent, token_endpoint
from alibabacloud_eiam20211201 import models as eiam_models
from stack import Stack, running_stack

from infra.emulator import Seed
from infra.emulator.oauth import ISSUER_PATH

pytestmark = pytest.mark.contract("13")

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "tests" / "agent_smoke.sh"
BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"
AGENT_TOKEN = "demo-agent-token-0123456789abcdef"
QUERY = "instance_id=idaas_demo&application_id=app_billing&secret_id=sct_billing_1"
SCOPE = "vend-local|obtain"


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed) as running:
        yield running


def _smoke(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sh", str(SMOKE)], env=env, capture_output=True, text=True, timeout=120)


def test_the_smoke_script_passes_against_the_local_stack(stack: Stack, tmp_path: Path) -> None:
    env = stack.caller_environment(
        VEND_AGENT_TOKEN=AGENT_TOKEN, VEND_TOKEN_ENDPOINT=token_endpoint(stack)
    )
    with running_agent(env, tmp_path) as agent:
        done = _smoke(
            {
                **os.environ,
                "AGENT_URL": agent.url,
                "AGENT_TOKEN": AGENT_TOKEN,
                "INSTANCE": "idaas_demo",
                "APPLICATION": "app_billing",
                "SECRET_ID": "sct_billing_1",
                "EXPECT_SECRET": BILLING_SECRET,
                "DENIED_APPLICATION": "app_reports",
                "DENIED_SECRET_ID": "sct_reports_1",
                "TOKENS": "1",
                "SCOPE": SCOPE,
            }
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "not ok" not in done.stdout
        assert done.stdout.count("ok - ") == 18, done.stdout
        stderr = agent.stderr()
    assert BILLING_SECRET not in stderr
    assert AGENT_TOKEN not in stderr
    assert '"access_token"' not in stderr and "eyJ" not in stderr
    lines = [json.loads(line) for line in stderr.splitlines()]
    statuses = [line["status"] for line in lines if line.get("event") == "request"]
    assert statuses == [200, 401, 401, 400, 200, 405, 404, 400, 403, 200]


def test_the_smoke_script_fails_and_says_which_check_when_an_answer_is_wrong(
    stack: Stack, tmp_path: Path
) -> None:
    """The script is checked too: told to expect another secret than the one the agent answers,
    it stops at that check, exit 1."""
    env = stack.caller_environment(VEND_AGENT_TOKEN=AGENT_TOKEN)
    with running_agent(env, tmp_path) as agent:
        done = _smoke(
            {
                **os.environ,
                "AGENT_URL": agent.url,
                "AGENT_TOKEN": AGENT_TOKEN,
                "INSTANCE": "idaas_demo",
                "APPLICATION": "app_billing",
                "SECRET_ID": "sct_billing_1",
                "EXPECT_SECRET": "not-the-secret",
            }
        )
    assert done.returncode == 1
    assert "not ok - the secret: 200 with client_secret: the answer lacks" in done.stdout
    assert "ok - POST: 405" not in done.stdout  # it stopped there


def test_the_readmes_curl_call_answers_the_secret(stack: Stack, tmp_path: Path) -> None:
    """The README's set-up and call, as printed there (but on a free port): the agent makes its
    token file, and curl sends its content."""
    token_file = tmp_path / "vend-agent-token"
    with running_agent(
        stack.caller_environment(), tmp_path, "--token-file", str(token_file)
    ) as agent:
        call = (
            f'curl -s -H "X-Vend-Agent-Token: $(cat {token_file})" '
            f"'{agent.url}/v1/secret?{QUERY}'"
        )
        done = subprocess.run(
            ["sh", "-c", call], capture_output=True, text=True, timeout=60, check=True
        )
    answer = json.loads(done.stdout)
    assert answer["client_secret"] == BILLING_SECRET
    assert answer["client_id"] == "app_billing"
    assert oct(token_file.stat().st_mode & 0o777) == "0o600"


def _verify(token: str, issuer: str) -> dict[str, Any]:
    """As a resource server does it: the issuer's discovery document names the JWKS."""
    discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    key = jwt.PyJWKClient(discovery["jwks_uri"]).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience="vend-local",
        issuer=issuer,
        options={"require": ["exp", "iat", "sub", "aud", "iss"]},
    )
    return claims


def test_curl_gets_an_access_token_that_verifies_against_the_instances_jwks(
    stack: Stack, tmp_path: Path
) -> None:
    env = stack.caller_environment(
        VEND_AGENT_TOKEN=AGENT_TOKEN, VEND_TOKEN_ENDPOINT=token_endpoint(stack)
    )
    asked = f"{QUERY}&scope=vend-local%7Cobtain"
    header = ("-H", f"X-Vend-Agent-Token: {AGENT_TOKEN}")
    with running_agent(env, tmp_path) as agent:
        status, first = curl(f"{agent.url}/v1/token?{asked}", *header)
        assert status == 200, first
        assert (first["token_type"], set(first)) == (
            "Bearer",
            {"access_token", "token_type", "expires_in", "expires_at"},
        )
        claims = _verify(first["access_token"], f"{stack.emulator.url}/idaas_demo{ISSUER_PATH}")
        assert (claims["sub"], claims["client_id"]) == ("app_billing", "app_billing")
        assert abs(first["expires_at"] - claims["exp"]) <= 5

        # From the agent's memory: the very token; refresh_now: a new one.
        # (expires_in counts down from the moment of each answer: a second may pass between them.)
        cached = curl(f"{agent.url}/v1/token?{asked}", *header)[1]
        assert {k: cached[k] for k in ("access_token", "expires_at")} == {
            k: first[k] for k in ("access_token", "expires_at")
        }
        assert 0 <= first["expires_in"] - cached["expires_in"] <= 2
        status, again = curl(f"{agent.url}/v1/token?{asked}&refresh_now=true", *header)
        assert status == 200
        assert again["access_token"] != first["access_token"]

        # Disabled in EIAM, the secret gets no token: the agent asks the service for it again
        # (it may have been rotated), tries once more, and answers the endpoint's refusal.
        request = eiam_models.DisableApplicationClientSecretRequest(
            instance_id="idaas_demo", application_id="app_billing", secret_id="sct_billing_1"
        )
        stack.operator_eiam().disable_application_client_secret(request)
        obtained = len(stack.calls("ObtainApplicationClientSecret"))
        status, refused = curl(f"{agent.url}/v1/token?{asked}&refresh_now=true", *header)
        assert status == 502
        assert refused["error"]["code"] == "TokenRefused"
        assert "401: invalid_client" in refused["error"]["message"]
        assert len(stack.calls("ObtainApplicationClientSecret")) == obtained + 1
        stderr = agent.stderr()
    for text in (stderr, json.dumps([first, again, refused])):
        assert BILLING_SECRET not in text
    assert first["access_token"] not in stderr
