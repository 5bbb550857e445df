"""`vend-rotation`: the rotation schedule (contract section 14). FC's timer trigger invokes it
(s.yaml); a run over more applications than one batch holds invokes it again, asynchronously,
once per batch (shared.lifecycle.schedule). It serves no caller: its steps are the service's
own, approved by the policy for `service:vend-rotation`. It answers a JSON summary of what it did;
a bad event is answered, not raised (FC would retry it)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from shared import audit, logs
from shared.composition_root import Scheduled, instance_scheduled
from shared.errors import VendError
from shared.events import error_result
from shared.fc import deadline_for, function_name_of, own_log, request_id_of, timeout_of
from shared.lifecycle import schedule
from shared.lifecycle.timer import BatchEvent, batch_payload, parse_schedule_event
from shared.principal import ROTATION_SERVICE, Caller
from shared.upstream.deadline import Deadline
from shared.vend import RequestMeta

log = logging.getLogger("vend")
# s.yaml's; what FC's context says wins.
DEFAULT_TIMEOUT_S = 60.0


class RotationHandler:
    """The handler, over the instance's scheduled service (`service(context)`); `batch_size`
    and `workers` as shared.lifecycle.schedule's (a test makes small batches)."""

    def __init__(
        self,
        service: Callable[[Any], Scheduled],
        *,
        batch_size: int = schedule.BATCH_SIZE,
        workers: int = schedule.WORKERS,
    ) -> None:
        self.service = service
        self.batch_size = batch_size
        self.workers = workers

    def __call__(self, event: Any, context: Any) -> bytes:
        request_id = request_id_of(context)
        with logs.request(request_id):
            return self._run(event, context, request_id)

    def _run(self, event: Any, context: Any, request_id: str) -> bytes:
        try:
            parsed = parse_schedule_event(event)
        except VendError as err:
            audit.refused(request_id, err.code, "rotate")
            return error_result(err, request_id)
        scheduled = self.service(context)
        timeout = timeout_of(context) or DEFAULT_TIMEOUT_S
        # Each application a request of its own; the invocation's work ends well inside FC's
        # timeout, as a request's does.
        budget_s, deadline_s = timeout * 0.8, deadline_for(timeout)
        caller = Caller.service(ROTATION_SERVICE)

        def rotate(target: schedule.Target, meta: RequestMeta) -> Any:
            return scheduled.vendor.rotate_as(
                caller, target.instance_id, target.application_id, meta
            )

        if isinstance(parsed, BatchEvent):
            report = schedule.run_batch(
                rotate,
                parsed.targets,
                run_id=parsed.run_id,
                budget_s=budget_s,
                deadline_s=deadline_s,
                workers=self.workers,
            ).as_dict()
        else:
            own_name = function_name_of(context, "vend-rotation")

            def queue(batch: list[schedule.Target]) -> object:
                payload = batch_payload(request_id, batch)
                return scheduled.invoker.invoke_async(own_name, payload, Deadline(deadline_s))

            report = schedule.on_timer(
                rotate,
                schedule.targets_of(scheduled.vendor.rotation),
                run_id=request_id,
                queue=queue,
                budget_s=budget_s,
                deadline_s=deadline_s,
                batch_size=self.batch_size,
                workers=self.workers,
            )
        return json.dumps(report).encode()


def initializer(context: Any) -> None:
    """FC's instance initializer: the log, configuration and clients, once per instance."""
    own_log()
    instance_scheduled(context)


handler = RotationHandler(instance_scheduled)
