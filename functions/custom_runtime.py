"""`vend-http-custom` (s.custom.yaml): FC's custom runtime runs this module, the HTTP API on a
WSGI server with many requests per instance. Each WSGI request goes straight to the core's
`HttpApi`: no FC trigger event in between. It serves the API only; FC's invoke API is
`vend-events`' own function, never a route here.

    python -m functions.custom_runtime --host 0.0.0.0 --port 9000
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from functions.wsgi_server import WsgiServer, status_line
from shared import logs
from shared.composition_root import instance_vendor
from shared.config import ConfigError
from shared.fc import deadline_for
from shared.http_api import HttpApi, HttpRequest
from shared.request_origin import (
    checked_request_id,
    inside_fc,
    ip_or_none,
    last_forwarded_hop,
    new_request_id,
    take_platform_credentials,
)
from shared.vend import Vendor
from shared.wire.credentials import Credentials

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
# One byte past the API's 64 KiB is enough for it to refuse the body as too large.
MAX_READ = 64 * 1024 + 1
# s.custom.yaml's `timeout`: the request deadline is 80% of it, at most 10 s (shared.fc).
FUNCTION_TIMEOUT_S = 15
THREADS = 16
start_log = logging.getLogger("vend.start")


class ApiApp:
    """The HTTP API as a WSGI app. `in_fc`: FC's front end, not the caller, connects to it, and
    sets the request id, the caller's address and the function's credentials (`request_of`)."""

    def __init__(
        self,
        vendor: Callable[[], Vendor],
        *,
        timeout_s: int = FUNCTION_TIMEOUT_S,
        in_fc: bool = False,
    ) -> None:
        self._vendor = vendor
        self._api = HttpApi(vendor, deadline_for(timeout_s))
        self._in_fc = in_fc

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request, platform = request_of(environ, in_fc=self._in_fc)
        if platform is not None:
            # The instance's environment holds the keys FC gave it at start, which expire while
            # the instance may live on; FC hands the current ones over with every request.
            self._vendor().identity.offer(platform)
        response = self._api.handle(request)
        payload = response.encoded()
        headers = [*response.headers.items(), ("Content-Length", str(len(payload)))]
        start_response(status_line(response.status), headers)
        return [payload]


def request_of(environ: dict[str, Any], *, in_fc: bool) -> tuple[HttpRequest, Credentials | None]:
    """The request, and the function's credentials FC sent with it (None outside FC). FC's
    credential headers are never among the request's headers, inside FC or out."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(min(length, MAX_READ)) if length > 0 else b""
    headers = {k[5:].replace("_", "-").lower(): v for k, v in environ.items() if k[:5] == "HTTP_"}
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    platform = take_platform_credentials(headers, in_fc=in_fc)
    if in_fc:
        # FC names each request in x-fc-request-id and refuses a caller's x-fc-* header; the
        # last X-Forwarded-For hop is the one FC's front end appended (ASSUMPTIONS F26, F28).
        request_id = checked_request_id(headers.get("x-fc-request-id")) or new_request_id()
        source_ip = last_forwarded_hop(headers.get("x-forwarded-for"))
    else:
        # Nothing stands between the caller and this server: every header is the caller's.
        request_id = new_request_id()
        source_ip = ip_or_none(environ.get("REMOTE_ADDR"))
    path = (environ.get("PATH_INFO") or "/").encode("latin-1").decode("utf-8", "replace")
    request = HttpRequest(
        method=environ.get("REQUEST_METHOD", "GET"),
        path=path,
        headers=headers,
        body=body,
        request_id=request_id,
        source_ip=source_ip,
    )
    return request, platform


def build_app() -> ApiApp:
    """The app, with the service built now from the environment: a bad configuration stops the
    start (ConfigError names the variable), not a caller's request."""
    instance_vendor(None)
    return ApiApp(lambda: instance_vendor(None), in_fc=inside_fc(os.environ))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="functions.custom_runtime")
    parser.add_argument("--host", default="0.0.0.0")  # noqa: S104 - FC's custom runtime port
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args(argv)
    # FC ships stdout to Log Service: every line of this process, JSON there.
    logs.install(sys.stdout)
    try:
        app = build_app()
    except ConfigError as exc:
        start_log.error("configuration: %s", exc, extra={"fields": {"variables": exc.variables}})
        return 2
    server = WsgiServer(app, host=args.host, port=args.port, threads=THREADS)
    start_log.info("listening", extra={"fields": {"url": server.url}})
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
