"""The service's log: every line one JSON object, written by one formatter (`JsonLines`).

A line's `log` names its kind: `audit`, `upstream` and `rotation` (composed by shared.audit,
fields fixed there), `ready` (readiness checks that fail), `start` (a server listening, or not
starting), `jwks` (an issuer's key set not fetched), `emulator`, `fc` (the local FC invoke
API), `service` (the core's other lines), `server` (waitress), `library` (any other library's),
`crash` (an exception nothing caught). A logger `vend.{kind}` writes `{kind}` lines. Beside
`log`: `ts`, `level`, `logger`, `message`, and, while a request is handled, its `request_id`
and, when the request carried a valid W3C `traceparent`, its `trace_id`. A record with an
exception has `error` (its type) and `traceback`.

The request's ids live in a context variable (`request`), set where a request enters: the HTTP
API and the events and rotation handlers. A thread started for a request sees them only when
it runs in a copy of the request's context (`contextvars.copy_context().run`)."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import threading
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, TextIO

from shared.wire.traceparent import trace_id_of

__all__ = [
    "Ids",
    "JsonLines",
    "current",
    "install",
    "line",
    "now",
    "request",
    "trace_id_of",
]

# Logger name -> the kind of its lines; a vend.* logger not here is named by its last part.
_KINDS = {"vend": "service", "waitress": "server"}
_OURS = "_vend_json"


@dataclass(frozen=True)
class Ids:
    request_id: str | None = None
    trace_id: str | None = None


_NONE = Ids()  # frozen: one value all contexts may share
_ids: contextvars.ContextVar[Ids] = contextvars.ContextVar("vend_request_ids", default=_NONE)


def current() -> Ids:
    """The ids of the request being handled in this context (empty outside one)."""
    return _ids.get()


@contextmanager
def request(request_id: str, trace_id: str | None = None) -> Iterator[Ids]:
    """Every line logged inside names this request (and its trace)."""
    ids = Ids(request_id, trace_id)
    token = _ids.set(ids)
    try:
        yield ids
    finally:
        _ids.reset(token)


def now() -> str:
    return _iso(datetime.now(timezone.utc))


def line(data: dict[str, Any]) -> str:
    """One JSON line, pure ASCII (see shared.audit): nothing in a value can split it."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=True, default=str)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def kind_of(logger_name: str) -> str:
    if logger_name in _KINDS:
        return _KINDS[logger_name]
    if logger_name.startswith("vend."):
        return logger_name.split(".")[1]
    if logger_name.startswith("waitress."):
        return "server"
    return "library"


class JsonLines(logging.Formatter):
    """A record as one JSON line. A record whose message is already one (`json_line`, set by
    shared.audit) is written as it is."""

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "json_line", False):
            return record.getMessage()
        data: dict[str, Any] = {
            "log": getattr(record, "log", None) or kind_of(record.name),
            "ts": _iso(datetime.fromtimestamp(record.created, timezone.utc)),
            "level": record.levelname,
            "logger": record.name,
        }
        ids = current()
        if ids.request_id is not None:
            data["request_id"] = ids.request_id
        if ids.trace_id is not None:
            data["trace_id"] = ids.trace_id
        data["message"] = record.getMessage()
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            data.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            data["error"] = record.exc_info[0].__name__
            data["traceback"] = "".join(traceback.format_exception(*record.exc_info))
        return line(data)


def is_installed() -> bool:
    return any(getattr(h, _OURS, False) for h in logging.getLogger().handlers)


def install(stream: TextIO | None = None, level: int = logging.INFO) -> None:
    """This process's log is ours: the root logger's only handler writes JSON lines to `stream`
    (stdout by default), so every logger's lines, libraries' included, are JSON, and an
    exception nothing catches, in any thread, is one `crash` line with its traceback. For a
    process the service owns (FC's instance, `vend serve`, `vend local`, the emulator)."""
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonLines())
    setattr(handler, _OURS, True)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # The audit's own handlers (shared.audit.configure) are not needed now: lines propagate.
    for name in ("vend.audit", "vend.upstream", "vend.rotation"):
        target = logging.getLogger(name)
        for old in [h for h in target.handlers if getattr(h, _OURS, False)]:
            target.removeHandler(old)
        target.propagate = True
        # One record per request whatever the process's level: the audit is not verbosity.
        target.setLevel(logging.INFO)
    sys.excepthook = _uncaught
    threading.excepthook = _uncaught_in_thread


def handler_for(stream: TextIO) -> logging.Handler:
    """A JSON-lines handler of ours, for a logger that does not propagate."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    setattr(handler, _OURS, True)
    return handler


def has_ours(target: logging.Logger) -> bool:
    return any(getattr(h, _OURS, False) for h in target.handlers)


_crash = logging.getLogger("vend.crash")


def _uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    if issubclass(kind, KeyboardInterrupt):
        return
    _crash.critical("uncaught %s", kind.__name__, exc_info=(kind, value, tb))


def _uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_value is None or issubclass(args.exc_type, SystemExit):
        return
    thread = args.thread.name if args.thread is not None else "?"
    _crash.critical(
        "uncaught %s in thread %s",
        args.exc_type.__name__,
        thread,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),
    )
