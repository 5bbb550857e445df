"""What FC 3.0's built-in Python runtime hands a handler: the HTTP trigger's event and the
context object, read defensively (the 3.9/3.10 and 3.12 contexts differ)."""

from __future__ import annotations

import base64
import binascii
import json
import os
import sys
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared import logs
from shared.http_api import HttpRequest, HttpResponse
from shared.request_origin import checked_request_id, inside_fc, ip_or_none, request_id_or_new

DEFAULT_DEADLINE_S = 10.0


class _FcModel(BaseModel):
    # FC may add fields to its events; ours are the ones we read.
    model_config = ConfigDict(extra="ignore", frozen=True)


class HttpInfo(_FcModel):
    method: str = "GET"
    path: str | None = None
    sourceIp: str | None = None


class HttpRequestContext(_FcModel):
    requestId: str | None = None
    http: HttpInfo = Field(default_factory=HttpInfo)


class HttpTriggerEvent(_FcModel):
    version: str | None = None
    rawPath: str = "/"
    headers: dict[str, str] = Field(default_factory=dict)
    queryParameters: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    isBase64Encoded: bool = False
    requestContext: HttpRequestContext = Field(default_factory=HttpRequestContext)


class BadEvent(ValueError):
    pass


def parse_http_event(event: bytes | str | dict[str, Any], request_id: str) -> HttpRequest:
    try:
        data = json.loads(event) if isinstance(event, (bytes, str)) else event
        ev = HttpTriggerEvent.model_validate(data)
        body = (
            base64.b64decode(ev.body or "", validate=True)
            if ev.isBase64Encoded
            else (ev.body or "").encode("utf-8")
        )
    except (ValueError, ValidationError, binascii.Error, RecursionError) as exc:
        raise BadEvent(f"not an HTTP trigger event: {type(exc).__name__}") from None
    return HttpRequest(
        method=ev.requestContext.http.method,
        path=ev.requestContext.http.path or ev.rawPath,
        headers={k.lower(): v for k, v in ev.headers.items()},
        body=body,
        request_id=checked_request_id(ev.requestContext.requestId) or request_id,
        # The address that connected to FC (ASSUMPTIONS F27); never a header the caller sent.
        source_ip=ip_or_none(ev.requestContext.http.sourceIp),
    )


def to_http_result(response: HttpResponse) -> dict[str, Any]:
    response.headers.setdefault("Content-Type", "application/json")
    return {
        "statusCode": response.status,
        "headers": response.headers,
        "isBase64Encoded": False,
        "body": response.encoded().decode("utf-8"),
    }


def request_id_of(context: object) -> str:
    """FC's request id for this invocation if it has the contract's shape, else our own."""
    return request_id_or_new(getattr(context, "request_id", None))


def deadline_of(context: object) -> float:
    """The request deadline for the function's timeout in FC's context."""
    return deadline_for(timeout_of(context))


def timeout_of(context: object) -> float:
    """The function's timeout in FC's context, in seconds; 0.0 when it says none."""
    timeout = getattr(getattr(context, "function", None), "timeout", None)
    try:
        seconds = float(timeout) if timeout else 0.0
    except (TypeError, ValueError):
        seconds = 0.0
    return max(0.0, seconds)


def function_name_of(context: object, default: str) -> str:
    """The function's own name in FC's context (what it invokes itself as), else `default`."""
    name = getattr(getattr(context, "function", None), "name", None)
    return name if isinstance(name, str) and name else default


def deadline_for(timeout_s: float) -> float:
    """The request deadline: well inside the function's timeout, and at most 10 s."""
    return min(DEFAULT_DEADLINE_S, timeout_s * 0.8) if timeout_s > 0 else DEFAULT_DEADLINE_S


def own_log() -> None:
    """In an FC instance, the process's log becomes ours (shared.logs.install): FC's runtime
    gives the root logger a text format, and every line is to be JSON. Anywhere else (a test,
    `vend local`), whoever runs the process decides."""
    if inside_fc(os.environ) and not logs.is_installed():
        logs.install(sys.stdout)
