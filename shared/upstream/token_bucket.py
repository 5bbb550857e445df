"""A token bucket: `rate_per_s` tokens a second, at most `burst` in hand. Thread-safe."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    def __init__(
        self, rate_per_s: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a token bucket needs a positive rate and a burst of at least 1")
        self._rate = rate_per_s
        self._burst = float(burst)
        self._clock = clock
        self._tokens = float(burst)  # full at start: a new instance may take its burst at once
        self._stamp = clock()
        self._lock = threading.Lock()

    def take(self) -> float:
        """0.0 when a token was taken; else how many seconds until one will be in hand (and
        none is taken)."""
        with self._lock:
            now = self._clock()
            elapsed = max(0.0, now - self._stamp)
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            self._stamp = now
            if self._tokens >= 1.0:
                self._tokens -= 1.0
                return 0.0
            return (1.0 - self._tokens) / self._rate
