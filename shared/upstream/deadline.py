"""One deadline per request, so every upstream wait (and every retry) fits inside it."""

from __future__ import annotations

import time
from collections.abc import Callable


class Deadline:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.seconds = seconds  # the whole of it, as it was given
        self._end = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self._end - self._clock())

    def expired(self) -> bool:
        return self.remaining() <= 0.0

    def remaining_ms(self) -> int:
        return int(self.remaining() * 1000)

    @property
    def end_epoch_s(self) -> float:
        """The deadline on the wall clock, for records that other processes read."""
        return time.time() + self.remaining()
