"""Rotation's fault matrix (issue 19, R5): every fault the emulator can inject (the same kinds as
tests/test_fault_matrix.py, before and after the action acts), on every upstream action a
rotation step uses (AssumeRole, ListApplicationClientSecrets, and the step's own Create, Disable
or Delete), for each step, over real HTTP and the real SDKs. Each cell sets an application up so
that its step is due, makes one rotate request under a persistent fault, then clears the fault
and rotates again until the step is done.

For every cell: no 500 and no 404; an error in the contract's shape, with no trace of the code,
answered within the deadline plus 1 s; one audit record with that outcome and the step; and the
invariants, after the faulted request and after the recovery:
- R1: the secret current before is enabled and current still (a disable or a delete only ever
  touched the one that was not current);
- R2: nothing but the cell's own step was taken (a disable only where its successor had been
  current for the grace period, a delete only where the secret had been disabled as long: the
  setup makes exactly that due);
- R3: at most one new secret;
- R4: at most 2 secrets, and EIAM never refused a create for its quota;
- R5: the next request after the fault clears succeeds (after the lapse of a create whose outcome
  stayed unknown), and the step is then done, once.
What each cell answered is kept in tests/rotation_matrix.tsv, and each cell checks its own row
(tests/matrix_file.py: VEND_UPDATE_FAULT_MATRIX=1 writes it instead, refused under CI)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from fault_cells import FAULTS, LATE_MS, answered
from matrix_file import MatrixFile
from rotation_world import (
    CREATE,
    DELETE,
    DISABLE,
    GRACE_S,
    LIFETIME_DAYS,
    LIST,
    RotationWorld,
    rotation_policy,
    rotation_seed,
    rotation_world,
)

from infra.emulator import Seed
from shared.idempotency.memory import process_memory_store
from shared.lifecycle.current import Secret, current_of

MATRIX_FILE = Path(__file__).with_name("rotation_matrix.tsv")
COLUMNS = ("upstream", "fault", "step", "status", "code", "acted", "recovery")
TIMEOUT_S = 2
DEADLINE_S = TIMEOUT_S * 0.8
APP = "app_rot_5"
STEPS = ("create", "disable", "delete")
OWN = {"create": CREATE, "disable": DISABLE, "delete": DELETE}
USES = {"AssumeRole": STEPS, LIST: STEPS, CREATE: ("create",), DISABLE: ("disable",)}
USES[DELETE] = ("delete",)


@dataclass(frozen=True)
class Cell:
    upstream: str
    fault: str
    step: str

    @property
    def id(self) -> str:
        return f"{self.upstream}:{self.fault}:{self.step}"


CELLS = [
    Cell(action, fault, step)
    for action, steps in USES.items()
    for fault in FAULTS
    for step in steps
]
MATRIX = MatrixFile(MATRIX_FILE, COLUMNS, [(c.upstream, c.fault, c.step) for c in CELLS])


@pytest.fixture(scope="module")
def world(demo_seed: Seed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RotationWorld]:
    monkeypatch = pytest.MonkeyPatch()
    policy = rotation_policy(tmp_path_factory.mktemp("rotation-matrix") / "policy.json")
    try:
        with rotation_world(
            monkeypatch, rotation_seed(demo_seed), policy, timeout_s=TIMEOUT_S
        ) as running:
            yield running
    finally:
        monkeypatch.undo()


def _set_up(world: RotationWorld, step: str) -> tuple[Secret, str | None]:
    """The application with `step` due, a fresh store and a cold service. Returns the current
    secret, and the secret the step acts on (None for a create)."""
    world.faults()
    world.empty(APP)
    process_memory_store().clear()
    world.restart()
    old = world.operator_create(APP)  # never expires: its successor is due at once
    if step == "create":
        return _current(world), None
    new = world.operator_create(APP, world.now_ms() + LIFETIME_DAYS * 86400 * 1000)
    if step == "delete":
        world.operator("Disable", APP, old)
    noted = world.rotate(APP)  # notes what it observes: the grace period starts
    assert noted.status_code == 200 and noted.json()["step"] == "none", noted.text
    world.advance(GRACE_S)
    assert world.rotate(APP, dry_run=True).json()["step"] == step
    world.restart()
    current = _current(world)
    assert current.secret_id == new
    return current, old


def _current(world: RotationWorld) -> Secret:
    current = current_of(world.secrets(APP))
    assert current is not None
    return current


def _check_answer(world: RotationWorld, resp: requests.Response, started: float, step: str) -> str:
    request_id, code = answered(resp, started, DEADLINE_S)
    (record,) = world.audit_of(request_id)
    assert (record["action"], record["outcome"]) == ("rotate", code)
    if "step" in record:  # absent only when the request failed before it could plan
        assert record["step"] == step
    else:
        assert code != "ok"
    return code


def _invariants(
    world: RotationWorld, cell: Cell, before: list[Secret], current: Secret, target: str | None
) -> bool:
    """R1 to R4 after a request; whether the cell's step has been taken."""
    after = world.secrets(APP)
    now = {s.secret_id: s for s in after}
    was = {s.secret_id: s for s in before}
    assert current_of(after) is not None  # R1
    assert now.get(current.secret_id) == current or cell.step == "create"
    if cell.step == "create":
        assert set(was) <= set(now), after  # nothing went
        assert all(now[s] == was[s] for s in was), after  # nothing changed
        made = set(now) - set(was)
        assert len(made) <= 1, after  # R3
        if made:
            assert current_of(after) == now[made.pop()]  # the new one is current at once
    else:
        assert set(now) <= set(was), after  # R3: nothing made
        for secret_id, secret in was.items():  # R2: only the target, only its own step
            if secret_id != target:
                assert now.get(secret_id) == secret, after
        if cell.step == "disable" and target in now:
            assert now[target].status in ("enabled", "disabled")
    assert len(after) <= 2  # R4
    quota = [o for _, _, o in world.emulator.emulator.calls(CREATE) if "Quota" in o]
    assert not quota
    if cell.step == "create":
        return len(after) == len(before) + 1
    if cell.step == "disable":
        return now[str(target)].status == "disabled"
    return target not in now


@pytest.mark.parametrize("cell", CELLS, ids=[c.id for c in CELLS])
def test_cell(world: RotationWorld, cell: Cell) -> None:
    current, target = _set_up(world, cell.step)
    before = world.secrets(APP)
    world.faults({"action": cell.upstream, **FAULTS[cell.fault]})

    started = time.monotonic()
    first = world.rotate(APP)
    code = _check_answer(world, first, started, cell.step)
    world.faults()
    if "latency_ms" in FAULTS[cell.fault]:  # what EIAM held lands before the fault clears
        time.sleep(max(0.0, started + LATE_MS / 1000 + 0.2 - time.monotonic()))
    acted = _invariants(world, cell, before, current, target)
    if code == "ok":
        assert first.json()["step"] == cell.step
        # A 200 took its step, but where EIAM's answer is a 200 that cannot be told from its
        # success: a Disable or Delete answers RequestId alone, so a malformed 200 (a RequestId
        # and nothing done) passes for one. The next run finds the step still due, and takes it.
        assert acted or (cell.upstream in (DISABLE, DELETE) and cell.fault == "malformed-200")

    # R5: the next request succeeds. A create whose outcome stayed unknown holds the
    # application's lease until two deadlines after it was sent: the next one comes then.
    held = code != "ok" and "may have been created" in first.json()["error"]["message"]
    if held:
        time.sleep(max(0.0, started + 2 * DEADLINE_S + 0.6 - time.monotonic()))
    again = world.rotate(APP)
    assert again.status_code == 200, again.text
    recovery = "1 after lapse" if held else "1"
    if acted:
        assert again.json()["step"] == "none"
    elif again.json()["step"] == "none":
        # Only after a delete that EIAM answered as done and did not do: the service forgot
        # the secret's disabled note with it, so its grace period starts again (a lost
        # observation delays, never hastens).
        assert (cell.upstream, cell.fault) == (DELETE, "malformed-200")
        world.advance(GRACE_S)
        again = world.rotate(APP)
        recovery = "1 after a grace period"
    if not acted:
        assert (again.status_code, again.json()["step"]) == (200, cell.step), again.text
    assert _invariants(world, cell, before, current, target)
    MATRIX.check(
        (
            cell.upstream,
            cell.fault,
            cell.step,
            str(first.status_code),
            code,
            str(int(acted)),
            recovery,
        )
    )


def test_the_matrix_file_has_one_row_per_cell_in_order() -> None:
    """Whatever part of the matrix ran: the file names every cell once, in the cells' order."""
    assert MATRIX.missing_and_extra() == ([], [])
    assert list(MATRIX.rows()) == MATRIX.keys


def test_the_cells_cover_every_action_and_fault() -> None:
    assert {c.upstream for c in CELLS} == {"AssumeRole", LIST, CREATE, DISABLE, DELETE}
    assert len(CELLS) == len(FAULTS) * 9
    assert json.dumps(sorted({c.fault for c in CELLS})) == json.dumps(sorted(FAULTS))
