"""A WSGI app on a local port with waitress (a real threaded HTTP server), in the foreground or
on a thread; used by `vend serve`, `vend local`, the emulator and the tests.

Its framing is stricter than waitress's: a request whose body length two headers disagree on is
refused before any app sees it (`_StrictFraming`)."""

from __future__ import annotations

import threading
from http import HTTPStatus
from types import TracebackType
from typing import Any

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser, ParsingError, get_header_lines
from waitress.server import TcpWSGIServer, create_server

_TRANSFER_ENCODING = b"transfer-encoding"
_CONTENT_LENGTH = b"content-length"


class _StrictFraming(HTTPRequestParser):
    """Waitress's parser, refusing what RFC 9112 calls a smuggling attempt: `Transfer-Encoding`
    beside `Content-Length` (section 6.3: a server must close the connection after such a
    request), or in an HTTP/1.0 request (section 6.1: faulty framing). Waitress 3.0.2 reads the
    first as chunked and keeps the connection for the next request, and the second by its
    Content-Length. A ParsingError here is waitress's own 400 Bad Request, whose response
    closes the connection and drops whatever the client sent after the request."""

    def parse_header(self, header_plus: bytes) -> None:
        names = {line.split(b":", 1)[0].strip().lower() for line in _field_lines(header_plus)}
        super().parse_header(header_plus)
        if _TRANSFER_ENCODING not in names:
            return
        if _CONTENT_LENGTH in names:
            raise ParsingError("Transfer-Encoding and Content-Length in one request")
        if self.version != "1.1":
            raise ParsingError(f"Transfer-Encoding in an HTTP/{self.version} request")


def _field_lines(header_plus: bytes) -> list[bytes]:
    _, _, fields = header_plus.partition(b"\r\n")
    return list(get_header_lines(fields))


class _StrictChannel(HTTPChannel):
    parser_class = _StrictFraming


class WsgiServer:
    def __init__(
        self,
        app: Any,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        threads: int = 8,
        ident: str = "vend",
    ) -> None:
        server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident=ident,
            # Proxy headers reach the app as the client sent them; waitress would drop
            # X-Forwarded-For, which only the app can know to believe (in FC, the hop FC's front
            # end appends: functions.custom_runtime.request_of) or not (everywhere else).
            clear_untrusted_proxy_headers=False,
        )
        assert isinstance(server, TcpWSGIServer)  # one host and port give one TCP server
        server.channel_class = _StrictChannel  # each connection accepted from now on
        self._server = server
        self.host = host
        # The stubs miss the attribute; it holds the port the OS chose for port 0.
        self.port: int = server.effective_port  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """host:port, what an SDK `Config(endpoint=...)` takes (with protocol="http")."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def serve_forever(self) -> None:
        self._server.run()

    def start(self) -> WsgiServer:
        self._thread = threading.Thread(target=self._server.run, name="wsgi", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server = self._server
        server.task_dispatcher.shutdown(timeout=5)
        # Clients keep pooled connections open, and the loop runs while any is open: close them
        # all from inside the loop's own thread, which ends it at once.
        server_map = server._map  # type: ignore[attr-defined]
        trigger = server.trigger  # the stubs type it as int; it is a waitress trigger
        try:
            trigger.pull_trigger(lambda: wasyncore.close_all(server_map))  # type: ignore[attr-defined]
        except OSError:
            # The trigger is gone (a channel error closed it, or the loop already ended):
            # close everything from here; the loop, if still running, then finds nothing.
            wasyncore.close_all(server_map)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WsgiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def status_line(status: int) -> str:
    """A WSGI status line, `404 Not Found`, with the standard reason phrase."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Status"
