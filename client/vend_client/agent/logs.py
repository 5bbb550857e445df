"""The agent's log: one JSON object per line on stderr, for every logger of the process (the
agent's request lines, the cache's warnings, waitress's own), so that no line is plain text and
a log shipper reads them all the same way.

What goes in is chosen where it is logged: never a secret, a token or the agent's token. A
record's exception is reduced to its type and where it was raised: an exception's message may
quote what it was given."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
from types import TracebackType
from typing import Any

__all__ = ["JsonLines", "log_json_to_stderr"]


# An agent line's `event` -> its kind, as the service names its own (`log`).
_KINDS = {"request": "access", "listening": "start", "stopped": "stop", "crash": "crash"}


def _kind(record: logging.LogRecord, fields: object) -> str:
    if record.name.startswith("vend_client"):
        event = fields.get("event") if isinstance(fields, dict) else None
        return _KINDS.get(str(event), "agent")
    if record.name.split(".")[0] == "waitress":
        return "server"
    return "library"


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, "fields", None)
        line: dict[str, Any] = {
            "log": _kind(record, fields),
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        if isinstance(fields, dict):
            line.update(fields)
        else:
            line["message"] = record.getMessage()
        if record.exc_info and record.exc_info[0] is not None:
            line["error"] = record.exc_info[0].__name__
            frames = traceback.extract_tb(record.exc_info[2])
            if frames:
                line["at"] = f"{frames[-1].filename}:{frames[-1].lineno}"
        return json.dumps(line, separators=(",", ":"), default=str)


def log_json_to_stderr(level: int) -> None:
    """Every record of the process, from `level` up, as a JSON line on stderr; nothing else."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # What nothing caught is a line like the others, with its type and place (see above).
    sys.excepthook = _uncaught
    threading.excepthook = _uncaught_in_thread
    # The credentials library logs each provider it tries, with tracebacks, through handlers of
    # its own: the agent says what failed in its answers instead.
    logging.getLogger("credentials").disabled = True


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


_crash = logging.getLogger("vend_client.agent.crash")


def _uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if not issubclass(kind, KeyboardInterrupt):
        _crash.critical(
            "uncaught", exc_info=(kind, value, tb), extra={"fields": {"event": "crash"}}
        )


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is not None and not issubclass(args.exc_type, SystemExit):
        _crash.critical(
            "uncaught",
            exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
            extra={"fields": {"event": "crash"}},
        )
