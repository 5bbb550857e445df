"""Running `vend` as a separate process, as a user does."""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time

from log_scan import SESSION_LOG

VEND = [sys.executable, "-m", "infra.local.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_for_port(port: int, proc: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


class Server:
    """A server the tests start as its own process (`vend serve`, `vend local`, `vend emulator`):
    its stdout (the banner, for a person) on a pipe, its log (stderr) in a file, which `stop`
    hands to the session's log check (tests/log_scan.py) as well as to the test. The custom
    runtime (`functions.custom_runtime`) has no banner: its stdout is its log, as FC ships it."""

    def __init__(self, args: list[str], source: str, env: dict[str, str] | None = None) -> None:
        self.source = source
        self.log_on_stdout = "functions.custom_runtime" in args
        self._log = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - see stop
        self.proc = subprocess.Popen(
            args,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            encoding="utf-8",
        )

    def stop(self) -> tuple[str, str]:
        """Ends the process: what it printed, and its log."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        self._log.seek(0)
        log = self._log.read()
        self._log.close()
        SESSION_LOG.output(f"{self.source} (stderr)", log)
        if self.log_on_stdout:
            SESSION_LOG.output(f"{self.source} (stdout)", out)
        return out, log
