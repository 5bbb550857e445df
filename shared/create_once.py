"""EIAM's create, sent so that one attempt never makes two secrets (contract sections 7 and 8).

CreateApplicationClientSecret is not idempotent and takes no client token, so a lost answer (a
5xx, throttling, a timeout or a dropped connection after the request was sent, an unreadable
200) leaves it unknown whether a secret was made. The application's secret IDs are listed
before the create; after a lost answer they are listed again:

- exactly one new ID: this attempt made it; it is adopted (obtained) as the answer;
- none, and EIAM did answer (a 5xx, a 429, an unreadable 200): nothing was made; the create
  may be sent again, within the deadline;
- none after a timeout or a lost connection: the request may still be at work in EIAM, so
  nothing is proven; the error says so and nothing is sent again;
- more than one, or the listing fails: ambiguous. The error names the IDs; nothing is sent.

Every create holds the application's lease while it lists and sends (shared.create_lease), so
nothing else this service sends can make a secret in between; the journal over that lease keeps
what was listed before, so that a later attempt can settle what a crashed or timed-out one
started. A secret adopted for a create that asked for an ExpirationTime must carry exactly that
one: EIAM keeps it to the millisecond, so one made outside the service is not taken for ours."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.create_lease import Prior
from shared.errors import MaybeActed, UpstreamFailure, VendError, decided_by, in_progress
from shared.upstream.deadline import Deadline
from shared.upstream.eiam import SecretInfo

log = logging.getLogger("vend")

MAX_SENDS = 3
# A create sent again needs at least this much of the deadline left to be worth sending.
MIN_SEND_S = 0.2


class Journal(Protocol):
    """Where an attempt holds the application and notes its progress, for whoever comes after
    it (shared.idempotent_create.Journal, over the application's lease)."""

    def acquire(self, deadline: Deadline) -> Prior | None:
        """Holds the application; returns what an earlier holder left unsettled."""
        ...

    def recorded(self) -> str | None:
        """The secret recorded under this attempt's key by whoever settled its lost create
        while this attempt waited for the application, if any."""
        ...

    def settle(self, prior: Prior, made: list[str]) -> None:
        """Another holder's unsettled create: `made` is what appeared since it listed."""
        ...

    def note_before(self, secret_ids: tuple[str, ...]) -> None:
        """Just before each create is sent: what was listed, and a hold past the send."""
        ...

    def note_created(self, secret_id: str) -> None:
        """This attempt's create made `secret_id`: record it, free the application."""
        ...

    def nothing_made(self) -> None:
        """Nothing was made, or what was made is recorded: free the key and the application."""
        ...

    def unknown(self) -> None:
        """The outcome is unknown: free the key, keep the application until the hold lapses."""
        ...


@dataclass(frozen=True)
class Eiam:
    """The three EIAM calls this needs, bound to one application and its scoped sessions, and
    the ExpirationTime the create asks for (EIAM keeps it to the millisecond: a secret adopted
    after a lost answer must carry it)."""

    list_ids: Callable[[], tuple[str, ...]]
    create: Callable[[], SecretInfo]
    obtain: Callable[[str], SecretInfo]
    expiration_time: int | None = None


def create_at_most_once(eiam: Eiam, journal: Journal, deadline: Deadline) -> SecretInfo:
    prior = journal.acquire(deadline)
    try:
        return _create(eiam, journal, deadline, prior)
    except MaybeActed:
        journal.unknown()
        raise
    finally:
        journal.nothing_made()  # a no-op once the outcome was recorded or kept unknown


def _create(eiam: Eiam, journal: Journal, deadline: Deadline, prior: Prior | None) -> SecretInfo:
    settled = journal.recorded()
    if settled is not None:
        return eiam.obtain(settled)
    present = eiam.list_ids()
    if prior is not None:  # a create sent under the application's lease never learnt its outcome
        made = _new(present, prior.before)
        if prior.mine:  # this key's own: what it made is this attempt's answer
            if made:
                return _adopt(eiam, journal, made)
            if not prior.lapsed:  # it may still land: nothing is proven yet
                journal.unknown()
                raise in_progress()
        journal.settle(prior, [] if prior.mine else made)
    before = present
    lost: MaybeActed | None = None
    for _ in range(MAX_SENDS):
        if lost is not None and deadline.remaining() < MIN_SEND_S:
            break
        journal.note_before(before)  # before every send: it also holds the application past it
        try:
            info = eiam.create()
        except MaybeActed as err:
            lost = err
            try:
                after = eiam.list_ids()
            except VendError:
                raise unresolved(err, before) from None
            made = _new(after, before)
            if made:
                return _adopt(eiam, journal, made)
            if not err.settled:
                raise unresolved(err, before, listed=True) from None
            continue  # EIAM answered, and nothing is new: sending again is safe
        journal.note_created(info.secret_id)
        return info
    # Every failure was an answer, and each listing after it showed nothing new: nothing was
    # made, which frees the key and the application at once.
    assert lost is not None
    raise UpstreamFailure(
        lost.status, lost.code, f"{lost.message}; no secret was created", **lost.facts()
    )


def _new(now: tuple[str, ...], before: tuple[str, ...]) -> list[str]:
    old = set(before)
    return [s for s in now if s not in old]


def _adopt(eiam: Eiam, journal: Journal, made: list[str]) -> SecretInfo:
    """The one secret that appeared while this key held the application is its create's. More
    than one means something outside this service created too: none can be told apart."""
    if len(made) > 1:
        raise MaybeActed(
            502,
            "UpstreamError",
            f"a create's answer was lost and {len(made)} secrets appeared since it was sent "
            f"({', '.join(made)}): which one it made cannot be told, so none is returned and "
            "none is created again; see ListApplicationClientSecrets",
            service="EIAM",
            settled=True,
        )
    try:
        info = eiam.obtain(made[0])
    except MaybeActed:
        raise
    except VendError as err:
        # Its expiration unread, it stays unsettled: the key's retry, or whoever takes the
        # application next, looks again.
        journal.unknown()
        raise _restated(err, made[0]) from None
    if eiam.expiration_time is not None and info.expiration_time != eiam.expiration_time:
        log.warning(
            "create: secret %s appeared on the application while this create held it, with "
            "another expiration time: made outside this service, not adopted",
            made[0],
        )
        raise UpstreamFailure(
            502,
            "UpstreamError",
            f"a create's answer was lost and the secret that appeared since ({made[0]}) "
            "carries another expiration time: it was made outside this service, so it is not "
            "returned; retry to create one",
            service="EIAM",
        )
    journal.note_created(made[0])
    return info


def _restated(err: VendError, secret_id: str) -> VendError:
    restated = VendError(
        err.status,
        err.code,
        f"{err.message} (the new secret {secret_id} was created; obtain it by its ID)",
        err.headers,
    )
    if err.service is not None:  # the audit record names the upstream that failed
        decided_by(
            restated,
            err.service,
            code=err.upstream_code,
            status=err.upstream_status,
            request_id=err.upstream_request_id,
            attempts=err.attempts,
        )
    return restated


def unresolved(err: MaybeActed, before: tuple[str, ...], *, listed: bool = False) -> MaybeActed:
    shown = ", ".join(before) if before else "none"
    why = (
        "EIAM may still be creating it"
        if listed
        else "listing the application's secrets to find out failed"
    )
    return MaybeActed(
        err.status,
        err.code,
        f"{err.message}; a secret may have been created, and {why} (secrets before: {shown})",
        settled=err.settled,
        **err.facts(),
    )
