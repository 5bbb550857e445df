"""The memory store: one process only (`memory://`, the local default). A dict under a lock, so
every primitive is atomic across threads; a record is absent once its lifetime is over."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from shared.idempotency.record import IdempotencyRecord
from shared.idempotency.store import DEFAULT_TTL_S, StoreUnavailable, check_ttl

_SWEEP_EVERY = 1024  # writes between sweeps of expired records, so the dict stays bounded
MAX_RECORDS = 100_000


class MemoryStore:
    """`clock` returns seconds (monotonic by default); tests inject their own. At most
    `max_records` live records: a new one beyond is refused as Redis refuses a write under
    `noeviction` (StoreUnavailable), rather than any record being dropped, since a dropped
    record of a create in progress or of unknown outcome could let a retry make a second
    secret."""

    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_records: int = MAX_RECORDS
    ) -> None:
        self._clock = clock
        self._max = max_records
        self._lock = threading.Lock()
        self._records: dict[str, tuple[IdempotencyRecord, float]] = {}  # key: (record, expires)
        self._writes = 0
        self._notes: dict[str, tuple[str, float]] = {}

    def _live(self, key: str, now: float) -> IdempotencyRecord | None:
        entry = self._records.get(key)
        if entry is None:
            return None
        record, expires = entry
        if now >= expires:
            del self._records[key]
            return None
        return record

    def _write(self, key: str, record: IdempotencyRecord, ttl_s: int, now: float) -> None:
        if key not in self._records and len(self._records) >= self._max:
            self._sweep(now)
            if len(self._records) >= self._max:
                raise StoreUnavailable(
                    f"idempotency store memory:// is full ({self._max} records)", code="StoreFull"
                )
        self._records[key] = (record, now + ttl_s)
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep(now)

    def _sweep(self, now: float) -> None:
        for k in [k for k, (_, expires) in self._records.items() if now >= expires]:
            del self._records[k]

    def clear(self) -> None:
        """Forgets every record and note, as a Redis restarted empty would."""
        with self._lock:
            self._records.clear()
            self._notes.clear()

    def __len__(self) -> int:
        """How many live records it holds."""
        with self._lock:
            now = self._clock()
            return sum(1 for _, expires in self._records.values() if now < expires)

    def put_if_absent(
        self, key: str, record: IdempotencyRecord, ttl_s: int = DEFAULT_TTL_S
    ) -> IdempotencyRecord | None:
        check_ttl(ttl_s)
        with self._lock:
            now = self._clock()
            existing = self._live(key, now)
            if existing is not None and existing != record:
                return existing
            if existing is None:
                self._write(key, record, ttl_s, now)
            return None

    def get(self, key: str) -> IdempotencyRecord | None:
        with self._lock:
            return self._live(key, self._clock())

    def replace_if_token(
        self, key: str, expected_token: str, record: IdempotencyRecord, ttl_s: int = DEFAULT_TTL_S
    ) -> bool:
        check_ttl(ttl_s)
        with self._lock:
            now = self._clock()
            existing = self._live(key, now)
            if existing is None or (existing.token != expected_token and existing != record):
                return False
            self._write(key, record, ttl_s, now)
            return True

    def delete_if_token(self, key: str, expected_token: str) -> bool:
        with self._lock:
            existing = self._live(key, self._clock())
            if existing is None or existing.token != expected_token:
                return False
            del self._records[key]
            return True

    def ping(self, timeout_s: float) -> bool:
        """The memory store always answers."""
        return True

    def remember(self, key: str, value: str, ttl_s: int) -> None:
        check_ttl(ttl_s)
        with self._lock:
            now = self._clock()
            if len(self._notes) > 10_000:
                self._notes = {k: v for k, v in self._notes.items() if v[1] > now}
            self._notes[key] = (value, now + ttl_s)

    def recall(self, key: str) -> str | None:
        with self._lock:
            entry = self._notes.get(key)
            return entry[0] if entry is not None and entry[1] > self._clock() else None


_PROCESS_STORE = MemoryStore()


def process_memory_store() -> MemoryStore:
    """The one memory store of this process: what `memory://` opens, every time."""
    return _PROCESS_STORE
