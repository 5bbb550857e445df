"""Rotation on a schedule (contract section 14): every application of VEND_ROTATION, at most one
step each per run, taken by the service itself (`Caller.service(ROTATION_SERVICE)`), which the
approval policy must allow like any caller: with no statement for it, every step is refused.

A run's list is split into batches (`split`); each batch runs in one invocation (`run_batch`),
so that no invocation's work grows with the list (functions/rotation.py fans the batches out).
In a batch, `workers` applications are rotated at once, each a request of its own: its own
request id, audit record and deadline. An application whose turn comes when its whole deadline
no longer fits in the invocation is not begun; the next run reaches it. A failure of one
application stops no other: its audit record says what failed, and one WARNING line on
`vend.rotation` (shared.audit.warn_rotation) names the run, the application and the error."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shared import audit
from shared.errors import VendError, internal
from shared.models import RotationResponse
from shared.request_origin import new_request_id
from shared.upstream.deadline import Deadline
from shared.vend import RequestMeta

WORKERS = 8  # applications rotated at once in one invocation
# Applications per invocation. From benchmarks/rotation.py (README, Rotation on a schedule): with
# 50 ms per upstream call and 8 workers, an application takes about 40 ms of a batch when it
# creates and 7 ms when nothing is due, so 100 take 4 s at most; what bounds a batch is the
# instance's AssumeRole rate (VEND_ASSUME_ROLE_RATE: 20 a second past a burst of 50), which the
# schedule's sessions wait for: 100 creates need 200 new sessions, 7.5 s.
BATCH_SIZE = 100


@dataclass(frozen=True)
class Target:
    instance_id: str
    application_id: str

    def __str__(self) -> str:
        return f"{self.instance_id}/{self.application_id}"


@dataclass
class BatchReport:
    run_id: str
    applications: int = 0
    steps: Counter[str] = field(default_factory=Counter)  # create, disable, delete, none
    failed: int = 0
    not_reached: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "applications": self.applications,
            "steps": {kind: self.steps[kind] for kind in ("create", "disable", "delete", "none")},
            "failed": self.failed,
            "not_reached": self.not_reached,
        }


Rotate = Callable[[Target, RequestMeta], RotationResponse]


def split(targets: Sequence[Target], size: int = BATCH_SIZE) -> list[list[Target]]:
    """`targets` in order, in batches of at most `size`."""
    if size < 1:
        raise ValueError("a batch holds at least one application")
    return [list(targets[i : i + size]) for i in range(0, len(targets), size)]


def run_batch(
    rotate: Rotate,
    targets: Sequence[Target],
    *,
    run_id: str,
    budget_s: float,
    deadline_s: float,
    workers: int = WORKERS,
    clock: Callable[[], float] = time.monotonic,
) -> BatchReport:
    """One step at most for each of `targets`, `workers` at once, each within `deadline_s`. An
    application is begun only while `deadline_s` still fits in `budget_s` (from now, by
    `clock`): the invocation ends in time, and the ones left are counted as not reached."""
    report = BatchReport(run_id, applications=len(targets))
    ends_at = clock() + budget_s

    def one(target: Target) -> str | None:
        """The step taken, None for a failure, "" for an application not begun."""
        if ends_at - clock() < deadline_s:
            return ""
        request_id = new_request_id()
        meta = RequestMeta(request_id, Deadline(deadline_s))
        try:
            return rotate(target, meta).step
        except VendError as err:
            audit.warn_rotation(run_id, request_id, str(target), err)
        except Exception:
            # A bug outside the pipeline (which answers every failure as a VendError): the
            # application is reported as failed all the same, and the others go on.
            audit.warn_rotation(run_id, request_id, str(target), internal())
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="rotation") as pool:
        for step in pool.map(one, targets):
            if step is None:
                report.failed += 1
            elif step == "":
                report.not_reached += 1
            else:
                report.steps[step] += 1
    audit.rotation_summary(report.as_dict(), warn=report.failed > 0 or report.not_reached > 0)
    return report


def targets_of(rotation: Mapping[tuple[str, str], object]) -> list[Target]:
    """VEND_ROTATION's applications, in its order."""
    return [Target(instance, application) for instance, application in rotation]


def on_timer(
    rotate: Rotate,
    targets: Sequence[Target],
    *,
    run_id: str,
    queue: Callable[[list[Target]], object],
    budget_s: float,
    deadline_s: float,
    batch_size: int = BATCH_SIZE,
    workers: int = WORKERS,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """A run over `targets`: here when one batch holds them all, else each batch queued
    (`queue`: an asynchronous invocation of this function with it) and none run here, so that
    the timer's invocation ends at once whatever the length of the list. A batch that cannot be
    queued is left to the next run, with a WARNING line."""
    batches = split(targets, batch_size)
    if len(batches) <= 1:
        report = run_batch(
            rotate,
            targets,
            run_id=run_id,
            budget_s=budget_s,
            deadline_s=deadline_s,
            workers=workers,
            clock=clock,
        )
        return {**report.as_dict(), "batches": len(batches), "queued": 0}
    queued, not_queued = 0, 0
    for index, batch in enumerate(batches):
        try:
            queue(batch)
            queued += 1
        except VendError as err:
            not_queued += len(batch)
            audit.warn_rotation(run_id, None, f"batch {index + 1} of {len(batches)}", err)
    counts = {
        "run_id": run_id,
        "applications": len(targets),
        "batches": len(batches),
        "queued": queued,
        "not_reached": not_queued,
    }
    audit.rotation_summary(counts, warn=not_queued > 0)
    return counts
