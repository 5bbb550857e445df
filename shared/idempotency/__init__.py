"""Idempotent create (contract section 8): records and the stores that keep them."""

from shared.idempotency.backends import open_store
from shared.idempotency.record import IdempotencyRecord
from shared.idempotency.store import DEFAULT_TTL_S, IdempotencyStore, StoreUnavailable

__all__ = [
    "DEFAULT_TTL_S",
    "IdempotencyRecord",
    "IdempotencyStore",
    "StoreUnavailable",
    "open_store",
]
