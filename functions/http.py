"""`vend-http`: FC 3.0 HTTP trigger handler. Translates the trigger's event to the core's HTTP
API and back; nothing else happens here."""

from __future__ import annotations

from typing import Any

from shared import audit
from shared.composition_root import instance_vendor
from shared.errors import malformed
from shared.fc import (
    BadEvent,
    deadline_of,
    own_log,
    parse_http_event,
    request_id_of,
    to_http_result,
)
from shared.http_api import HttpApi, HttpResponse, stamped


def initializer(context: Any) -> None:
    """FC's instance initializer: the log, configuration and clients, once per instance."""
    own_log()
    instance_vendor(context)


def handler(event: Any, context: Any) -> dict[str, Any]:
    request_id = request_id_of(context)
    try:
        request = parse_http_event(event, request_id)
    except BadEvent as exc:
        err = malformed(str(exc))
        audit.refused(request_id, err.code)
        return to_http_result(stamped(HttpResponse(400, err.body(request_id)), request_id))
    api = HttpApi(lambda: instance_vendor(context), deadline_of(context))
    return to_http_result(api.handle(request))
