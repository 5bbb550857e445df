"""No caller cut off (issue 19, item 8), end to end: twenty callers keep getting M2M access
tokens from the emulator's IDaaS token endpoint (client_secret_basic) with app_billing's current
secret while the rotation schedule (functions/rotation.py, driven by FC's timer event) rotates
it three times: create, disable a grace period later, delete a grace period after that.

- Sixteen callers are CachingClient.get_current in this process, each its own cache (as each
  would be its own process), whose TTL is the grace period, on the emulator's clock: their TTLs
  pass as the emulator's time does.
- Four ask the agent (`vend-client agent`, a process of its own: tests/agent_process.py) for
  the current secret and a token. The agent runs on the machine's clock, which the test does not
  drive, so they ask with refresh_now=true: each token is got with the secret current at that
  moment of the emulator's time, through the agent's own cache and token exchange.

The driver alone moves the emulator's clock and runs the timer, while no caller is between
reading its secret and using it (`Turns`): a use happens at the emulator time of its read, as it
does when time is not driven. Time goes in steps of a third of the grace period while the
application holds two secrets, and leaps to just before the next create when it holds one.

What must hold: 0 token requests refused; no caller holds a secret past the grace period after
its successor became current; the application never holds more than two secrets; every step the
timer took is audited, once, as the schedule's, and is the step EIAM saw."""

from __future__ import annotations

import itertools
import json
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import sdk_clients as sdk
from agent_process import running_agent
from rotation_world import INSTANCE, TOKEN_PATH
from schedule_world import ScheduleWorld, schedule_world

from infra.emulator import Seed
from infra.emulator.oauth import ISSUER_PATH
from shared.lifecycle.plan import Policy
from shared.principal import ROTATION_SERVICE
from vend_client import CachingClient, Credentials

APP = "app_billing"
GRACE_MINUTES = 5  # the least VEND_ROTATION allows: the callers' TTL
GRACE_S = GRACE_MINUTES * 60
LIFETIME_DAYS = 2
POLICY = Policy(lifetime_ms=LIFETIME_DAYS * 86_400_000, grace_ms=GRACE_S * 1000)
ROTATIONS = 3
CACHED_CALLERS = 16
AGENT_CALLERS = 4
AGENT_TOKEN = "agent-token-for-the-rotation-test-000000000001"
BILLING_ARN = f"acs:ram::{sdk.ACCOUNT}:user/billing"


class Turns:
    """Callers take turns together (`caller`), the driver alone (`driver`): while the driver
    moves the clock and runs the timer, no caller is between reading a secret and using it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._callers = 0
        self._driving = False

    @contextmanager
    def caller(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._driving)
            self._callers += 1
        try:
            yield
        finally:
            with self._cond:
                self._callers -= 1
                self._cond.notify_all()

    @contextmanager
    def driver(self) -> Iterator[None]:
        with self._cond:
            self._driving = True  # no caller starts a turn from now on
            self._cond.wait_for(lambda: self._callers == 0)
        try:
            yield
        finally:
            with self._cond:
                self._driving = False
                self._cond.notify_all()


@dataclass
class Log:
    """What the callers saw, under one lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    turns: Counter[int] = field(default_factory=Counter)  # per caller
    tokens: int = 0
    refused: list[tuple[int, str, int, str]] = field(default_factory=list)
    held: list[tuple[int, str, int]] = field(default_factory=list)  # (caller, secret_id, at ms)
    errors: list[str] = field(default_factory=list)
    progressed: threading.Condition = field(default_factory=threading.Condition)

    def turn(self, caller: int, secret_id: str, at: int, status: int, body: str) -> None:
        with self.lock:
            self.held.append((caller, secret_id, at))
            self.tokens += 1
            if status != 200:
                self.refused.append((caller, secret_id, status, body[:200]))
        with self.progressed:
            self.turns[caller] += 1
            self.progressed.notify_all()

    def failed(self, caller: int, error: BaseException) -> None:
        with self.lock:
            self.errors.append(f"caller {caller}: {type(error).__name__}: {error}")
        with self.progressed:
            self.turns[caller] += 1
            self.progressed.notify_all()

    def wait_for_every_caller(self, since: Counter[int], callers: int) -> None:
        """Until each caller has taken a turn since `since` (no caller is left behind a step)."""
        with self.progressed:
            done = self.progressed.wait_for(
                lambda: all(self.turns[c] > since[c] for c in range(callers)), timeout=120
            )
        assert done, f"some callers took no turn: {dict(self.turns)}"


def _listing() -> str:
    entry = {
        "instance_id": INSTANCE,
        "application_id": APP,
        "lifetime_days": LIFETIME_DAYS,
        "grace_minutes": GRACE_MINUTES,
    }
    return json.dumps([entry])


@pytest.fixture
def world(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, tmp_path: Path
) -> Iterator[ScheduleWorld]:
    env = {"VEND_ROTATION": _listing()}
    with schedule_world(monkeypatch, demo_seed, tmp_path, granted=(APP,), env=env) as running:
        yield running


def _caller_env(world: ScheduleWorld) -> dict[str, str]:
    emulator = world.world.emulator.url
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_"))}
    return {
        **base,
        "ALIBABA_CLOUD_ACCESS_KEY_ID": sdk.BILLING[0],
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": sdk.BILLING[1],
        "VEND_URL": world.world.api.url,
        "VEND_AUDIENCE": "vend-local",
        "VEND_STS_ENDPOINT": emulator,
        "VEND_KMS_ENDPOINT": emulator,
        "VEND_AGENT_TOKEN": AGENT_TOKEN,
        "VEND_TOKEN_ENDPOINT": f"{emulator}/{{instance_id}}{ISSUER_PATH}/token",
    }


def _cached_caller(
    world: ScheduleWorld, index: int, turns: Turns, log: Log, stop: threading.Event
) -> Callable[[], None]:
    emulator_s = world.world.now_ms  # the caches' clocks: the emulator's, in seconds below
    cache = CachingClient(
        world.world.api.url,
        audience="vend-local",
        credentials=Credentials(*sdk.BILLING),
        sts_endpoint=world.world.emulator.url,
        kms_endpoint=world.world.emulator.url,
        expected_principal=BILLING_ARN,
        ttl_s=GRACE_S,
        clock=lambda: emulator_s() / 1000,
        wall_clock=lambda: emulator_s() / 1000,
    )
    token_url = f"{world.world.emulator.url}/{INSTANCE}{TOKEN_PATH}"
    session = requests.Session()

    def run() -> None:
        with cache:
            while not stop.is_set():
                try:
                    with turns.caller():
                        secret = cache.get_current(INSTANCE, APP)
                        at = emulator_s()
                        answer = session.post(
                            token_url,
                            data={"grant_type": "client_credentials"},
                            auth=(secret.client_id or "", secret.client_secret),
                            timeout=30,
                        )
                    log.turn(index, secret.secret_id, at, answer.status_code, answer.text)
                except Exception as exc:
                    log.failed(index, exc)

    return run


def _agent_caller(
    world: ScheduleWorld, index: int, agent_url: str, turns: Turns, log: Log, stop: threading.Event
) -> Callable[[], None]:
    query = f"instance_id={INSTANCE}&application_id={APP}&refresh_now=true"
    headers = {"X-Vend-Agent-Token": AGENT_TOKEN}
    session = requests.Session()

    def run() -> None:
        while not stop.is_set():
            try:
                with turns.caller():
                    secret = session.get(
                        f"{agent_url}/v1/secret?{query}", headers=headers, timeout=30
                    )
                    at = world.world.now_ms()
                    token = session.get(
                        f"{agent_url}/v1/token?{query}", headers=headers, timeout=30
                    )
                assert secret.status_code == 200, secret.text
                log.turn(index, secret.json()["secret_id"], at, token.status_code, token.text)
            except Exception as exc:
                log.failed(index, exc)

    return run


def _next_time(world: ScheduleWorld) -> int:
    """Where the driver moves the clock to: a third of a grace period on while the application
    holds two secrets; with one, to a grace period before its successor is due (the callers'
    caches then span the create), or a third of a grace period on if that is sooner."""
    now = world.world.now_ms()
    step = now + GRACE_S * 1000 // 3
    secrets = world.world.secrets(APP)
    if len(secrets) != 1 or secrets[0].expiration_time is None:
        return step
    due = secrets[0].expiration_time - POLICY.renew_before_ms
    return max(step, due - GRACE_S * 1000)


def test_twenty_callers_are_never_cut_off_while_the_timer_rotates_three_times(
    world: ScheduleWorld, tmp_path: Path
) -> None:
    turns, log, stop = Turns(), Log(), threading.Event()
    steps: list[tuple[int, str]] = []  # (emulator ms, step) as the timer took them
    most_secrets = 0
    replaced_at: dict[str, int] = {}  # secret id -> when its successor became current
    callers = CACHED_CALLERS + AGENT_CALLERS
    with running_agent(_caller_env(world), tmp_path, "--expect-principal", BILLING_ARN) as agent:
        bodies = [_cached_caller(world, i, turns, log, stop) for i in range(CACHED_CALLERS)]
        bodies += [
            _agent_caller(world, CACHED_CALLERS + i, agent.url, turns, log, stop)
            for i in range(AGENT_CALLERS)
        ]
        threads = [threading.Thread(target=body, daemon=True) for body in bodies]
        for thread in threads:
            thread.start()
        try:
            deletes = 0
            while deletes < ROTATIONS:
                since = Counter(log.turns)
                with turns.driver():
                    before = world.world.current(APP)
                    report = world.tick()
                    now = world.world.now_ms()
                    taken = [k for k in ("create", "disable", "delete") if report["steps"][k]]
                    assert report["failed"] == 0, world.warnings()
                    steps += [(now, kind) for kind in taken]
                    deletes += taken.count("delete")
                    after = world.world.current(APP)
                    if before is not None and after is not None and after != before:
                        replaced_at[before.secret_id] = now
                    most_secrets = max(most_secrets, len(world.world.secrets(APP)))
                log.wait_for_every_caller(since, callers)
                with turns.driver():
                    world.world.advance((_next_time(world) - world.world.now_ms()) / 1000)
                log.wait_for_every_caller(Counter(log.turns), callers)
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=60)
        agent_log = agent.stderr()

    assert log.errors == []
    # 0 token requests refused, out of many.
    assert log.refused == []
    assert log.tokens >= callers * len(steps)
    # No caller held a secret past the grace period after its successor became current.
    late = [
        (caller, secret_id, at - replaced_at[secret_id])
        for caller, secret_id, at in log.held
        if secret_id in replaced_at and at > replaced_at[secret_id] + GRACE_S * 1000
    ]
    assert late == []
    # Every caller followed the rotations: the seeded secret and the three that replaced it.
    for caller in range(callers):
        seen = {secret_id for c, secret_id, _ in log.held if c == caller}
        assert len(seen) >= ROTATIONS, (caller, seen)
    # Never more than two secrets; three full rotations, each step a grace period apart.
    assert most_secrets == 2
    kinds = [kind for _, kind in steps]
    assert kinds == ["create", "disable", "delete"] * ROTATIONS
    for (at, kind), (later, next_kind) in itertools.pairwise(steps):
        if (kind, next_kind) in (("create", "disable"), ("disable", "delete")):
            assert later - at >= GRACE_S * 1000
    # Every step audited once, as the schedule's, and the same steps EIAM saw.
    records = [
        r
        for r in world.audit()
        if r["action"] == "rotate" and r["principal"] == f"service:{ROTATION_SERVICE}"
    ]
    audited = [r["step"] for r in records if r["outcome"] == "ok" and r["step"] != "none"]
    assert audited == kinds
    assert {r["outcome"] for r in records} == {"ok"}
    # (A session the emulator's leap outdated is refused before EIAM acts, and assumed again:
    # only the calls EIAM answered OK are steps.)
    eiam_calls = {
        kind: sum(
            outcome == "OK"
            for _, _, outcome in world.world.emulator.emulator.calls(
                f"{kind.capitalize()}ApplicationClientSecret"
            )
        )
        for kind in ("create", "disable", "delete")
    }
    assert eiam_calls == {"create": ROTATIONS, "disable": ROTATIONS, "delete": ROTATIONS}
    assert AGENT_TOKEN not in agent_log
