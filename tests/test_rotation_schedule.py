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
import logging
import subprocess
import sys
import threading
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
from shared.errors import VendError
from shared.lifecycle import schedule
from shared.lifecycle.timer import BatchEvent, TimerEvent, parse_schedule_event
from shared.models import RotationResponse
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
    assert (report["applications"], report["batches"], report["queued"]) == (len(LISTED), 1, 0)
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
    # The run is the timer's invocation: its summary and each WARNING name it.
    assert isinstance(report["run_id"], str) and report["run_id"]
    assert {w["run_id"] for w in warned.values()} == {report["run_id"]}
    assert [line["run_id"] for line in world.lines() if "steps" in line] == [report["run_id"]]
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


@pytest.mark.parametrize(("batch_size", "sizes"), [(4, [1, 4, 4]), (5, [4, 5])])
def test_a_long_list_is_queued_one_async_invocation_per_batch(
    monkeypatch: pytest.MonkeyPatch,
    demo_seed: Seed,
    tmp_path: Path,
    batch_size: int,
    sizes: list[int],
) -> None:
    with schedule_world(
        monkeypatch, demo_seed, tmp_path, batch_size=batch_size, fan_out=True
    ) as world:
        report = world.tick()
        # The timer's own invocation ran nothing, even for two batches: it queued them.
        assert report == {
            "run_id": report["run_id"],
            "applications": len(LISTED),
            "batches": len(sizes),
            "queued": len(sizes),
            "not_reached": 0,
        }
        for app in ROTATED:
            assert len(world.world.secrets(app)) == 2
        records = [r for r in world.audit() if r["action"] == "rotate"]
        assert len(records) == len(LISTED)
        batches = [line for line in world.lines() if "steps" in line and "queued" not in line]
        assert sorted(b["applications"] for b in batches) == sizes
        (timer,) = [line for line in world.lines() if "queued" in line]
        assert timer["level"] == "INFO"  # every batch queued
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
        assert {(w["run_id"], w["request_id"]) for w in warned} == {(report["run_id"], None)}
        assert {w["outcome"] for w in warned} == {"UpstreamError"}
        (timer,) = [line for line in world.lines() if "queued" in line]
        assert (timer["level"], timer["not_reached"]) == ("WARNING", len(LISTED))
        assert all(len(world.world.secrets(app)) == 1 for app in ROTATED)


def _rotate(world: ScheduleWorld) -> schedule.Rotate:
    """The schedule's rotation, as functions/rotation.py gives it to a run."""
    caller = Caller.service(ROTATION_SERVICE)

    def rotate(target: schedule.Target, meta: RequestMeta) -> RotationResponse:
        return world.scheduled.vendor.rotate_as(
            caller, target.instance_id, target.application_id, meta
        )

    return rotate


@pytest.mark.parametrize(
    ("budget_s", "apps", "begun"),
    [
        pytest.param(24, 4, 3, id="the-fourth-left"),
        pytest.param(22, 5, 3, id="the-third-fits-exactly"),
        pytest.param(40, 4, 4, id="all-fit"),
    ],
)
def test_an_invocation_begins_no_application_whose_deadline_no_longer_fits(
    world: ScheduleWorld, budget_s: int, apps: int, begun: int
) -> None:
    """Time runs 4 s per look at the clock, and deadlines are 10 s: with 24 s of budget the
    fourth application (begun 16 s in) would end past the invocation's budget; with 22 s the
    third (12 s in) ends exactly at it, and is begun. The ones left are untouched, counted, and
    make the run's summary a WARNING."""
    ticks = iter(range(0, 1000, 4))
    targets = [schedule.Target(INSTANCE, app) for app in ROTATED[:apps]]
    report = schedule.run_batch(
        _rotate(world),
        targets,
        run_id="run-1",
        budget_s=budget_s,
        deadline_s=10,
        workers=1,
        clock=lambda: float(next(ticks)),
    )
    assert (dict(report.steps), report.not_reached) == ({"create": begun}, apps - begun)
    assert [len(world.world.secrets(app)) for app in ROTATED[:apps]] == [2] * begun + [1] * (
        apps - begun
    )
    assert [r["resource"].split("/")[-3] for r in world.audit()] == list(ROTATED[:begun])
    (summary,) = [line for line in world.lines() if "steps" in line]
    assert (summary["level"], summary["not_reached"]) == (
        "WARNING" if begun < apps else "INFO",
        apps - begun,
    )


def test_a_bug_rotating_one_application_stops_no_other(world: ScheduleWorld) -> None:
    """An exception that is not the pipeline's answer (a bug) fails that application alone: a
    WARNING names the run, a request id and the application, and says no more than 500
    InternalError; the next application steps."""
    rotate = _rotate(world)
    broken = schedule.Target(INSTANCE, ROTATED[0])

    def with_a_bug(target: schedule.Target, meta: RequestMeta) -> RotationResponse:
        if target == broken:
            raise RuntimeError("planted: a bug beside the pipeline")
        return rotate(target, meta)

    report = schedule.run_batch(
        with_a_bug,
        [broken, schedule.Target(INSTANCE, ROTATED[1])],
        run_id="run-2",
        budget_s=60,
        deadline_s=10,
        workers=1,
    )
    assert (dict(report.steps), report.failed) == ({"create": 1}, 1)
    assert len(world.world.secrets(ROTATED[0])) == 1
    assert len(world.world.secrets(ROTATED[1])) == 2
    (warning,) = world.warnings()
    assert {k: warning[k] for k in ("run_id", "application", "status", "outcome")} == {
        "run_id": "run-2",
        "application": f"{INSTANCE}/{ROTATED[0]}",
        "status": 500,
        "outcome": "InternalError",
    }
    (stepped,) = world.audit()
    assert isinstance(warning["request_id"], str)
    assert warning["request_id"] not in ("", stepped["request_id"])
    assert "planted" not in json.dumps(world.lines())


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


NOT_OURS = "not a timer event, nor a rotate_batch event of this function"
BATCH = {"action": "rotate_batch", "run_id": "run-1"}
APP_0 = {"instance_id": INSTANCE, "application_id": ROTATED[0]}


@pytest.mark.parametrize(
    ("event", "code", "message"),
    [
        pytest.param({}, "InvalidParameter", NOT_OURS, id="empty"),
        pytest.param({"action": "rotate"}, "InvalidParameter", NOT_OURS, id="another-action"),
        pytest.param([], "MalformedRequest", "the event must be a JSON object", id="a-list"),
        pytest.param({"triggerName": "t"}, "InvalidParameter", NOT_OURS, id="no-trigger-time"),
        pytest.param(
            {"triggerTime": "2026-01-01T00:00:00Z"}, "InvalidParameter", NOT_OURS, id="no-name"
        ),
        pytest.param(
            {"triggerTime": "2026-01-01T00:00:00Z", "triggerName": 5},
            "InvalidParameter",
            NOT_OURS,
            id="a-name-not-a-string",
        ),
        pytest.param(
            {"triggerTime": "2026-01-01T00:00:00Z", "triggerName": "t", "action": "rotate"},
            "InvalidParameter",
            NOT_OURS,
            id="a-timer-with-an-action",
        ),
        pytest.param(
            {"action": "rotate_batch"},
            "InvalidParameter",
            "a rotate_batch event: run_id is not valid",
            id="batch-without-run-id",
        ),
        pytest.param(
            {**BATCH, "applications": []},
            "InvalidParameter",
            "a rotate_batch event: applications is not valid",
            id="batch-of-none",
        ),
        pytest.param(
            {**BATCH, "applications": [APP_0] * 501},
            "InvalidParameter",
            "a rotate_batch event: applications is not valid",
            id="batch-over-500",
        ),
        pytest.param(
            {**BATCH, "applications": [APP_0, {"instance_id": INSTANCE}]},
            "InvalidParameter",
            "a rotate_batch event: applications.1.application_id is not valid",
            id="batch-application-without-id",
        ),
        pytest.param(
            {**BATCH, "run_id": "run 1", "applications": [APP_0]},
            "InvalidParameter",
            "a rotate_batch event: run_id is not valid",
            id="batch-run-id-with-a-space",
        ),
        pytest.param(
            {**BATCH, "applications": [APP_0], "x" * 100: 1},
            "InvalidParameter",
            f"a rotate_batch event: {'x' * 80} is not valid",
            id="batch-unknown-key-cut",
        ),
    ],
)
def test_an_event_that_is_neither_a_timer_nor_a_batch_is_answered_not_raised(
    world: ScheduleWorld, event: object, code: str, message: str
) -> None:
    answer = json.loads(world.handler(json.dumps(event).encode(), context()))
    assert (answer["status"], answer["error"]["code"]) == (400, code)
    assert answer["error"]["message"] == message
    assert all(len(world.world.secrets(app)) == 1 for app in ROTATED)
    assert world.world.calls("ListApplicationClientSecrets") == 0


@pytest.mark.parametrize("size", [1, 500])
def test_a_batch_of_one_to_500_applications_is_run(world: ScheduleWorld, size: int) -> None:
    """A batch of one application, or as large as a batch may be (the timer queues 100 at
    most): all of it is run, and an application named 500 times steps once."""
    apps = [{"instance_id": INSTANCE, "application_id": ROTATED[0]}] * size
    event = {"action": "rotate_batch", "run_id": "run-1", "applications": apps}
    report = json.loads(world.handler(json.dumps(event).encode(), context()))
    assert (report["run_id"], report["applications"]) == ("run-1", size)
    assert report["steps"]["create"] == 1


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
    assert (report["run_id"], report["failed"], report["steps"]["create"]) == ("run-by-hand", 1, 1)
    (warning,) = world.warnings()
    assert (warning["run_id"], warning["application"], warning["status"]) == (
        "run-by-hand",
        f"{INSTANCE}/app_empty",
        400,
    )
    (summary,) = [line for line in world.lines() if "steps" in line]
    assert (summary["level"], summary["failed"]) == ("WARNING", 1)  # one failure is enough


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


def test_a_list_is_split_in_order_into_batches_of_at_most_the_size() -> None:
    targets = [schedule.Target(INSTANCE, f"app_{i}") for i in range(3)]
    assert schedule.split(targets, 1) == [[t] for t in targets]
    assert schedule.split(targets, 2) == [targets[:2], targets[2:]]
    assert schedule.split([], 1) == []
    with pytest.raises(ValueError, match=r"^a batch holds at least one application$"):
        schedule.split(targets, 0)


def test_a_run_that_fits_one_batch_is_taken_in_the_invocation_with_its_workers_and_clock(
    world: ScheduleWorld,
) -> None:
    """Nothing is queued; the run's workers (one: never two applications at once) and clock
    (4 s a look, so the fourth application is left, as run_batch leaves it) are the ones
    given."""
    rotate = _rotate(world)
    lock = threading.Lock()
    in_flight: list[int] = [0, 0]  # now, most

    def counted(target: schedule.Target, meta: RequestMeta) -> RotationResponse:
        with lock:
            in_flight[0] += 1
            in_flight[1] = max(in_flight)
        try:
            return rotate(target, meta)
        finally:
            with lock:
                in_flight[0] -= 1

    def queue(batch: list[schedule.Target]) -> object:
        raise AssertionError("a run of one batch is not queued")

    ticks = iter(range(0, 1000, 4))
    report = schedule.on_timer(
        counted,
        [schedule.Target(INSTANCE, app) for app in ROTATED[:4]],
        run_id="run-3",
        queue=queue,
        budget_s=24,
        deadline_s=10,
        workers=1,
        clock=lambda: float(next(ticks)),
    )
    assert report == {
        "run_id": "run-3",
        "applications": 4,
        "steps": {"create": 3, "disable": 0, "delete": 0, "none": 0},
        "failed": 0,
        "not_reached": 1,
        "batches": 1,
        "queued": 0,
    }
    assert in_flight[1] == 1


@pytest.mark.parametrize("as_bytes", [False, True], ids=["object", "bytes"])
def test_an_event_is_read_whether_it_comes_parsed_or_as_bytes(as_bytes: bool) -> None:
    """FC hands a Python function its event as bytes; an in-process invoke may hand it over
    already parsed: both are read alike."""
    timer: dict[str, Any] = {
        "triggerName": "daily",
        "triggerTime": "2026-12-05T00:00:00Z",
        "payload": "",
    }
    batch: dict[str, Any] = {
        "action": "rotate_batch",
        "run_id": "run-1",
        "applications": [{"instance_id": INSTANCE, "application_id": "app_rot_0"}],
    }
    given = (lambda d: json.dumps(d).encode()) if as_bytes else (lambda d: d)
    assert isinstance(parse_schedule_event(given(timer)), TimerEvent)
    parsed = parse_schedule_event(given(batch))
    assert isinstance(parsed, BatchEvent)
    assert parsed.run_id == "run-1"
    assert parsed.targets == (schedule.Target(INSTANCE, "app_rot_0"),)


def test_one_application_left_unqueued_makes_the_summary_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two batches (2 and 1 applications); FC refuses to queue the second: the one application
    it held waits for the next run, and the run's summary is a WARNING."""

    def rotate(target: schedule.Target, meta: RequestMeta) -> RotationResponse:
        raise AssertionError("queued batches are not run here")

    def queue(batch: list[schedule.Target]) -> object:
        if len(batch) == 1:
            raise VendError(502, "UpstreamError", "FC refused the invocation")
        return None

    with caplog.at_level(logging.INFO, logger="vend"):
        report = schedule.on_timer(
            rotate,
            [schedule.Target(INSTANCE, app) for app in ROTATED[:3]],
            run_id="run-4",
            queue=queue,
            budget_s=24,
            deadline_s=10,
            batch_size=2,
        )
    assert (report["batches"], report["queued"], report["not_reached"]) == (2, 1, 1)
    (summary,) = [
        json.loads(r.getMessage()) for r in caplog.records if '"queued"' in r.getMessage()
    ]
    assert summary["level"] == "WARNING"
