"""One rotation of one application (contract section 14): list, plan, and take at most one step.

A run lists the application's secrets, reads what was observed before (shared.lifecycle.observed)
and plans (shared.lifecycle.plan). Nothing is asked of EIAM but the listing unless a step is due,
and a dry run stops at the plan. To take a step, the run holds the application's lease (the one
every create of this service holds: shared.create_lease) and lists and plans again under it, so
that two runs at once, or a run beside a caller's create, take the step once (R3); then:

- create: through create_once, the machinery of every create (a listing before it, the lease
  noting it, a lost answer resolved by listing again, never sent again blindly), asking for an
  ExpirationTime of now + lifetime. Without an idempotency key: the answer of a rotation is the
  application's state, not the secret, and the lease with the listing under it is what keeps a
  second create from being sent while the first one's outcome is unknown;
- disable, delete: one call under a session scoped to that action on that one secret, which may
  be sent again (a secret disabled twice is disabled; a secret deleted before is 404, taken as
  done).

What the run observed after its step is noted for the next run. The state it answers is the
listing under the lease with its step applied: EIAM is not asked again."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace

from shared import create_once
from shared.create_lease import ApplicationLease, Prior
from shared.errors import VendError
from shared.idempotent_create import Journal
from shared.lifecycle.current import Secret, current_of
from shared.lifecycle.observed import Observations
from shared.lifecycle.plan import Kind, Observed, Policy, Step, observe, plan
from shared.upstream.deadline import Deadline

log = logging.getLogger("vend")


@dataclass(frozen=True)
class Eiam:
    """The EIAM calls of a rotation, bound to one application and its scoped sessions."""

    list: Callable[[], tuple[Secret, ...]]
    # The calls a create makes (shared.create_once), for a secret expiring at the given time.
    create: Callable[[int], create_once.Eiam]
    disable: Callable[[str], object]
    delete: Callable[[str], object]


@dataclass(frozen=True)
class Application:
    instance_id: str
    application_id: str
    policy: Policy


@dataclass(frozen=True)
class Outcome:
    step: Step  # taken; in a dry run, the one that would be
    before: tuple[Secret, ...]  # the state the step was planned on
    secrets: tuple[Secret, ...]  # the state after it
    next_step_at: int | None  # when a step may come due next (now, if one is due at once)

    @property
    def current(self) -> Secret | None:
        return current_of(self.secrets)


def lease_holder_hash(instance_id: str, application_id: str) -> str:
    """The request hash a rotation's lease names (a hex sha256, as a create's)."""
    return hashlib.sha256(f"rotate\n{instance_id}\n{application_id}".encode()).hexdigest()


class Rotation:
    """`approve(kind)` raises (403) unless the caller may take that kind of step; `planned(step)`
    hears of each plan (the audit record's step); `now_ms` is the rotation's clock."""

    def __init__(
        self,
        app: Application,
        eiam: Eiam,
        observations: Observations,
        lease: Callable[[], ApplicationLease],
        *,
        now_ms: Callable[[], int],
        approve: Callable[[Kind], None],
        planned: Callable[[Step], None] = lambda step: None,
    ) -> None:
        self.app = app
        self.eiam = eiam
        self.observations = observations
        self.lease = lease
        self.now_ms = now_ms
        self.approve = approve
        self.planned = planned

    def run(self, deadline: Deadline, *, dry_run: bool = False) -> Outcome:
        listed, seen, step, now = self._plan()
        if step.kind == "none":
            if not dry_run:
                self._note(seen)
            return Outcome(step, listed, listed, step.next_step_at)
        if dry_run:  # shown whoever may take it: the caller may take some step here
            return Outcome(step, listed, listed, now)
        self.approve(step.kind)  # 403 naming the action: nothing changed
        return self._take(deadline)

    def _plan(self) -> tuple[tuple[Secret, ...], Observed, Step, int]:
        listed = self.eiam.list()
        earlier = self.observations.load(self.app.instance_id, self.app.application_id)
        now = self.now_ms()
        seen = observe(listed, earlier, now)
        step = plan(listed, now, self.app.policy, seen)
        self.planned(step)
        return listed, seen, step, now

    def _take(self, deadline: Deadline) -> Outcome:
        """Under the application's lease: list and plan again, and take what is due then."""
        lease = self.lease()
        prior = lease.acquire(deadline)
        journal = Journal(lease, None)
        try:
            listed, seen, step, _ = self._plan()
            if step.kind != "none":
                self.approve(step.kind)
            after = self._step(step, listed, _Held(journal, prior), deadline)
        finally:
            journal.nothing_made()  # the lease is free, unless a create left it unknown
        now = self.now_ms()
        seen_after = observe(after, seen, now)
        self._note(seen_after)
        if step.kind == "none":
            return Outcome(step, listed, after, step.next_step_at)
        following = plan(after, now, self.app.policy, seen_after)
        next_at = following.next_step_at if following.kind == "none" else now
        return Outcome(step, listed, after, next_at)

    def _step(
        self, step: Step, listed: tuple[Secret, ...], journal: _Held, deadline: Deadline
    ) -> tuple[Secret, ...]:
        if step.kind == "create":
            assert step.expiration_time is not None
            made = create_once.create_at_most_once(
                self.eiam.create(step.expiration_time), journal, deadline
            )
            return (*listed, Secret(made.secret_id, "enabled", step.expiration_time))
        if step.kind == "none":
            return listed
        assert step.secret_id is not None
        act = self.eiam.disable if step.kind == "disable" else self.eiam.delete
        try:
            act(step.secret_id)
        except VendError as err:
            if err.status != 404:
                raise
            # Gone already: deleted by an earlier run whose answer was lost, or by someone else.
            log.info("rotation: %s was gone before it could be %sd", step.secret_id, step.kind)
            return tuple(s for s in listed if s.secret_id != step.secret_id)
        if step.kind == "delete":
            return tuple(s for s in listed if s.secret_id != step.secret_id)
        return tuple(
            replace(s, status="disabled") if s.secret_id == step.secret_id else s for s in listed
        )

    def _note(self, seen: Observed) -> None:
        app = self.app
        self.observations.save(app.instance_id, app.application_id, seen, app.policy.grace_ms)


class _Held:
    """The create's journal over a lease this run holds already: create_once's acquire answers
    what the lease found when this run took it."""

    def __init__(self, journal: Journal, prior: Prior | None) -> None:
        self._journal = journal
        self._prior = prior

    def acquire(self, deadline: Deadline) -> Prior | None:
        return self._prior

    def recorded(self) -> str | None:
        return self._journal.recorded()

    def settle(self, prior: Prior, made: list[str]) -> None:
        self._journal.settle(prior, made)

    def note_before(self, secret_ids: tuple[str, ...]) -> None:
        self._journal.note_before(secret_ids)

    def note_created(self, secret_id: str) -> None:
        self._journal.note_created(secret_id)

    def nothing_made(self) -> None:
        self._journal.nothing_made()

    def unknown(self) -> None:
        self._journal.unknown()
