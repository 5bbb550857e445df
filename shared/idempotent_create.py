"""Idempotent create (contract section 8): the same key and request give the same secret, and a
retry never makes a second one, even after an attempt died halfway.

An attempt claims its key with an in-progress record (lapsing at its own deadline, so that a
claim whose write timed out and landed late holds the key no longer), then creates under the
application's lease (shared.create_lease), and records the new SecretId under the key before
sealing. A retry that finds the SecretId re-obtains that secret and seals it afresh. What a
create whose answer was lost may have made is the lease's to settle, not the key's: the key
record only says which attempt is at work, or which secret was made."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from shared.create_lease import ApplicationLease, Holder, Prior
from shared.errors import in_progress, reused, store_down
from shared.idempotency import IdempotencyRecord, IdempotencyStore, StoreUnavailable
from shared.models import CreateRequest
from shared.upstream.deadline import Deadline

log = logging.getLogger("vend")


class Outcome(Enum):
    NEW = "new"  # no record: this attempt owns a fresh one
    DONE = "done"  # a secret was created under this key: obtain it again
    BUSY = "busy"  # another attempt is in flight
    REUSED = "reused"  # the key was used for another request
    TAKE_OVER = "take_over"  # an earlier attempt's mark lapsed: this one goes on in its place


def decide(existing: IdempotencyRecord | None, request_hash: str, now_ms: int) -> Outcome:
    """What to do about the record found under a key (pure)."""
    if existing is None:
        return Outcome.NEW
    if existing.request_hash != request_hash:
        return Outcome.REUSED
    if existing.status == "created":
        return Outcome.DONE
    return Outcome.BUSY if existing.lapse_at_ms > now_ms else Outcome.TAKE_OVER


def request_hash(request: CreateRequest) -> str:
    canonical = json.dumps(
        {
            "action": "create",
            "instance_id": request.instance_id,
            "application_id": request.application_id,
            "expiration_time": request.expiration_time,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def store_key(principal: str, key: str) -> str:
    """Scoped to the principal: two callers never share a record, whatever keys they pick."""
    return f"{hashlib.sha256(principal.encode()).hexdigest()[:32]}:{key}"


def _in_progress_ttl_s(lapse_at_ms: int, now_ms: int) -> int:
    """An in-progress record means nothing once lapsed: it need not outlive its lapse by much,
    so records of attempts that died do not pile up for a day."""
    return max(1, (lapse_at_ms - now_ms + 999) // 1000 + 60)


@dataclass
class Claim:
    """This attempt's hold on its key."""

    store: IdempotencyStore
    key: str
    record: IdempotencyRecord

    @property
    def holder(self) -> Holder:
        return Holder(self.key, self.record.request_hash)

    def current(self) -> IdempotencyRecord | None:
        """The key's record as the store has it now: another attempt may have settled this
        key's lost create (a secret recorded for it) while this one waited for the lease."""
        try:
            return self.store.get(self.key)
        except StoreUnavailable as exc:
            raise store_down(exc) from None

    def note_created(self, secret_id: str) -> bool:
        """Records the secret made under this key; False if the store did not take it (the
        secret exists whatever the store says, and the caller gets it; the application's lease,
        kept, lets the next taker record it)."""
        record = self.record.model_copy(update={"status": "created", "secret_id": secret_id})
        try:
            replaced = self.store.replace_if_token(self.key, self.record.token, record)
        except StoreUnavailable:
            log.warning("idempotency: could not record the created secret (key %s)", self.key)
            return False
        if replaced:
            self.record = record
        return replaced

    def release(self) -> None:
        """This attempt did not make a secret, or does not know: the key is free for a retry at
        once (what a lost create may have made is the application lease's to settle). A record
        of a created secret is never touched."""
        if self.record.status == "created":
            return
        try:
            self.store.delete_if_token(self.key, self.record.token)
        except StoreUnavailable:
            log.warning("idempotency: could not release key %s; it lapses by itself", self.key)


def record_for(store: IdempotencyStore, holder: Holder, secret_id: str) -> bool:
    """Records `secret_id` as made under `holder`'s key, by whoever settled its lost create:
    unless the key now serves another request, or already names a secret. A new token, so that
    an attempt of that key still holding the old one can change nothing."""
    assert holder.key is not None
    now = int(time.time() * 1000)
    created = IdempotencyRecord(
        status="created",
        request_hash=holder.request_hash,
        token=secrets.token_hex(16),
        lapse_at_ms=now,
        created_at_ms=now,
        secret_id=secret_id,
    )
    try:
        for _ in range(3):
            existing = store.get(holder.key)
            if existing is None:
                if store.put_if_absent(holder.key, created) is None:
                    return True
                continue
            if existing.request_hash != holder.request_hash:
                return False
            if existing.status == "created":
                return existing.secret_id == secret_id
            if store.replace_if_token(holder.key, existing.token, created):
                return True
    except StoreUnavailable:
        log.warning("idempotency: could not record secret %s for its key", secret_id)
    return False


def claim(
    store: IdempotencyStore,
    key: str,
    request_hash_: str,
    hold_ms: int,
    now_ms: Callable[[], int] | None = None,
) -> tuple[Claim | None, str | None]:
    """Takes the key for this attempt, for `hold_ms` (its deadline) from now. Returns (claim,
    None) to go on creating, or (None, secret_id) when a secret was already created under the
    key; raises 409 or 422 otherwise."""
    now = now_ms() if now_ms is not None else int(time.time() * 1000)
    lapse_at_ms = now + hold_ms
    ttl_s = _in_progress_ttl_s(lapse_at_ms, now)
    mine = IdempotencyRecord(
        status="in_progress",
        request_hash=request_hash_,
        token=secrets.token_hex(16),
        lapse_at_ms=lapse_at_ms,
        created_at_ms=now,
    )
    try:
        existing = store.put_if_absent(key, mine, ttl_s)
    except StoreUnavailable as exc:
        raise store_down(exc) from None
    outcome = decide(existing, request_hash_, now)
    if outcome is Outcome.NEW:
        return Claim(store, key, mine), None
    assert existing is not None
    if outcome is Outcome.REUSED:
        raise reused()
    if outcome is Outcome.DONE:
        return None, existing.secret_id
    if outcome is Outcome.BUSY:
        raise in_progress()
    try:
        won = store.replace_if_token(key, existing.token, mine, ttl_s)
    except StoreUnavailable as exc:
        raise store_down(exc) from None
    if not won:
        raise in_progress()  # another retry took it over first
    return Claim(store, key, mine), None


class Journal:
    """An attempt's journal (create_once.Journal): the application's lease, and the key's
    claim when the create has a key. Each end (recorded, nothing made, unknown) happens once."""

    def __init__(self, lease: ApplicationLease, key: Claim | None) -> None:
        self.lease = lease
        self.key = key
        self._ended = False

    def acquire(self, deadline: Deadline) -> Prior | None:
        return self.lease.acquire(deadline)

    def recorded(self) -> str | None:
        now = self.key.current() if self.key is not None else None
        return now.secret_id if now is not None and now.status == "created" else None

    def settle(self, prior: Prior, made: list[str]) -> None:
        store = self.lease.store
        self.lease.settle(prior, made, lambda holder, sid: record_for(store, holder, sid))

    def note_before(self, secret_ids: tuple[str, ...]) -> None:
        self.lease.note_before(secret_ids)

    def note_created(self, secret_id: str) -> None:
        if self._ended:
            return
        self._ended = True
        if self.key is not None and not self.key.note_created(secret_id):
            # Not recorded under the key: the lease, kept with what was listed before, lets the
            # key's retry (or the next taker) find and record it.
            self.lease.keep()
            return
        self.lease.release(settled=True)

    def nothing_made(self) -> None:
        if self._ended:
            return
        self._ended = True
        self.lease.release()
        if self.key is not None:
            self.key.release()

    def unknown(self) -> None:
        if self._ended:
            return
        self._ended = True
        self.lease.keep()
        if self.key is not None:
            self.key.release()
