"""A server that answers every request one byte at a time, slowly: each byte comes well within
any socket timeout, so only a deadline on the whole exchange ends the wait for its answer."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from types import TracebackType


class TrickleServer:
    """Sends `answer` a byte every `every_s` (0: all at once), over TLS with `tls`, and closes
    the connection after `for_s` (so that a client that waits for it all is not held forever:
    the test fails, it does not hang)."""

    def __init__(
        self,
        answer: bytes,
        every_s: float = 0.5,
        for_s: float = 10.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._answer = answer
        self._tls = tls
        self._every_s = every_s
        self._for_s = for_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, name="trickle", daemon=True).start()

    def url(self, path: str = "/jwks") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            conn = raw if self._tls is None else self._tls.wrap_socket(raw, server_side=True)
        except OSError:
            raw.close()
            return
        with conn:
            try:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    head += chunk
                with self._lock:
                    self.requests += 1
                if not self._every_s:
                    conn.sendall(self._answer)
                    return
                until = time.monotonic() + self._for_s
                for byte in self._answer:
                    conn.sendall(bytes([byte]))
                    if self._stop.wait(self._every_s) or time.monotonic() > until:
                        return
            except OSError:
                return

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()

    def __enter__(self) -> TrickleServer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def http_answer(body: bytes, status: str = "200 OK") -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
    return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body


__all__ = ["TrickleServer", "http_answer"]
