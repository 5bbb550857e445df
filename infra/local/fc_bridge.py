"""FC's built-in runtime, on localhost (`vend local`, the tests): each WSGI request becomes the
event FC's HTTP trigger would send to the very handler of `vend-http`, and the handler's result
becomes the HTTP response, so what runs locally is what runs in FC. FC's invoke API serves
`vend-events` beside it."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from functions.wsgi_server import status_line
from infra.local.fc_context import FunctionInfo, LocalContext, StartResponse
from infra.local.fc_invoke import FcInvokeApi, KeyLookup

MAX_READ = 64 * 1024 + 1
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class LocalFc:
    """A WSGI app that invokes FC handlers as FC would."""

    def __init__(
        self,
        http_handler: Callable[[Any, Any], dict[str, Any]],
        *,
        region: str | None,
        account_id: str | None,
        timeout_s: int = 15,
        events_handler: Callable[[Any, Any], Any] | None = None,
        keys: KeyLookup | None = None,
    ) -> None:
        """`events_handler` is served on FC's invoke API (2016-08-15) as `vend-events`; `keys`
        tells the callers' secrets, to verify their fc2 signatures (None: not verified)."""
        self.http_handler = http_handler
        self.invoke = (
            FcInvokeApi(
                events_handler,
                keys=keys,
                region=region,
                account_id=account_id,
                timeout_s=timeout_s,
            )
            if events_handler is not None
            else None
        )
        self.region = region
        self.account_id = account_id
        self.timeout_s = timeout_s  # the function's timeout, as s.yaml sets it

    def context(self, name: str, handler: str) -> LocalContext:
        return LocalContext(
            str(uuid.uuid4()),
            FunctionInfo(name, handler, timeout=self.timeout_s),
            self.region,
            self.account_id,
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.invoke is not None and self.invoke.matches(environ.get("PATH_INFO") or "/"):
            return self.invoke(environ, start_response)
        ctx = self.context("vend-http", "functions.http.handler")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        # Reading one byte past the API's limit is enough for the handler to refuse the body.
        body = environ["wsgi.input"].read(min(length, MAX_READ)) if length else b""
        event = http_event(environ, body, ctx.request_id)
        result = self.http_handler(json.dumps(event).encode(), ctx)
        status = int(result.get("statusCode", 200))
        payload = str(result.get("body", "")).encode("utf-8")
        headers = [(k, str(v)) for k, v in (result.get("headers") or {}).items()]
        headers.append(("Content-Length", str(len(payload))))
        start_response(status_line(status), headers)
        return [payload]


def http_event(environ: dict[str, Any], body: bytes, request_id: str) -> dict[str, Any]:
    """The FC 3.0 HTTP trigger event for a WSGI request (see ../shared/reference/fc.md)."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").title()] = value
    if environ.get("CONTENT_TYPE"):
        headers["Content-Type"] = environ["CONTENT_TYPE"]
    path = (environ.get("PATH_INFO") or "/").encode("latin-1").decode("utf-8", "replace")
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    return {
        "version": "v1",
        "rawPath": path,
        "headers": headers,
        "queryParameters": {},
        "body": text,
        "isBase64Encoded": encoded,
        "requestContext": {
            "requestId": request_id,
            "http": {
                "method": environ.get("REQUEST_METHOD", "GET"),
                "path": path,
                "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
                "sourceIp": environ.get("REMOTE_ADDR", ""),
                "userAgent": environ.get("HTTP_USER_AGENT", ""),
            },
        },
    }


def with_fc_invoke_api(app: WsgiApp, invoke: FcInvokeApi) -> WsgiApp:
    """`app`, with FC's invoke API for `vend-events` on its paths."""

    def dispatch(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if invoke.matches(environ.get("PATH_INFO") or "/"):
            return invoke(environ, start_response)
        return app(environ, start_response)

    return dispatch
