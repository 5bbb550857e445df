"""Injected latency and errors, per action, changeable at run time."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass

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
