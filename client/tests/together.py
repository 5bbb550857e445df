"""Many threads asking at once while a stand-in upstream holds the first request: how the tests
show single flight."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from threads import in_call, wait_until


class Held(Protocol):
    """A stand-in upstream that sets `arrived` when a request comes and answers it only once
    `gate` is set."""

    gate: threading.Event
    arrived: threading.Event


def ask_together(n: int, ask: Callable[[], Any], upstream: Held) -> list[Any]:
    """`n` threads call `ask` at once while `upstream` holds the first request; what each got
    (a value or an exception). The upstream answers once every other thread waits for the
    first one's answer (the caches' askers share one `Future`): a cache that asked again for
    each would never get there, and fails here."""
    upstream.gate.clear()
    upstream.arrived.clear()
    start = threading.Barrier(n)
    askers: list[int] = []

    def one(_: int) -> Any:
        askers.append(threading.get_ident())
        start.wait()
        try:
            return ask()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(n) as pool:
        results = pool.map(one, range(n))
        try:
            assert upstream.arrived.wait(5)
            wait_until(
                lambda: (
                    len(askers) == n and sum(in_call(i, Future.result) for i in askers) == n - 1
                ),
                f"{n - 1} of {n} askers waiting for the first one's answer",
            )
        finally:
            upstream.gate.set()
        return list(results)
