"""Picks the idempotency store's backend from `VEND_IDEMPOTENCY_URL` (contract section 10).
Apart from `store`, which the backends import, so that nothing in the package imports in a
circle."""

from __future__ import annotations

from shared.idempotency.store import IdempotencyStore


def open_store(url: str, *, password: str | None = None) -> IdempotencyStore:
    """`memory://`: the process-wide memory store (the same object on every call).
    `redis://[[user]:password@]host[:port][/db]` or `rediss://...` (TLS): a new Redis store with
    its own connection pool; it connects on first use. `password`: Redis's, when the URL has
    none (shared.store_password). Anything else: ValueError."""
    if url == "memory://":
        from shared.idempotency.memory import process_memory_store  # noqa: PLC0415

        return process_memory_store()
    if url.startswith(("redis://", "rediss://")):
        # imported on use: a service on memory:// does not load redis-py at cold start
        from shared.idempotency.redis_store import RedisStore  # noqa: PLC0415

        return RedisStore(url, password=password)
    scheme, sep, _ = url.partition("://")
    shown = f"scheme {scheme!r}" if sep and scheme.isascii() and scheme.isalnum() else "no scheme"
    raise ValueError(
        "idempotency store URL must be memory:// or redis://host:port/db "
        f"(rediss:// for TLS); got {shown}"
    )
