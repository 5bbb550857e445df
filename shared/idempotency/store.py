"""The idempotency store: a few atomic primitives over records, shared by every instance.

The decision logic (in progress, lapsed, reused key, recovery) lives in the pipeline; a store only
guarantees that each primitive is atomic, and that a record is absent once its lifetime is over.
The backends (`memory`, `redis_store`) build on this module; `backends.open_store` picks one."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from shared.idempotency.record import IdempotencyRecord

DEFAULT_TTL_S = 24 * 60 * 60  # records expire after 24 hours (contract section 8)


class StoreUnavailable(Exception):
    """The store cannot be reached or did not answer in time. The message names the store by
    scheme, host, port and database only: never a password. `code` names the failure (the
    client's exception, `ConnectionError` or `TimeoutError`); `attempts` is how many times the
    command was sent, as the backend's retry policy makes it."""

    def __init__(self, message: str, *, code: str | None = None, attempts: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.attempts = attempts


# mutmut (make mutate) would add its mutants of a stub's defaults to the class, and a
# runtime_checkable Protocol would then ask every store for them: isinstance fails. Never mutated.
@runtime_checkable
class Pingable(Protocol):  # pragma: no mutate block
    """A store that can say, cheaply and within `timeout_s`, whether it answers (`/v1/ready`)."""

    def ping(self, timeout_s: float) -> bool:
        """True if the store answered; False (never an exception) if it did not in time."""
        ...


def check_ttl(ttl_s: int) -> None:
    """Both backends refuse a lifetime Redis's SET EX would refuse."""
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s < 1:
        raise ValueError(f"ttl_s must be a whole number of seconds, at least 1; got {ttl_s!r}")


@runtime_checkable
class Forgetful(Protocol):  # pragma: no mutate block
    """A store that can say what could make it forget an acknowledged record (`/v1/ready`,
    `vend doctor`)."""

    def risks(self, timeout_s: float, *, persistence: bool = True) -> list[str]:
        """Short phrases, each starting with its kind (`eviction:`, `persistence:` unless
        `persistence` is False, `lost:`, `unreadable:`); [] when none is seen. Never raises,
        never shows a password."""
        ...


@runtime_checkable
class IdempotencyStore(Protocol):  # pragma: no mutate block
    """Keys are opaque strings the caller builds. `ttl_s` is the record's lifetime in whole
    seconds (at least 1), counted from the write."""

    def put_if_absent(
        self, key: str, record: IdempotencyRecord, ttl_s: int = DEFAULT_TTL_S
    ) -> IdempotencyRecord | None:
        """Atomically: store `record` if no record exists and return None; else return the
        existing record, unchanged (its lifetime too). Storing a record equal to the stored
        one (same token) counts as stored, so a retried put is safe."""
        ...

    def get(self, key: str) -> IdempotencyRecord | None:
        """The record, or None if there is none or it expired."""
        ...

    def replace_if_token(
        self, key: str, expected_token: str, record: IdempotencyRecord, ttl_s: int = DEFAULT_TTL_S
    ) -> bool:
        """Atomically: replace the record (and restart its lifetime at `ttl_s`) only if the
        stored record's token is `expected_token`; True if replaced. Absent: False."""
        ...

    def delete_if_token(self, key: str, expected_token: str) -> bool:
        """Atomically: delete the record only if its token is `expected_token`; True if
        deleted. Absent: False."""
        ...

    def remember(self, key: str, value: str, ttl_s: int) -> None:
        """A short-lived note beside the records (its own key space): the principal a RAM
        proof proved, so that FC's retry of the same invocation need not spend it again."""
        ...

    def recall(self, key: str) -> str | None:
        """The note under `key`, or None if there is none or it expired."""
        ...
