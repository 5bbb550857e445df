"""Serving the emulator over real HTTP, in the foreground or on a thread."""

from __future__ import annotations

from pathlib import Path

from functions.wsgi_server import WsgiServer

from .app import Emulator
from .seed import Seed


class EmulatorServer(WsgiServer):
    """The emulator on a local port, for tests and `vend local`: use it as a context manager."""

    def __init__(
        self,
        seed: Seed,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        state_path: str | Path | None = None,
        # Injected latency holds a thread per call: 8 threads would cap a benchmark at 400 slowed
        # calls/s (200 obtains/s at 20 ms), below what one `vend serve` can do.
        threads: int = 32,
    ) -> None:
        self.emulator = Emulator(seed, state_path=state_path)
        super().__init__(
            self.emulator, host=host, port=port, threads=threads, ident="vend-emulator"
        )

    def start(self) -> EmulatorServer:
        super().start()
        return self

    def __enter__(self) -> EmulatorServer:
        return self.start()
