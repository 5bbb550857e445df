"""A real `redis-server` for the tests: on a free loopback port, in a temporary directory, with no
persistence; started once per session by the `redis_url` fixture and stopped at its end.

Without `redis-server` on PATH the Redis-backed tests are skipped, except under CI (the
environment variable `CI` set), where they fail: CI must test Redis."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from ci import under_ci
from processes import free_port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """`settings`: more command-line settings, after (and so over) the defaults below."""

    def __init__(self, binary: str, *settings: str) -> None:
        self.binary = binary
        self.settings = settings
        self.port = 0
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, seconds: float = 10) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="vend-redis-"))
        for _ in range(3):  # another process may take the free port first: try another
            self.port = free_port()
            log = self._dir / "redis.log"
            self._proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                 "--save", "", "--appendonly", "no", "--dir", str(self._dir),
                 "--logfile", str(log), "--daemonize", "no", *self.settings],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )  # fmt: skip
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and self._proc.poll() is None:
                if _answers_ping(self.port):
                    return
                time.sleep(0.02)
            self._stop_process()
        text = log.read_text(errors="replace") if log.exists() else "(no log)"
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING; its log:\n{text}")

    def _stop_process(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None

    def stop(self) -> None:
        self._stop_process()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class PersistentRedis:
    """A redis-server that writes every change to its append-only file before answering
    (appendfsync always), on a port of its own for its whole life. `restart()` kills it
    (SIGKILL: no shutdown save) and starts it again in the same directory: acknowledged records
    survive. `restart(empty=True)` starts it on an empty directory: a store that forgot."""

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="vend-redis-aof-"))
        self.port = free_port()
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, seconds: float = 10) -> None:
        log = self.dir / "redis.log"
        self._proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "yes", "--appendfsync", "always",
             "--dir", str(self.dir), "--logfile", str(log), "--daemonize", "no"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._proc.poll() is None:
            if _answers_ping(self.port):  # +PONG, not -LOADING: the AOF has been read
                return
            time.sleep(0.01)
        text = log.read_text(errors="replace") if log.exists() else "(no log)"
        raise RuntimeError(f"redis-server did not answer PING on {self.port}; its log:\n{text}")

    def kill(self) -> None:
        if self._proc is not None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait()
            self._proc = None

    def freeze(self, seconds: float) -> threading.Thread:
        """Stops the process (SIGSTOP) for `seconds`, then lets it go on (SIGCONT), from a
        thread of its own: commands sent meanwhile wait in the socket and run when it resumes,
        even those whose client gave up waiting."""
        proc = self._proc
        assert proc is not None
        proc.send_signal(signal.SIGSTOP)

        def resume() -> None:
            time.sleep(seconds)
            proc.send_signal(signal.SIGCONT)

        thread = threading.Thread(target=resume, daemon=True)
        thread.start()
        return thread

    def restart(self, *, empty: bool = False) -> None:
        self.kill()
        if empty:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir.mkdir(parents=True)
        self.start()
        self.restarts += 1

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def redis_binary() -> str:
    """redis-server's path; skips the test without one, except under CI, where it fails."""
    binary = shutil.which("redis-server")
    if binary is None:
        if under_ci():
            pytest.fail("redis-server is not on PATH, and CI must test the Redis store")
        pytest.skip("redis-server is not on PATH (apt-get install redis-server); Redis not tested")
    return binary


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """`redis://127.0.0.1:PORT/0` of a redis-server of this session's own."""
    with RedisServer(redis_binary()) as server:
        yield server.url


@pytest.fixture(params=["memory", "redis"])
def persistent_store(
    request: pytest.FixtureRequest,
) -> Iterator[tuple[str, PersistentRedis | None]]:
    """The store URL of each kind, memory:// and a redis-server persisting every write (with
    the server, to restart), for the tests that run the same over both."""
    if request.param == "memory":
        yield "memory://", None
        return
    server = PersistentRedis(redis_binary())
    try:
        server.start()
        yield server.url, server
    finally:
        server.stop()
