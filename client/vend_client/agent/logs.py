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
import time
import traceback
from typing import Any

__all__ = ["JsonLines", "log_json_to_stderr"]


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, "fields", None)
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
    # The credentials library logs each provider it tries, with tracebacks, through handlers of
    # its own: the agent says what failed in its answers instead.
    logging.getLogger("credentials").disabled = True


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"
