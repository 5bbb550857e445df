"""`vend-events`: invoked by other functions with fc2's invoke_function, sync or async. Reads the
event, runs the same pipeline as HTTP, and answers JSON bytes. A client's mistake is returned,
never raised, so FC does not retry it; upstream failures and bugs are raised, so that FC retries
async invocations, carrying a code, a message and the request id only."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from shared import audit, logs
from shared.composition_root import instance_vendor
from shared.errors import VendError, internal
from shared.events import (
    RAISED,
    DoctorEvent,
    Event,
    RetryableError,
    RotateEvent,
    error_result,
    parse_event,
)
from shared.fc import deadline_of, own_log, request_id_of
from shared.upstream.deadline import Deadline
from shared.vend import RequestMeta, Vendor

if TYPE_CHECKING:
    from shared.doctor import Report

log = logging.getLogger("vend")


def initializer(context: Any) -> None:
    """FC's instance initializer: the log, configuration and clients, once per instance."""
    own_log()
    instance_vendor(context)


def handler(event: Any, context: Any) -> bytes:
    request_id = request_id_of(context)
    try:
        with logs.request(request_id):
            return _handle(event, context, request_id)
    except VendError as err:
        if err.status not in RAISED:
            return error_result(err, request_id)
        failure = err
    except Exception:
        log.exception("events: unexpected error in request %s", request_id)
        failure = internal()
    # Raised here, outside every except block and without a cause: FC shows this frame only,
    # never the core's or the SDK's (contract section 7).
    raise RetryableError(failure, request_id)


def _handle(event: Any, context: Any, request_id: str) -> bytes:
    vendor = instance_vendor(context)
    try:
        parsed = parse_event(event)
    except VendError as err:
        audit.refused(request_id, err.code)
        raise
    with logs.request(request_id, parsed.trace_id):
        return _handle_parsed(parsed, vendor, context, request_id)


def _handle_parsed(
    parsed: Event | DoctorEvent | RotateEvent, vendor: Vendor, context: Any, request_id: str
) -> bytes:
    meta = RequestMeta(request_id, Deadline(deadline_of(context)))
    if isinstance(parsed, DoctorEvent):
        report = vendor.run_doctor(
            parsed.authorization, meta, lambda: _doctor_report(context), retry_of=request_id
        )
        return json.dumps({**report.as_dict(), "request_id": request_id}).encode()
    if isinstance(parsed, RotateEvent):
        step = vendor.rotate(parsed.body, parsed.authorization, meta, retry_of=request_id)
        return step.model_dump_json().encode()
    # For create, FC's request id is the default key: FC keeps it across its async retries.
    key = parsed.idempotency_key or (request_id if parsed.action == "create" else None)
    response = vendor.vend(
        parsed.action, parsed.body, parsed.authorization, meta, key, retry_of=request_id
    )
    return response.model_dump_json().encode()


def _doctor_report(context: Any) -> Report:
    """Imported here, after the caller was approved: only an operator's one-off run needs it."""
    from shared import doctor  # noqa: PLC0415

    return doctor.run_in_function(context)
