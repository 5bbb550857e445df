"""A WSGI app on a local port with waitress (a real threaded HTTP server), in the foreground or
on a thread; used by `vend serve`, `vend local`, the emulator and the tests."""

from __future__ import annotations

import threading
from http import HTTPStatus
from types import TracebackType
from typing import Any

from waitress import wasyncore
from waitress.server import TcpWSGIServer, create_server


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
        server = create_server(app, host=host, port=port, threads=threads, ident=ident)
        assert isinstance(server, TcpWSGIServer)  # one host and port give one TCP server
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
