"""Running `vend` as a separate process, as a user does."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

from log_scan import SESSION_LOG

VEND = [sys.executable, "-m", "infra.local.cli"]


def free_port() -> int:
    """A port nothing listens on now: where a connection is refused. A server of a test binds
    port 0 in its own process instead (Server.wait_for reads where): a port chosen here and
    handed over could be taken in between."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Server:
    """A server the tests start as its own process (`vend serve`, `vend local`, `vend emulator`):
    its stdout (the banner, for a person) on a pipe, its log (stderr) in a file, which `stop`
    hands to the session's log check (tests/log_scan.py) as well as to the test. The custom
    runtime (`functions.custom_runtime`) has no banner: its stdout is its log, as FC ships it.

    Started with `--port 0`, the server binds in its own process and prints where it listens:
    `wait_for` reads that line. Its stdout is read as it comes, so it never blocks on a pipe."""

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
        self._printed: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self._printed.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()  # the end: whoever waits for a line stops waiting

    def printed(self) -> str:
        """What the process has printed so far."""
        with self._changed:
            return "".join(self._printed)

    def wait_for(self, pattern: str, seconds: float = 30) -> re.Match[str]:
        """The first printed line matching `pattern`, once it is printed; fails if the process
        ends or `seconds` pass first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + seconds
        with self._changed:
            while (found := next(filter(None, map(regex.search, self._printed)), None)) is None:
                left = deadline - time.monotonic()
                ended = not self._reader.is_alive()
                assert left > 0 and not ended, f"no line matching {pattern!r}:\n{self.printed()}"
                self._changed.wait(min(left, 1.0))
            return found

    def stop(self) -> tuple[str, str]:
        """Ends the process: what it printed, and its log."""
        self.proc.terminate()
        self.proc.wait(timeout=10)
        self._reader.join(10)
        out = self.printed()
        self._log.seek(0)
        log = self._log.read()
        self._log.close()
        SESSION_LOG.output(f"{self.source} (stderr)", log)
        if self.log_on_stdout:
            SESSION_LOG.output(f"{self.source} (stdout)", out)
        return out, log


CUSTOM_RUNTIME = [sys.executable, "-m", "functions.custom_runtime", "--host", "127.0.0.1"]


def custom_runtime(env: dict[str, str]) -> tuple[Server, str]:
    """`functions.custom_runtime --port 0` started (FC gives it 9000; here it binds its own), and
    its URL once its `start` line says where it listens."""
    server = Server([*CUSTOM_RUNTIME, "--port", "0"], "functions.custom_runtime", env)
    try:
        listening = server.wait_for(r'"message":"listening","url":"(http://127\.0\.0\.1:[0-9]+)"')
    except BaseException:
        server.stop()
        raise
    return server, listening.group(1)


def vend_local(env: dict[str, str]) -> tuple[Server, int, int]:
    """`vend local --port 0` started, once its banner names the two ports it listens on: the
    server, the API's port and the emulator's."""
    local = Server([*VEND, "local", "--port", "0"], "vend local", env)
    try:
        api = local.wait_for(r"^  API +http://127\.0\.0\.1:([0-9]+)/v1/")
        emulator = local.wait_for(r"^  emulator +http://127\.0\.0\.1:([0-9]+) ")
    except BaseException:
        local.stop()
        raise
    return local, int(api.group(1)), int(emulator.group(1))
