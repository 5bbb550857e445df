"""`vend-client run` as a real process: secrets in a command's environment, the command's exit
status, and nothing run when a secret cannot be got. pytest-httpserver plays the service, STS
and KMS."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from agent_world import VEND_CLIENT, World, world_on
from pytest_httpserver import HTTPServer

from vend_client.exit_status import ExitStatus

SECRET = "CS-secret-marker-1"
DB = "DB=idaas_x/app_y/sct_z"


@pytest.fixture
def world(httpserver: HTTPServer) -> World:
    return world_on(httpserver)


def _run(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VEND_CLIENT, "run", *args],
        env=world.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_sees_the_secret_and_its_client_id(world: World) -> None:
    check = f'test "$DB" = {SECRET} && test "$DB_CLIENT_ID" = app_y'
    done = _run(world, "--env", DB, "--", "sh", "-c", check)
    assert (done.returncode, done.stderr) == (0, "")
    assert SECRET not in done.stdout


def test_the_exit_status_is_the_commands(world: World) -> None:
    assert _run(world, "--env", DB, "--", "sh", "-c", "exit 7").returncode == 7


def test_a_command_killed_by_a_signal_exits_128_plus_its_number(world: World) -> None:
    done = _run(world, "--env", DB, "--", "sh", "-c", "kill -KILL $$")
    assert done.returncode == 128 + signal.SIGKILL


def test_sigterm_is_passed_on_to_the_command(world: World, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    script = f'trap "exit 42" TERM; touch {ready}; while :; do sleep 0.1; done'
    proc = subprocess.Popen(
        [*VEND_CLIENT, "run", "--env", DB, "--", "sh", "-c", script],
        env=world.env(),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 42


def test_each_secret_is_asked_once_through_one_cache(world: World) -> None:
    done = _run(
        world,
        *("--env", DB, "--env", "OTHER=idaas_x/app_y/sct_z"),
        *("--", "sh", "-c", 'test "$DB" = "$OTHER"'),
    )
    assert done.returncode == 0, done.stderr
    assert world.service.requests == 1


def test_secret_id_current_is_the_applications_current_secret(world: World) -> None:
    check = f'test "$DB" = {SECRET} && test "$DB_CLIENT_ID" = app_y'
    done = _run(world, "--env", "DB=idaas_x/app_y/current", "--", "sh", "-c", check)
    assert (done.returncode, done.stderr) == (0, "")
    assert world.service.paths == ["/v1/secrets/current"]


@pytest.mark.parametrize(
    ("status", "exit_status"), [(404, ExitStatus.NOT_FOUND), (403, ExitStatus.DENIED)]
)
def test_a_secret_that_cannot_be_got_is_one_line_and_the_command_does_not_run(
    world: World, tmp_path: Path, status: int, exit_status: ExitStatus
) -> None:
    ran = tmp_path / "ran"
    world.service.errors = [(status, {})]
    done = _run(
        world,
        *("--env", "FIRST=idaas_x/app_y/sct_a", "--env", "SECOND=idaas_x/app_y/sct_b"),
        *("--", "touch", str(ran)),
    )
    assert done.returncode == exit_status
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith(f"vend: FIRST: {status} E{status}")
    assert not ran.exists()
    assert world.service.requests == 1  # the second is not asked once the first failed


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ("1DB=idaas_x/app_y/sct_z", "shell variable name"),
        ("DB-X=idaas_x/app_y/sct_z", "shell variable name"),
        ("idaas_x/app_y/sct_z", "shell variable name"),
        ("DB=idaas_x/app_y", "INSTANCE/APPLICATION/SECRET_ID"),
        ("DB=idaas_x/app_y/sct*", "INSTANCE/APPLICATION/SECRET_ID"),
        ("DB=idaas_x/app_y/sct_z/x", "INSTANCE/APPLICATION/SECRET_ID"),
    ],
)
def test_a_bad_env_is_refused_before_anything_is_asked(world: World, env: str, said: str) -> None:
    done = _run(world, "--env", env, "--", "true")
    assert done.returncode == ExitStatus.USAGE
    assert said in done.stderr
    assert done.stderr.count("\n") == 1
    assert world.service.requests == 0


def test_a_name_set_twice_is_refused(world: World) -> None:
    done = _run(world, "--env", DB, "--env", "DB_CLIENT_ID=idaas_x/app_y/sct_y", "--", "true")
    assert done.returncode == ExitStatus.USAGE
    assert "DB_CLIENT_ID is set twice" in done.stderr
    assert world.service.requests == 0


def test_no_command_is_a_usage_error(world: World) -> None:
    done = _run(world, "--env", DB)
    assert done.returncode == ExitStatus.USAGE
    assert "no command" in done.stderr


def test_a_command_that_does_not_exist_exits_127(world: World) -> None:
    done = _run(world, "--env", DB, "--", "no-such-command-here")
    assert done.returncode == 127
    assert "no-such-command-here: command not found" in done.stderr
