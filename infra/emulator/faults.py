"""Injected faults, per action, changeable at run time: latency, error answers (JSON or a
gateway's HTML page), malformed 200s and connections reset with no answer."""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from functions.wsgi_server import status_line

from .errors import ApiError
from .seed import Fault


@dataclass
class _Rule:
    fault: Fault
    remaining: int | None


class Faults:
    def __init__(self, faults: Iterable[Fault] = ()) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self.replace(faults)

    def replace(self, faults: Iterable[Fault]) -> None:
        with self._lock:
            self._rules = [_Rule(f, f.times) for f in faults]

    def current(self) -> list[Fault]:
        with self._lock:
            return [r.fault for r in self._rules]

    def pick(self, action: str) -> Fault | None:
        """The first rule for this action (or "*") that fires, counting down a `times` budget."""
        with self._lock:
            for rule in self._rules:
                if rule.fault.action not in ("*", action) or rule.remaining == 0:
                    continue
                if random.random() >= rule.fault.rate:  # noqa: S311 - not security relevant
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                return rule.fault
        return None


class ConnectionDropped(ConnectionResetError):
    """A `reset` fault, raised to whoever called the WSGI app in process (when there is no
    socket to reset): served by waitress, the client sees its TCP connection reset instead."""


class InjectedAnswer(Exception):
    """What a fault answers in place of the action's JSON: a raw body and its status, or, with
    `reset`, nothing at all. `outcome` is what the call history records."""

    def __init__(
        self,
        outcome: str,
        *,
        status: int = 0,
        content_type: str = "",
        payload: bytes = b"",
        headers: dict[str, str] | None = None,
        reset: bool = False,
    ) -> None:
        super().__init__(outcome)
        self.outcome = outcome
        self.status = status
        self.content_type = content_type
        self.payload = payload
        self.headers = headers or {}
        self.reset = reset


def apply(fault: Fault, request_id: str) -> None:
    """Sleeps the fault's latency, then raises what it answers: an ApiError (a JSON error) or
    an InjectedAnswer (an HTML error page, a malformed 200, a reset). Returns if it only delays."""
    if fault.latency_ms:
        time.sleep(fault.latency_ms / 1000)
    headers = {"x-acs-retry-after": str(fault.retry_after_s)} if fault.retry_after_s else {}
    if fault.reset:
        raise InjectedAnswer("ConnectionReset", reset=True)
    if fault.malformed == "not-json":
        raise InjectedAnswer(
            "MalformedNotJson",
            status=200,
            content_type="text/plain;charset=utf-8",
            payload=b"OK",
        )
    if fault.malformed:
        # JSON, and the request id every answer has, but none of the action's own fields.
        raise InjectedAnswer(
            "MalformedJson",
            status=200,
            content_type="application/json;charset=utf-8",
            payload=json.dumps({"RequestId": request_id}).encode(),
        )
    if fault.status is None:
        return
    if fault.body == "html":
        raise InjectedAnswer(
            f"Html{fault.status}",
            status=fault.status,
            content_type="text/html",
            payload=gateway_page(fault.status).encode(),
            headers=headers,
        )
    raise ApiError(
        fault.status,
        fault.code or "ServiceUnavailable",
        fault.message or "Injected fault.",
        headers=headers,
    )


def gateway_page(status: int) -> str:
    """The error page of a gateway in front of the API (Alibaba Cloud's are Tengine's)."""
    title = status_line(status)
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{title}</h1></center>\r\n<hr><center>Tengine</center>\r\n"
        "</body>\r\n</html>\r\n"
    )


def drop_connection(environ: Mapping[str, Any], timeout_s: float = 5.0) -> bool:
    """Resets the TCP connection the request came on, with no HTTP answer, when waitress serves
    it; False (and nothing done) otherwise.

    waitress hands every request `waitress.client_disconnected`, a method of the channel (the
    connection): through it, the socket is set to linger 0, so that closing it sends a RST, and
    the channel is closed from waitress's own loop thread, which owns it. This waits until it
    is closed, so nothing the app returns afterwards can be sent on it: waitress finds the
    channel closed and logs "Client disconnected while serving".
    """
    probe = environ.get("waitress.client_disconnected")
    channel = getattr(probe, "__self__", None)
    sock = getattr(channel, "socket", None)
    trigger = getattr(getattr(channel, "server", None), "trigger", None)
    if channel is None or not isinstance(sock, socket.socket) or trigger is None:
        return False
    closed = threading.Event()

    def close() -> None:
        try:
            if channel.socket is not None:  # not closed already
                channel.handle_close()
        finally:
            closed.set()

    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        trigger.pull_trigger(close)
    except OSError:
        return True  # the socket or the loop is gone already: so is the connection
    closed.wait(timeout_s)
    return True
