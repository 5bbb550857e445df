"""Creates are serialized per application, across instances (contract section 8).

EIAM's create takes no client token, so a lost answer is resolved by listing the application's
secrets before and after: a new ID is the lost create's. That holds only if nothing else created
a secret on the application in between, so every create this service sends holds the
application's lease, a record in the idempotency store under `app:{instance}/{application}`:

- it is taken before the listing that precedes a create, and given back once the outcome is
  known (made, or refused: nothing is left that anything could adopt);
- before each create is sent it notes the secrets listed just before, and holds for two request
  deadlines from then (EIAM may still be making a secret after the attempt stopped waiting);
- an attempt that ends without knowing the outcome keeps it, with those secrets, until it lapses.

Whoever takes a lapsed lease that still notes secrets from before settles it first: a single new
secret is the holder's, recorded under the holder's idempotency key so that its retry is
answered with it. The holder's own retry may settle it before the lapse when the new secret is
already listed. A key can so adopt only a secret whose create it sent while it held the
application; a secret made outside this service meanwhile makes the listing ambiguous, and
nothing is adopted (README, Reliability)."""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.errors import VendError, reused, store_down, upstream_timeout
from shared.idempotency import IdempotencyRecord, IdempotencyStore, StoreUnavailable
from shared.upstream.deadline import Deadline

log = logging.getLogger("vend")

# How long a wait for a busy application may leave of the request's deadline, at least: enough
# for the listings, the create and the obtain that follow.
MIN_LEFT_S = 1.0
_POLL_S = (0.02, 0.05, 0.1, 0.2)


def lease_key(instance_id: str, application_id: str) -> str:
    """IDs are 1-64 of [A-Za-z0-9_-] (validated first), so this names one application only, and
    never collides with a key record (a hex digest, a colon, the caller's key)."""
    return f"app:{instance_id}/{application_id}"


@dataclass(frozen=True)
class Holder:
    """Who holds an application: an idempotency key's store key (None without a key) and the
    hash of the request it serves."""

    key: str | None
    request_hash: str


@dataclass(frozen=True)
class Prior:
    """What an earlier holder left: the secrets listed before it sent a create whose outcome it
    never learnt. `mine`: that holder was an attempt of this same key and request; `lapsed`: its
    hold is over, so whatever it sent has landed by now or never will."""

    before: tuple[str, ...]
    holder: Holder
    mine: bool
    lapsed: bool


class ApplicationLease:
    """One attempt's hold on one application. `hold_ms`: how long the lease holds after each
    create is sent. `now_ms` and `sleep` are the wall clock and the pause (tests drive them)."""

    def __init__(
        self,
        store: IdempotencyStore,
        key: str,
        holder: Holder,
        hold_ms: int,
        *,
        now_ms: Callable[[], int],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.store = store
        self.key = key
        self.holder = holder
        self.hold_ms = hold_ms
        self._now_ms = now_ms  # the service's lapse clock (tests drive it)
        self._sleep = sleep
        self.record: IdempotencyRecord | None = None  # set while this attempt holds the lease
        # Taken with an earlier holder's create still to settle: until `settle`, the lease must
        # not be given back, or what that holder listed would be lost with it.
        self._unsettled = False
        self._handed_on_lapse = 0

    def _put(self, record: IdempotencyRecord, ttl_s: int) -> IdempotencyRecord | None:
        try:
            return self.store.put_if_absent(self.key, record, ttl_s)
        except StoreUnavailable as exc:
            raise store_down(exc) from None

    def _swap(self, token: str, record: IdempotencyRecord) -> bool:
        try:
            return self.store.replace_if_token(self.key, token, record)
        except StoreUnavailable as exc:
            raise store_down(exc) from None

    def acquire(self, deadline: Deadline) -> Prior | None:
        """Takes the application for this attempt, waiting while another attempt holds it (up
        to what the deadline allows). Returns what an earlier holder left unsettled, if
        anything: the caller settles it (`settle`) before it sends a create of its own."""
        floor = min(MIN_LEFT_S, deadline.remaining() / 2)
        for attempt in itertools.count():
            now = self._now_ms()
            mine = IdempotencyRecord(
                status="lease",
                request_hash=self.holder.request_hash,
                token=secrets.token_hex(16),
                lapse_at_ms=now + deadline.remaining_ms(),
                created_at_ms=now,
                holder=self.holder.key,
            )
            # A lease that notes nothing needs no long life: one whose attempt died lapses anyway.
            existing = self._put(mine, ttl_s=deadline.remaining_ms() // 1000 + 60)
            if existing is None:
                self.record = mine
                return None
            lapsed = existing.lapse_at_ms <= now  # from its lapse instant on
            prior = self._prior(existing, lapsed)
            if (
                prior is not None
                and not prior.mine
                and self.holder.key is not None
                and prior.holder.key == self.holder.key
            ):
                raise reused()  # this key's unsettled create was another request
            if lapsed or (prior is not None and prior.mine):
                # A lapsed lease is anyone's; one that this key's earlier attempt left unsettled
                # is this attempt's to look at, keeping its lapse. Either way what it listed is
                # kept until settled, so that a crash now leaves it for the next taker.
                base = mine if lapsed else existing
                taken = base.model_copy(
                    update={"token": mine.token, "before_secret_ids": existing.before_secret_ids}
                )
                if self._swap(existing.token, taken):
                    self.record = taken
                    self._unsettled = prior is not None
                    self._handed_on_lapse = existing.lapse_at_ms
                    return prior
                # Another attempt took it first: wait for that one as for any holder, so that
                # take-overs lost again and again end with the deadline, not in a spin.
            if deadline.remaining() - _POLL_S[-1] < floor:
                wait_s = max(1, (existing.lapse_at_ms - now + 999) // 1000)
                err = upstream_timeout(
                    "another create on this application is in progress; the request's "
                    "deadline ran out waiting for it"
                )
                err.headers["Retry-After"] = str(min(wait_s, 60))
                raise err
            self._sleep(_POLL_S[min(attempt, len(_POLL_S) - 1)])
        raise AssertionError("itertools.count() never ends")  # pragma: no cover

    def _prior(self, existing: IdempotencyRecord, lapsed: bool) -> Prior | None:
        if existing.status != "lease" or existing.before_secret_ids is None:
            return None
        holder = Holder(existing.holder, existing.request_hash)
        return Prior(
            before=existing.before_secret_ids,
            holder=holder,
            mine=holder.key is not None and holder == self.holder,
            lapsed=lapsed,
        )

    def _replace(self, record: IdempotencyRecord) -> bool:
        assert self.record is not None
        ok = self._swap(self.record.token, record)
        if ok:
            self.record = record
        return ok

    def note_before(self, secret_ids: tuple[str, ...]) -> None:
        """Before each create is sent: the secrets listed just before, and a hold of `hold_ms`
        from now. Refuses to send if this attempt no longer holds the application."""
        assert self.record is not None
        lapse_at_ms = max(self.record.lapse_at_ms, self._now_ms() + self.hold_ms)
        update = {"before_secret_ids": secret_ids, "lapse_at_ms": lapse_at_ms}
        if not self._replace(self.record.model_copy(update=update)):
            raise upstream_timeout(
                "this request's hold on the application lapsed before its create was sent"
            )

    def settle(
        self, prior: Prior, made: list[str], record_for: Callable[[Holder, str], bool]
    ) -> None:
        """An earlier holder's create whose outcome it never learnt: a single new secret is that
        holder's, recorded under its key (`record_for`); none means nothing was made. Then the
        secrets it listed are forgotten: this attempt lists afresh before it sends."""
        if len(made) == 1:
            kept = prior.holder.key is not None and record_for(prior.holder, made[0])
            if not kept:
                log.warning(
                    "create: secret %s was made by a create whose answer was lost and that no "
                    "idempotency key can claim; no caller holds it",
                    made[0],
                )
        elif made:
            log.warning(
                "create: %d secrets appeared on one application while a create held it (%s): "
                "some were made outside this service, so none is adopted",
                len(made),
                ", ".join(made),
            )
        assert self.record is not None
        self._replace(self.record.model_copy(update={"before_secret_ids": None}))
        self._unsettled = False

    def release(self, *, settled: bool = False) -> None:
        """The outcome is known (made and recorded, or nothing made): the application is free.
        Best effort: a lease that stays lapses, and the next taker finds nothing to settle or
        a secret already recorded. A lease taken with an earlier create still unsettled (this
        attempt failed before it could settle it; `settled`: the secret it made was adopted) is
        handed on instead, with what that create's holder listed and the lapse it had, for the
        next taker to settle."""
        if self.record is None:
            return
        if self._unsettled and not settled:
            try:
                lapse = self._handed_on_lapse
                self._replace(self.record.model_copy(update={"lapse_at_ms": lapse}))
            except VendError:
                log.warning("create: could not hand on the application's lease; it lapses")
            self.record = None
            return
        try:
            self.store.delete_if_token(self.key, self.record.token)
        except StoreUnavailable:
            log.warning("create: could not release the application's lease; it lapses by itself")
        self.record = None

    def keep(self) -> None:
        """The outcome is unknown: the lease stays, with what was listed, until it lapses."""
        self.record = None
