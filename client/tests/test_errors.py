"""Every failure a caller can meet is a `VendClientError`: one row per kind, each provoked for real
(a closed port, pytest-httpserver answering slowly, refusing, failing or with garbage, no
credentials anywhere, a tampered envelope), caught by `except VendClientError`, of its own type,
and carrying the request id where the answer named one."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sealed
from pytest_httpserver import HTTPServer
from threads import wait_until
from werkzeug import Request, Response

import vend_client
from vend_client import (
    CloudError,
    CloudUnreachable,
    ConfigurationError,
    Credentials,
    EnvelopeError,
    NoCredentialsError,
    RefusedError,
    ServiceTimeout,
    ServiceUnreachable,
    UpstreamError,
    VendApiError,
    VendClient,
    VendClientError,
)

ACCOUNT = "1234567890123456"
ME = f"acs:ram::{ACCOUNT}:user/billing"
ARN = f"acs:eiam:cn-hangzhou:{ACCOUNT}:instance/idaas_x/application/app_y/secret/sct_z"
KEYS = Credentials("LTAI5tCallerKey000001", "caller-secret-never-sent")
DATA_KEY = os.urandom(32)
IDS = ("idaas_x", "app_y", "sct_z")
OBTAIN = "/v1/secrets/obtain"


@dataclass(frozen=True)
class Caught:
    """What `except VendClientError` caught: its type, its request id, and some attributes."""

    kind: type[VendClientError]
    request_id: str | None
    values: dict[str, Any] = field(default_factory=dict)


def catch(call: Callable[[], object], *attributes: str) -> Caught:
    try:
        call()
    except VendClientError as exc:
        values = {name: getattr(exc, name) for name in attributes}
        return Caught(type(exc), exc.request_id, values)
    raise AssertionError("nothing was raised")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def base(server: HTTPServer) -> str:
    return server.url_for("").rstrip("/")


def client(server: HTTPServer, **kw: Any) -> VendClient:
    fields: dict[str, Any] = {
        "url": base(server),
        "audience": "vend-prod",
        "credentials": KEYS,
        "sts_endpoint": base(server),
        "kms_endpoint": base(server),
        "timeout_s": 5,
    }
    return VendClient(**{**fields, **kw})


def obtain(vend: VendClient) -> Callable[[], object]:
    return lambda: vend.obtain(*IDS)


def error_body(code: str, request_id: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": "planned", "request_id": request_id}}


def answers(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    """A row: the service answers `body` (JSON, or text as it is) with `status`."""

    def provoke(server: HTTPServer, tmp_path: Path) -> Caught:
        expect = server.expect_request(OBTAIN)
        if isinstance(body, str):
            expect.respond_with_data(body, status=status, headers=headers)
        else:
            expect.respond_with_json(body, status=status, headers=headers)
        return catch(obtain(client(server)), "status", "code", "retry_after")

    return provoke


def no_credentials(server: HTTPServer, tmp_path: Path) -> Caught:
    """In a process of its own: the credentials library reads its variables when imported. No
    ALIBABA_CLOUD_* keys, a home without profile files, no ECS metadata lookups."""
    server.expect_request(OBTAIN).respond_with_json(error_body("Unexpected", "r-0"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "VEND_"))}
    env.update({"HOME": str(tmp_path), "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"})
    code = f"""
import json
from vend_client import VendClient, VendClientError
try:
    VendClient(url={base(server)!r}, audience="vend-prod").obtain(*{IDS!r})
except VendClientError as exc:
    print(json.dumps({{"kind": type(exc).__name__, "request_id": exc.request_id}}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    said = json.loads(done.stdout)
    assert server.log == []  # nothing was asked without a proof
    return Caught(getattr(vend_client, said["kind"]), said["request_id"])


def unreachable(server: HTTPServer, tmp_path: Path) -> Caught:
    vend = client(server, url=f"http://127.0.0.1:{closed_port()}")
    return catch(obtain(vend), "detail", "retryable")


def tls_fails(server: HTTPServer, tmp_path: Path) -> Caught:
    """https:// to a server that speaks plain HTTP: the handshake fails."""
    vend = client(server, url=f"https://127.0.0.1:{server.port}")
    return catch(obtain(vend), "retryable")


def slow(server: HTTPServer, tmp_path: Path) -> Caught:
    """The service accepts the request and does not answer within the client's timeout."""
    release = threading.Event()
    held: list[Request] = []

    def hold(request: Request) -> Response:
        held.append(request)
        release.wait(10)
        return Response("{}", 200, content_type="application/json")

    server.expect_request(OBTAIN).respond_with_handler(hold)
    try:
        return catch(obtain(client(server, timeout_s=0.3)), "timeout_s", "retryable")
    finally:
        release.set()
        # Each held answer is logged once its handler returns: waited for here, or it lands
        # in the log of the next test that uses the server.
        wait_until(lambda: len(server.log) == len(held), "the held answers logged")


def opening(server: HTTPServer, answer: dict[str, Any], **kw: Any) -> Callable[[], object]:
    """Obtaining `answer` and opening it, as the caller billing."""
    server.expect_request(OBTAIN).respond_with_json(answer)
    vend = client(server, **kw)

    def run() -> object:
        response = vend.obtain(*IDS)
        return vend.open(
            response,
            instance_id=IDS[0],
            application_id=IDS[1],
            secret_id=IDS[2],
            expected_principal=ME,
        )

    return run


def sealed_answer() -> dict[str, Any]:
    return sealed.vend_response(secret="CS-secret", arn=ARN, principal=ME, data_key=DATA_KEY)


def kms_gives_the_key(server: HTTPServer) -> None:
    server.expect_request("/", headers={"x-acs-action": "Decrypt"}).respond_with_json(
        {"KeyId": "key-billing", "Plaintext": base64.b64encode(DATA_KEY).decode()}
    )


def tampered(server: HTTPServer, tmp_path: Path) -> Caught:
    """The ciphertext altered in transit: KMS gives the data key, AES-GCM's tag refuses."""
    kms_gives_the_key(server)
    answer = sealed_answer()
    cipher = bytearray(base64.b64decode(answer["envelope"]["ciphertext"]))
    cipher[0] ^= 1
    answer["envelope"]["ciphertext"] = base64.b64encode(bytes(cipher)).decode()
    return catch(opening(server, answer))


def kms_refuses(server: HTTPServer, tmp_path: Path) -> Caught:
    server.expect_request("/", headers={"x-acs-action": "Decrypt"}).respond_with_json(
        {"Code": "Forbidden.RAM", "Message": "no", "RequestId": "kms-9"}, status=403
    )
    return catch(opening(server, sealed_answer()), "service", "status", "code")


def kms_unreachable(server: HTTPServer, tmp_path: Path) -> Caught:
    kms = f"http://127.0.0.1:{closed_port()}"
    return catch(opening(server, sealed_answer(), kms_endpoint=kms), "service", "timed_out")


def bad_token(server: HTTPServer, tmp_path: Path) -> Caught:
    return catch(lambda: VendClient(url=base(server), token="a token\nX-Injected: 1"), "setting")


@dataclass(frozen=True)
class Row:
    id: str
    provoke: Callable[[HTTPServer, Path], Caught]
    kind: type[VendClientError]
    request_id: str | None = None
    values: dict[str, Any] = field(default_factory=dict)


ROWS = [
    Row("no-credentials", no_credentials, NoCredentialsError),
    Row(
        "unreachable",
        unreachable,
        ServiceUnreachable,
        values={"detail": "connection refused", "retryable": True},
    ),
    Row("tls-fails", tls_fails, ServiceUnreachable, values={"retryable": False}),
    Row("timeout", slow, ServiceTimeout, values={"timeout_s": 0.3, "retryable": False}),
    Row(
        "401",
        answers(401, error_body("Unauthenticated", "r-401")),
        RefusedError,
        "r-401",
        {"status": 401, "code": "Unauthenticated"},
    ),
    Row(
        "403",
        answers(403, error_body("AccessDenied", "r-403")),
        RefusedError,
        "r-403",
        {"status": 403, "code": "AccessDenied"},
    ),
    Row(
        "404",
        answers(404, error_body("NotFound", "r-404")),
        RefusedError,
        "r-404",
        {"status": 404},
    ),
    Row(
        "429-retry-after",
        answers(429, error_body("Throttled", "r-429"), {"Retry-After": "7"}),
        UpstreamError,
        "r-429",
        {"status": 429, "code": "Throttled", "retry_after": 7.0},
    ),
    Row(
        "502",
        answers(502, error_body("UpstreamError", "r-502")),
        UpstreamError,
        "r-502",
        {"status": 502, "code": "UpstreamError"},
    ),
    Row(
        "503-gateway-page",
        answers(503, "<html>busy</html>", {"X-Request-Id": "gw-503"}),
        UpstreamError,
        "gw-503",
        {"status": 503, "code": "BadResponse"},
    ),
    Row(
        "500",
        answers(500, error_body("InternalError", "r-500")),
        UpstreamError,
        "r-500",
        {"status": 500},
    ),
    Row(
        "garbage",
        answers(200, "\x00not json at all", {"X-Request-Id": "r-garbage"}),
        VendApiError,
        "r-garbage",
        {"status": 200, "code": "BadResponse"},
    ),
    Row(
        "not-a-vend-response",
        answers(200, {"request_id": "r-shape", "envelope": {}}),
        VendApiError,
        "r-shape",
        {"code": "BadResponse"},
    ),
    Row("tampered-envelope", tampered, EnvelopeError, "req-1"),
    Row(
        "kms-refuses",
        kms_refuses,
        CloudError,
        "kms-9",
        {"service": "KMS", "status": 403, "code": "Forbidden.RAM"},
    ),
    Row(
        "kms-unreachable",
        kms_unreachable,
        CloudUnreachable,
        values={"service": "KMS", "timed_out": False},
    ),
    Row("bad-token", bad_token, ConfigurationError, values={"setting": "token"}),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_every_failure_is_a_vend_client_error_of_its_kind(
    row: Row, httpserver: HTTPServer, tmp_path: Path
) -> None:
    caught = row.provoke(httpserver, tmp_path)
    assert caught.kind is row.kind
    assert caught.request_id == row.request_id
    assert {name: caught.values[name] for name in row.values} == row.values


def test_what_was_a_value_error_still_is(httpserver: HTTPServer) -> None:
    """A bad token and an envelope that is not one were ValueErrors: old callers still catch
    them as such."""
    with pytest.raises(ValueError, match="bearer token"):
        VendClient(url=base(httpserver), token='"quoted"')
    kms_gives_the_key(httpserver)
    answer = sealed_answer()
    answer["envelope"]["encryption_context"]["vend:request_id"] = "altered"
    with pytest.raises(ValueError, match="does not decrypt") as info:
        opening(httpserver, answer)()
    assert isinstance(info.value, EnvelopeError)


def test_a_callable_token_that_gives_no_token_is_refused_before_asking(
    httpserver: HTTPServer,
) -> None:
    for token in ("", "two words", None):
        vend = client(httpserver, token=lambda token=token: token)
        with pytest.raises(ConfigurationError) as info:
            vend.obtain(*IDS)
        assert info.value.setting == "token"
    assert httpserver.log == []


class HangingUp:
    """A listener that accepts every connection and closes it unanswered: FC gone between
    taking the invocation and answering it. (Not a refused connection: fc2 retries one five
    times, backing off about 30 s in all, from module-level settings; a POST whose connection
    dropped after it was sent it does not retry, so this fails as fast as it would in use.)"""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:  # closed: the test is over
                return
            conn.close()

    def __enter__(self) -> HangingUp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        self._listener.close()
        self._thread.join(timeout=5)


def test_the_events_clients_failures_are_vend_client_errors_too() -> None:
    """FC unreachable, through fc2: a ServiceUnreachable naming FC's endpoint."""
    fc2 = pytest.importorskip("fc2")  # the `events` extra
    with HangingUp() as fc_gone:
        fc = fc2.Client(
            endpoint=fc_gone.url, accessKeyID="LTAI5tCallerKey000001", accessKeySecret="x"
        )
        events = vend_client.EventsClient(VendClient(url="", token="a-jwt"), fc)
        with pytest.raises(ServiceUnreachable) as info:
            events.obtain(*IDS)
        assert info.value.url == fc_gone.url
        with pytest.raises(ServiceUnreachable):
            events.create_async("idaas_x", "app_y")
