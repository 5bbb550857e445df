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

A journal (the idempotency record, for a keyed create) keeps what was listed before, so that a
later attempt under the same key can finish what a crashed or timed-out one started."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from shared.errors import MaybeActed, UpstreamFailure, VendError, decided_by
from shared.upstream.deadline import Deadline
from shared.upstream.eiam import SecretInfo

MAX_SENDS = 3
# A create sent again needs at least this much of the deadline left to be worth sending.
MIN_SEND_S = 0.2


class Journal(Protocol):
    """Where an attempt notes its progress, for whoever comes after it."""

    @property
    def before(self) -> tuple[str, ...] | None:
        """The secret IDs an earlier attempt listed just before it sent a create, if any."""
        ...

    def note_before(self, secret_ids: tuple[str, ...]) -> None: ...

    def note_created(self, secret_id: str) -> None: ...


class NoJournal:
    """A create without an idempotency key: nothing outlives the request."""

    before: tuple[str, ...] | None = None

    def note_before(self, secret_ids: tuple[str, ...]) -> None:
        pass

    def note_created(self, secret_id: str) -> None:
        pass


@dataclass(frozen=True)
class Eiam:
    """The three EIAM calls this needs, bound to one application and its scoped sessions."""

    list_ids: Callable[[], tuple[str, ...]]
    create: Callable[[], SecretInfo]
    obtain: Callable[[str], SecretInfo]


def create_at_most_once(eiam: Eiam, journal: Journal, deadline: Deadline) -> SecretInfo:
    present = eiam.list_ids()
    if journal.before is not None:  # an earlier attempt sent a create: did it make a secret?
        made = _new(present, journal.before)
        if made:
            return _adopt(eiam, journal, made)
    before = present
    lost: MaybeActed | None = None
    for _ in range(MAX_SENDS):
        if lost is not None and deadline.remaining() < MIN_SEND_S:
            break
        journal.note_before(before)  # before every send: it also holds the key past this one
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
    # made, which frees an idempotency key at once.
    assert lost is not None
    raise UpstreamFailure(
        lost.status, lost.code, f"{lost.message}; no secret was created", **lost.facts()
    )


def _new(now: tuple[str, ...], before: tuple[str, ...]) -> list[str]:
    old = set(before)
    return [s for s in now if s not in old]


def _adopt(eiam: Eiam, journal: Journal, made: list[str]) -> SecretInfo:
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
    journal.note_created(made[0])
    try:
        return eiam.obtain(made[0])
    except VendError as err:
        restated = VendError(
            err.status,
            err.code,
            f"{err.message} (the new secret {made[0]} was created; obtain it by its ID)",
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
        raise restated from None


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
