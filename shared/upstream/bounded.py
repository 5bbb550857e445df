"""HTTP connections whose whole exchange keeps to one deadline.

A socket's timeout bounds one call: a peer that sends a byte just before each timeout (a
trickle) holds a reader for as long as it likes, since http.client reads the status line, the
headers and the body in many calls. Here every send and receive first sets the socket's timeout
to what is left before the connection's deadline, and fails with TimeoutError once it has
passed: however the answer comes, the exchange ends by the deadline. The TLS handshake runs
under the connect timeout, which the callers take from the same deadline."""

from __future__ import annotations

import http.client
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer, WriteableBuffer


def _left(end: float | None) -> float | None:
    """The timeout for the next socket call: what is left before `end` (time.monotonic()), or
    None for no deadline (the socket keeps its own timeout)."""
    if end is None:
        return None
    left = end - time.monotonic()
    if left <= 0:
        raise TimeoutError("the exchange's deadline passed")
    return left


class BoundedSocket(socket.socket):
    """A TCP socket whose sends and receives end by `end` (time.monotonic()), when it is set."""

    end: float | None = None

    @classmethod
    def adopt(cls, sock: socket.socket) -> BoundedSocket:
        """The same connection, as a BoundedSocket (`sock` is detached and must not be used)."""
        timeout = sock.gettimeout()
        bounded = cls(sock.family, sock.type, sock.proto, fileno=sock.detach())
        bounded.settimeout(timeout)
        return bounded

    def _arm(self) -> None:
        left = _left(self.end)
        if left is not None:
            self.settimeout(left)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        self._arm()
        return super().recv(bufsize, flags)

    def recv_into(self, buffer: WriteableBuffer, nbytes: int = 0, flags: int = 0) -> int:
        self._arm()
        return super().recv_into(buffer, nbytes, flags)

    def send(self, data: ReadableBuffer, flags: int = 0) -> int:
        self._arm()
        return super().send(data, flags)

    def sendall(self, data: ReadableBuffer, flags: int = 0) -> None:
        self._arm()  # CPython's sendall keeps to one timeout over all its sends
        super().sendall(data, flags)


class BoundedSSLSocket(ssl.SSLSocket):
    """BoundedSocket over TLS: a context made by `tls_context` wraps sockets in this class."""

    end: float | None = None

    def _arm(self) -> None:
        left = _left(self.end)
        if left is not None:
            self.settimeout(left)

    def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
        self._arm()
        return super().recv(buflen, flags)

    def recv_into(self, buffer: WriteableBuffer, nbytes: int | None = None, flags: int = 0) -> int:
        self._arm()
        return super().recv_into(buffer, nbytes, flags)

    def send(self, data: ReadableBuffer, flags: int = 0) -> int:
        self._arm()  # SSLSocket.sendall sends piece by piece through this
        return super().send(data, flags)


def tls_context(cafile: str | None = None) -> ssl.SSLContext:
    """A default client context (verifying, with `cafile` or the system's CAs) whose sockets
    are BoundedSSLSockets."""
    context = ssl.create_default_context(cafile=cafile)
    context.sslsocket_class = BoundedSSLSocket
    return context


class BoundedHTTPConnection(http.client.HTTPConnection):
    """An HTTPConnection whose exchanges end by `end` (time.monotonic()); set it with `until`
    before each request. `timeout` bounds the connect."""

    end: float | None = None

    def connect(self) -> None:
        super().connect()
        self.sock = BoundedSocket.adopt(self.sock)
        self.sock.end = self.end

    def until(self, end: float | None) -> None:
        self.end = end
        _bound(self.sock, end)


class BoundedHTTPSConnection(http.client.HTTPSConnection):
    """BoundedHTTPConnection over TLS; `context` must come from `tls_context`."""

    end: float | None = None

    def __init__(self, host: str, *, context: ssl.SSLContext, **kwargs: Any) -> None:
        if context.sslsocket_class is not BoundedSSLSocket:
            raise ValueError("the TLS context must come from tls_context()")
        super().__init__(host, context=context, **kwargs)

    def connect(self) -> None:
        super().connect()
        _bound(self.sock, self.end)

    def until(self, end: float | None) -> None:
        self.end = end
        _bound(self.sock, end)


def _bound(sock: socket.socket | None, end: float | None) -> None:
    if sock is None:  # not connected yet: connect() passes `end` on
        return
    if not isinstance(sock, (BoundedSocket, BoundedSSLSocket)):
        raise TypeError("the connection's socket is not bounded")
    sock.end = end


BoundedConnection = BoundedHTTPConnection | BoundedHTTPSConnection

__all__ = [
    "BoundedConnection",
    "BoundedHTTPConnection",
    "BoundedHTTPSConnection",
    "BoundedSSLSocket",
    "BoundedSocket",
    "tls_context",
]
