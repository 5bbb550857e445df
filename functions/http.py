"""`vend-http`: FC 3.0 HTTP trigger handler. Translates the trigger's event to the core's HTTP
API and back; nothing else happens here."""

from __future__ import annotations

import threading
from typing import Any

from shared.fc import BadEvent, deadline_of, parse_http_event, request_id_of, to_http_result
from shared.http_api import HttpApi, HttpResponse
from shared.runtime import from_environment
from shared.vend import Vendor

_vendor: Vendor | None = None
_lock = threading.Lock()


def initializer(context: Any) -> None:
    """FC's instance initializer: configuration and clients, once per instance."""
    global _vendor  # noqa: PLW0603 - one service per FC instance, reused across invocations
    with _lock:
        if _vendor is None:
            _vendor = from_environment(
                region=getattr(context, "region", None),
                account_id=getattr(context, "account_id", None),
            )


def _get_vendor(context: Any) -> Vendor:
    if _vendor is None:
        initializer(context)
    assert _vendor is not None
    _vendor.identity.update_from_context(context)
    return _vendor


def handler(event: Any, context: Any) -> dict[str, Any]:
    request_id = request_id_of(context)
    try:
        request = parse_http_event(event, request_id)
    except BadEvent as exc:
        body = {
            "error": {"code": "MalformedRequest", "message": str(exc), "request_id": request_id}
        }
        return to_http_result(HttpResponse(400, body, {"X-Request-Id": request_id}))
    api = HttpApi(lambda: _get_vendor(context), deadline_of(context))
    return to_http_result(api.handle(request))
