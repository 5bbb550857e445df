"""Where another thread is: what the tests wait for, instead of sleeping and hoping it got there.

A thread's place is read from its stack (`sys._current_frames`, documented in `sys`): it is in a
function when that function's code is on its stack. Waits poll until a condition holds, and fail
the test if it does not within the bound.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from types import CodeType

POLL_S = 0.005


def in_call(ident: int | None, function: Callable[..., object]) -> bool:
    """Whether the thread `ident` is inside `function` (a plain Python function or method)."""
    code: CodeType = function.__code__  # type: ignore[attr-defined]
    frame = sys._current_frames().get(ident) if ident is not None else None
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return False


def wait_until(condition: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout_s} s: {what}"
        time.sleep(POLL_S)


def thread_named(name: str) -> threading.Thread | None:
    """The last started of the running threads called `name`."""
    named = [t for t in threading.enumerate() if t.name == name]
    return named[-1] if named else None
