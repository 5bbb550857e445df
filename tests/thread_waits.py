"""Waiting for where other threads are, instead of sleeping and hoping they got there (the
caller package's tests have the same in client/tests/threads.py: they must run without tests/).

A thread is in a function when that function's code is on its stack (`sys._current_frames`,
documented in `sys`)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

POLL_S = 0.005


def in_call(thread: threading.Thread, function: Callable[..., Any]) -> bool:
    """Whether `thread` is inside `function` (a plain Python function or method)."""
    code = function.__code__
    frame = sys._current_frames().get(thread.ident) if thread.ident is not None else None
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def waiting_on_events(threads: Iterable[threading.Thread]) -> int:
    """How many of `threads` are waiting on a threading.Event."""
    return sum(in_call(thread, threading.Event.wait) for thread in threads)


def event_wait_timeout(thread: threading.Thread) -> float | None:
    """How long `thread` waits on the threading.Event it is waiting on: the `timeout` it passed
    to `Event.wait` (None: until the event is set). Fails if it waits on none."""
    code = threading.Event.wait.__code__
    frame = sys._current_frames().get(thread.ident) if thread.ident is not None else None
    while frame is not None and frame.f_code is not code:
        frame = frame.f_back
    assert frame is not None, f"{thread.name} waits on no event"
    timeout: float | None = frame.f_locals["timeout"]
    return timeout


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(POLL_S)
