"""Keyed creates under interleaved upstream faults, emulator restarts and store restarts: a
hypothesis state machine against ONE running stack (the emulator, and the FC HTTP handler
behind the local FC API, deadline 1.6 s), over the memory store and a persistent redis-server.

The rules (hypothesis interleaves them, and turns some off in some runs):
- create: a keyed create by billing with a new key, or a retry of the key left unresolved
  last (once, or every 0.1 s while it is a 409, when EIAM may still hold its create);
- revisit: a retry of the key used last or of any key, or an obtain of a key's secret;
  (both may first install faults, and may send a failed create again at once)
- inject: faults on CreateApplicationClientSecret, ListApplicationClientSecrets,
  ObtainApplicationClientSecret, AssumeRole and GenerateDataKey: 503 or 429, before or after
  the action, a reset connection, a gateway's HTML 502, a malformed 200, latency past the
  deadline (2 s) or within it (1.3 s); spent after 1 to 4 calls, or until cleared;
- chaos: clear the faults, restart the emulator (STS sessions and nonces forgotten), restart
  redis-server (SIGKILL, then started again on its append-only file), or let time pass.

Issue 9's invariants, checked after every step:
- I1: for one (principal, Idempotency-Key) at most one client secret is ever created; every
  200 for that key carries the same secret_id;
- I5: once no fault is armed, the next request succeeds (no poisoned STS session, SDK client
  or store connection). A keyed create whose attempt ended unresolved keeps its key "in
  progress" (409 IdempotencyInProgress) until its mark lapses, two request deadlines after its
  create was sent, so at most three after the attempt began: a 409 is accepted only within
  that window;
- no 500 ever, nor a 404 for a secret that exists, nor any answer but 200, 409 in progress,
  429, 502 and 504 while faults are armed.
At the end of each run, with the faults cleared, every held create landed (waited for) and
every mark lapsed (the service's lapse clock moved past it: tests/stack.py LapseClock), every
key answers 200 with its one secret, whose envelope opens to the client secret EIAM holds.
During the run, time passes for the marks as for everything else: on the wall clock.

Each key gets an application of its own (the seed here adds empty applications to the demo
world, and a policy lets billing create and obtain in them): an application holds at most one
live key at a time, so it must hold at most one secret, and that key's. When every application
is taken, a finished key (one that was answered 200) is retired: its secrets are deleted
through the operator's EIAM SDK client and it is never asked again.

What the machine found is kept below as a plain reproduction, with its own stack:
test_a_create_sent_late_and_held_past_the_lapse_is_not_made_twice (I1).

A violation is reported as it first happened (the message, the key's answers, the last steps
with the faults armed at each), even when hypothesis's replay of the run does not meet it again.

The default run, for `make test`, is reproducible and small: 4 runs of 40 steps per store, each
store with fixed runs of its own (a seed per store, where both stores used to draw the same 8
sequences of rules), chosen so that each of the three after hypothesis's first (its simplest:
40 clears) interleaves every rule, and between them they draw creates held early and late,
polls, emulator restarts and (Redis) store restarts, also mid-create; the test checks that
they still do.
`make stateful-long` runs 20 of 200 per store. By environment:
    VEND_STATEFUL_EXAMPLES  runs per store (default 4)
    VEND_STATEFUL_STEPS     steps per run (default 40)
    VEND_STATEFUL_SEED      an integer: random runs from that seed (the same on both stores)
                            instead of the fixed ones
    VEND_STATEFUL_SHRINK    1: shrink a failure (slow: each replay runs against the real stack)
    VEND_STATEFUL_TRACE     1: print every step and its answer to stderr as it runs (with -s)
e.g. VEND_STATEFUL_EXAMPLES=25 VEND_STATEFUL_STEPS=60 VEND_STATEFUL_SEED=7 \
    .venv/bin/pytest tests/test_stateful_faults.py -q -p no:cacheprovider
"""

from __future__ import annotations

import functools
import json
import os
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import sdk_clients as sdk
from alibabacloud_eiam20211201 import models as eiam_models
from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from injected_faults import KINDS
from redis_server import PersistentRedis
from stack import DEMO_POLICY, LapseClock, Stack, running_stack

from infra.emulator import Seed, parse_seed
from vend_client import VendApiError, VendClient

pytest_plugins = ["redis_server"]

INSTANCE = sdk.INSTANCE
APPS = tuple(f"app_sf_{i}" for i in range(8))
TIMEOUT_S = 2  # the function's timeout: the request deadline is 0.8 of it, 1.6 s
DEADLINE_S = 0.8 * TIMEOUT_S
# A key whose attempt ended unresolved is "in progress" until two deadlines after its create
# was sent, which is within the attempt's own deadline: at most three deadlines after the
# attempt began (plus the little time between our send and the handler's start).
LAPSE_S = 3 * DEADLINE_S
LAPSE_SLACK_S = 0.8
LATENCY_MS = 2000  # past the deadline
SLOW_MS = 1300  # within it

EXAMPLES = int(os.environ.get("VEND_STATEFUL_EXAMPLES", "4"))
STEPS_PER_EXAMPLE = int(os.environ.get("VEND_STATEFUL_STEPS", "40"))
SEED = os.environ.get("VEND_STATEFUL_SEED")
SHRINK = os.environ.get("VEND_STATEFUL_SHRINK", "") == "1"
TRACE = os.environ.get("VEND_STATEFUL_TRACE", "") == "1"
# Without VEND_STATEFUL_SEED, each store's own fixed runs (see the docstring), and what they
# must draw between them.
STORE_SEEDS = {"memory": 37, "redis": 52}
DRAWN = {
    "rule create",
    "rule revisit",
    "rule inject",
    "rule chaos",
    "drew held early",
    "drew held late",
    "drew poll",
    "restart-emulator",
}
DRAWN_REDIS = {"restart-store", "restart-store-mid-create"}

CREATE = "CreateApplicationClientSecret"
LIST = "ListApplicationClientSecrets"
OBTAIN = "ObtainApplicationClientSecret"
FAULTED_ACTIONS = (CREATE, LIST, OBTAIN, "AssumeRole", "GenerateDataKey")

# What a request may answer while a fault is armed, besides 200.
FAULT_ANSWERS = {
    (409, "IdempotencyInProgress"),
    (429, "Throttled"),
    (502, "UpstreamError"),
    (504, "UpstreamTimeout"),
}

# Steps run, per store, over the whole session, and what they did (reported at the end).
STEPS: dict[str, int] = {}
STATS: dict[str, Counter[str]] = {}


# -- the world ---------------------------------------------------------------------------------


def stateful_seed(demo_seed: Seed) -> Seed:
    """The demo world plus empty applications APPS in instance idaas_demo."""
    data = demo_seed.model_dump(mode="json")
    (instance,) = [i for i in data["eiam_instances"] if i["instance_id"] == INSTANCE]
    instance["applications"].extend({"application_id": app, "secrets": []} for app in APPS)
    return parse_seed(data)


def stateful_policy(path: Path) -> Path:
    """The demo policy, plus: billing may create and obtain in every application of APPS."""
    policy = json.loads(DEMO_POLICY.read_text())
    policy["Statement"].append(
        {
            "Sid": "billing-creates-in-the-stateful-apps",
            "Effect": "Allow",
            "Principal": {"RAM": [f"acs:ram::{sdk.ACCOUNT}:user/billing"]},
            "Action": [f"eiam:{CREATE}", f"eiam:{OBTAIN}"],
            "Resource": [sdk.secret_arn(app, "*") for app in APPS],
        }
    )
    path.write_text(json.dumps(policy))
    return path


@dataclass
class World:
    """What every example of one test shares: the running stack, and the store's server."""

    stack: Stack
    store: str
    redis: PersistentRedis | None
    client: VendClient
    # No create can still be in flight at EIAM after this (time.monotonic()).
    quiet_at: float = 0.0
    # Every violation, as first met: hypothesis replays a failing run to report it, and a
    # replay against a real stack may fail elsewhere (or not), which it then calls flaky.
    failures: list[str] = field(default_factory=list)


# -- the model ---------------------------------------------------------------------------------


def counted(step: Callable[..., None]) -> Callable[..., None]:
    """A rule's body: counted as a step; a failure in it marks the machine broken, so that its
    teardown only cleans up (and does not hide the failure under another)."""

    @functools.wraps(step)
    def run(self: FaultMachine, **kw: Any) -> None:
        STEPS[self.world.store] = STEPS.get(self.world.store, 0) + 1
        STATS.setdefault(self.world.store, Counter())[f"rule {step.__name__}"] += 1
        try:
            step(self, **kw)
        except BaseException:
            self.broken = True
            raise
        finally:
            self.again = False

    return run


@dataclass
class Key:
    name: str
    app: str
    # (time sent, status, code or secret_id) of every create under this key, in order.
    answers: list[tuple[float, int, str]] = field(default_factory=list)
    secret_ids: set[str] = field(default_factory=set)  # of its 200 answers
    last_unanswered: float = -1e9  # when the latest attempt that did not get a 200 was sent
    marks: list[float] = field(default_factory=list)  # see FaultMachine._send_create
    held_at: float = -1e9  # when the latest attempt sent while EIAM held creates was sent
    retired: bool = False
    last_used: float = 0.0

    @property
    def secret_id(self) -> str | None:
        return next(iter(self.secret_ids)) if len(self.secret_ids) == 1 else None


def _fault_spec(
    action: str, slow_action: str, kind: str, phase: str, times: int | None
) -> dict[str, object]:
    spec: dict[str, object] = {"action": slow_action if kind == "latency" else action}
    if kind == "slow":  # before the create: what delays it
        spec["action"] = {CREATE: LIST, OBTAIN: "GenerateDataKey"}.get(action, action)
    spec["phase"] = phase
    if kind in KINDS:
        spec.update(KINDS[kind])
    elif kind == "slow":  # slow but in time: what follows it is sent late in the deadline
        spec.update(latency_ms=SLOW_MS)
        times = 1
    else:  # latency past the deadline: always spent by one call, it costs a whole deadline
        spec.update(latency_ms=LATENCY_MS)
        times = 1
    if times is not None:
        spec["times"] = times
    return spec


FAULTS = st.builds(
    _fault_spec,
    st.sampled_from(FAULTED_ACTIONS),
    # A create held past the deadline is what tests the lapse most: it is the likeliest slow one.
    st.sampled_from([CREATE] * 4 + [LIST, OBTAIN, "AssumeRole", "GenerateDataKey"]),
    # Latency is rare: each costs a whole deadline.
    st.sampled_from([*KINDS] * 3 + ["latency", "slow"]),
    st.sampled_from(["before", "after"]),
    st.sampled_from([1, 2, 3, 4, None, None]),  # None: until cleared
)

# Faults that replace the emulator's right before a request, or None (the current ones stay).
ARM = st.one_of(st.none(), st.none(), st.lists(FAULTS, min_size=1, max_size=2))

# Chaos besides faults; the Redis machine adds store restarts.
CHAOS = [("clear", 0.0), ("clear", 0.0), ("restart-emulator", 0.0), ("wait", 0.5)]


class FaultMachine(RuleBasedStateMachine):
    world: World  # set by the factory's subclass

    def __init__(self) -> None:
        super().__init__()
        w = self.world
        self.stack, self.client = w.stack, w.client
        self.run = uuid.uuid4().hex[:8]
        self.keys: dict[str, Key] = {}
        self.app_live: dict[str, Key | None] = dict.fromkeys(APPS)
        self.app_keys: dict[str, list[str]] = {app: [] for app in APPS}
        self.app_seen: dict[str, set[str]] = {app: set() for app in APPS}
        self.next_app = 0
        self.broken = False
        self.restarts = 0
        self.store_disturbed = False  # redis-server restarts while a request is served
        self.again = False  # set by a rule: a create that fails is sent once more at once
        self.t0 = time.monotonic()
        self.trace: list[str] = []
        # A clean start: no fault, no create in flight, no secret in the applications.
        self._clear_faults()
        waited = time.monotonic()
        self._sleep_until(w.quiet_at)
        STATS.setdefault(w.store, Counter())["seconds waiting for held creates to land"] += round(
            time.monotonic() - waited, 1
        )
        for app in APPS:
            for secret_id in self._eiam_secrets(app):
                self._operator_delete(app, secret_id)
            assert not self._eiam_secrets(app)

    # -- helpers ---------------------------------------------------------------------------

    def _note(self, line: str) -> None:
        self.trace.append(f"{time.monotonic() - self.t0:7.2f}s {line}")
        if TRACE:
            print(f"[{self.world.store} {self.run}] {self.trace[-1]}", file=sys.__stderr__)

    def _fail(self, message: str, key: Key | None = None) -> None:
        self.broken = True
        history = ""
        if key is not None:
            history = f"\nkey {key.name} in {key.app}: " + ", ".join(
                f"{t - self.t0:.2f}s:{status} {what}" for t, status, what in key.answers
            )
        trace = "\n".join(self.trace[-60:])
        self.world.failures.append(f"{message}{history}\nlast steps:\n{trace}")
        raise AssertionError(self.world.failures[-1])

    def _count(self, what: str) -> None:
        STATS.setdefault(self.world.store, Counter())[what] += 1

    @staticmethod
    def _sleep_until(when: float) -> None:
        pause = when - time.monotonic()
        if pause > 0:
            time.sleep(pause)

    def _eiam_secrets(self, app: str) -> set[str]:
        """What EIAM holds for the application, read in process: faults do not touch it."""
        eiam = self.stack.emulator.emulator.eiam
        with eiam.lock:
            return set(eiam.state[INSTANCE][app].secrets)

    def _eiam_client_secret(self, app: str, secret_id: str) -> str:
        eiam = self.stack.emulator.emulator.eiam
        with eiam.lock:
            return eiam.state[INSTANCE][app].secrets[secret_id].client_secret

    def _operator_delete(self, app: str, secret_id: str) -> None:
        request = eiam_models.DeleteApplicationClientSecretRequest(
            instance_id=INSTANCE, application_id=app, secret_id=secret_id
        )
        sdk.eiam(self.stack.emulator.endpoint, sdk.OPERATOR).delete_application_client_secret(
            request
        )

    def _armed(self) -> list[str]:
        """The faults that may still fire. The emulator's admin API shows the faults but not
        what is left of their `times`, so this reads its rules in process."""
        faults = self.stack.emulator.emulator.faults
        with faults._lock:
            return (["redis-server restarting"] if self.store_disturbed else []) + [
                f"{r.fault.action}{'(slow)' if r.fault.latency_ms else ''}:{r.remaining}"
                for r in faults._rules
                if r.remaining is None or r.remaining > 0
            ]

    def _clear_faults(self) -> None:
        requests.delete(f"{self.stack.emulator.url}/_emulator/faults", timeout=5).raise_for_status()

    def _create(self, key: Key) -> tuple[int, str, bool]:
        """A keyed create; if it fails and the rule said `again`, sent once more at once, as a
        caller that retries straight away (into the 409 of a create still in flight, or a
        take-over)."""
        answer = self._send_create(key)
        if answer[0] != 200 and self.again:
            self.again = False
            answer = self._send_create(key)
        return answer

    def _send_create(self, key: Key) -> tuple[int, str, bool]:
        """One keyed create, checked against what may be answered. Returns (status, code or
        secret_id, whether no fault was armed when it was sent)."""
        armed = self._armed()
        sent = time.monotonic()
        key.last_used = sent
        try:
            made = self.client.create(INSTANCE, key.app, idempotency_key=key.name)
            status, what = 200, made.secret_id
        except VendApiError as err:
            status, what = err.status, err.code
        key.answers.append((sent, status, what))
        self._count("requests sent with a fault armed" if armed else "requests sent with none")
        self._count(f"create {status}" if status == 200 else f"create {status} {what}")
        self._note(
            f"create {key.name} ({key.app}) armed={armed or '-'} -> {status} {what}"
            f" in {time.monotonic() - sent:.2f}s"
        )
        # The attempts that may have left the key marked in progress: those that claimed it
        # and got no secret (a 409 claims nothing), and one whose store went away under it
        # (it may have made the secret, and failed to record it). The latest one's mark holds
        # the key until it lapses.
        in_lapse = bool(key.marks) and sent - max(key.marks) < LAPSE_S + LAPSE_SLACK_S
        never = not key.marks
        if status != 409 and (status != 200 or self.store_disturbed):
            key.marks.append(sent)
        if status == 200:
            key.secret_ids.add(what)
            return status, what, not armed
        held = any(a.startswith(f"{CREATE}(slow)") for a in armed)
        if status != 409:
            key.last_unanswered = sent
            key.held_at = sent if held else key.held_at
        if held:
            # A create EIAM holds may land until then (sent within the deadline, then held).
            landed = sent + DEADLINE_S + LATENCY_MS / 1000 + LAPSE_SLACK_S
            self.world.quiet_at = max(self.world.quiet_at, landed)
        busy = (status, what) == (409, "IdempotencyInProgress")
        if (status, what) not in FAULT_ANSWERS:
            self._fail(f"create answered {status} {what}", key)
        if busy and never:
            self._fail("409 in progress for a key that no attempt marked", key)
        if not armed and not (busy and in_lapse):
            self._fail(
                f"I5: no fault was armed, yet the create answered {status} {what}"
                + (" (past the lapse of its earlier attempts)" if busy else ""),
                key,
            )
        return status, what, not armed

    def _live(self) -> list[Key]:
        return [k for k in self.keys.values() if not k.retired]

    def _free_app(self) -> str | None:
        for i in range(len(APPS)):
            app = APPS[(self.next_app + i) % len(APPS)]
            if self.app_live[app] is None:
                self.next_app = (self.next_app + i + 1) % len(APPS)
                return app
        return None

    def _retire_one(self) -> str | None:
        """Retires the least recently used key that was answered 200: deletes its
        application's secrets, as an operator would. Returns the application freed."""
        done = sorted((k for k in self._live() if k.secret_ids), key=lambda k: k.last_used)
        if not done:
            return None
        key = done[0]
        present = self._eiam_secrets(key.app)
        if present != key.secret_ids:
            self._fail(f"retiring: {key.app} holds {sorted(present)}", key)
        for secret_id in present:
            self.app_seen[key.app].add(secret_id)
            self._operator_delete(key.app, secret_id)
        key.retired = True
        self.app_live[key.app] = None
        self._note(f"retire {key.name}: deleted {sorted(present)} from {key.app}")
        return key.app

    # -- rules -----------------------------------------------------------------------------

    def _create_new(self) -> None:
        app = self._free_app() or self._retire_one()
        if app is None:
            self._note("create_new: every application is taken by an unfinished key: a retry")
            self._create(min(self._live(), key=lambda k: k.last_used))
            return
        key = Key(f"sf-{self.run}-{len(self.keys)}", app)
        self.keys[key.name] = key
        self.app_live[app] = key
        self.app_keys[app].append(key.name)
        self._create(key)

    # Each request rule first installs `arm`, if any: faults that replace the emulator's.
    # `again`: a create that fails is sent once more at once, as a caller retrying straight
    # away would (into the 409 of a create still in flight, or a take-over).

    @rule(
        which=st.sampled_from(["new", "new", "new", "unresolved", "poll"]),
        arm=ARM,
        again=st.booleans(),
        held=st.sampled_from([None] * 10 + ["early", "late"]),
    )
    @counted
    def create(
        self, which: str, arm: list[dict[str, object]] | None, again: bool, held: str | None
    ) -> None:
        """A create that may make a secret: with a new key, in an application of its own
        ("new"), or a retry of the key whose attempt most recently ended without a secret
        ("unresolved"), while its create may still be in flight (409 until the lapse) or
        after (a take-over), or, if EIAM may still hold that attempt's create, such a retry
        sent again every 0.1 s while it is a 409 ("poll"), so that one comes right as the
        mark lapses.
        `held`: EIAM holds this create past the deadline, then makes the secret (it lands
        after the 504), as the faults of `arm` alone would seldom arrange: sent early in the
        deadline ("early"), or late, after a listing that is slow but in time ("late")."""
        if held:
            self._count(f"drew held {held}")
            arm = [*(arm or []), {"action": CREATE, "latency_ms": LATENCY_MS, "times": 1}]
        if which == "poll":
            self._count("drew poll")
        if held == "late":  # the listing before it is slow (in time): the create goes late
            arm = [{"action": LIST, "latency_ms": SLOW_MS, "times": 1}, *arm]
        self._arm(arm)
        self.again = again
        unresolved = [k for k in self._live() if k.answers and k.answers[-1][1] != 200]
        if which == "new" or not unresolved:
            self._create_new()
            return
        key = max(unresolved, key=lambda k: k.last_unanswered)
        answer = self._create(key)
        # A create still in flight when the mark lapses must have landed by then (or never).
        polled = which == "poll" and key.held_at == key.last_unanswered
        while polled and answer[:2] == (409, "IdempotencyInProgress"):
            time.sleep(0.1)
            answer = self._send_create(key)

    @rule(
        which=st.sampled_from(["latest", "any", "obtain"]),
        pick=st.integers(min_value=0, max_value=1 << 16),
        arm=ARM,
        again=st.booleans(),
    )
    @counted
    def revisit(
        self, which: str, pick: int, arm: list[dict[str, object]] | None, again: bool
    ) -> None:
        """A request about a key seen before: a retry of the key used last ("latest") or of
        any key not retired ("any"), or an obtain of a key's secret by its ID ("obtain")."""
        self._arm(arm)
        self.again = again
        if which == "obtain":
            self._obtain(pick)
        else:
            self._retry(-1 if which == "latest" else pick)

    def _retry(self, pick: int) -> None:
        live = self._live()
        if not live:
            self._create_new()
        elif pick < 0:
            self._create(max(live, key=lambda k: k.last_used))
        else:
            self._create(live[pick % len(live)])

    def _obtain(self, pick: int) -> None:
        """Obtain a key's secret by its ID: a secret that exists is never a 404."""
        done = [k for k in self._live() if k.secret_id is not None]
        if not done:
            self._retry(-1)
            return
        key = done[pick % len(done)]
        assert key.secret_id is not None
        armed = self._armed()
        sent = time.monotonic()
        try:
            got = self.client.obtain(INSTANCE, key.app, key.secret_id)
            status, what = 200, got.secret_id
        except VendApiError as err:
            status, what = err.status, err.code
        self._count(f"obtain {status}" if status == 200 else f"obtain {status} {what}")
        self._count("requests sent with a fault armed" if armed else "requests sent with none")
        self._note(
            f"obtain {key.secret_id} ({key.name}) armed={armed or '-'} -> {status} {what}"
            f" in {time.monotonic() - sent:.2f}s"
        )
        if status == 200:
            if what != key.secret_id:
                self._fail(f"obtain of {key.secret_id} answered {what}", key)
        elif (status, what) not in FAULT_ANSWERS - {(409, "IdempotencyInProgress")}:
            self._fail(f"obtain of existing {key.secret_id} answered {status} {what}", key)
        elif not armed:
            self._fail(f"I5: no fault was armed, yet obtain answered {status} {what}", key)

    @rule(faults=st.lists(FAULTS, min_size=1, max_size=3))
    @counted
    def inject(self, faults: list[dict[str, object]]) -> None:
        """Replaces the emulator's faults."""
        self._arm(faults)

    def _arm(self, faults: list[dict[str, object]] | None) -> None:
        if faults is None:
            return
        requests.put(
            f"{self.stack.emulator.url}/_emulator/faults", json=faults, timeout=5
        ).raise_for_status()
        for f in faults:
            self._count(f"fault {f['action']} {'latency' if 'latency_ms' in f else ''}".rstrip())
        self._note(f"faults {json.dumps(faults)}")

    def _chaos(self, what: str, arg: float) -> None:
        if what == "clear":
            self._clear_faults()
        elif what == "restart-emulator":  # by its admin API and in process, in turn
            self.restarts += 1
            if self.restarts % 2:
                url = f"{self.stack.emulator.url}/_emulator/restart"
                requests.post(url, timeout=5).raise_for_status()
            else:
                self.stack.emulator.emulator.restart()
        elif what == "restart-store":
            assert self.world.redis is not None
            self.world.redis.restart()
        elif what == "restart-store-mid-create":  # `arg` seconds into a create with a new key
            redis = self.world.redis
            assert redis is not None
            self._note(f"redis-server restarts {arg}s into the next create")
            restarter = threading.Thread(target=lambda: (time.sleep(arg), redis.restart()))
            self.store_disturbed = True
            restarter.start()
            try:
                self._create_new()
            finally:
                restarter.join()
                self.store_disturbed = False
        elif what == "wait":
            time.sleep(arg)
        self._count(what)
        self._note(f"{what} {arg or ''}".rstrip())

    # -- invariants ------------------------------------------------------------------------

    @invariant()
    def one_secret_per_key(self) -> None:
        """I1: every 200 of a key names the same secret; an application, which holds one live
        key at a time, holds at most that key's one secret; and no application ever held more
        secrets than keys were sent to it."""
        for key in self.keys.values():
            if len(key.secret_ids) > 1:
                self._fail(f"I1: key answered {sorted(key.secret_ids)}", key)
        for app in APPS:
            present = self._eiam_secrets(app)
            self.app_seen[app] |= present
            live = self.app_live[app]
            if len(present) > 1 or (live is None and present):
                self._fail(f"I1: {app} holds {sorted(present)}", live)
            if live is not None and live.secret_ids and present != live.secret_ids:
                self._fail(f"I1: {app} holds {sorted(present)}", live)
            if len(self.app_seen[app]) > len(self.app_keys[app]):
                self._fail(
                    f"I1: {app} held {sorted(self.app_seen[app])} for keys {self.app_keys[app]}",
                    live,
                )

    def check_invariants(self, *args: Any, **kw: Any) -> None:
        try:
            super().check_invariants(*args, **kw)
        except BaseException:
            self.broken = True
            raise

    # -- the end ---------------------------------------------------------------------------

    def teardown(self) -> None:
        """Faults cleared and every lapse passed, every live key answers 200 with its
        one secret, which opens to the client secret EIAM holds (I5 and I1)."""
        self._clear_faults()
        if self.broken:
            return
        live = self._live()
        self._note("teardown: faults cleared")
        for key in live:
            status, what, _ = self._send_create(key)
            if (status, what) == (409, "IdempotencyInProgress"):
                # What EIAM holds lands on the wall clock: waited for; the key's mark then
                # lapses on the service's lapse clock, moved on by what is left of it.
                waited = time.monotonic()
                self._sleep_until(self.world.quiet_at)
                STATS[self.world.store]["teardown seconds waiting for held creates"] += round(
                    time.monotonic() - waited, 1
                )
                left = max(key.marks) + LAPSE_S + LAPSE_SLACK_S - time.monotonic()
                assert self.stack.lapse_clock is not None
                self.stack.lapse_clock.advance(max(0.0, left))
                status, what, _ = self._send_create(key)
            if status != 200:
                self._fail(
                    f"I5: at the end, with no fault, the create answered {status} {what}", key
                )
            if len(key.secret_ids) != 1:
                self._fail(f"I1: key answered {sorted(key.secret_ids)}", key)
            if self._eiam_secrets(key.app) != key.secret_ids:
                self._fail(f"I1: {key.app} holds {sorted(self._eiam_secrets(key.app))}", key)
        self.one_secret_per_key()
        for key in live:  # the envelope holds the very secret EIAM has
            made = self.client.create(INSTANCE, key.app, idempotency_key=key.name)
            opened = self.client.open(
                made, instance_id=INSTANCE, application_id=key.app, secret_id=None
            )
            if made.secret_id != key.secret_id or opened != self._eiam_client_secret(
                key.app, made.secret_id
            ):
                self._fail("the envelope does not hold the key's secret", key)


def _machine_for(world: World) -> Callable[[], FaultMachine]:
    store = [("restart-store", 0.0)] + [
        ("restart-store-mid-create", delay) for delay in (0.0, 0.005, 0.01, 0.015)
    ]
    events = CHAOS + (store if world.redis is not None else [])

    class Machine(FaultMachine):
        @rule(event=st.sampled_from(events))
        @counted
        def chaos(self, event: tuple[str, float]) -> None:
            """Clear faults, restart the emulator (sessions and nonces forgotten, faults
            cleared), restart the store (with its data), or let time pass."""
            self._chaos(*event)

    Machine.world = world

    def factory() -> FaultMachine:
        return Machine()

    return hypothesis_seed(int(SEED) if SEED is not None else STORE_SEEDS[world.store])(factory)


# -- the test ----------------------------------------------------------------------------------


def test_keyed_creates_under_faults(
    monkeypatch: pytest.MonkeyPatch,
    demo_seed: Seed,
    persistent_store: tuple[str, PersistentRedis | None],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, redis = persistent_store
    name = "redis" if redis is not None else "memory"
    env = {
        "VEND_IDEMPOTENCY_URL": url,
        "VEND_POLICY": str(stateful_policy(tmp_path / "p.json")),
        # The machine sends request after request, on ever new applications and secrets: far
        # more AssumeRoles a second than an instance allows itself (tests/test_sts_sessions.py).
        "VEND_ASSUME_ROLE_RATE": "1000",
    }
    STEPS[name] = 0
    STATS[name] = Counter()
    started = time.monotonic()
    with running_stack(
        monkeypatch,
        stateful_seed(demo_seed),
        env=env,
        timeout_s=TIMEOUT_S,
        lapse_clock=LapseClock(),
    ) as stack:
        world = World(stack, name, redis, stack.client())
        try:
            run_state_machine_as_test(
                _machine_for(world),
                # Every example runs all its steps: hypothesis would otherwise spend examples on
                # novel but nearly empty runs (it stops a run early when that is unexplored).
                _min_steps=STEPS_PER_EXAMPLE,
                settings=settings(
                    max_examples=EXAMPLES,
                    stateful_step_count=STEPS_PER_EXAMPLE,
                    deadline=None,
                    derandomize=SEED is None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                    phases=[Phase.explicit, Phase.generate] + ([Phase.shrink] if SHRINK else []),
                    report_multiple_bugs=False,
                ),
            )
        except BaseException as exc:
            if world.failures:  # the violation as it first happened, whatever the replay did
                raise AssertionError(world.failures[0]) from exc
            raise
        for action, _, outcome in stack.emulator.emulator.calls():
            if outcome != "OK" and action in FAULTED_ACTIONS:
                STATS[name][f"emulator {action} {outcome}"] += 1
    elapsed = time.monotonic() - started
    with capsys.disabled():
        restarts = f", {redis.restarts} store restarts" if redis is not None else ""
        print(f"\n[stateful {name}] {STEPS[name]} steps in {elapsed:.1f}s{restarts}")
        for k, v in sorted(STATS[name].items()):
            print(f"  {k}: {v:.1f}" if isinstance(v, float) else f"  {k}: {v}")
    assert STEPS[name] >= EXAMPLES  # it did run
    if (SEED, EXAMPLES, STEPS_PER_EXAMPLE) == (
        None,
        4,
        40,
    ):  # the fixed runs draw what they were chosen for
        drawn = DRAWN | (DRAWN_REDIS if redis is not None else set())
        assert drawn <= set(STATS[name]), sorted(drawn - set(STATS[name]))


# -- what the machine found --------------------------------------------------------------------


@pytest.fixture
def demo_stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed, timeout_s=TIMEOUT_S) as running:  # memory://
        yield running


def test_a_create_sent_late_and_held_past_the_lapse_is_not_made_twice(demo_stack: Stack) -> None:
    """Found by the machine (I1). KMS is slow but in time (1.35 s of the 1.6 s deadline), so
    the create goes late; EIAM holds it 2 s, then makes the secret. The attempt ends 504 ("may
    still be creating it"). The mark used to lapse two deadlines after the request began
    (~3.2 s), before the held create landed (~3.35 s): the first retry after it listed nothing,
    created a second secret, and the held one landed a moment later. The mark now holds two
    deadlines after the create was sent; a caller retrying every 20 ms gets 409 until then, and
    the retry after it adopts the one secret."""
    stack = demo_stack
    requests.put(
        f"{stack.emulator.url}/_emulator/faults",
        json=[
            {"action": "GenerateDataKey", "latency_ms": 1350, "times": 1},
            {"action": CREATE, "latency_ms": LATENCY_MS, "times": 1},
        ],
        timeout=5,
    ).raise_for_status()
    client, key = stack.client(), f"late-{uuid.uuid4().hex}"
    with pytest.raises(VendApiError) as first:
        client.create(INSTANCE, "app_empty", idempotency_key=key)
    assert (first.value.status, first.value.code) == (504, "UpstreamTimeout")
    for _ in range(500):  # 10 s at most
        try:
            made = client.create(INSTANCE, "app_empty", idempotency_key=key)
            break
        except VendApiError as err:
            refused = (err.status, err.code)
        assert refused == (409, "IdempotencyInProgress")
        time.sleep(0.02)
    else:
        pytest.fail("the key stayed in progress for 10 s")
    time.sleep(LATENCY_MS / 1000)  # whatever EIAM still held has landed
    assert stack.secret_ids("app_empty") == [made.secret_id]
    assert len(stack.emulator.emulator.params(CREATE)) == 1  # the create was sent once
