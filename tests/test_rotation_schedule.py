"""The rotation schedule (functions/rotation.py over shared.lifecycle.schedule), driven as FC
drives it: the timer's event, and the batches it queues through FC 3.0's invoke API
(infra/local/fc_invoke.py, signature checked), against the emulator with the whole world's clock
driven through its admin API (tests/schedule_world.py).

Each listed application takes at most one step per run, as `service:vend-rotation`, whom the
approval policy must grant the steps (default deny holds: an application it is not granted is
refused, audited and logged as a WARNING, and the others go on); a list longer than a batch is
queued as one asynchronous invocation per batch; an invocation begins no application whose
deadline no longer fits; a new STS session over the instance's rate waits for its turn."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sdk_clients as sdk
from rotation_world import GRACE_S, INSTANCE, LISTED, PARTIAL, ROTATED
from schedule_world import ScheduleWorld, context, schedule_world
from stack import DEMO_POLICY

from infra.emulator import Seed
from shared.config import ConfigError, Settings
from shared.lifecycle import schedule
from shared.principal import ROTATION_SERVICE, Caller
from shared.vend import RequestMeta

NOT_GRANTED = ("app_billing", PARTIAL, "app_reports")


@pytest.fixture
def world(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, tmp_path: Path
) -> Iterator[ScheduleWorld]:
    with schedule_world(monkeypatch, demo_seed, tmp_path) as running:
        yield running


def _counts(world: ScheduleWorld) -> dict[str, int]:
    return {app: len(world.world.secrets(app)) for app in LISTED}


def test_the_timer_steps_each_granted_application_once_and_refuses_the_others(
    world: ScheduleWorld,
) -> None:
    before = {app: world.world.secrets(app) for app in NOT_GRANTED}
    report = world.tick()
    assert report["applications"] == len(LISTED)
    assert report["steps"] == {"create": len(ROTATED), "disable": 0, "delete": 0, "none": 0}
    assert report["failed"] == len(NOT_GRANTED)
    assert report["not_reached"] == 0
    # One step each: a new secret beside the old one, neither of them disabled yet.
    for app in ROTATED:
        secrets = world.world.secrets(app)
        assert len(secrets) == 2
        assert {s.status for s in secrets} == {"enabled"}
    # Refused before anything was changed, each audited as denied and named in a WARNING.
    assert {app: world.world.secrets(app) for app in NOT_GRANTED} == before
    warned = {w["application"]: w for w in world.warnings()}
    assert set(warned) == {f"{INSTANCE}/{app}" for app in NOT_GRANTED}
    assert {(w["level"], w["status"], w["outcome"]) for w in warned.values()} == {
        ("WARNING", 403, "AccessDenied")
    }
    records = [r for r in world.audit() if r["action"] == "rotate"]
    assert len(records) == len(LISTED)
    assert {r["principal"] for r in records} == {f"service:{ROTATION_SERVICE}"}
    by_request = {r["request_id"]: r for r in records}
    for warning in warned.values():
        assert by_request[warning["request_id"]]["decision"] == "deny"
    assert sorted(r["step"] for r in records if r["outcome"] == "ok") == ["create"] * len(ROTATED)

    # At once again: nothing is due (the old secrets wait out their grace period).
    again = world.tick()
    assert again["steps"]["none"] == len(ROTATED)
    assert _counts(world)["app_rot_0"] == 2


def test_three_runs_a_grace_period_apart_create_disable_delete(world: ScheduleWorld) -> None:
    app = ROTATED[0]
    seeded = world.world.secrets(app)
    assert [s.status for s in seeded] == ["enabled"]
    assert world.tick()["steps"]["create"] == len(ROTATED)
    world.world.advance(GRACE_S)
    assert world.tick()["steps"]["disable"] == len(ROTATED)
    assert {s.secret_id: s.status for s in world.world.secrets(app)}[seeded[0].secret_id] == (
        "disabled"
    )
    world.world.advance(GRACE_S)
    assert world.tick()["steps"]["delete"] == len(ROTATED)
    assert seeded[0].secret_id not in {s.secret_id for s in world.world.secrets(app)}
    assert len(world.world.secrets(app)) == 1


def test_without_a_grant_the_schedule_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, tmp_path: Path
) -> None:
    with schedule_world(monkeypatch, demo_seed, tmp_path, granted=()) as world:
        before = {app: world.world.secrets(app) for app in LISTED}
        report = world.tick()
        assert report["failed"] == len(LISTED)
        assert {app: world.world.secrets(app) for app in LISTED} == before
        assert world.world.calls("CreateApplicationClientSecret") == 0
        summary = [line for line in world.lines() if "steps" in line]
        assert summary[-1]["level"] == "WARNING"
        assert summary[-1]["failed"] == len(LISTED)


def test_a_long_list_is_queued_one_async_invocation_per_batch(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, tmp_path: Path
) -> None:
    with schedule_world(monkeypatch, demo_seed, tmp_path, batch_size=4, fan_out=True) as world:
        report = world.tick()
        # The timer's own invocation ran nothing: it queued the three batches.
        assert report == {
            "run_id": report["run_id"],
            "applications": len(LISTED),
            "batches": 3,
            "queued": 3,
            "not_reached": 0,
        }
        for app in ROTATED:
            assert len(world.world.secrets(app)) == 2
        records = [r for r in world.audit() if r["action"] == "rotate"]
        assert len(records) == len(LISTED)
        batches = [line for line in world.lines() if "steps" in line and "queued" not in line]
        assert sorted(b["applications"] for b in batches) == [1, 4, 4]
        assert {b["run_id"] for b in batches} == {report["run_id"]}
        assert sum(b["steps"]["create"] for b in batches) == len(ROTATED)


def test_a_batch_that_cannot_be_queued_waits_for_the_next_run(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, tmp_path: Path
) -> None:
    """FC refuses the function's signature (its keys are not the ones FC knows): every batch is
    reported as not queued, with a WARNING, and nothing runs."""
    wrong = {"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "not-the-function-secret-000000"}
    with schedule_world(
        monkeypatch, demo_seed, tmp_path, batch_size=4, fan_out=True, env=wrong
    ) as world:
        report = world.tick()
        assert (report["queued"], report["not_reached"]) == (0, len(LISTED))
        warned = world.warnings()
        assert [w["application"] for w in warned] == [f"batch {i} of 3" for i in (1, 2, 3)]
        assert {w["outcome"] for w in warned} == {"UpstreamError"}
        assert all(len(world.world.secrets(app)) == 1 for app in ROTATED)


def test_an_invocation_begins_no_application_whose_deadline_no_longer_fits(
    world: ScheduleWorld,
) -> None:
    """Time runs 4 s per look at the clock: with 24 s of budget and 10 s deadlines, the fourth
    application (begun 16 s in) would end past the invocation's budget, and is left to the next
    run, untouched."""
    ticks = iter(range(0, 1000, 4))
    caller = Caller.service(ROTATION_SERVICE)

    def rotate(target: schedule.Target, meta: RequestMeta) -> Any:
        return world.scheduled.vendor.rotate_as(
            caller, target.instance_id, target.application_id, meta
        )

    targets = [schedule.Target(INSTANCE, app) for app in ROTATED[:4]]
    report = schedule.run_batch(
        rotate,
        targets,
        run_id="run-1",
        budget_s=24,
        deadline_s=10,
        workers=1,
        clock=lambda: float(next(ticks)),
    )
    assert (dict(report.steps), report.not_reached) == ({"create": 3}, 1)
    assert len(world.world.secrets(ROTATED[3])) == 1
    assert [r["resource"].split("/")[-3] for r in world.audit()] == list(ROTATED[:3])


def test_new_sessions_over_the_rate_wait_their_turn(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, tmp_path: Path
) -> None:
    """One new STS session at a time (burst 1): each of the six creates needs two, all at once
    from eight workers; none is refused for the instance's rate."""
    rate = {"VEND_ASSUME_ROLE_RATE": "50,1"}
    with schedule_world(monkeypatch, demo_seed, tmp_path, env=rate) as world:
        report = world.tick()
        assert report["steps"]["create"] == len(ROTATED)
        assert "Throttled" not in {w["outcome"] for w in world.warnings()}


def test_an_event_that_is_neither_a_timer_nor_a_batch_is_answered_not_raised(
    world: ScheduleWorld,
) -> None:
    for event in (b"{}", b'{"action": "rotate"}', b"[]", b'{"action": "rotate_batch"}'):
        answer = json.loads(world.handler(event, context()))
        assert answer["status"] == 400, event
        assert answer["error"]["code"] in ("InvalidParameter", "MalformedRequest")
    assert all(len(world.world.secrets(app)) == 1 for app in ROTATED)


def test_a_batch_names_only_listed_applications(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, tmp_path: Path
) -> None:
    """A batch event is as anyone allowed to invoke the function may send it: an application
    VEND_ROTATION does not list is refused (and named), even one the policy grants; the others
    step."""
    granted = (*ROTATED, "app_empty")
    with schedule_world(monkeypatch, demo_seed, tmp_path, granted=granted) as world:
        _run_hand_made_batch(world)


def _run_hand_made_batch(world: ScheduleWorld) -> None:
    event = {
        "action": "rotate_batch",
        "run_id": "run-by-hand",
        "applications": [
            {"instance_id": INSTANCE, "application_id": "app_empty"},
            {"instance_id": INSTANCE, "application_id": ROTATED[0]},
        ],
    }
    report = json.loads(world.handler(json.dumps(event).encode(), context()))
    assert (report["failed"], report["steps"]["create"]) == (1, 1)
    (warning,) = world.warnings()
    assert (warning["application"], warning["status"]) == (f"{INSTANCE}/app_empty", 400)


def test_the_list_may_be_a_file_as_the_package_ships_it(tmp_path: Path) -> None:
    """FC's variables hold 4 KB in all: VEND_ROTATION may name a file (make package
    ROTATION=... ships /code/rotation.json), as VEND_POLICY does."""
    base = {
        "VEND_REGION": "cn-hangzhou",
        "VEND_ACCOUNT_ID": "1234567890123456",
        "VEND_ROLE_ARN": "acs:ram::1234567890123456:role/vend-eiam",
        "VEND_KMS_KEY_ID": "key-default",
        "VEND_POLICY": str(DEMO_POLICY),
        "VEND_AUDIENCE": "vend-local",
    }
    listing = [{"instance_id": INSTANCE, "application_id": f"app_{i:04d}"} for i in range(500)]
    path = tmp_path / "rotation.json"
    path.write_text(json.dumps(listing))
    assert len(path.read_bytes()) > 4096
    rotation = Settings.from_env({**base, "VEND_ROTATION": str(path)}).rotation
    assert [app for _, app in rotation] == [e["application_id"] for e in listing]
    with pytest.raises(ConfigError) as info:
        Settings.from_env({**base, "VEND_ROTATION": str(tmp_path / "missing.json")})
    assert str(info.value).startswith("VEND_ROTATION: cannot read ")


@pytest.mark.parametrize(("app", "status"), [("app_billing", 0), ("app_reports", 3)])
def test_policy_check_decides_for_the_schedules_principal(app: str, status: int) -> None:
    """The demo policy grants the schedule app_billing's steps, and nothing of app_reports."""
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("vend")),
            *("policy", "check", "--policy", str(DEMO_POLICY)),
            *("--principal", f"service:{ROTATION_SERVICE}"),
            *("--action", "eiam:DisableApplicationClientSecret"),
            *("--resource", sdk.secret_arn(app, "*")),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == status, done.stderr
    if status == 0:
        assert "statement: the-schedule-rotates-app-billing" in done.stdout
