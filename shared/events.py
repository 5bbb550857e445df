"""The event of contract section 6, as other functions send it, read before anything else."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.arns import Action
from shared.errors import VendError, invalid
from shared.logs import trace_id_of
from shared.models import check_idempotency_key, parse_json_object

# What the event carries besides the request body; the body's own fields are checked by the
# same models as HTTP's (unknown ones refused there).
_ENVELOPE_FIELDS = ("action", "authorization", "idempotency_key", "traceparent")
# Errors raised to FC, which retries async invocations that raise: upstream failures, and bugs
# (a configuration that does not load, say). Every other status is the caller's to fix.
RAISED = frozenset({500, 502, 503, 504})


@dataclass(frozen=True)
class Event:
    action: Action
    body: dict[str, Any]
    authorization: str | None
    idempotency_key: str | None
    trace_id: str | None = None


@dataclass(frozen=True)
class DoctorEvent:
    """`{"action": "doctor", "authorization"}`: run `vend doctor`'s checks inside the function,
    for a caller the approval policy allows `vend:RunDoctor` (README)."""

    authorization: str | None
    trace_id: str | None = None


@dataclass(frozen=True)
class RotateEvent:
    """`{"action": "rotate", "instance_id", "application_id", "dry_run"?, "authorization"}`:
    one rotation step (contract section 14); the body's fields are checked by its model."""

    body: dict[str, Any]
    authorization: str | None
    trace_id: str | None = None


def parse_event(raw: bytes | str | dict[str, Any]) -> Event | DoctorEvent | RotateEvent:
    data = raw if isinstance(raw, dict) else parse_json_object(raw, "event")
    action = data.get("action")
    if action not in ("obtain", "create", "current", "rotate", "doctor"):
        raise invalid("action must be obtain, create, current, rotate or doctor")
    authorization = data.get("authorization")
    if authorization is not None and not isinstance(authorization, str):
        raise invalid("authorization must be a string")
    # A caller's W3C traceparent, for the log only: one that is not valid is ignored, since a
    # trace must never cost a request (shared.logs).
    trace_id = trace_id_of(data.get("traceparent"))
    if action == "doctor":
        if not set(data) <= {"action", "authorization", "traceparent"}:
            raise invalid("a doctor event has no field but action, authorization and traceparent")
        return DoctorEvent(authorization, trace_id)
    key = data.get("idempotency_key")
    if key is not None:
        check_idempotency_key(key, action)
    body = {k: v for k, v in data.items() if k not in _ENVELOPE_FIELDS}
    if action == "rotate":
        return RotateEvent(body, authorization, trace_id)
    return Event(action, body, authorization, key, trace_id)


def error_result(err: VendError, request_id: str) -> bytes:
    """A client error, returned (not raised) so FC does not retry it."""
    return json.dumps({**err.body(request_id), "status": err.status}).encode()


class RetryableError(Exception):
    """Raised for 500/502/503/504 so FC's async retries and on-failure destination apply. FC
    shows the message (and a stack trace) to the invoker: it carries codes, never a secret."""

    def __init__(self, err: VendError, request_id: str) -> None:
        super().__init__(f"{err.status} {err.code}: {err.message} (request {request_id})")
        self.status = err.status
        self.code = err.code
