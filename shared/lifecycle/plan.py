"""Rotation's planner (contract section 14): from EIAM's listing of one application, the time,
the application's lifetime and grace period, and what the service observed earlier, the one step
to take next. Pure: it knows nothing of EIAM, the store or the clock.

The steps, in this order of precedence:
1. delete a disabled secret that has been observed disabled for the grace period;
2. disable an enabled secret that is not current once the current one has been observed
   current for the grace period (never while the current one has expired: it would leave the
   callers nothing that works);
3. create the next secret, expiring `lifetime` from now, when the current one is due and the
   application holds fewer than 2 secrets (a disabled one counts: EIAM's quota does);
4. none, saying why and when a step may be due next.

The current secret is due `renew_before` before it expires, `max(lifetime / 4, 3 * grace)`, or
at once when it never expires or no secret is enabled. Between one create and the next the
previous secret must be disabled (a grace period after its successor became current) and then
deleted (a grace period later), and the old one must still work while the callers move to the
new one: `Policy` refuses a lifetime shorter than `renew_before + 2 * grace` plus as much again
for the runs' own spacing (shared.lifecycle.settings documents the bounds).

Why those rules keep the invariants (tests/test_rotation_plan.py checks each over arbitrary
listings, times and observations):
- R1: only a secret that is not current is disabled or deleted, and the current one is enabled,
  so an application with an enabled secret keeps one.
- R2: a secret is disabled only when the current one (which outranks it) has been observed
  current for the grace period, deleted only when observed disabled for as long. An observation
  the store lost counts from the run that makes it again: a lost store delays, never hastens.
- R4: a create is planned only below 2 secrets; with 2, the plan waits and says so."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Literal

from shared.lifecycle.current import Secret, current_of, ranked

MAX_SECRETS = 2  # EIAM's quota per application, disabled secrets included
MINUTE_MS = 60 * 1000
DAY_MS = 24 * 60 * MINUTE_MS

Kind = Literal["create", "disable", "delete", "none"]


class Why(Enum):
    """Why a step was planned, or why none was. The value is stable; the reason text is not."""

    DISABLED_PAST_GRACE = "disabled-past-grace"  # delete
    REPLACED_PAST_GRACE = "replaced-past-grace"  # disable
    NO_ENABLED_SECRET = "no-enabled-secret"  # create
    NEVER_EXPIRES = "current-never-expires"  # create
    DUE = "current-due"  # create
    NOT_DUE = "not-due"  # none: nothing to do until the current one is due
    WAITING = "waiting-for-grace"  # none: a disable or delete waits out the grace period
    FULL = "full"  # none: due, but 2 secrets are held and none may go yet (R4)
    STUCK = "stuck"  # none: no step will come due without an operator


@dataclass(frozen=True)
class Policy:
    """An application's rotation: each new secret lives `lifetime_ms`; a secret is disabled a
    grace period after its successor became current, and deleted a grace period after that."""

    lifetime_ms: int
    grace_ms: int

    def __post_init__(self) -> None:
        if self.grace_ms <= 0:
            raise ValueError("the grace period must be positive")
        if self.lifetime_ms < self.renew_before_ms + 4 * self.grace_ms:
            raise ValueError("the lifetime must be at least renew_before + 4 grace periods")

    @property
    def renew_before_ms(self) -> int:
        """How long before the current secret expires its successor is created."""
        return max(self.lifetime_ms // 4, 3 * self.grace_ms)


@dataclass(frozen=True)
class Observed:
    """What the listing cannot say: since when the service has seen the current secret current,
    and each disabled secret disabled (ms since the epoch, by the rotation's clock)."""

    current: tuple[str, int] | None = None  # (secret_id, since)
    disabled: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    kind: Kind
    why: Why
    reason: str
    secret_id: str | None = None  # disable and delete: the secret
    expiration_time: int | None = None  # create: the new secret's
    next_step_at: int | None = None  # none: when a step may come due (None: not by itself)


def observe(secrets: Iterable[Secret], earlier: Observed | None, now_ms: int) -> Observed:
    """What is observed now: the earlier times of what is still so, and `now_ms` for what was
    not observed before (a new current secret, a newly disabled one, or anything the store
    lost). What is no longer so is forgotten."""
    listed = list(secrets)
    earlier = earlier or Observed()
    current = current_of(listed)
    seen: tuple[str, int] | None = None
    if current is not None:
        kept = (
            earlier.current if earlier.current and earlier.current[0] == current.secret_id else None
        )
        seen = kept or (current.secret_id, now_ms)
    disabled = {
        s.secret_id: earlier.disabled.get(s.secret_id, now_ms)
        for s in listed
        if s.status == "disabled"
    }
    return Observed(seen, disabled)


def plan(secrets: Iterable[Secret], now_ms: int, policy: Policy, observed: Observed) -> Step:
    """The next step for an application holding `secrets`. A secret `observed` does not cover
    counts as observed now, so a missing record never lets a grace period pass early."""
    listed = list(secrets)
    grace = policy.grace_ms
    current = current_of(listed)

    def disabled_since(s: Secret) -> int:
        return observed.disabled.get(s.secret_id, now_ms)

    disabled = sorted(
        (s for s in listed if s.status == "disabled"),
        key=lambda s: (disabled_since(s), s.secret_id),
    )
    for secret in disabled:
        since = disabled_since(secret)
        if now_ms - since >= grace:
            return Step(
                "delete",
                Why.DISABLED_PAST_GRACE,
                f"{secret.secret_id} has been disabled since {at(since)}, over the grace "
                f"period of {_span(grace)}",
                secret_id=secret.secret_id,
            )

    current_since = now_ms
    if current is not None and observed.current and observed.current[0] == current.secret_id:
        current_since = observed.current[1]
    expired = (
        current is not None
        and current.expiration_time is not None
        and current.expiration_time <= now_ms
    )
    replaced = ranked(listed)[1:]  # enabled, not current; the lowest-ranked last
    if current is not None and replaced and not expired and now_ms - current_since >= grace:
        victim = replaced[-1]
        return Step(
            "disable",
            Why.REPLACED_PAST_GRACE,
            f"{current.secret_id} has been current since {at(current_since)}, over the grace "
            f"period of {_span(grace)}: {victim.secret_id} is no longer needed",
            secret_id=victim.secret_id,
        )

    due_at = _due_at(current, policy)
    if (due_at is None or now_ms >= due_at) and len(listed) < MAX_SECRETS:
        return Step(
            "create",
            *_why_create(current, due_at),
            expiration_time=now_ms + policy.lifetime_ms,
        )
    return _wait(listed, now_ms, policy, current, current_since, expired, due_at, disabled_since)


def _due_at(current: Secret | None, policy: Policy) -> int | None:
    """When the current secret is due; None: at once (no secret enabled, or it never expires)."""
    if current is None or current.expiration_time is None:
        return None
    return current.expiration_time - policy.renew_before_ms


def _why_create(current: Secret | None, due_at: int | None) -> tuple[Why, str]:
    if current is None:
        return Why.NO_ENABLED_SECRET, "no secret is enabled: the first is created"
    if current.expiration_time is None or due_at is None:
        return Why.NEVER_EXPIRES, f"the current secret {current.secret_id} never expires"
    return Why.DUE, (
        f"the current secret {current.secret_id} expires at {at(current.expiration_time)}: "
        f"its successor is due from {at(due_at)}"
    )


def _wait(
    listed: list[Secret],
    now_ms: int,
    policy: Policy,
    current: Secret | None,
    current_since: int,
    expired: bool,
    due_at: int | None,
    disabled_since: Callable[[Secret], int],
) -> Step:
    """No step now: why, and when the earliest may come due (a create only below 2 secrets;
    at 2, only after a delete)."""
    grace = policy.grace_ms
    waits: list[tuple[int, str]] = []
    for s in listed:
        if s.status == "disabled":
            when = disabled_since(s) + grace
            waits.append((when, f"{s.secret_id} may be deleted at {at(when)}"))
    replaced = ranked(listed)[1:]
    if current is not None and replaced and not expired:
        when = current_since + grace
        waits.append(
            (
                when,
                f"{replaced[-1].secret_id} may be disabled at {at(when)}, a grace period after "
                f"{current.secret_id} became current",
            )
        )
    waits.sort()
    due = due_at is None or now_ms >= due_at
    full = len(listed) >= MAX_SECRETS
    if not waits and (due or full):
        unknown = sorted(s.secret_id for s in listed if s.status not in ("enabled", "disabled"))
        why = (
            f"the current secret {current.secret_id} has expired and no other may be disabled"
            if expired and current is not None
            else f"the application holds its {MAX_SECRETS} secrets and none may go"
        )
        if unknown:
            why += f" ({', '.join(unknown)}: a status rotation does not know)"
        return Step("none", Why.STUCK, f"{why}: an operator must act")  # no next step
    if due:
        return Step(
            "none",
            Why.FULL,
            f"a new secret is due, but the application holds its {MAX_SECRETS} secrets and "
            f"none may go yet: {waits[0][1]}",
            next_step_at=waits[0][0],
        )
    assert current is not None
    assert due_at is not None
    # A wait means a disabled or replaced secret beside the current one: the application is
    # full, so the successor waits for it whenever it comes due.
    if waits:
        return Step("none", Why.WAITING, waits[0][1], next_step_at=waits[0][0])
    return Step(
        "none",
        Why.NOT_DUE,
        f"the current secret {current.secret_id} expires at {at(current.expiration_time)}: "
        f"its successor is due at {at(due_at)}",
        next_step_at=due_at,
    )


def at(ms: int | None) -> str:
    """A time in the reasons: UTC, to the second."""
    if ms is None:
        return "never"
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _span(ms: int) -> str:
    if ms % MINUTE_MS:  # not whole minutes: in seconds (30 s is not "0 d", nor 1 d 30 s "1 d")
        return f"{ms / 1000:g} s"
    minutes = ms // MINUTE_MS
    if minutes % (24 * 60) == 0:
        return f"{minutes // (24 * 60)} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"
