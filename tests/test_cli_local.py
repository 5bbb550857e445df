"""The README's flow, as a user runs it: `vend local` in one process, `vend obtain`, `vend create`
and `vend decrypt` in others, with the demo caller's keys in the environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sdk_clients as sdk
from processes import VEND, vend_local

from vend_client.exit_status import ExitStatus

pytestmark = pytest.mark.contract("11")

BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"


@pytest.fixture(scope="module")
def local() -> Iterator[tuple[dict[str, str], list[str]]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_"))}
    server, port, emulator_port = vend_local(env)
    output: list[str] = []
    try:
        caller = {
            **env,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": sdk.BILLING[0],
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": sdk.BILLING[1],
            "VEND_URL": f"http://127.0.0.1:{port}",
            "VEND_AUDIENCE": "vend-local",
            "VEND_STS_ENDPOINT": f"http://127.0.0.1:{emulator_port}",
            "VEND_KMS_ENDPOINT": f"http://127.0.0.1:{emulator_port}",
        }
        yield caller, output
    finally:
        out, log = server.stop()
    # What the server printed: the banner; its log: one audit record per request; never a secret.
    assert "vend local:" in out and "vend obtain" in out
    assert '"decision":"allow"' in log and '"decision":"deny"' in log
    assert BILLING_SECRET not in log


def _vend(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VEND, *args], env=env, capture_output=True, text=True, timeout=60, input=stdin
    )


def test_obtain_prints_the_secret(local: tuple[dict[str, str], list[str]]) -> None:
    env, _ = local
    done = _vend(
        env,
        "obtain",
        "--instance",
        "idaas_demo",
        "--application",
        "app_billing",
        "--secret",
        "sct_billing_1",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == BILLING_SECRET


def test_obtain_json_then_decrypt(local: tuple[dict[str, str], list[str]], tmp_path: Path) -> None:
    env, _ = local
    done = _vend(
        env,
        "obtain",
        "--instance",
        "idaas_demo",
        "--application",
        "app_billing",
        "--secret",
        "sct_billing_1",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    assert response["client_secret"] == BILLING_SECRET
    del response["client_secret"]
    saved = tmp_path / "vended.json"
    saved.write_text(json.dumps(response))
    opened = _vend(env, "decrypt", str(saved))
    assert (opened.returncode, opened.stdout.strip()) == (0, BILLING_SECRET), opened.stderr
    # A bare envelope from standard input, with the ARN it must be for.
    bare = _vend(
        env,
        "decrypt",
        "-",
        "--expect-arn",
        sdk.secret_arn("app_billing", "sct_billing_1"),
        stdin=json.dumps(response["envelope"]),
    )
    assert bare.stdout.strip() == BILLING_SECRET, bare.stderr
    # The same envelope, claimed for another secret, is refused.
    wrong = _vend(
        env,
        "decrypt",
        "-",
        "--expect-arn",
        sdk.secret_arn("app_billing", "sct_other"),
        stdin=json.dumps(response["envelope"]),
    )
    assert (
        wrong.returncode == ExitStatus.ENVELOPE
        and BILLING_SECRET not in wrong.stdout + wrong.stderr
    )
    # Another caller cannot open it.
    reports = {
        **env,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": sdk.REPORTS[0],
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": sdk.REPORTS[1],
    }
    stolen = _vend(reports, "decrypt", str(saved))
    assert stolen.returncode == ExitStatus.ENVELOPE
    assert BILLING_SECRET not in stolen.stdout + stolen.stderr


def test_create_prints_a_new_secret(local: tuple[dict[str, str], list[str]]) -> None:
    env, _ = local
    done = _vend(env, "create", "--instance", "idaas_demo", "--application", "app_empty", "--json")
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    assert response["secret_id"].startswith("sci_") and response["client_secret"].startswith("CS")


def test_refusal_is_reported_on_stderr(local: tuple[dict[str, str], list[str]]) -> None:
    env, _ = local
    done = _vend(
        env,
        "obtain",
        "--instance",
        "idaas_demo",
        "--application",
        "app_reports",
        "--secret",
        "sct_reports_1",
    )
    assert done.returncode == ExitStatus.DENIED
    assert "403 AccessDenied" in done.stderr and done.stdout == ""


def test_the_readmes_fc2_example_runs_as_printed(local: tuple[dict[str, str], list[str]]) -> None:
    env, _ = local
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Calling from another function") :]
    code = section[
        section.index("```python") + len("```python") : section.index(
            "```\n", section.index("```python") + 9
        )
    ]
    api, emulator = env["VEND_URL"], env["VEND_STS_ENDPOINT"]
    code = code.replace("http://127.0.0.1:9000", api).replace("http://127.0.0.1:9100", emulator)
    code += "\nprint(secret)\nprint(later.secret_id)\n"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == BILLING_SECRET
    assert done.stdout.splitlines()[1].startswith("sci_")
