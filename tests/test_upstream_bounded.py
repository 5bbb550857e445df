"""Connections whose whole exchange keeps to one deadline (shared/upstream/bounded.py), over TLS:
what the service's https upstreams (STS, EIAM, KMS, a JWKS) are reached with. The plain-HTTP
case is in test_upstream_transport.py."""

from __future__ import annotations

import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from certs import self_signed
from trickle import TrickleServer

from shared.upstream.bounded import BoundedHTTPSConnection, tls_context

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n" + b"x" * 20


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    return self_signed(tmp_path)


@pytest.fixture
def server(cert: tuple[Path, Path], request: pytest.FixtureRequest) -> Iterator[TrickleServer]:
    """Answers each request over TLS, one byte every `request.param` seconds (0: all at once)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*cert)
    with TrickleServer(ANSWER, every_s=request.param, tls=context) as running:
        yield running


def _get(port: int, cafile: Path, seconds: float) -> bytes:
    conn = BoundedHTTPSConnection(
        f"localhost:{port}", timeout=seconds, context=tls_context(cafile=str(cafile))
    )
    try:
        conn.until(time.monotonic() + seconds)
        conn.request("GET", "/")
        return conn.getresponse().read()
    finally:
        conn.close()


@pytest.mark.parametrize("server", [0.0], indirect=True)
def test_an_answer_in_time_is_read_whole(server: TrickleServer, cert: tuple[Path, Path]) -> None:
    assert _get(server.port, cert[0], 5.0) == b"x" * 20


@pytest.mark.parametrize("server", [0.05], indirect=True)
def test_a_trickled_tls_answer_ends_at_the_deadline(
    server: TrickleServer, cert: tuple[Path, Path]
) -> None:
    """About 60 bytes, one every 50 ms (3 s in all), each well within the socket's timeout:
    the exchange still ends when its 0.4 s are up."""
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        _get(server.port, cert[0], 0.4)
    assert time.monotonic() - started < 1.5


def test_a_context_not_made_for_it_is_refused() -> None:
    with pytest.raises(ValueError, match="tls_context"):
        BoundedHTTPSConnection("localhost:1", context=ssl.create_default_context())
