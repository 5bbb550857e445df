"""`vend local` takes the access tokens of its emulator's IDaaS instances as Bearer callers, out
of the box: run as a user runs it, with tokens got from the emulator's token endpoint over HTTP,
and the banner's copy-paste commands run by bash as printed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from processes import vend_local

ROOT = Path(__file__).resolve().parent.parent
REPORTS_SECRET = "CSdemoReportsSecretValue000000000000001"
BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"
TOKEN_PATH = "/api/v2/iauths_system/oauth2/token"
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}")


@dataclass(frozen=True)
class Local:
    api: str
    emulator: str
    env: dict[str, str]  # the environment of a shell with no VEND_* nor Alibaba Cloud keys
    banner: str


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_"))}
    server, port, emulator_port = vend_local(env)
    try:
        server.wait_for(r"^Ctrl-C stops both\.$")
        banner = server.printed()
        yield Local(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{emulator_port}", env, banner)
    finally:
        _, log = server.stop()
    # Its log (the audit records of these requests) holds neither a secret nor a token.
    assert REPORTS_SECRET not in log and not JWT.search(log)


def _token(local: Local, client_id: str, secret: str, scope: str = "vend-local|obtain") -> str:
    answer = requests.post(
        f"{local.emulator}/idaas_demo{TOKEN_PATH}",
        data={"grant_type": "client_credentials", "scope": scope},
        auth=(client_id, secret),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def _obtain(local: Local, token: str, application: str, secret_id: str) -> requests.Response:
    return requests.post(
        f"{local.api}/v1/secrets/obtain",
        json={"instance_id": "idaas_demo", "application_id": application, "secret_id": secret_id},
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )


def test_an_emulator_token_obtains_what_the_policy_lets_its_application(local: Local) -> None:
    token = _token(local, "app_reports", REPORTS_SECRET)
    answer = _obtain(local, token, "app_reports", "sct_reports_1")
    assert answer.status_code == 200, answer.text
    envelope = answer.json()["envelope"]
    assert envelope["key_id"] == "key-reports"  # the policy's recipient for jwt:app_reports@demo
    assert envelope["encryption_context"]["vend:principal"] == "jwt:app_reports@demo"
    assert REPORTS_SECRET not in answer.text


def test_a_token_of_an_application_the_policy_does_not_name_is_denied(local: Local) -> None:
    token = _token(local, "app_billing", BILLING_SECRET)
    for application, secret_id in (
        ("app_reports", "sct_reports_1"),
        ("app_billing", "sct_billing_1"),
    ):
        answer = _obtain(local, token, application, secret_id)
        assert answer.status_code == 403, answer.text
        assert answer.json()["error"]["code"] == "AccessDenied"


def test_a_token_for_another_audience_is_not_a_caller(local: Local) -> None:
    for scope in ("", "api://elsewhere|obtain"):
        token = _token(local, "app_reports", REPORTS_SECRET, scope)
        answer = _obtain(local, token, "app_reports", "sct_reports_1")
        assert answer.status_code == 401, answer.text
        assert "audience" in answer.json()["error"]["message"]


def test_the_banners_bearer_commands_run_as_printed(local: Local) -> None:
    """The copy-paste block of `make run`: its exports, the token from the emulator with curl,
    the Bearer obtain with curl, and `vend obtain --token`, run by bash in a clean shell."""
    lines = local.banner.splitlines()
    exports = [line for line in lines if line.startswith("  export ")]
    start = next(i for i, line in enumerate(lines) if line.startswith("  TOKEN=$(curl"))
    end = next(i for i, line in enumerate(lines) if line.startswith("Ctrl-C"))
    script = "\n".join(["set -eu", *exports, *lines[start:end]])
    assert f"{local.emulator}/idaas_demo{TOKEN_PATH}" in script
    script = script.replace(".venv/bin/python", sys.executable).replace(
        ".venv/bin/vend", f"{sys.executable} -m infra.local.cli"
    )
    done = subprocess.run(
        ["bash", "-c", script],
        env=local.env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    response, _, opened = done.stdout.rstrip("\n").rpartition("\n")
    assert json.loads(response)["envelope"]["key_id"] == "key-reports"
    assert opened == REPORTS_SECRET
    assert not JWT.search(done.stdout + done.stderr)


def test_a_token_past_its_expiry_is_refused(local: Local) -> None:
    """Dated by the emulator's clock, moved back past the token's lifetime, then put back."""
    clock = f"{local.emulator}/_emulator/clock"
    assert requests.put(clock, json={"advance_s": -3601}, timeout=10).status_code == 200
    try:
        token = _token(local, "app_reports", REPORTS_SECRET)
    finally:
        assert requests.put(clock, json={"advance_s": 3601}, timeout=10).status_code == 200
    answer = _obtain(local, token, "app_reports", "sct_reports_1")
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["message"].endswith("token expired")
