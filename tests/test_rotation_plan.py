"""Rotation's planner (shared.lifecycle.plan), alone: a table of each step and each reason, and
properties over arbitrary listings, times and observations (a record missing among them):
R1 (the current secret is never disabled or deleted, and an application with an enabled secret
keeps one), R2 (a disable only after the current one was observed current for the grace period,
a delete only after the secret was observed disabled for as long; a lost observation never
hastens either), R4 (a create only below 2 secrets)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.lifecycle.current import Secret, current_of
from shared.lifecycle.plan import (
    DAY_MS,
    MAX_SECRETS,
    MINUTE_MS,
    Observed,
    Policy,
    Step,
    Why,
    at,
    observe,
    plan,
)

GRACE = 60 * MINUTE_MS
LIFETIME = 30 * DAY_MS
POLICY = Policy(lifetime_ms=LIFETIME, grace_ms=GRACE)
RENEW = POLICY.renew_before_ms  # 7.5 days
NOW = 1_800_000_000_000


def _on(secret_id: str, exp: int | None = None) -> Secret:
    return Secret(secret_id, "enabled", exp)


def _off(secret_id: str, exp: int | None = None) -> Secret:
    return Secret(secret_id, "disabled", exp)


def _plan(secrets: list[Secret], observed: Observed | None = None, now: int = NOW) -> Step:
    return plan(secrets, now, POLICY, observed or Observed())


def test_the_policy_renews_a_quarter_of_the_lifetime_or_three_grace_periods_before() -> None:
    assert RENEW == LIFETIME // 4
    assert Policy(lifetime_ms=DAY_MS * 2, grace_ms=4 * 60 * MINUTE_MS).renew_before_ms == (
        12 * 60 * MINUTE_MS
    )
    assert Policy(lifetime_ms=DAY_MS, grace_ms=3 * 60 * MINUTE_MS).renew_before_ms == 9 * 60 * (
        MINUTE_MS
    )


POSITIVE = r"^the grace period must be positive$"
ROOM = r"^the lifetime must be at least renew_before \+ 4 grace periods$"


@pytest.mark.parametrize(
    ("lifetime", "grace", "says"),
    [
        (DAY_MS, 0, POSITIVE),
        (DAY_MS, -1, POSITIVE),
        (DAY_MS, 4 * 60 * MINUTE_MS, ROOM),
        (7 * GRACE - 1, GRACE, ROOM),
    ],
)
def test_a_policy_that_cannot_keep_the_invariants_is_refused(
    lifetime: int, grace: int, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        Policy(lifetime_ms=lifetime, grace_ms=grace)


@pytest.mark.parametrize(
    ("lifetime", "grace"),
    [(DAY_MS, 1), (7 * GRACE, GRACE)],  # any positive grace; exactly renew_before + 4 graces
)
def test_a_policy_at_its_bounds_is_accepted(lifetime: int, grace: int) -> None:
    policy = Policy(lifetime_ms=lifetime, grace_ms=grace)
    assert policy.lifetime_ms - policy.renew_before_ms >= 4 * policy.grace_ms


# Each row: the listing, what was observed, the step, its reason, the secret it acts on, and
# next_step_at (for "none").
OLD_EXP = NOW + RENEW - 1  # due one ms ago
LATER = NOW + LIFETIME
ROWS = [
    # create
    ([], None, "create", Why.NO_ENABLED_SECRET, None, None),
    ([_off("a")], None, "create", Why.NO_ENABLED_SECRET, None, None),
    ([_on("a")], None, "create", Why.NEVER_EXPIRES, None, None),
    ([_on("a", NOW + RENEW)], None, "create", Why.DUE, None, None),
    ([_on("a", NOW - 5)], None, "create", Why.DUE, None, None),  # expired: still renewed
    # disable: the current one was observed current for the grace period
    (
        [_on("a"), _on("b", LATER)],
        Observed(("b", NOW - GRACE)),
        "disable",
        Why.REPLACED_PAST_GRACE,
        "a",
        None,
    ),
    (  # two enabled, both with an expiration: the one expiring first goes
        [_on("a", LATER - 5), _on("b", LATER)],
        Observed(("b", NOW - GRACE - 1)),
        "disable",
        Why.REPLACED_PAST_GRACE,
        "a",
        None,
    ),
    (  # three enabled (one made outside the service): the lowest-ranked goes first
        [_on("a", LATER - 5), _on("b", LATER), _on("c")],
        Observed(("b", NOW - GRACE)),
        "disable",
        Why.REPLACED_PAST_GRACE,
        "c",
        None,
    ),
    # delete: disabled for the grace period; it comes before a disable
    (
        [_off("a"), _on("b", LATER)],
        Observed(("b", NOW - 9 * GRACE), {"a": NOW - GRACE}),
        "delete",
        Why.DISABLED_PAST_GRACE,
        "a",
        None,
    ),
    (
        [_off("a"), _off("b")],
        Observed(None, {"a": NOW - GRACE + 1, "b": NOW - GRACE}),
        "delete",
        Why.DISABLED_PAST_GRACE,
        "b",
        None,
    ),
    (  # both past the grace period: the one disabled first goes first
        [_off("a"), _off("b")],
        Observed(None, {"a": NOW - GRACE, "b": NOW - GRACE - 1}),
        "delete",
        Why.DISABLED_PAST_GRACE,
        "b",
        None,
    ),
    # none: waiting out a grace period
    (
        [_on("a"), _on("b", LATER)],
        Observed(("b", NOW - GRACE + 1)),
        "none",
        Why.WAITING,  # "b" is current and not due; "a" goes a grace period after "b" came
        None,
        NOW + 1,
    ),
    (
        [_off("a"), _on("b", LATER)],
        Observed(("b", NOW - 2 * GRACE), {"a": NOW - 10}),
        "none",
        Why.WAITING,
        None,
        NOW - 10 + GRACE,
    ),
    (
        [_on("a", LATER - 5), _on("b", LATER)],
        Observed(("b", NOW)),
        "none",
        Why.WAITING,
        None,
        NOW + GRACE,
    ),
    (  # due before the disabled one may go: at 2 secrets the create waits for its delete
        [_on("a", NOW + RENEW + GRACE // 2), _off("z")],
        Observed(("a", NOW - 99 * GRACE), {"z": NOW}),
        "none",
        Why.WAITING,
        None,
        NOW + GRACE,
    ),
    # none: full (R4), the current one due and 2 held
    (  # due this very instant
        [_off("a"), _on("b", NOW + RENEW)],
        Observed(("b", NOW - 99 * GRACE), {"a": NOW - 1}),
        "none",
        Why.FULL,
        None,
        NOW - 1 + GRACE,
    ),
    (
        [_off("a"), _on("b", OLD_EXP)],
        Observed(("b", NOW - 99 * GRACE), {"a": NOW - 1}),
        "none",
        Why.FULL,
        None,
        NOW - 1 + GRACE,
    ),
    (
        [_on("a", OLD_EXP - 1), _on("b", OLD_EXP)],
        Observed(("b", NOW - 1)),
        "none",
        Why.FULL,
        None,
        NOW - 1 + GRACE,
    ),
    # none: not due
    ([_on("a", LATER)], Observed(("a", NOW)), "none", Why.NOT_DUE, None, LATER - RENEW),
    ([_on("a", LATER), _off("z")], None, "none", Why.WAITING, None, NOW + GRACE),
    # none: stuck, an operator must act
    (
        [_on("a"), _on("b", NOW - 1)],  # the current one expired, the other would be cut
        Observed(("b", NOW - 99 * GRACE)),
        "none",
        Why.STUCK,
        None,
        None,
    ),
    (  # the current one expires this very instant: the other is not cut off either
        [_on("a"), _on("b", NOW)],
        Observed(("b", NOW - 99 * GRACE)),
        "none",
        Why.STUCK,
        None,
        None,
    ),
    (  # not due, but the other secret's status is unknown: nothing will ever come due
        [_on("a", LATER), Secret("u", "gone", None)],
        Observed(("a", NOW - 99 * GRACE)),
        "none",
        Why.STUCK,
        None,
        None,
    ),
    (
        [_on("a", OLD_EXP), Secret("u", None, None)],
        Observed(("a", NOW - 99 * GRACE)),
        "none",
        Why.STUCK,
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("secrets", "observed", "kind", "why", "secret_id", "next_step_at"),
    ROWS,
    ids=[f"{r[2]}-{r[3].value}-{i}" for i, r in enumerate(ROWS)],
)
def test_each_step_and_reason(
    secrets: list[Secret],
    observed: Observed | None,
    kind: str,
    why: Why,
    secret_id: str | None,
    next_step_at: int | None,
) -> None:
    step = _plan(secrets, observed)
    assert (step.kind, step.why, step.secret_id) == (kind, why, secret_id), step.reason
    assert step.reason
    if kind == "none":
        assert step.next_step_at == next_step_at
    if kind == "create":
        assert step.expiration_time == NOW + LIFETIME


def test_every_reason_is_in_the_table() -> None:
    assert {r[3] for r in ROWS} == set(Why)


def test_a_fresh_application_is_rotated_create_disable_delete_create() -> None:
    """The life the planner leads an application through, with runs every minute; each run
    records what it observed before and after its step, as shared.lifecycle.rotate does."""
    secrets = [_on("seed")]
    observed: Observed | None = None
    taken: list[tuple[int, str, str | None]] = []
    now = NOW
    made = 0
    while now < NOW + 2 * LIFETIME:
        observed = observe(secrets, observed, now)
        step = plan(secrets, now, POLICY, observed)
        if step.kind == "create":
            made += 1
            assert step.expiration_time is not None
            secrets.append(_on(f"s{made}", step.expiration_time))
        elif step.kind == "disable":
            secrets = [
                _off(s.secret_id, s.expiration_time) if s.secret_id == step.secret_id else s
                for s in secrets
            ]
        elif step.kind == "delete":
            secrets = [s for s in secrets if s.secret_id != step.secret_id]
        # What a run records after its step: the new state, observed now.
        observed = observe(secrets, observed, now)
        if step.kind != "none":
            taken.append(((now - NOW) // MINUTE_MS, step.kind, step.secret_id))
        else:
            assert step.next_step_at is not None and step.next_step_at > now
        now += MINUTE_MS
    first_due = (LIFETIME - RENEW) // MINUTE_MS
    assert taken[:7] == [
        (0, "create", None),
        (60, "disable", "seed"),
        (120, "delete", "seed"),
        (first_due, "create", None),
        (first_due + 60, "disable", "s1"),
        (first_due + 120, "delete", "s1"),
        (2 * first_due, "create", None),
    ]


# -- properties ---------------------------------------------------------------------------------

IDS = st.sampled_from(["a", "b", "c", "d"])
# Times near the edges that matter: around a grace period before now, around renew_before and
# the lifetime after it, and anywhere.
OFFSETS = st.one_of(
    st.sampled_from([GRACE - 1, GRACE, 0, -1, RENEW, RENEW - 1]),
    st.integers(-3 * GRACE, 3 * GRACE),
    st.integers(RENEW - 2 * GRACE, RENEW + 2 * GRACE),
    st.integers(LIFETIME - GRACE, LIFETIME + GRACE),
    st.integers(-3 * LIFETIME, 3 * LIFETIME),
)


@st.composite
def worlds(draw: st.DrawFn) -> tuple[list[Secret], int, Observed]:
    """A listing (up to 3 secrets: EIAM holds at most 2, but one made outside the service must
    not confuse the planner), the time, and what was observed (any of it may be missing)."""
    now = NOW + draw(st.integers(-LIFETIME, LIFETIME))
    secrets = draw(
        st.lists(
            st.builds(
                Secret,
                IDS,
                st.sampled_from(["enabled", "enabled", "disabled", None]),
                st.one_of(st.none(), OFFSETS.map(lambda o: now + o)),
            ),
            max_size=3,
            unique_by=lambda s: s.secret_id,
        )
    )
    since = OFFSETS.map(lambda o: now - o)
    # Mostly about the secrets listed (the current one above all), sometimes about others.
    listed = [s.secret_id for s in secrets]
    current = current_of(secrets)
    about = st.sampled_from([*listed, *listed, "d"]) if listed else IDS
    mine = st.just(current.secret_id) if current is not None else about
    observed = draw(
        st.builds(
            Observed,
            st.one_of(st.none(), st.tuples(st.one_of(mine, mine, about), since)),
            st.dictionaries(about, since, max_size=4),
        )
    )
    return secrets, now, observed


def _after(secrets: list[Secret], step: Step) -> list[Secret]:
    if step.kind == "disable":
        return [
            Secret(s.secret_id, "disabled", s.expiration_time)
            if s.secret_id == step.secret_id
            else s
            for s in secrets
        ]
    if step.kind == "delete":
        return [s for s in secrets if s.secret_id != step.secret_id]
    return secrets


@settings(max_examples=400)
@given(worlds())
def test_r1_the_current_secret_is_never_disabled_nor_deleted(
    world: tuple[list[Secret], int, Observed],
) -> None:
    secrets, now, observed = world
    step = plan(secrets, now, POLICY, observed)
    current = current_of(secrets)
    if step.kind in ("disable", "delete"):
        assert step.secret_id in {s.secret_id for s in secrets}
        assert current is None or step.secret_id != current.secret_id
    after = current_of(_after(secrets, step))
    if current is not None:
        assert after == current  # the same current secret, enabled, after any step


@settings(max_examples=400)
@given(worlds())
def test_r2_disable_and_delete_wait_out_the_grace_period(
    world: tuple[list[Secret], int, Observed],
) -> None:
    secrets, now, observed = world
    step = plan(secrets, now, POLICY, observed)
    (target,) = [s for s in secrets if s.secret_id == step.secret_id] or [None]
    if step.kind == "disable":
        current = current_of(secrets)
        assert target is not None and target.enabled and current is not None
        assert observed.current is not None and observed.current[0] == current.secret_id
        assert now - observed.current[1] >= GRACE
    if step.kind == "delete":
        assert target is not None and target.status == "disabled"
        assert now - observed.disabled[target.secret_id] >= GRACE


@settings(max_examples=400)
@given(worlds(), st.booleans())
def test_r2_a_missing_or_lost_record_never_hastens_a_step(
    world: tuple[list[Secret], int, Observed], lost_all: bool
) -> None:
    """What observe() makes of a lost store (None) or of an earlier record: whatever it did not
    cover is observed now, so no grace period has passed for it yet."""
    secrets, now, kept = world
    earlier = None if lost_all else kept
    lost = plan(secrets, now, POLICY, observe(secrets, None, now))
    assert lost.kind not in ("disable", "delete")
    seen = observe(secrets, earlier, now)
    for secret_id, since in seen.disabled.items():
        assert since == (earlier.disabled.get(secret_id, now) if earlier else now)
    current = current_of(secrets)
    if current is None:
        assert seen.current is None
    else:
        known = earlier is not None and earlier.current and earlier.current[0] == current.secret_id
        assert seen.current == (current.secret_id, earlier.current[1] if known else now)
    step = plan(secrets, now, POLICY, seen)
    if step.kind == "delete":
        assert earlier is not None and step.secret_id in earlier.disabled


@settings(max_examples=400)
@given(worlds())
def test_r4_never_a_third_secret(world: tuple[list[Secret], int, Observed]) -> None:
    secrets, now, observed = world
    step = plan(secrets, now, POLICY, observed)
    if step.kind == "create":
        assert len(secrets) < MAX_SECRETS
        assert step.expiration_time == now + LIFETIME
        # The new secret outranks the one it replaces: it becomes current at once.
        new = Secret("zzzz", "enabled", step.expiration_time)
        assert current_of([*secrets, new]) == new


@settings(max_examples=400)
@given(worlds())
def test_none_says_why_and_when(world: tuple[list[Secret], int, Observed]) -> None:
    secrets, now, observed = world
    step = plan(secrets, now, POLICY, observed)
    assert step.reason
    if step.kind == "none":
        assert step.secret_id is None and step.expiration_time is None
        assert (step.next_step_at is None) == (step.why is Why.STUCK)
        if step.next_step_at is not None:
            assert step.next_step_at > now
    assert plan(list(reversed(secrets)), now, POLICY, observed) == step


# What `POST /v1/secrets/rotate` answers as `reason`, in full: the times are UTC to the second
# (NOW is 2027-01-15T08:00:00Z; a time 10 ms short of a second is cut, not rounded).
REASONS = [
    pytest.param([], None, "no secret is enabled: the first is created", id="first"),
    pytest.param([_on("a")], None, "the current secret a never expires", id="never-expires"),
    pytest.param(
        [_on("a", NOW + RENEW)],
        None,
        "the current secret a expires at 2027-01-22T20:00:00Z: its successor is due from "
        "2027-01-15T08:00:00Z",
        id="due",
    ),
    pytest.param(
        [_on("a"), _on("b", LATER)],
        Observed(("b", NOW - GRACE)),
        "b has been current since 2027-01-15T07:00:00Z, over the grace period of 1 h: a is no "
        "longer needed",
        id="disable",
    ),
    pytest.param(
        [_off("a"), _on("b", LATER)],
        Observed(("b", NOW - 9 * GRACE), {"a": NOW - GRACE}),
        "a has been disabled since 2027-01-15T07:00:00Z, over the grace period of 1 h",
        id="delete",
    ),
    pytest.param(
        [_on("a"), _on("b", LATER)],
        Observed(("b", NOW - GRACE + 1)),
        "a may be disabled at 2027-01-15T08:00:00Z, a grace period after b became current",
        id="waiting-to-disable",
    ),
    pytest.param(
        [_off("a"), _on("b", LATER)],
        Observed(("b", NOW - 2 * GRACE), {"a": NOW - 10}),
        "a may be deleted at 2027-01-15T08:59:59Z",
        id="waiting-to-delete",
    ),
    pytest.param(
        [_off("a"), _on("b", OLD_EXP)],
        Observed(("b", NOW - 99 * GRACE), {"a": NOW - 1}),
        "a new secret is due, but the application holds its 2 secrets and none may go yet: a "
        "may be deleted at 2027-01-15T08:59:59Z",
        id="full",
    ),
    pytest.param(
        [_on("a", LATER)],
        Observed(("a", NOW)),
        "the current secret a expires at 2027-02-14T08:00:00Z: its successor is due at "
        "2027-02-06T20:00:00Z",
        id="not-due",
    ),
    pytest.param(
        [_on("a"), _on("b", NOW - 1)],
        Observed(("b", NOW - 99 * GRACE)),
        "the current secret b has expired and no other may be disabled: an operator must act",
        id="stuck-expired",
    ),
    pytest.param(
        [Secret("u", None, None), Secret("t", "gone", None)],
        None,
        "the application holds its 2 secrets and none may go (t, u: a status rotation does not "
        "know): an operator must act",
        id="stuck-unknown",
    ),
    pytest.param(  # a current secret that has not expired is not said to have
        [_on("a", LATER), Secret("u", "gone", None)],
        Observed(("a", NOW - 99 * GRACE)),
        "the application holds its 2 secrets and none may go (u: a status rotation does not "
        "know): an operator must act",
        id="stuck-unknown-beside-a-current-one",
    ),
]


@pytest.mark.parametrize(("secrets", "observed", "reason"), REASONS)
def test_each_reason_in_words(
    secrets: list[Secret], observed: Observed | None, reason: str
) -> None:
    assert _plan(secrets, observed).reason == reason


@pytest.mark.parametrize(
    ("grace_ms", "says"),
    [
        (DAY_MS, "1 d"),
        (25 * 60 * MINUTE_MS, "25 h"),
        (GRACE, "1 h"),
        (90 * MINUTE_MS, "90 min"),
        (5 * MINUTE_MS, "5 min"),
        (90_500, "90.5 s"),
        (30_000, "30 s"),
        (DAY_MS + 30_000, "86430 s"),
    ],
)
def test_the_grace_period_in_words(grace_ms: int, says: str) -> None:
    policy = Policy(lifetime_ms=100 * DAY_MS, grace_ms=grace_ms)
    step = plan([_off("a")], NOW, policy, Observed(None, {"a": NOW - grace_ms}))
    assert step.reason == (
        f"a has been disabled since {at(NOW - grace_ms)}, over the grace period of {says}"
    )


def test_the_times_in_a_reason_are_utc_whatever_the_hosts_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Shanghai")  # UTC+8, no daylight saving
    time.tzset()
    try:
        reason = _plan([_on("a", NOW + RENEW)]).reason
    finally:
        monkeypatch.undo()
        time.tzset()
    assert reason == (
        "the current secret a expires at 2027-01-22T20:00:00Z: its successor is due from "
        "2027-01-15T08:00:00Z"
    )
