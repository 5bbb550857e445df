"""The rotation schedule's world: tests/rotation_world.py's (the demo world plus applications to
rotate, every one listed in VEND_ROTATION, the emulator's clock the service's), with an approval
policy that grants the schedule's principal (`service:vend-rotation`) the three steps on some of
them, and the schedule's function (functions/rotation.py) built over that service. With
`fan_out`, FC 3.0's invoke API for `vend-rotation` (infra/local/fc_invoke.py, checking the
function's own signature) runs the same handler for every batch the timer queues."""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sdk_clients as sdk
from rotation_world import ROTATED, RotationWorld, rotation_seed, rotation_world
from stack import DEMO_POLICY, Records

from functions.rotation import RotationHandler
from functions.wsgi_server import WsgiServer
from infra.emulator import Seed
from infra.local.fc_context import FunctionInfo, LocalContext
from infra.local.fc_invoke import FcInvokeApi
from shared import composition_root
from shared.composition_root import Scheduled
from shared.principal import ROTATION_SERVICE

STEPS = ["Create", "Disable", "Delete"]
TIMEOUT_S = 60


def schedule_policy(path: Path, apps: tuple[str, ...] = ROTATED) -> Path:
    """The demo policy, but the schedule may take every step on `apps`, and nothing else (the
    demo's grant of app_billing left out)."""
    policy = json.loads(DEMO_POLICY.read_text())
    policy["Statement"] = [
        s for s in policy["Statement"] if "Service" not in (s.get("Principal") or {})
    ]
    policy["Statement"] += (
        []
        if not apps
        else [
            {
                "Sid": "the-schedule-rotates",
                "Effect": "Allow",
                "Principal": {"Service": [ROTATION_SERVICE]},
                "Action": [f"eiam:{s}ApplicationClientSecret" for s in STEPS],
                "Resource": [sdk.secret_arn(app, "*") for app in apps],
            }
        ]
    )
    path.write_text(json.dumps(policy))
    return path


def timer_event() -> bytes:
    """FC's timer event (infra/ASSUMPTIONS.md F30)."""
    return json.dumps(
        {"triggerTime": "2026-01-01T00:00:00Z", "triggerName": "rotation", "payload": ""}
    ).encode()


def context(timeout_s: int = TIMEOUT_S) -> LocalContext:
    return LocalContext(
        str(uuid.uuid4()),
        FunctionInfo("vend-rotation", "functions.rotation.handler", timeout=timeout_s),
        sdk.REGION,
        sdk.ACCOUNT,
    )


@dataclass
class ScheduleWorld:
    world: RotationWorld
    scheduled: Scheduled
    handler: RotationHandler
    rotation_log: Records  # vend.rotation: the runs' summaries and WARNING lines
    fc: FcInvokeApi | None

    def tick(self) -> dict[str, Any]:
        """One timer invocation, and every batch it queued run to its end."""
        report: dict[str, Any] = json.loads(self.handler(timer_event(), context()))
        if self.fc is not None:
            assert self.fc.wait_idle(60), "the queued batches did not finish"
        return report

    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in self.rotation_log.records]

    def warnings(self) -> list[dict[str, Any]]:
        return [line for line in self.lines() if "application" in line]

    def audit(self) -> list[dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in self.world.audit.records]


@contextmanager
def schedule_world(
    monkeypatch: pytest.MonkeyPatch,
    demo_seed: Seed,
    tmp_path: Path,
    *,
    granted: tuple[str, ...] = ROTATED,
    batch_size: int = 100,
    fan_out: bool = False,
    env: dict[str, str] | None = None,
    seed: Seed | None = None,
) -> Iterator[ScheduleWorld]:
    policy = schedule_policy(tmp_path / "policy.json", granted)
    with rotation_world(monkeypatch, seed or rotation_seed(demo_seed), policy, env=env) as world:
        log = Records()
        logger = logging.getLogger("vend.rotation")
        logger.addHandler(log)
        fc: FcInvokeApi | None = None
        server: WsgiServer | None = None
        holder: list[RotationHandler] = []
        try:
            environ = dict(os.environ)
            if fan_out:
                fc = FcInvokeApi(
                    lambda event, ctx: holder[0](event, ctx),
                    function_name="vend-rotation",
                    keys=world.emulator.emulator.account.key_secret,
                    region=sdk.REGION,
                    account_id=sdk.ACCOUNT,
                    timeout_s=TIMEOUT_S,
                )
                server = WsgiServer(fc).start()
                environ["VEND_FC_ENDPOINT"] = server.url
            scheduled = composition_root.scheduled_from_environment(
                environ, now_ms=world.emulator.emulator.clock.now_ms
            )
            holder.append(RotationHandler(lambda _ctx: scheduled, batch_size=batch_size))
            yield ScheduleWorld(world, scheduled, holder[0], log, fc)
        finally:
            if fc is not None:
                fc.close()
            if server is not None:
                server.stop()
            logger.removeHandler(log)
