"""`vend rotate plan` and `vend rotate run` against the local stack as `vend local` runs it (the
demo world: VEND_ROTATION lists app_billing, whose one secret never expires, and
examples/policy.json lets the demo caller billing take every step on it), as a user types
them; `run` confirms on a terminal (a real pseudo-terminal here), and needs --yes without one.
Both go through the service, so the approval policy decides."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sdk_clients as sdk
from stack import Stack, running_stack

from infra.emulator import Seed
from vend_client.exit_status import ExitStatus

VEND = Path(sys.executable).with_name("vend")
APP = ("--instance", "idaas_demo", "--application", "app_billing")


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed) as running:
        yield running


def _vend(
    stack: Stack, *args: str, key: tuple[str, str] = sdk.BILLING, stdin: int | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VEND), "rotate", *args],
        env=stack.caller_environment(key),
        stdin=subprocess.DEVNULL if stdin is None else stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _secrets(stack: Stack, app: str = "app_billing") -> dict[str, str]:
    eiam = stack.emulator.emulator.eiam
    with eiam.lock:
        return {s.secret_id: s.status for s in eiam.state["idaas_demo"][app].secrets.values()}


def test_plan_prints_the_secrets_the_current_one_and_the_next_step(stack: Stack) -> None:
    done = _vend(stack, "plan", *APP)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.splitlines() == [
        "application idaas_demo/app_billing",
        "  sct_billing_1  enabled   expires never  current",
        "next step: create, due now",
        "  why: the current secret sct_billing_1 never expires",
    ]
    assert _secrets(stack) == {"sct_billing_1": "enabled"}  # a plan changes nothing


def test_run_with_yes_takes_the_step_then_there_is_nothing_to_do(stack: Stack) -> None:
    done = _vend(stack, "run", *APP, "--yes", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["step"] == "create"
    (new,) = set(_secrets(stack)) - {"sct_billing_1"}
    assert answer["current_secret_id"] == new
    assert sorted(s["secret_id"] for s in answer["secrets"]) == sorted(_secrets(stack))

    again = _vend(stack, "run", *APP, "--yes")
    assert again.returncode == 0, again.stderr
    lines = again.stdout.splitlines()
    assert f"  {new}  enabled   expires " in "\n".join(lines)
    assert lines[-2].startswith("next step: none; the next may come due 20")
    assert "sct_billing_1 may be disabled at" in lines[-1]
    assert len(_secrets(stack)) == 2  # still: the old one waits out its grace period


def test_run_without_a_terminal_needs_yes_and_changes_nothing(stack: Stack) -> None:
    done = _vend(stack, "run", *APP)
    assert done.returncode == ExitStatus.USAGE
    assert done.stderr.startswith("vend: rotate run: standard input is not a terminal")
    assert done.stdout == ""
    assert _secrets(stack) == {"sct_billing_1": "enabled"}


@pytest.mark.parametrize(("answer", "taken"), [("n", False), ("y", True)])
def test_run_asks_on_a_terminal(stack: Stack, answer: str, taken: bool) -> None:
    """The plan and the question on stderr; only `y` takes the step."""
    leader, follower = pty.openpty()
    try:
        os.write(leader, f"{answer}\n".encode())
        done = _vend(stack, "run", *APP, stdin=follower)
    finally:
        os.close(follower)
        os.close(leader)
    assert "next step: create, due now" in done.stderr
    assert "vend: take this step (create) on idaas_demo/app_billing now? [y/N]" in done.stderr
    if taken:
        assert done.returncode == 0, done.stderr
        assert "step taken: create" in done.stdout
        assert len(_secrets(stack)) == 2
    else:
        assert done.returncode == ExitStatus.INTERRUPTED
        assert done.stdout == ""
        assert "vend: not taken; nothing was changed" in done.stderr
        assert _secrets(stack) == {"sct_billing_1": "enabled"}


def test_a_caller_the_policy_does_not_approve_is_refused(stack: Stack) -> None:
    """reports may read app_reports' secret, and take no step on it: 403, even for a plan."""
    done = _vend(
        stack,
        "plan",
        "--instance",
        "idaas_demo",
        "--application",
        "app_reports",
        key=sdk.REPORTS,
    )
    assert done.returncode == ExitStatus.DENIED
    assert done.stderr.startswith("vend: 403 AccessDenied: the approval policy does not allow")
    assert done.stdout == ""
