"""A clock the tests can move, so expiry is tested without waiting.

Two ways to move it. `advanced_s` (the admin API's `PUT /_emulator/clock {"advance_s": N}`) is
time passing for everyone: secrets and sessions age, and a caller's signature, dated by its own
clock, is taken as dated that much later too (its clock moved with the world's, as a real
signer's would). `offset_s` is this clock alone being off the callers': their signatures look
that far off (how the tests provoke InvalidTimeStamp.Expired)."""

from __future__ import annotations

import time
from datetime import datetime, timezone


class Clock:
    def __init__(self) -> None:
        self.offset_s = 0.0
        self.advanced_s = 0.0

    def now(self) -> float:
        return time.time() + self.offset_s + self.advanced_s

    def now_ms(self) -> int:
        return int(self.now() * 1000)

    def callers(self, stamped: float) -> float:
        """A time a caller stamped by its own clock (x-acs-date), on this clock's time line."""
        return stamped + self.advanced_s

    def iso(self, at: float | None = None) -> str:
        moment = self.now() if at is None else at
        return datetime.fromtimestamp(moment, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
