"""`vend-events`: invoked by other functions with fc2's invoke_function, sync or async. Reads the
event, runs the same pipeline as HTTP, and answers JSON bytes; retryable failures are raised so
that FC retries async invocations."""

from __future__ import annotations

from typing import Any

from shared import audit
from shared.errors import VendError
from shared.events import RETRYABLE, RetryableError, error_result, parse_event
from shared.fc import deadline_of, request_id_of
from shared.runtime import instance_vendor
from shared.upstream.deadline import Deadline
from shared.vend import RequestMeta


def initializer(context: Any) -> None:
    """FC's instance initializer: configuration and clients, once per instance."""
    instance_vendor(context)


def handler(event: Any, context: Any) -> bytes:
    request_id = request_id_of(context)
    try:
        vendor = instance_vendor(context)
        try:
            parsed = parse_event(event)
        except VendError as err:
            audit.refused(request_id, err.code)
            raise
        meta = RequestMeta(request_id, Deadline(deadline_of(context)))
        # For create, FC's request id is the default key: FC keeps it across its async retries.
        key = parsed.idempotency_key or (request_id if parsed.action == "create" else None)
        response = vendor.vend(
            parsed.action, parsed.body, parsed.authorization, meta, key, retry_of=request_id
        )
    except VendError as err:
        if err.status in RETRYABLE:
            raise RetryableError(err, request_id) from None
        return error_result(err, request_id)
    return response.model_dump_json().encode()
