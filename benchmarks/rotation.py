"""The scheduled rotation's time per application, which sizes its batches (shared.lifecycle.schedule
BATCH_SIZE) and shows that a run over 5,000 applications fans out into invocations that each end
well inside the function's timeout.

The emulator runs as its own process (`vend emulator`) with --latency-ms injected into each of
AssumeRole, ListApplicationClientSecrets, CreateApplicationClientSecret,
DisableApplicationClientSecret and DeleteApplicationClientSecret; N fresh applications (one
secret that never expires) are listed in VEND_ROTATION. Reported, each for 1 and WORKERS
applications at once:

- run 1: every application takes a step (create: a listing, the listing again under the lease,
  the create, each under its own scoped session);
- run 2: none is due (the usual run: one listing each, its session cached from run 1 when the
  instance is warm);
- the same as run 1 at the instance's default AssumeRole rate (VEND_ASSUME_ROLE_RATE unset: 20 a
  second, burst 50), where the rate, not the latency, bounds a batch;

then the timer handler (functions/rotation.py) over 5,000 applications against the local FC
invoke API: how long the timer's own invocation takes to fan out, how many batches it made, and
the longest batch's own time.

    .venv/bin/python benchmarks/rotation.py [--applications 400] [--latency-ms 50]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from processes import VEND, free_port, wait_for_port

from functions.rotation import RotationHandler
from functions.wsgi_server import WsgiServer
from infra.local.cli import local_environment
from infra.local.fc_context import FunctionInfo, LocalContext
from infra.local.fc_invoke import FcInvokeApi
from shared import composition_root
from shared.idempotency.memory import process_memory_store
from shared.lifecycle import schedule
from shared.principal import ROTATION_SERVICE, Caller
from shared.vend import RequestMeta, Vendor

ACCOUNT = "1234567890123456"
INSTANCE = "idaas_bench"
SLOWED = (
    "AssumeRole",
    "ListApplicationClientSecrets",
    "CreateApplicationClientSecret",
    "DisableApplicationClientSecret",
    "DeleteApplicationClientSecret",
)
ACTIONS = [
    *(f"eiam:{a}ApplicationClientSecret" for a in ("Create", "Disable", "Delete", "Obtain")),
    "eiam:ListApplicationClientSecrets",
]


def apps(n: int) -> list[str]:
    return [f"app_rot_{i:05d}" for i in range(n)]


def world_files(tmp: Path, n: int) -> tuple[Path, Path, str]:
    """The demo seed plus N applications; the vending role may rotate them; the schedule's
    principal is approved for the three steps."""
    seed: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "seed.yaml").read_text())
    seed["eiam_instances"].append(
        {
            "instance_id": INSTANCE,
            "applications": [
                {
                    "application_id": app,
                    "secrets": [{"secret_id": "sct_seed", "client_secret": f"CS{i:038d}"}],
                }
                for i, app in enumerate(apps(n))
            ],
        }
    )
    seed["roles"][0]["policies"][0]["Statement"][0] = {
        "Effect": "Allow",
        "Action": ACTIONS,
        "Resource": f"acs:eiam:cn-hangzhou:{ACCOUNT}:instance/*/application/*",
    }
    policy = {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": [ROTATION_SERVICE]},
                "Action": ACTIONS[:3],
                "Resource": f"acs:eiam:cn-hangzhou:{ACCOUNT}:instance/{INSTANCE}/application/*/secret/*",
            }
        ],
    }
    listing = [
        {"instance_id": INSTANCE, "application_id": app, "lifetime_days": 30, "grace_minutes": 60}
        for app in apps(n)
    ]
    (tmp / "seed.json").write_text(json.dumps(seed))
    (tmp / "policy.json").write_text(json.dumps(policy))
    return tmp / "seed.json", tmp / "policy.json", json.dumps(listing)


@contextmanager
def emulator(seed: Path, latency_ms: int) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [*VEND, "emulator", "--seed", str(seed), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for_port(port, proc)
        url = f"http://127.0.0.1:{port}"
        slow = [{"action": a, "latency_ms": latency_ms} for a in SLOWED]
        requests.put(f"{url}/_emulator/faults", json=slow, timeout=5).raise_for_status()
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def service(env: dict[str, str]) -> Vendor:
    for name in [k for k in os.environ if k.startswith(("VEND_", "ALIBABA_CLOUD_"))]:
        del os.environ[name]
    os.environ.update(env)
    # As the schedule's function builds it: new sessions over the rate wait for their turn.
    return composition_root.scheduled_from_environment().vendor


def timed_batch(vendor: Vendor, targets: list[schedule.Target], workers: int) -> tuple[float, Any]:
    caller = Caller.service(ROTATION_SERVICE)

    def rotate(target: schedule.Target, meta: RequestMeta) -> Any:
        return vendor.rotate_as(caller, target.instance_id, target.application_id, meta)

    start = time.perf_counter()
    report = schedule.run_batch(
        rotate, targets, run_id="bench", budget_s=3600, deadline_s=10, workers=workers
    )
    return time.perf_counter() - start, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--applications", type=int, default=400)
    parser.add_argument("--latency-ms", type=int, default=50)
    parser.add_argument("--fan-out-applications", type=int, default=5000)
    args = parser.parse_args()
    for name in ("vend.audit", "vend.upstream", "vend.rotation", "vend.fc"):
        logging.getLogger(name).disabled = True  # a line per application: not the figures
    n = args.applications
    print(f"rotation: {n} applications, {args.latency_ms} ms per upstream call")
    with tempfile.TemporaryDirectory() as tmp:
        seed, policy, listing = world_files(Path(tmp), n)
        targets = [schedule.Target(INSTANCE, a) for a in apps(n)]
        levels = ((1, "1000,1000"), (schedule.WORKERS, "1000,1000"), (schedule.WORKERS, None))
        for workers, rate in levels:
            # A fresh world per level: its applications are fresh again.
            with emulator(seed, args.latency_ms) as url:
                env = {**local_environment(url, seed, policy), "VEND_ROTATION": listing}
                if rate:
                    env["VEND_ASSUME_ROLE_RATE"] = rate
                process_memory_store().clear()
                vendor = service(env)
                part = targets if workers > 1 else targets[: max(1, n // 8)]
                runs = ("run 1 (every one steps)", "run 2 (none is due)") if rate else ("run 1",)
                for label in runs:
                    spent, report = timed_batch(vendor, part, workers)
                    per_app = spent / len(part) * 1000
                    print(
                        f"  workers {workers:2d} rate {rate or 'default':9s} {label:24s} "
                        f"{per_app:6.1f} ms/application ({len(part)} in {spent:.1f} s; "
                        f"steps {dict(report.steps)}, failed {report.failed})"
                    )

    timer_run(args.latency_ms, args.fan_out_applications)


def timer_run(latency_ms: int, n: int) -> None:
    """The timer's invocation over `n` applications, its batches run by the local FC invoke API
    (4 at once, as a function limited to a few instances would), each timed."""
    print(
        f"timer: {n} applications, {latency_ms} ms per upstream call, batches of "
        f"{schedule.BATCH_SIZE}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        seed, policy, listing = world_files(Path(tmp), n)
        (Path(tmp) / "rotation.json").write_text(listing)
        with emulator(seed, latency_ms) as url:
            env = {
                **local_environment(url, seed, policy),
                "VEND_ROTATION": str(Path(tmp) / "rotation.json"),
                "VEND_ASSUME_ROLE_RATE": "1000,1000",
            }
            process_memory_store().clear()
            durations: list[float] = []
            holder: list[RotationHandler] = []

            def timed(event: bytes, ctx: Any) -> bytes:
                start = time.perf_counter()
                try:
                    return holder[0](event, ctx)
                finally:
                    durations.append(time.perf_counter() - start)

            fc = FcInvokeApi(timed, function_name="vend-rotation", keys=None, timeout_s=60)
            with WsgiServer(fc) as server:
                env["VEND_FC_ENDPOINT"] = server.url
                service(env)  # the environment, as the function's own
                scheduled = composition_root.scheduled_from_environment()
                holder.append(RotationHandler(lambda _ctx: scheduled))
                for label in ("run 1 (every one steps)", "run 2 (none is due)"):
                    durations.clear()
                    ctx = LocalContext(
                        "timer-" + label[4], FunctionInfo("vend-rotation", "h", timeout=60)
                    )
                    event = json.dumps({"triggerTime": "t", "triggerName": "rotation"}).encode()
                    start = time.perf_counter()
                    report = json.loads(holder[0](event, ctx))
                    queued_s = time.perf_counter() - start
                    fc.wait_idle(3600)
                    total = time.perf_counter() - start
                    print(
                        f"  {label:24s} the timer's invocation {queued_s * 1000:6.0f} ms "
                        f"({report['queued']} batches queued); slowest batch "
                        f"{max(durations):5.1f} s of a 48 s budget; all done in {total:5.1f} s "
                        f"({total / n * 1000:.1f} ms/application, 4 batches at once)"
                    )
            fc.close()


if __name__ == "__main__":
    main()
