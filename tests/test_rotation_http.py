"""POST /v1/secrets/rotate over real HTTP, against the emulator, with the whole world's clock
driven forward through the emulator's admin API (tests/rotation_world.py); and the same over
events ({"action": "rotate"}) through the local FC invoke API and an unchanged fc2 client.

A fresh application (one secret that never expires) is rotated create, disable, delete, create
while a caller keeps reading it: the current secret obtains through the service and gets an M2M
token at every moment, and so does the one it replaced until its grace period is over. A dry run
changes nothing; a caller approved for no step is refused before any upstream call; a caller
approved for create only is refused the disable, naming the action, with nothing changed; an
application not in VEND_ROTATION is refused; no client mistake is a 500; one audit record per
request, with the step."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sdk_clients as sdk
from pytest_httpserver import HTTPServer
from rotation_world import (
    CREATE,
    DELETE,
    DISABLE,
    GRACE_S,
    INSTANCE,
    LIST,
    OBTAIN,
    PARTIAL,
    RENEW_S,
    RotationWorld,
    rotation_policy,
    rotation_seed,
    rotation_setting,
    rotation_world,
    wait_until,
)
from stack import running_stack

from infra.emulator import Seed
from shared.create_lease import lease_key
from shared.idempotency.memory import process_memory_store
from vend_client import UpstreamError, VendApiError

pytestmark = pytest.mark.contract("14")


@pytest.fixture
def world(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, tmp_path: Path
) -> Iterator[RotationWorld]:
    with rotation_world(
        monkeypatch, rotation_seed(demo_seed), rotation_policy(tmp_path / "policy.json")
    ) as running:
        yield running


def _ok(resp: requests.Response) -> dict[str, Any]:
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    contract = {"step", "reason", "current_secret_id", "secrets", "next_step_at"}
    assert set(body) == contract | {"secrets_before"}  # the state before: the issue asks it
    return body


def _state(world: RotationWorld, app: str) -> list[tuple[str, str | None, int | None]]:
    return [(s.secret_id, s.status, s.expiration_time) for s in world.secrets(app)]


def _answered_state(body: dict[str, Any]) -> list[tuple[str, str | None, int | None]]:
    return sorted((s["secret_id"], s["status"], s["expiration_time"]) for s in body["secrets"])


class Caller:
    """A caller of the application that reads the current secret (through the service, opened
    from its envelope) and keeps using what it read for up to the grace period, as a cache with
    a TTL of the grace period would: every read and every use must succeed."""

    def __init__(self, world: RotationWorld, app: str) -> None:
        self.world, self.app = world, app
        self.client = world.client()
        self.held: list[tuple[str, int]] = []  # (secret_id, read at, ms)

    def read_and_use(self) -> None:
        current = self.world.current(self.app)
        assert current is not None, "the application has no enabled secret"
        got = self.client.obtain(INSTANCE, self.app, current.secret_id)
        opened = self.client.open(
            got, instance_id=INSTANCE, application_id=self.app, secret_id=current.secret_id
        )
        assert opened == self.world.client_secret(self.app, current.secret_id)
        now = self.world.now_ms()
        self.held.append((current.secret_id, now))
        # Whatever was read within the grace period still works.
        for secret_id, read_at in self.held:
            if now - read_at < GRACE_S * 1000:
                token = self.world.token(self.app, secret_id)
                assert token.status_code == 200, (secret_id, token.text)


def test_a_fresh_application_rotates_create_disable_delete_create(world: RotationWorld) -> None:
    app = "app_billing"
    caller = Caller(world, app)
    steps: list[tuple[str, str | None]] = []

    def run() -> dict[str, Any]:
        caller.read_and_use()
        body = _ok(world.rotate(app))
        assert _answered_state(body) == _state(world, app)  # the answer is EIAM's state after
        current = world.current(app)
        assert body["current_secret_id"] == (current.secret_id if current else None)
        gone = {s for s, _ in caller.held} - {s for s, _, _ in _state(world, app)}
        steps.append((body["step"], ",".join(sorted(gone)) or None))
        caller.read_and_use()
        return body

    created = run()
    assert created["step"] == "create"
    first = created["current_secret_id"]
    # The state before the step beside the state after it (an addition to the contract's answer).
    assert [s["secret_id"] for s in created["secrets_before"]] == ["sct_billing_1"]
    assert sorted(s["secret_id"] for s in created["secrets"]) == sorted([first, "sct_billing_1"])
    assert first != "sct_billing_1"
    assert len(world.secrets(app)) == 2
    expires = next(s["expiration_time"] for s in created["secrets"] if s["secret_id"] == first)
    assert expires == pytest.approx(world.now_ms() + 30 * 86400 * 1000, abs=60_000)
    assert run()["step"] == "none"  # the old one is still within its grace period
    world.advance(GRACE_S / 2)
    waiting = run()
    assert waiting["step"] == "none"
    assert waiting["next_step_at"] > world.now_ms()
    world.advance(GRACE_S / 2)
    disabled = run()
    assert disabled["step"] == "disable"
    assert ("sct_billing_1", "enabled") in [
        (s["secret_id"], s["status"]) for s in disabled["secrets_before"]
    ]
    assert ("sct_billing_1", "disabled", None) in _state(world, app)
    assert world.token(app, "sct_billing_1").status_code == 401  # refused at once
    world.advance(GRACE_S)
    assert run()["step"] == "delete"
    assert [s.secret_id for s in world.secrets(app)] == [first]
    not_due = run()
    assert (not_due["step"], not_due["next_step_at"]) == ("none", expires - RENEW_S * 1000)
    world.advance((not_due["next_step_at"] - world.now_ms()) / 1000)
    again = run()
    assert again["step"] == "create"
    assert again["current_secret_id"] not in (first, "sct_billing_1")
    world.advance(GRACE_S)
    assert run()["step"] == "disable"
    world.advance(GRACE_S)
    assert run()["step"] == "delete"
    assert [s.secret_id for s in world.secrets(app)] == [again["current_secret_id"]]
    assert [s for s, _ in steps if s != "none"] == [
        "create",
        "disable",
        "delete",
        "create",
        "disable",
        "delete",
    ]
    # EIAM was never asked for a third secret, nor refused a step (sessions that expired as the
    # clock moved on were refused, and assumed again: I3).
    for action in ("CreateApplicationClientSecret", DISABLE, DELETE):
        outcomes = [outcome for _, _, outcome in world.emulator.emulator.calls(action)]
        assert set(outcomes) <= {
            "OK",
            "InvalidSecurityToken.Expired",
            "InvalidAccessKeyId.NotFound",
        }
        assert outcomes.count("OK") == 2


def test_losing_the_store_delays_a_disable_and_a_delete_never_hastens_them(
    world: RotationWorld,
) -> None:
    """The store forgets what rotation observed (a Redis restarted empty): the grace periods
    start again from the next run, so the old secret stays enabled, then disabled, a whole grace
    period past the loss each time."""
    app = "app_rot_4"
    assert _ok(world.rotate(app))["step"] == "create"
    old = f"sct_{app}_seed"
    world.advance(GRACE_S * 3 / 4)
    process_memory_store().clear()
    world.advance(GRACE_S / 2)  # past the grace period since the create, not since the loss
    assert _ok(world.rotate(app))["step"] == "none"
    world.advance(GRACE_S * 3 / 4)  # past it since the loss, not since that run noted it
    assert _ok(world.rotate(app))["step"] == "none"
    world.advance(GRACE_S / 4)
    assert _ok(world.rotate(app))["step"] == "disable"
    world.advance(GRACE_S / 2)
    process_memory_store().clear()
    world.advance(GRACE_S / 2)
    waiting = _ok(world.rotate(app))
    assert waiting["step"] == "none"
    assert waiting["next_step_at"] == pytest.approx(world.now_ms() + GRACE_S * 1000, abs=5000)
    assert (old, "disabled", None) in _state(world, app)
    world.advance(GRACE_S)
    assert _ok(world.rotate(app))["step"] == "delete"


def test_a_dry_run_changes_nothing(world: RotationWorld) -> None:
    app = "app_rot_0"
    before = _state(world, app)
    calls = {a: world.calls(a) for a in ("CreateApplicationClientSecret", DISABLE, DELETE)}
    plan = _ok(world.rotate(app, dry_run=True))
    assert plan["step"] == "create"
    assert "never expires" in plan["reason"]
    assert plan["next_step_at"] == pytest.approx(world.now_ms(), abs=60_000)
    assert _state(world, app) == before
    assert {a: world.calls(a) for a in calls} == calls
    # A dry run notes nothing either: the real run then starts the grace periods itself.
    made = _ok(world.rotate(app))
    assert made["step"] == "create"
    world.advance(GRACE_S)
    assert _ok(world.rotate(app, dry_run=True))["step"] == "disable"
    assert len(world.secrets(app)) == 2
    assert all(s.status == "enabled" for s in world.secrets(app))


def test_a_caller_approved_for_no_step_is_refused_before_any_upstream_call(
    world: RotationWorld,
) -> None:
    """reports may obtain app_reports's secrets, nothing else: no AssumeRole, no listing."""
    before = {a: world.calls(a) for a in ("AssumeRole", LIST)}
    for dry_run in (None, True):
        resp = world.rotate("app_reports", key=sdk.REPORTS, dry_run=dry_run)
        assert resp.status_code == 403, resp.text
        assert resp.json()["error"]["code"] == "AccessDenied"
        (record,) = world.audit_of(resp.headers["X-Request-Id"])
        assert (record["action"], record["decision"], record["outcome"]) == (
            "rotate",
            "deny",
            "AccessDenied",
        )
        assert "step" not in record
    assert {a: world.calls(a) for a in before} == before


def test_a_step_the_caller_may_not_take_is_refused_naming_its_action(
    world: RotationWorld,
) -> None:
    """billing may create on app_partial but not disable: the create goes, the disable that
    comes due a grace period later is refused, and nothing is changed by it."""
    made = _ok(world.rotate(PARTIAL))
    assert made["step"] == "create"
    world.advance(GRACE_S)
    before = _state(world, PARTIAL)
    # A dry run shows the step, whoever may take it.
    assert _ok(world.rotate(PARTIAL, dry_run=True))["step"] == "disable"
    resp = world.rotate(PARTIAL)
    assert resp.status_code == 403, resp.text
    message = resp.json()["error"]["message"]
    assert "eiam:DisableApplicationClientSecret" in message
    assert "nothing was changed" in message
    assert _state(world, PARTIAL) == before
    assert world.calls(DISABLE) == 0
    (record,) = world.audit_of(resp.headers["X-Request-Id"])
    assert (record["outcome"], record["step"]) == ("AccessDenied", "disable")


def test_an_application_not_in_vend_rotation_is_refused(world: RotationWorld) -> None:
    before = world.calls(LIST)
    resp = world.rotate("app_empty")  # billing may create there; it is not listed
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "InvalidParameter"
    assert "VEND_ROTATION" in resp.json()["error"]["message"]
    assert world.calls(LIST) == before


@pytest.mark.parametrize(
    ("body", "headers", "code"),
    [
        ({"instance_id": INSTANCE, "application_id": "app_rot_1", "dry_run": "yes"}, {}, None),
        ({"instance_id": INSTANCE, "application_id": "app_rot_1", "dry_run": 1}, {}, None),
        ({"instance_id": INSTANCE, "application_id": "app_rot_1", "secret_id": "x"}, {}, None),
        ({"instance_id": INSTANCE, "application_id": "app/rot"}, {}, None),
        ({"instance_id": INSTANCE}, {}, None),
        ({"instance_id": INSTANCE, "application_id": "app_rot_1"}, {"Idempotency-Key": "k"}, None),
        ([1, 2], {}, "MalformedRequest"),
    ],
    ids=["dry-run-str", "dry-run-int", "unknown-field", "bad-id", "missing", "key", "not-object"],
)
def test_a_client_mistake_is_a_400_before_anything_else(
    world: RotationWorld, body: object, headers: dict[str, str], code: str | None
) -> None:
    before = world.calls("AssumeRole")
    resp = requests.post(
        f"{world.api.url}/v1/secrets/rotate",
        data=json.dumps(body),
        headers={"Authorization": world.client().authorization(), **headers},
        timeout=10,
    )
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == (code or "InvalidParameter")
    assert world.calls("AssumeRole") == before
    assert _state(world, "app_rot_1")[0][1] == "enabled"


def test_a_status_eiam_has_no_name_for_is_answered_as_null(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, tmp_path: Path, httpserver: HTTPServer
) -> None:
    """EIAM (here a stand-in) lists a secret in a status the contract does not name: the
    answer shows it with `status: null` rather than failing the whole rotation."""
    listed = [
        {"SecretId": "sct_known", "Status": "enabled", "ExpirationTime": 4_102_444_800_000},
        {"SecretId": "sct_odd", "Status": "expired"},
    ]
    httpserver.expect_request("/", method="POST").respond_with_json(
        {"RequestId": "list-1", "ApplicationClientSecrets": listed, "TotalCount": 2}
    )
    eiam = {"VEND_EIAM_ENDPOINT": f"http://{httpserver.host}:{httpserver.port}"}
    policy = rotation_policy(tmp_path / "policy.json")
    with rotation_world(monkeypatch, rotation_seed(demo_seed), policy, env=eiam) as world:
        plan = _ok(world.rotate("app_rot_0", dry_run=True))
    assert _answered_state(plan) == [
        ("sct_known", "enabled", 4_102_444_800_000),
        ("sct_odd", None, None),
    ]
    asked = {req.headers.get("x-acs-action") for req, _ in httpserver.log}
    assert asked == {"ListApplicationClientSecrets"}


def test_rotate_takes_post_only(world: RotationWorld) -> None:
    resp = requests.get(f"{world.api.url}/v1/secrets/rotate", timeout=10)
    assert (resp.status_code, resp.headers["Allow"]) == (405, "POST")


def test_one_audit_record_per_request_with_its_step(world: RotationWorld) -> None:
    ids = []
    for dry_run in (True, None, None):
        resp = world.rotate("app_rot_2", dry_run=dry_run)
        assert resp.status_code == 200
        ids.append(resp.headers["X-Request-Id"])
    steps = []
    for request_id in ids:
        (record,) = world.audit_of(request_id)
        assert (record["action"], record["decision"], record["outcome"]) == (
            "rotate",
            "allow",
            "ok",
        )
        assert record["resource"] == sdk.secret_arn("app_rot_2", "*")
        assert record["principal"] == f"acs:ram::{sdk.ACCOUNT}:user/billing"
        steps.append(record["step"])
    assert steps == ["create", "create", "none"]


# -- events -------------------------------------------------------------------------------------


def test_rotate_over_events(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, tmp_path: Path
) -> None:
    """{"action": "rotate"} through FC's invoke API (sync), as another function sends it: the
    same answer as HTTP's; a client mistake is returned with its status, not raised."""
    env = {
        "VEND_POLICY": str(rotation_policy(tmp_path / "policy.json")),
        "VEND_ROTATION": rotation_setting(),
    }
    with running_stack(monkeypatch, rotation_seed(demo_seed), env=env) as stack:
        fc = stack.fc()

        def invoke(**event: object) -> dict[str, Any]:
            payload = {
                "action": "rotate",
                "instance_id": INSTANCE,
                "authorization": stack.client().authorization(),
                **event,
            }
            answer = fc.invoke_function("vend", "vend-events", payload=json.dumps(payload))
            data: dict[str, Any] = json.loads(answer.data)
            return data

        planned = invoke(application_id="app_rot_3", dry_run=True)
        assert planned["step"] == "create"
        made = invoke(application_id="app_rot_3")
        assert made["step"] == "create"
        assert len(stack.secret_ids("app_rot_3")) == 2
        assert made["current_secret_id"] in stack.secret_ids("app_rot_3")
        assert invoke(application_id="app_rot_3")["step"] == "none"
        refused = invoke(application_id="app_empty")
        assert (refused["status"], refused["error"]["code"]) == (400, "InvalidParameter")
        keyed = invoke(application_id="app_rot_3", idempotency_key="k")
        assert (keyed["status"], keyed["error"]["code"]) == (400, "InvalidParameter")
        assert len(stack.secret_ids("app_rot_3")) == 2


def test_a_rotation_settles_a_callers_lost_create_for_the_callers_retry(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, tmp_path: Path
) -> None:
    """A caller's keyed create made a secret that never expires, but its answer was lost (EIAM
    reset the connection after acting, and the secret could not be read): the application's
    lease is left noting what was there before. Once it lapses, the rotation that takes it
    (its create is due: the secret never expires) first records that secret for the caller's
    key, then makes its own; the caller's retry gets the secret its create made, not a third."""
    app = "app_rot_0"
    with rotation_world(
        monkeypatch,
        rotation_seed(demo_seed),
        rotation_policy(tmp_path / "policy.json"),
        lapse_by_emulator=True,
    ) as world:
        world.empty(app)
        client = world.client()
        world.faults(
            {"action": CREATE, "reset": True, "phase": "after", "times": 1},
            {"action": OBTAIN, "status": 500, "code": "InternalError"},
        )
        with pytest.raises(UpstreamError):
            client.create(INSTANCE, app, idempotency_key="lost-create-1")
        world.faults()
        (made,) = world.secrets(app)
        world.advance(60)  # the lease lapses: the caller's retry has not come yet

        rotated = _ok(world.rotate(app))
        assert rotated["step"] == "create"
        assert [s["secret_id"] for s in rotated["secrets_before"]] == [made.secret_id]
        assert len(world.secrets(app)) == 2

        again = client.create(INSTANCE, app, idempotency_key="lost-create-1")
        assert again.secret_id == made.secret_id
        assert len(world.secrets(app)) == 2


def test_a_secret_gone_before_its_delete_is_taken_as_deleted(
    world: RotationWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """EIAM deletes the old secret but answers 404 (as when someone else deleted it first, or an
    earlier run's answer was lost): the step is done, the answer's state is without it, and the
    log says it was gone."""
    app = "app_rot_1"
    old = f"sct_{app}_seed"
    assert _ok(world.rotate(app))["step"] == "create"
    world.advance(GRACE_S)
    assert _ok(world.rotate(app))["step"] == "disable"
    world.advance(GRACE_S)
    world.faults(
        {
            "action": DELETE,
            "status": 404,
            "code": "EntityNotExists.Secret",
            "phase": "after",
            "times": 1,
        }
    )
    with caplog.at_level(logging.INFO, logger="vend"):
        deleted = _ok(world.rotate(app))
    assert deleted["step"] == "delete"
    assert _answered_state(deleted) == _state(world, app)
    assert old not in {s["secret_id"] for s in deleted["secrets"]}
    assert f"rotation: {old} was gone before it could be deleted" in caplog.messages
    assert _ok(world.rotate(app))["step"] == "none"


def test_two_rotations_at_once_make_one_secret(world: RotationWorld) -> None:
    """R3: a second rotation plans the create too while the first one's is in flight (EIAM
    takes 3 s to make it); it waits for the application's lease, plans again under it, finds
    the new secret, and takes no step."""
    app = "app_rot_2"
    world.faults({"action": CREATE, "latency_ms": 3000, "times": 1})
    answers: dict[str, requests.Response] = {}

    def rotate(name: str) -> None:
        answers[name] = world.rotate(app)

    first = threading.Thread(target=rotate, args=("first",))
    first.start()
    lease = lease_key(INSTANCE, app)

    def sending() -> bool:  # the first holds the lease, noting what it listed before its create
        held = process_memory_store().get(lease)
        return held is not None and bool(held.before_secret_ids)

    assert wait_until(sending), "the first rotation never sent its create"
    lists = world.calls(LIST)
    second = threading.Thread(target=rotate, args=("second",))
    second.start()
    assert wait_until(lambda: world.calls(LIST) > lists)  # the second's first listing
    assert len(world.secrets(app)) == 1  # the second listed before the create landed
    first.join(30)
    second.join(30)
    created, waited = _ok(answers["first"]), _ok(answers["second"])
    assert created["step"] == "create"
    # The next step (the old secret's disable) comes due a grace period after the create.
    assert created["next_step_at"] == pytest.approx(world.now_ms() + GRACE_S * 1000, abs=60_000)
    assert waited["step"] == "none"
    assert waited["next_step_at"] == pytest.approx(created["next_step_at"], abs=60_000)
    assert len(world.secrets(app)) == 2
    assert world.calls(CREATE) == 1


def test_a_step_that_comes_due_under_the_lease_is_approved_again(world: RotationWorld) -> None:
    """billing may create on app_partial, not disable. Its rotation plans a create (the current
    secret is due) while billing's own create is in flight; under the lease it plans again: the
    new secret expires before the current one, so the step is now to disable it, which billing
    may not take. It is refused, naming the action, and the secret stays enabled."""
    day_s = 86400
    world.empty(PARTIAL)
    kept = world.operator_create(PARTIAL, world.now_ms() + 20 * day_s * 1000)
    assert _ok(world.rotate(PARTIAL))["step"] == "none"  # notes `kept` current from now
    world.advance(13 * day_s)  # `kept` is due: 7 days left
    world.faults({"action": CREATE, "latency_ms": 3000, "times": 1})
    answers: dict[str, Any] = {}

    def create() -> None:
        answers["create"] = world.client().create(
            INSTANCE, PARTIAL, expiration_time=world.now_ms() + 2 * day_s * 1000
        )

    def rotate() -> None:
        answers["rotate"] = world.rotate(PARTIAL)

    lease = lease_key(INSTANCE, PARTIAL)

    def sending() -> bool:
        held = process_memory_store().get(lease)
        return held is not None and bool(held.before_secret_ids)

    creating = threading.Thread(target=create)
    creating.start()
    assert wait_until(sending), "the create was never sent"
    lists = world.calls(LIST)
    rotating = threading.Thread(target=rotate)
    rotating.start()
    assert wait_until(lambda: world.calls(LIST) > lists)
    assert [s.secret_id for s in world.secrets(PARTIAL)] == [kept]  # planned on `kept` alone
    creating.join(30)
    rotating.join(30)
    made = answers["create"].secret_id
    refused = answers["rotate"]
    assert refused.status_code == 403, refused.text
    assert "eiam:DisableApplicationClientSecret" in refused.json()["error"]["message"]
    assert {s.secret_id: s.status for s in world.secrets(PARTIAL)} == {
        kept: "enabled",
        made: "enabled",
    }
    assert world.calls(DISABLE) == 0


def test_a_secret_a_rotation_lost_is_named_by_whoever_takes_the_application_next(
    monkeypatch: pytest.MonkeyPatch,
    demo_seed: Seed,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A rotation's create lands after its deadline (EIAM took 2 s, the deadline is 1.6 s): the
    rotation cannot tell whether it made a secret, and its lease keeps what it listed before.
    The next create on the application, once the lease lapses, finds the secret that appeared
    and says that no caller holds it."""
    app = "app_rot_3"
    with rotation_world(
        monkeypatch,
        rotation_seed(demo_seed),
        rotation_policy(tmp_path / "policy.json"),
        timeout_s=2,
        lapse_by_emulator=True,
    ) as world:
        world.faults({"action": CREATE, "latency_ms": 2000, "times": 1})
        lost = world.rotate(app)
        assert lost.status_code == 504, lost.text
        assert wait_until(lambda: len(world.secrets(app)) == 2), "the late create never landed"
        (made,) = {s.secret_id for s in world.secrets(app)} - {f"sct_{app}_seed"}
        world.advance(60)
        with caplog.at_level(logging.WARNING, logger="vend"), pytest.raises(VendApiError):
            world.client().create(INSTANCE, app, idempotency_key="after-the-lost-one")
        assert (
            f"create: secret {made} was made by a create whose answer was lost and that no "
            "idempotency key can claim; no caller holds it"
        ) in caplog.messages


def test_a_step_after_which_another_is_due_says_it_is_due_now(world: RotationWorld) -> None:
    """The application holds a disabled secret and a current one that never expires: the
    create is due but waits for the delete (2 secrets); the answer of the delete says the next
    step is due at once."""
    app = "app_rot_5"
    world.operator_create(app)  # never expires, as the seed
    world.operator("Disable", app, f"sct_{app}_seed")
    waiting = _ok(world.rotate(app))  # notes the seed disabled from now
    assert (waiting["step"], waiting["next_step_at"]) == (
        "none",
        pytest.approx(world.now_ms() + GRACE_S * 1000, abs=60_000),
    )
    world.advance(GRACE_S)
    deleted = _ok(world.rotate(app))
    assert deleted["step"] == "delete"
    assert deleted["next_step_at"] == pytest.approx(world.now_ms(), abs=60_000)
    assert _ok(world.rotate(app))["step"] == "create"
