"""The HTTP API of contract section 2, independent of how requests arrive (FC's HTTP trigger or
`vend serve`): a request in, a response out."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, get_args

from shared import audit, logs
from shared.arns import Action
from shared.errors import VendError, bounded, internal, not_found
from shared.models import check_idempotency_key, parse_json_object
from shared.upstream.deadline import Deadline
from shared.vend import RequestMeta, Vendor

log = logging.getLogger("vend")


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    request_id: str
    source_ip: str | None = None


@dataclass
class HttpResponse:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def stamped(response: HttpResponse, request_id: str) -> HttpResponse:
    """`response` with the headers every answer carries, whatever its status (contract section
    2): its request id, its type, and `no-store`: an answer holds a sealed secret or says who
    may have one, and no cache between the caller and the function may keep it."""
    response.headers["X-Request-Id"] = request_id
    response.headers["Content-Type"] = "application/json"
    response.headers["Cache-Control"] = "no-store"
    return response


_ROUTES: dict[str, tuple[str, str]] = {
    "/v1/secrets/obtain": ("POST", "obtain"),
    "/v1/secrets/create": ("POST", "create"),
    "/v1/secrets/current": ("POST", "current"),
    "/v1/secrets/rotate": ("POST", "rotate"),
    "/v1/health": ("GET", "health"),
    "/v1/ready": ("GET", "ready"),
    "/v1/openapi.json": ("GET", "openapi"),
}


class HttpApi:
    def __init__(self, vendor: Callable[[], Vendor], deadline_s: float) -> None:
        # The vendor is built on first use (or by FC's initializer), so that health checks
        # answer even before the configuration is needed (and /v1/ready can say it does not
        # load).
        self._vendor = vendor
        self._deadline_s = deadline_s

    def handle(self, request: HttpRequest) -> HttpResponse:
        trace_id = logs.trace_id_of(request.headers.get("traceparent"))
        with logs.request(request.request_id, trace_id):
            return self._handle(request)

    def _handle(self, request: HttpRequest) -> HttpResponse:
        try:
            response = self._route(request)
        except VendError as err:
            response = HttpResponse(err.status, err.body(request.request_id), dict(err.headers))
        except Exception:
            log.exception("http: unexpected error in request %s", request.request_id)
            bug = internal()
            response = HttpResponse(bug.status, bug.body(request.request_id))
        return stamped(response, request.request_id)

    def _route(self, request: HttpRequest) -> HttpResponse:
        path = request.path.rstrip("/") or "/"
        route = _ROUTES.get(path)
        name = route[1] if route else None
        action: Action | None = next((a for a in get_args(Action) if a == name), None)
        try:
            if route is None:
                raise not_found(f"no route for {bounded(path)}")
            if request.method.upper() != route[0]:
                raise VendError(
                    405, "MethodNotAllowed", f"{path} takes {route[0]}", {"Allow": route[0]}
                )
            if name == "health":
                return HttpResponse(200, {"status": "ok"})
            if name == "ready":
                from shared.readiness import readiness  # noqa: PLC0415 - probes only

                status, body = readiness(self._vendor)
                return HttpResponse(status, body.model_dump(mode="json", exclude_none=True))
            if name == "openapi":
                from shared.openapi import openapi_document  # noqa: PLC0415 - first request only

                return HttpResponse(200, openapi_document())
            data = parse_json_object(request.body, "body")
            key = request.headers.get("idempotency-key")
            if key is not None:
                check_idempotency_key(key, action or name or "")
        except VendError as err:
            # Refused before the pipeline (which audits what reaches it): audited here.
            audit.refused(request.request_id, err.code, action or name)
            raise
        meta = RequestMeta(request.request_id, Deadline(self._deadline_s), request.source_ip)
        if name == "rotate":
            step = self._vendor().rotate(data, request.headers.get("authorization"), meta)
            return HttpResponse(200, step.model_dump(mode="json"))
        assert action is not None
        result = self._vendor().vend(
            action, data, request.headers.get("authorization"), meta, idempotency_key=key
        )
        return HttpResponse(200, result.model_dump(mode="json"))
