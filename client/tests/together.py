"""Many threads asking at once while a stand-in upstream holds the first request: how the tests
show single flight."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol


class Held(Protocol):
    """A stand-in upstream that sets `arrived` when a request comes and answers it only once
    `gate` is set."""

    gate: threading.Event
    arrived: threading.Event


def ask_together(n: int, ask: Callable[[], Any], upstream: Held) -> list[Any]:
    """`n` threads call `ask` at once while `upstream` holds the first request; what each got
    (a value or an exception)."""
    upstream.gate.clear()
    upstream.arrived.clear()
    start = threading.Barrier(n)

    def one(_: int) -> Any:
        start.wait()
        try:
            return ask()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        results = pool.map(one, range(n))
        assert upstream.arrived.wait(5)
        time.sleep(0.3)  # every thread is asking by now, the first one's request held
        upstream.gate.set()
        return list(results)
