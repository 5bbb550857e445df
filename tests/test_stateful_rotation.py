"""Rotation under interleaved faults, crashes, concurrent runs, store loss and time: a hypothesis
state machine against ONE running world (the emulator, and the service over HTTP with rotation's
clock reading the emulator's; deadline 1.6 s; tests/rotation_world.py), on two applications
that each start with one secret that never expires.

The rules (hypothesis interleaves them):
- rotate: one rotation of an application, maybe a dry run, maybe under faults armed just
  before it;
- together: two rotations of one application at once, on two threads;
- crash: a create whose answer is lost (EIAM holds it past the deadline, or answers and the
  connection is reset while the listing that would recover it fails), then the service dies
  and a new instance takes over (nothing cached);
- read: a caller reads the current secret through the service (obtain, opened from its
  envelope) and gets an M2M token with it; it keeps what it read, and every secret it read
  within the grace period must still get a token;
- inject / clear: faults on AssumeRole, List, Create, Disable, Delete, Obtain, GenerateDataKey
  (503, 429, a reset, a gateway's HTML 502, a malformed 200, before or after the action acts,
  or latency past the deadline), spent after 1 to 3 calls or until cleared;
- lose the store: the memory store forgets every note and lease (once no create is in flight
  at EIAM: a store that loses a create's lease while EIAM still holds it is outside what the
  service promises, contract section 8);
- time: the world's clock moves on (a part of the grace period, a whole one, or to the next
  step a rotation announced).

Checked after every step, from what EIAM holds (read in process):
- R1: every application holds an enabled secret; the secret that was current at the last check
  is still enabled (it stops being current only when a newer one is created, and is disabled a
  grace period after that at the earliest);
- R2: a secret newly disabled was not current, and the current one had been current (since
  this test first saw it so) for the grace period; a secret newly deleted had been disabled
  (since this test first saw it so) for the grace period (less the length of one step, when
  the service noted it during the step that this test checks after);
- R3: one new secret at most per check, and at most one successor per secret it replaced;
- R4: at most 2 secrets, and EIAM never refused a create for its quota;
- R5: no 500 ever, no answer but 200, 429, 502 and 504 while faults are armed, and 200 once
  none is (a 504 while an earlier create's unknown outcome holds the application's lease, until
  it lapses);
- no caller cut off: every secret a caller read within the grace period still gets a token.

The default run is reproducible and small, for `make test` (6 runs of 30 steps). By environment:
    VEND_ROTATION_STATEFUL_EXAMPLES  runs (default 6)
    VEND_ROTATION_STATEFUL_STEPS     steps per run (default 30)
    VEND_ROTATION_STATEFUL_SEED      an integer: random runs from that seed instead
    VEND_ROTATION_STATEFUL_TRACE     1: print every step to stderr as it runs (with -s)
"""

from __future__ import annotations

import functools
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from injected_faults import KINDS
from rotation_world import (
    CREATE,
    DELETE,
    DISABLE,
    GRACE_S,
    INSTANCE,
    LIST,
    OBTAIN,
    RotationWorld,
    rotation_policy,
    rotation_seed,
    rotation_world,
)

from infra.emulator import Seed
from shared.idempotency.memory import process_memory_store
from shared.lifecycle.current import Secret, current_of
from vend_client import VendClientError

APPS = ("app_rot_0", "app_rot_1")
TIMEOUT_S = 2
DEADLINE_S = 0.8 * TIMEOUT_S
LATENCY_MS = 2000  # past the deadline
# A create whose outcome stayed unknown holds its application's lease two deadlines past its
# send, which is within its own deadline: three deadlines after the request began, at most.
LEASE_S = 3 * DEADLINE_S + 0.8
# How long (emulator time) one step may take: the service notes what it observed during a step,
# this test after it.
STEP_SLACK_MS = 15_000
GRACE_MS = GRACE_S * 1000

EXAMPLES = int(os.environ.get("VEND_ROTATION_STATEFUL_EXAMPLES", "6"))
STEPS_PER_EXAMPLE = int(os.environ.get("VEND_ROTATION_STATEFUL_STEPS", "30"))
SEED = os.environ.get("VEND_ROTATION_STATEFUL_SEED")
TRACE = os.environ.get("VEND_ROTATION_STATEFUL_TRACE", "") == "1"

FAULTED = ("AssumeRole", LIST, CREATE, DISABLE, DELETE, OBTAIN, "GenerateDataKey")
FAULT_ANSWERS = {(429, "Throttled"), (502, "UpstreamError"), (504, "UpstreamTimeout")}
STATS: Counter[str] = Counter()
# Every violation as first met: hypothesis replays a failing run to report it, and a replay
# against a real world may go otherwise (which it then calls flaky).
FAILURES: list[str] = []


def _fault(action: str, kind: str, phase: str, times: int | None) -> dict[str, object]:
    spec: dict[str, object] = {"action": action, "phase": phase}
    if kind in KINDS:
        spec.update(KINDS[kind])
    else:  # latency past the deadline: one call, it costs a whole deadline
        spec = {"action": action, "latency_ms": LATENCY_MS}
        times = 1
    if times is not None:
        spec["times"] = times
    return spec


FAULTS = st.builds(
    _fault,
    st.sampled_from(FAULTED),
    st.sampled_from([*KINDS] * 3 + ["latency"]),
    st.sampled_from(["before", "after"]),
    st.sampled_from([1, 2, 3, None]),
)
ARM = st.one_of(st.none(), st.none(), st.lists(FAULTS, min_size=1, max_size=2))
DRY = st.sampled_from([False] * 4 + [True])
TIME_STEPS = ["next", "half", "next", "grace", "next", "quarter"]
# Rotations first and time last: hypothesis leans to both ends of a list.
STEP_WEIGHTS = (
    ["rotate"] * 5
    + ["read"] * 2
    + ["crash", "inject", "clear", "lose_the_store"]
    + ["together"] * 2
    + ["time"] * 6
)


@dataclass
class App:
    name: str
    current: str | None = None  # at the last check
    current_since: dict[str, int] = field(default_factory=dict)  # first seen current (ms)
    disabled_since: dict[str, int] = field(default_factory=dict)  # first seen disabled (ms)
    seen: set[str] = field(default_factory=set)  # every secret it ever held
    present: set[str] = field(default_factory=set)  # what it held at the last check
    successor: dict[str, str] = field(default_factory=dict)  # replaced -> its replacement
    held_until: float = 0.0  # monotonic: an unknown create may hold the lease until then
    next_step_at: int | None = None
    reads: list[tuple[str, int]] = field(default_factory=list)  # (secret read, at ms)


def counted(step: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(step)
    def run(self: RotationMachine, *args: Any) -> None:
        STATS[f"rule {step.__name__}"] += 1
        try:
            step(self, *args)
        except BaseException:
            self.broken = True
            raise

    return run


class RotationMachine(RuleBasedStateMachine):
    world: RotationWorld  # set by the test's subclass
    quiet_at = 0.0  # monotonic: no create can still be held at EIAM after this

    def __init__(self) -> None:
        super().__init__()
        w = self.world
        self.broken = False
        self.trace: list[str] = []
        self.t0 = time.monotonic()
        self._sleep_until(RotationMachine.quiet_at)
        w.faults()
        for app in APPS:  # each run starts with one secret that never expires
            w.empty(app)
            w.operator_create(app)
        process_memory_store().clear()
        w.restart()
        self.apps = {name: App(name) for name in APPS}
        self.check()

    # -- helpers ---------------------------------------------------------------------------

    def _note(self, line: str) -> None:
        self.trace.append(f"{time.monotonic() - self.t0:7.2f}s {line}")
        if TRACE:
            print(self.trace[-1], file=sys.__stderr__)

    def _fail(self, message: str) -> None:
        self.broken = True
        FAILURES.append(message + "\nlast steps:\n" + "\n".join(self.trace[-40:]))
        raise AssertionError(FAILURES[-1])

    @staticmethod
    def _sleep_until(when: float) -> None:
        pause = when - time.monotonic()
        if pause > 0:
            time.sleep(pause)

    def _armed(self) -> list[str]:
        """The faults that may still fire (the emulator's rules, read in process)."""
        faults = self.world.emulator.emulator.faults
        with faults._lock:
            return [
                f"{r.fault.action}:{r.remaining}"
                for r in faults._rules
                if r.remaining is None or r.remaining > 0
            ]

    def _arm(self, faults: list[dict[str, object]] | None) -> None:
        if faults is None:
            return
        self.world.faults(*faults)
        if any(f.get("action") == CREATE and f.get("latency_ms") for f in faults):
            # A create EIAM holds lands a deadline and its latency after it was sent, at most.
            landed = time.monotonic() + DEADLINE_S + LATENCY_MS / 1000 + 1.0
            RotationMachine.quiet_at = max(RotationMachine.quiet_at, landed)
        self._note(f"faults {faults}")

    def _rotate(self, app: App, dry_run: bool = False) -> None:
        armed = self._armed()
        sent = time.monotonic()
        try:
            resp = self.world.rotate(app.name, dry_run=dry_run or None, timeout=30)
        except requests.RequestException as exc:
            self._fail(f"rotate {app.name}: no answer ({exc})")
            return
        status = resp.status_code
        body = resp.json()
        what = body["step"] if status == 200 else body["error"]["code"]
        STATS[f"rotate {status} {what}"] += 1
        self._note(f"rotate {app.name} dry={dry_run} armed={armed or '-'} -> {status} {what}")
        if status == 200:
            listed = {s["secret_id"] for s in body["secrets"]}
            if body["current_secret_id"] is not None and body["current_secret_id"] not in listed:
                self._fail(f"the current secret is not among the secrets: {body}")
            app.next_step_at = body["next_step_at"]
            return
        if "may have been created" in body["error"]["message"] or armed:
            app.held_until = max(app.held_until, sent + LEASE_S)
        if (status, what) not in FAULT_ANSWERS:
            self._fail(f"R5: rotate {app.name} answered {status} {what}: {body}")
        if not armed and not (status == 504 and sent < app.held_until):
            self._fail(f"R5: no fault armed, yet rotate {app.name} answered {status} {body}")

    # -- rules -----------------------------------------------------------------------------

    # One rule draws which step comes next, from a weighted list (hypothesis leans to the rule
    # it lists first, and lists them by name): rotations the most, then reads, time, faults.
    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        what = data.draw(st.sampled_from(STEP_WEIGHTS), label="step")
        app = data.draw(st.sampled_from(APPS), label="app")
        if what == "rotate":
            self.rotate(app, data.draw(ARM, label="arm"), data.draw(DRY, label="dry_run"))
        elif what == "together":
            self.together(app, data.draw(ARM, label="arm"))
        elif what == "crash":
            self.crash(app, data.draw(st.sampled_from(["held", "reset"]), label="how"))
        elif what == "read":
            self.read(app)
        elif what == "inject":
            self.inject(data.draw(st.lists(FAULTS, min_size=1, max_size=3), label="faults"))
        elif what == "clear":
            self.clear()
        elif what == "lose_the_store":
            self.lose_the_store()
        else:
            self.time_passes(data.draw(st.sampled_from(TIME_STEPS), label="by"))

    @counted
    def rotate(self, app: str, arm: list[dict[str, object]] | None, dry_run: bool) -> None:
        self._arm(arm)
        self._rotate(self.apps[app], dry_run)

    @counted
    def together(self, app: str, arm: list[dict[str, object]] | None) -> None:
        """Two runs of one application at once: the lease and the plan made again under it
        take the step once."""
        self._arm(arm)
        failed: list[BaseException] = []

        def run() -> None:
            try:
                self._rotate(self.apps[app])
            except BaseException as exc:
                failed.append(exc)

        threads = [threading.Thread(target=run) for _ in "ab"]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if failed:
            raise failed[0]

    @counted
    def crash(self, app: str, how: str) -> None:
        """A create whose answer is lost, then the service dies: the next instance finds the
        application's lease, or the secret already made."""
        if how == "held":
            faults = [{"action": CREATE, "latency_ms": LATENCY_MS, "times": 1}]
        else:
            faults = [
                {"action": CREATE, "reset": True, "phase": "after", "times": 1},
                {"action": LIST, "status": 503, "code": "ServiceUnavailable", "times": 4},
            ]
        self._arm(faults)
        self._rotate(self.apps[app])
        self.world.faults()
        self.world.restart()
        self._note(f"crash ({how}): a new instance")

    @counted
    def read(self, app: str) -> None:
        """A caller reads the current secret through the service and uses it."""
        model = self.apps[app]
        current = current_of(self.world.secrets(app))
        armed = self._armed()
        if current is None:
            self._fail(f"R1: {app} has no enabled secret")
            return
        try:
            got = self.world.client().obtain(INSTANCE, app, current.secret_id)
        except VendClientError as err:
            STATS["read refused"] += 1
            if not armed:
                self._fail(f"no fault armed, yet the obtain of {current.secret_id} failed: {err}")
            return
        if got.secret_id != current.secret_id:
            self._fail(f"obtain of {current.secret_id} answered {got.secret_id}")
        model.reads.append((current.secret_id, self.world.now_ms()))
        STATS["read ok"] += 1
        self._note(f"read {app}: {current.secret_id}")

    @counted
    def inject(self, faults: list[dict[str, object]]) -> None:
        self._arm(faults)

    @counted
    def clear(self) -> None:
        self.world.faults()
        self._note("faults cleared")

    @counted
    def lose_the_store(self) -> None:
        self._sleep_until(RotationMachine.quiet_at)
        process_memory_store().clear()
        self._note("the store forgot everything")

    @counted
    def time_passes(self, by: str) -> None:
        w = self.world
        if by == "next":
            now = w.now_ms()
            due = [a.next_step_at for a in self.apps.values() if (a.next_step_at or 0) > now]
            seconds = (min(due) - now) / 1000 if due else GRACE_S
        else:
            seconds = {"quarter": GRACE_S / 4, "half": GRACE_S / 2, "grace": GRACE_S}[by]
        w.advance(seconds)
        self._note(f"time passes: {seconds:.0f} s")

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def check(self) -> None:
        now = self.world.now_ms()
        quota = [o for _, _, o in self.world.emulator.emulator.calls(CREATE) if "Quota" in o]
        if quota:
            self._fail(f"R4: EIAM refused a create for its quota ({len(quota)} times)")
        for app in self.apps.values():
            self._check_app(app, self.world.secrets(app.name), now)

    def _check_app(self, app: App, secrets: list[Secret], now: int) -> None:
        held = {s.secret_id: s for s in secrets}
        current = current_of(secrets)
        if len(secrets) > 2:
            self._fail(f"R4: {app.name} holds {sorted(held)}")
        if current is None:
            self._fail(f"R1: {app.name} holds no enabled secret: {secrets}")
            return
        previous = app.current
        if previous is not None and previous != current.secret_id:
            was = held.get(previous)
            if was is None or not was.enabled:
                self._fail(f"R1: {previous}, current at the last check, is now {was}")
        new = held.keys() - app.seen
        if len(new) > 1:
            self._fail(f"R3: {app.name} gained {sorted(new)} at once")
        for made in new:
            if previous is not None:
                if previous in app.successor:
                    self._fail(
                        f"R3: {previous} was replaced twice: {app.successor[previous]}, {made}"
                    )
                app.successor[previous] = made
        app.seen |= held.keys()
        app.current_since.setdefault(current.secret_id, now)
        for secret in secrets:
            if secret.status == "disabled" and secret.secret_id not in app.disabled_since:
                # R2: newly disabled, and not the current one at the last check (R1 above).
                since = app.current_since[current.secret_id]
                if now - since < GRACE_MS - STEP_SLACK_MS:
                    self._fail(
                        f"R2: {secret.secret_id} disabled {(now - since) / 1000:.0f} s after "
                        f"{current.secret_id} became current"
                    )
                app.disabled_since[secret.secret_id] = now
        for gone in app.present - held.keys():
            since_disabled = app.disabled_since.pop(gone, None)
            if since_disabled is None:
                self._fail(f"R2: {gone} was deleted without being disabled first")
            if since_disabled is not None and now - since_disabled < GRACE_MS - STEP_SLACK_MS:
                self._fail(
                    f"R2: {gone} deleted {(now - since_disabled) / 1000:.0f} s after it was "
                    "disabled"
                )
            app.current_since.pop(gone, None)
        app.present = set(held)
        app.current = current.secret_id
        # No caller cut off: what a caller read within the grace period still works.
        for secret_id, read_at in app.reads:
            if now - read_at < GRACE_MS - STEP_SLACK_MS:
                secret = held.get(secret_id)
                if secret is None or not secret.enabled:
                    self._fail(f"a caller read {secret_id} in its grace period; now {secret}")
        app.reads = [(s, t) for s, t in app.reads if now - t < GRACE_MS]

    def teardown(self) -> None:
        """Faults cleared and any held create landed, every application rotates (200)."""
        self.world.faults()
        if self.broken:
            return
        self._sleep_until(RotationMachine.quiet_at)
        for app in self.apps.values():
            self._sleep_until(app.held_until)
            resp = self.world.rotate(app.name)
            if resp.status_code != 200:
                self._fail(f"R5: at the end, with no fault, rotate answered {resp.text}")
        self.check()


@pytest.fixture
def world(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, tmp_path: Path
) -> Iterator[RotationWorld]:
    with rotation_world(
        monkeypatch,
        rotation_seed(demo_seed),
        rotation_policy(tmp_path / "policy.json"),
        # Request after request, on sessions the moving clock keeps expiring.
        env={"VEND_ASSUME_ROLE_RATE": "1000"},
        timeout_s=TIMEOUT_S,
    ) as running:
        yield running


def test_rotation_under_faults_crashes_races_store_loss_and_time(
    world: RotationWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    class Machine(RotationMachine):
        pass

    Machine.world = world

    def factory() -> RotationMachine:
        return Machine()

    if SEED is not None:
        factory = hypothesis_seed(int(SEED))(factory)
    STATS.clear()
    FAILURES.clear()
    started = time.monotonic()
    try:
        _run(factory)
    except BaseException as exc:
        if FAILURES:
            raise AssertionError(FAILURES[0]) from exc
        raise
    with capsys.disabled():
        print(f"\n[stateful rotation] {time.monotonic() - started:.1f}s")
        for k, v in sorted(STATS.items()):
            print(f"  {k}: {v}")
    assert STATS["rule rotate"] + STATS["rule together"] > 0


def _run(factory: Callable[[], RotationMachine]) -> None:
    run_state_machine_as_test(
        factory,
        _min_steps=STEPS_PER_EXAMPLE,
        settings=settings(
            max_examples=EXAMPLES,
            stateful_step_count=STEPS_PER_EXAMPLE,
            deadline=None,
            derandomize=SEED is None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],
            report_multiple_bugs=False,
        ),
    )
