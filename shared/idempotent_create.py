"""Idempotent create (contract section 8): the same key and request give the same secret, and a
retry never makes a second one, even after an attempt died halfway.

An attempt puts an in-progress record (lapsing at its deadline), lists the application's secrets
and writes their IDs into the record, creates, then records the new SecretId before sealing.
A retry that finds the SecretId re-obtains that secret and seals it afresh. One that finds a
lapsed in-progress record takes it over and lists the secrets again: a secret that was not there
before is the crashed attempt's, and is adopted rather than created twice."""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
import time
from dataclasses import dataclass
from enum import Enum

from shared.errors import UpstreamFailure, VendError
from shared.idempotency import IdempotencyRecord, IdempotencyStore, StoreUnavailable
from shared.models import CreateRequest

log = logging.getLogger("vend")


class Outcome(Enum):
    NEW = "new"  # no record: this attempt owns a fresh one
    DONE = "done"  # a secret was created under this key: obtain it again
    BUSY = "busy"  # another attempt is in flight
    REUSED = "reused"  # the key was used for another request
    TAKE_OVER = "take_over"  # an attempt died: recover its work


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


def reused() -> VendError:
    return VendError(
        422, "IdempotencyKeyReused", "this Idempotency-Key was used for another request"
    )


def in_progress() -> VendError:
    return VendError(
        409, "IdempotencyInProgress", "a request with this Idempotency-Key is still being served"
    )


def store_down(exc: StoreUnavailable) -> VendError:
    return UpstreamFailure(
        502,
        "UpstreamError",
        "the idempotency store is unavailable",
        service="store",
        upstream_code=exc.code,
        attempts=exc.attempts,
    )


@dataclass
class Claim:
    """This attempt's hold on a key. `hold_ms`: how long the mark holds after each create is
    sent, since EIAM may still be making the secret after the attempt stopped waiting."""

    store: IdempotencyStore
    key: str
    record: IdempotencyRecord
    hold_ms: int = 0

    def _replace(self, record: IdempotencyRecord) -> bool:
        try:
            ok = self.store.replace_if_token(self.key, self.record.token, record)
        except StoreUnavailable as exc:
            raise store_down(exc) from None
        if ok:
            self.record = record
        return ok

    @property
    def before(self) -> tuple[str, ...] | None:
        return self.record.before_secret_ids

    @property
    def created(self) -> bool:
        return self.record.status == "created"

    def note_before(self, secret_ids: tuple[str, ...]) -> None:
        """Records the secrets that existed before this attempt sends a create, and holds the
        mark for `hold_ms` from now: a create sent late in the attempt is covered as long as
        one sent early (a retry that took over before it landed would not see it listed)."""
        lapse_at_ms = max(self.record.lapse_at_ms, int(time.time() * 1000) + self.hold_ms)
        update = {"before_secret_ids": secret_ids, "lapse_at_ms": lapse_at_ms}
        if not self._replace(self.record.model_copy(update=update)):
            raise in_progress()  # our mark lapsed and another attempt took the key over

    def note_created(self, secret_id: str) -> None:
        """Best effort: the secret exists whatever the store says, and the caller gets it. If
        this write fails, the record still knows the secrets from before, so a retry finds
        this one by listing."""
        record = self.record.model_copy(
            update={"status": "created", "secret_id": secret_id, "before_secret_ids": None}
        )
        try:
            replaced = self._replace(record)
        except VendError:
            log.warning("idempotency: could not record the created secret (key %s)", self.key)
            return
        if not replaced:
            # Too slow: another attempt took over; it will find this secret by listing.
            log.warning("idempotency: record of a created secret was taken over (key %s)", self.key)

    def release(self) -> None:
        """This attempt created nothing: let a retry start at once rather than wait for the
        lapse. A record that knows the secrets from before some attempt's create is kept (lapsed
        now), because that attempt may have created one (a lost answer): the retry must still
        be able to tell it apart. Only a record that knows nothing is deleted, and a record of
        a created secret is never touched."""
        if self.created:
            return
        try:
            if self.record.before_secret_ids is None:
                self.store.delete_if_token(self.key, self.record.token)
            else:
                self._replace(self.record.model_copy(update={"lapse_at_ms": 0}))
        except (StoreUnavailable, VendError):
            log.warning("idempotency: could not release key %s; it lapses by itself", self.key)


def claim(
    store: IdempotencyStore, key: str, request_hash_: str, hold_ms: int
) -> tuple[Claim | None, str | None]:
    """Takes the key for this attempt, for `hold_ms` from now and again from each create sent
    (Claim.note_before). Returns (claim, None) to go on creating, or (None, secret_id) when a
    secret was already created under the key; raises 409 or 422 otherwise."""
    now = int(time.time() * 1000)
    lapse_at_ms = now + hold_ms
    mine = IdempotencyRecord(
        status="in_progress",
        request_hash=request_hash_,
        token=secrets.token_hex(16),
        lapse_at_ms=lapse_at_ms,
        created_at_ms=now,
    )
    try:
        existing = store.put_if_absent(key, mine)
    except StoreUnavailable as exc:
        raise store_down(exc) from None
    outcome = decide(existing, request_hash_, now)
    if outcome is Outcome.NEW:
        return Claim(store, key, mine, hold_ms), None
    assert existing is not None
    if outcome is Outcome.REUSED:
        raise reused()
    if outcome is Outcome.DONE:
        return None, existing.secret_id
    if outcome is Outcome.BUSY:
        raise in_progress()
    taken = existing.model_copy(update={"token": mine.token, "lapse_at_ms": lapse_at_ms})
    try:
        won = store.replace_if_token(key, existing.token, taken)
    except StoreUnavailable as exc:
        raise store_down(exc) from None
    if not won:
        raise in_progress()  # another retry took it over first
    return Claim(store, key, taken, hold_ms), None
