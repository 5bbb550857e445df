"""`vend-client run` against the whole local stack (the emulator, and the service as `vend local`
runs it), with the demo caller's keys: the README's calls, as a user types them."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from stack import Stack, running_stack

from infra.emulator import Seed
from vend_client.exit_status import ExitStatus

VEND_CLIENT = Path(sys.executable).with_name("vend-client")
BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed) as running:
        yield running


def _run(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = stack.caller_environment()
    return subprocess.run(
        [str(VEND_CLIENT), "run", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_the_command_runs_with_the_secret_in_its_environment(stack: Stack) -> None:
    done = _run(
        stack,
        *("--env", "DB=idaas_demo/app_billing/sct_billing_1", "--"),
        *("sh", "-c", 'test -n "$DB" && printf %s "$DB_CLIENT_ID"'),
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "app_billing", "")


def test_the_commands_exit_status_is_runs(stack: Stack) -> None:
    done = _run(
        stack, "--env", "DB=idaas_demo/app_billing/sct_billing_1", "--", "sh", "-c", "exit 7"
    )
    assert done.returncode == 7


@pytest.mark.parametrize(
    ("secret", "exit_status", "said"),
    [
        ("idaas_demo/app_billing/sct_missing", ExitStatus.NOT_FOUND, "404 NotFound"),
        ("idaas_demo/app_reports/sct_reports_1", ExitStatus.DENIED, "403 AccessDenied"),
    ],
)
def test_a_secret_that_cannot_be_got_is_one_line_and_nothing_runs(
    stack: Stack, tmp_path: Path, secret: str, exit_status: ExitStatus, said: str
) -> None:
    ran = tmp_path / "ran"
    done = _run(stack, "--env", f"DB={secret}", "--", "touch", str(ran))
    assert done.returncode == exit_status
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"vend: DB: {said}")
    assert not ran.exists()
