"""Connections whose whole exchange keeps to one deadline (shared/upstream/bounded.py), over TLS:
what the service's https upstreams (STS, EIAM, KMS, a JWKS) are reached with. The plain-HTTP
case is in test_upstream_transport.py."""

from __future__ import annotations

import datetime
import ssl
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from trickle import TrickleServer

from shared.upstream.bounded import BoundedHTTPSConnection, tls_context

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n" + b"x" * 20


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    return _self_signed(tmp_path)


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
