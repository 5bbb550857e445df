"""The agent's HTTP server: waitress (threads, keep-alive, a bounded number of connections), in
the foreground until SIGTERM or Ctrl-C."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any

__all__ = ["serve"]


def serve(
    app: Any,
    *,
    host: str,
    port: int,
    threads: int,
    connection_limit: int,
    on_listening: Callable[[list[str]], None],
) -> None:
    """Serves `app` until SIGTERM or SIGINT; OSError when it cannot listen (`port` in use, a
    host it cannot bind). `on_listening` gets the URLs it listens on."""
    # Imported here: `vend-client --help` and the other commands need no server.
    from waitress.server import create_server  # noqa: PLC0415

    server = create_server(
        app,
        host=host,
        port=port,
        threads=threads,
        # Beyond this many open connections waitress stops accepting (they wait in the
        # listen backlog): a burst of callers cannot take unbounded memory or descriptors.
        connection_limit=connection_limit,
        ident="vend-agent",
        # The app refuses a request naming a proxy hop; waitress would otherwise drop those
        # headers before the app could see them.
        clear_untrusted_proxy_headers=False,
        expose_tracebacks=False,
    )
    listen = getattr(server, "effective_listen", None) or [
        (server.effective_host, server.effective_port)  # type: ignore[union-attr]
    ]
    # waitress counts its own sockets among the open connections it limits (each listening
    # socket, and the trigger that wakes its loop): the limit asked for is on callers'.
    server.adj.connection_limit = connection_limit + len(listen) + 1
    # Stopped by SIGTERM from the moment it says where it listens: whoever reads that line
    # may stop it at once.
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        on_listening([_url(str(h), int(p)) for h, p in listen])
        server.run()  # returns on SystemExit or KeyboardInterrupt, its threads shut down
    except SystemExit:
        pass  # SIGTERM came before the loop began: stopped all the same
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
