"""`vend-client run --env NAME=INSTANCE/APPLICATION/SECRET_ID ... -- COMMAND [ARGS]`: a command
with client secrets in its environment, as Vault Agent renders them into a child process. A
SECRET_ID of `current` is the application's current secret (contract section 14).

Every secret is got before COMMAND starts (one `CachingClient`), and if one cannot be, COMMAND
does not run: a program half-configured is worse off than one not started. Nothing is written to
disk. The exit status is COMMAND's, and a COMMAND killed by signal N gives 128 + N, as a shell
does; SIGTERM and SIGINT sent to `run` are passed on to COMMAND (Ctrl-C in a terminal reaches
both already: COMMAND may see it twice, as under tini)."""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from .exit_status import ExitStatus, Failure
from .failures import explain
from .wire.arns import ID_PATTERN

__all__ = ["CURRENT", "Wanted", "parse_env", "run_command"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ID = re.compile(ID_PATTERN)
_FORWARDED = (signal.SIGTERM, signal.SIGINT)
# The SECRET_ID that names the application's current secret, whatever its ID.
CURRENT = "current"


@dataclass(frozen=True)
class Wanted:
    """One --env: the variable and the secret it gets (`secret_id` None: the current one)."""

    name: str
    instance_id: str
    application_id: str
    secret_id: str | None


def parse_env(specs: Sequence[str]) -> list[Wanted]:
    """Each `NAME=INSTANCE/APPLICATION/SECRET_ID`, checked before anything is asked."""
    wanted: list[Wanted] = []
    names: set[str] = set()
    for spec in specs:
        name, eq, path = spec.partition("=")
        if not eq or not _NAME.fullmatch(name):
            raise Failure(
                ExitStatus.USAGE,
                f"--env {_shown(spec)}: NAME=INSTANCE/APPLICATION/SECRET_ID, NAME a shell "
                "variable name (letters, digits, _; not a digit first)",
            )
        ids = path.split("/")
        if len(ids) != 3 or not all(_ID.fullmatch(i) for i in ids):
            raise Failure(
                ExitStatus.USAGE,
                f"--env {name}=...: INSTANCE/APPLICATION/SECRET_ID, each 1 to 64 of [A-Za-z0-9_-]",
            )
        for taken in (name, f"{name}_CLIENT_ID"):
            if taken in names:
                raise Failure(ExitStatus.USAGE, f"--env: {taken} is set twice")
            names.add(taken)
        instance_id, application_id, secret_id = ids
        wanted.append(
            Wanted(name, instance_id, application_id, None if secret_id == CURRENT else secret_id)
        )
    return wanted


def run_command(args: argparse.Namespace) -> int:
    """Gets every secret, then runs the command; the service options are resolved already."""
    from .cli import caching_client  # noqa: PLC0415 - cli imports this module lazily

    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise Failure(ExitStatus.USAGE, "no command: vend-client run --env ... -- COMMAND")
    wanted = parse_env(args.env)
    env = dict(os.environ)
    with caching_client(args) as secrets:
        for want in wanted:
            try:
                if want.secret_id is None:
                    vended = secrets.get_current(want.instance_id, want.application_id)
                else:
                    vended = secrets.get_secret(
                        want.instance_id, want.application_id, want.secret_id
                    )
            except Exception as exc:
                known = explain(exc, args)
                if known is None:
                    raise
                raise Failure(known.status, f"{want.name}: {known}") from None
            env[want.name] = vended.client_secret
            if vended.client_id is not None:
                env[f"{want.name}_CLIENT_ID"] = vended.client_id
    return _run(command, env)


def _run(command: list[str], env: dict[str, str]) -> int:
    children: list[subprocess.Popen[bytes]] = []
    pending: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        if children:
            children[0].send_signal(signum)
        else:  # arrived before the child was there: passed on as soon as it is
            pending.append(signum)

    # Installed before the child starts, so that no signal in between kills `run` alone.
    previous = {s: signal.signal(s, forward) for s in _FORWARDED}
    try:
        try:
            children.append(subprocess.Popen(command, env=env))
        except FileNotFoundError:
            print(f"vend: {_shown(command[0])}: command not found", file=sys.stderr)
            return 127
        except PermissionError:
            print(f"vend: {_shown(command[0])}: permission denied", file=sys.stderr)
            return 126
        for signum in pending:
            children[0].send_signal(signum)
        status = children[0].wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return 128 - status if status < 0 else status


def _shown(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= 80 else flat[:79] + "…"
