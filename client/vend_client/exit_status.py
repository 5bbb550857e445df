"""The exit statuses of `vend` and `vend-client`, one table for both (README, "The command
line"), and how an expected failure or a bug is told: one line on stderr."""

from __future__ import annotations

import sys
from enum import IntEnum


class ExitStatus(IntEnum):
    """The exit statuses of `vend` and `vend-client` (README, "The command line")."""

    OK = 0
    UNEXPECTED = 1  # a bug: one line, the traceback with -v; `vend doctor`: a check failed
    USAGE = 2  # bad arguments (argparse's own), or a seed, policy or VEND_* that does not parse
    DENIED = 3  # 403; KMS (RAM) refused the data key; `vend policy check`: deny
    NO_CREDENTIALS = 4  # no Alibaba Cloud credentials anywhere the default chain looks
    UNREACHABLE = 5  # the service, STS or KMS: no connection, or no answer within --timeout
    AUTH_REFUSED = 6  # 401; STS or KMS refused the credentials themselves
    NOT_FOUND = 7  # 404; KMS does not know the envelope's key
    UPSTREAM = 8  # 429, 5xx (the service or its STS, EIAM, KMS failed): try again later
    FILE = 9  # a file cannot be read, or --output exists (without --force) or cannot be written
    PORT_IN_USE = 10  # `vend local`, `serve`, `emulator`: cannot listen on the port
    REJECTED = 11  # any other 4xx: invalid parameter, quota, idempotency key in use or reused
    ENVELOPE = 12  # not an envelope, not for this secret or caller, or altered
    INTERRUPTED = 130  # Ctrl-C


EXIT_MEANINGS = {
    ExitStatus.OK: "success",
    ExitStatus.UNEXPECTED: "unexpected error (a bug; -v for the traceback); doctor: a check failed",
    ExitStatus.USAGE: "bad arguments, or a seed, policy or VEND_* setting that does not parse",
    ExitStatus.DENIED: "denied: 403, KMS refused the data key, `policy check` says deny",
    ExitStatus.NO_CREDENTIALS: "no Alibaba Cloud credentials found",
    ExitStatus.UNREACHABLE: "the service, STS or KMS unreachable, or no answer in --timeout",
    ExitStatus.AUTH_REFUSED: "authentication refused: 401, or STS/KMS refused the credentials",
    ExitStatus.NOT_FOUND: "not found: 404, or KMS does not know the envelope's key",
    ExitStatus.UPSTREAM: "the service or its upstream failed (429, 5xx): try again later",
    ExitStatus.FILE: "a file cannot be read, or --output exists (no --force) or cannot be written",
    ExitStatus.PORT_IN_USE: "cannot listen on the port (in use, or not allowed)",
    ExitStatus.REJECTED: "the service refused the request (another 4xx)",
    ExitStatus.ENVELOPE: "the envelope is not one, not for this secret or caller, or altered",
    ExitStatus.INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_table() -> str:
    """The table, for `--help`'s epilog."""
    rows = "\n".join(f"  {int(s):>3}  {EXIT_MEANINGS[s]}" for s in ExitStatus)
    return f"exit statuses:\n{rows}"


class Failure(Exception):
    """An expected failure: one line on stderr (after "vend: ") and its exit status."""

    def __init__(self, status: ExitStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def fail(failure: Failure) -> int:
    print(f"vend: {failure}", file=sys.stderr)
    return int(failure.status)


def unexpected(exc: BaseException, verbose: bool) -> int:
    """A bug: one line (the traceback too with -v), exit 1."""
    if verbose:
        import traceback  # noqa: PLC0415

        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    detail = " ".join(str(exc).split())[:200]
    hint = "" if verbose else "; run with -v for the traceback"
    print(f"vend: unexpected error (a bug): {type(exc).__name__}: {detail}{hint}", file=sys.stderr)
    return int(ExitStatus.UNEXPECTED)
