"""The service's own sending of its upstream calls (shared/upstream/transport.py), over real HTTP.

What is sent is checked three ways: field by field as pytest-httpserver receives it, against what
the SDK's own `call_api` sends to the same server, and by the emulator, which verifies the
ACS3-HMAC-SHA256 signature (from the published algorithm, not the SDK's signer). What an answer
becomes is checked against the SDK's own exceptions for the same answer. Keep-alive, stale
connections and timeouts are checked on a bare socket server of the test's own, which shows
which TCP connection each request came on."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sdk_clients as sdk
from alibabacloud_tea_openapi import models as openapi
from alibabacloud_tea_openapi.client import Client as OpenApiClient
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from darabonba.runtime import RuntimeOptions
from pytest_httpserver import HTTPServer
from werkzeug import Request

from functions.wsgi_server import WsgiServer
from infra.emulator import EmulatorServer
from shared.upstream.transport import RpcTransport, WireError
from shared.wire.credentials import Credentials
from shared.wire.endpoint import Endpoint
from shared.wire.rpc import EIAM_VERSION, KMS_VERSION, STS_VERSION, rpc_params

KEY = Credentials("LTAI5tTestOnly000001", "test-only-secret")
FUNCTION = Credentials(*sdk.FUNCTION)  # vend-function of examples/seed.yaml
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MIB = 1 << 20  # the most of an answer that is read
AUTHORIZATION = re.compile(
    r"^ACS3-HMAC-SHA256 Credential=(?P<key>[^,]+),SignedHeaders=(?P<headers>[a-z0-9;.-]+),"
    r"Signature=(?P<sig>[0-9a-f]{64})$"
)
REQUIRED_SIGNED = {
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
}


@pytest.fixture
def transport() -> Iterator[RpcTransport]:
    rpc = RpcTransport()
    yield rpc
    rpc.close()


def call(
    rpc: RpcTransport,
    endpoint: Endpoint,
    action: str = "ObtainApplicationClientSecret",
    version: str = EIAM_VERSION,
    query: dict[str, str] | None = None,
    *,
    creds: Credentials = KEY,
    timeout_ms: int = 5000,
) -> Any:
    return rpc.call(
        endpoint,
        creds,
        action,
        version,
        {"InstanceId": "idaas_demo"} if query is None else query,
        connect_timeout_ms=1000,
        timeout_ms=timeout_ms,
    )


def local(httpserver: HTTPServer) -> Endpoint:
    return Endpoint("http", f"{httpserver.host}:{httpserver.port}")


def sdk_call(
    endpoint: Endpoint,
    action: str,
    version: str,
    query: dict[str, str],
    creds: Credentials = KEY,
) -> Any:
    """The same call through the SDK's own generic `call_api` (darabonba, requests)."""
    client = OpenApiClient(
        openapi.Config(
            access_key_id=creds.access_key_id,
            access_key_secret=creds.access_key_secret,
            security_token=creds.security_token,
            endpoint=endpoint.host,
            protocol=endpoint.protocol,
            region_id="cn-hangzhou",
        )
    )
    request = openapi.OpenApiRequest(query=query)
    return client.call_api(rpc_params(action, version), request, RuntimeOptions())


def signed_headers(req: Request) -> list[str]:
    match = AUTHORIZATION.match(req.headers["Authorization"])
    assert match, req.headers["Authorization"]
    return match["headers"].split(";")


# -- the request ----------------------------------------------------------------------------------


def test_the_request_is_what_the_sdk_sends(httpserver: HTTPServer, transport: RpcTransport) -> None:
    httpserver.expect_request("/", method="POST").respond_with_json({"RequestId": "r-1"})
    query = {"InstanceId": "idaas_demo", "ApplicationId": "app billing+1*~"}
    assert call(transport, local(httpserver), query=query) == {"RequestId": "r-1"}
    assert call(transport, local(httpserver), query=query) == {"RequestId": "r-1"}
    (first, _), (second, _) = httpserver.log
    for req in (first, second):
        assert (req.method, req.path) == ("POST", "/")
        assert req.args.to_dict() == query  # every value arrives as it was, encoded or not
        assert req.get_data() == b""
        headers = req.headers
        assert headers["host"] == f"{httpserver.host}:{httpserver.port}"
        assert headers["x-acs-action"] == "ObtainApplicationClientSecret"
        assert headers["x-acs-version"] == EIAM_VERSION
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", headers["x-acs-date"])
        assert headers["x-acs-content-sha256"] == EMPTY_SHA256
        assert headers["accept"] == "application/json"
        assert headers["x-acs-signature-nonce"]
        match = AUTHORIZATION.match(headers["Authorization"])
        assert match, headers["Authorization"]
        assert match["key"] == KEY.access_key_id
        signed = match["headers"].split(";")
        assert signed == sorted(signed)
        assert set(signed) >= REQUIRED_SIGNED
        # No token, no token headers.
        assert "x-acs-security-token" not in headers
        assert "x-acs-accesskey-id" not in headers
    # Each request is signed afresh: a nonce is never sent twice.
    assert first.headers["x-acs-signature-nonce"] != second.headers["x-acs-signature-nonce"]
    assert first.headers["Authorization"] != second.headers["Authorization"]


def test_a_security_token_is_sent_and_signed(
    httpserver: HTTPServer, transport: RpcTransport
) -> None:
    httpserver.expect_request("/", method="POST").respond_with_json({"RequestId": "r-1"})
    session = Credentials("STS.NTestOnly0001", "session-secret", "token/with+odd=chars")
    call(transport, local(httpserver), creds=session)
    ((req, _),) = httpserver.log
    assert req.headers["x-acs-accesskey-id"] == session.access_key_id
    assert req.headers["x-acs-security-token"] == session.security_token
    match = AUTHORIZATION.match(req.headers["Authorization"])
    assert match and match["key"] == session.access_key_id
    assert {"x-acs-accesskey-id", "x-acs-security-token"} <= set(match["headers"].split(";"))


@pytest.mark.parametrize("token", [None, "a-session-token"], ids=["key", "sts-session"])
def test_the_request_matches_the_sdks_own(
    httpserver: HTTPServer, transport: RpcTransport, token: str | None
) -> None:
    """The SDK's `call_api` and the transport, sending the same call to the same server, send the
    same method, path, query, signed headers and values of every x-acs-* header but the date,
    nonce and (so) the signature. The one header the SDK adds is x-acs-credentials-provider, the
    name of the credentials library's provider ("static_ak", "static_sts"): informational, and
    signed only because every x-acs-* header is."""
    httpserver.expect_request("/", method="POST").respond_with_json({"RequestId": "r-1"})
    creds = Credentials(KEY.access_key_id, KEY.access_key_secret, token)
    query = {"InstanceId": "idaas_demo", "ApplicationId": "app_billing", "Note": "a b/c"}
    sdk_call(local(httpserver), "ObtainApplicationClientSecret", EIAM_VERSION, query, creds)
    call(transport, local(httpserver), query=query, creds=creds)
    (theirs, _), (ours, _) = httpserver.log
    assert (ours.method, ours.path) == (theirs.method, theirs.path)
    assert ours.args.to_dict() == theirs.args.to_dict() == query
    provider = "x-acs-credentials-provider"
    assert signed_headers(ours) == [h for h in signed_headers(theirs) if h != provider]
    varying = {"x-acs-date", "x-acs-signature-nonce", provider}

    def acs(req: Request) -> dict[str, str]:
        return {
            k.lower(): v
            for k, v in req.headers.items()
            if k.lower().startswith("x-acs-") and k.lower() not in varying
        }

    assert acs(ours) == acs(theirs)
    for name in ("host", "accept"):
        assert ours.headers[name] == theirs.headers[name]
    assert ours.get_data() == theirs.get_data() == b""


# -- the emulator verifies the signature ----------------------------------------------------------


def emulated(emulator: EmulatorServer) -> Endpoint:
    return Endpoint("http", emulator.endpoint)


def test_the_emulator_accepts_the_signature_of_an_sts_call(
    emulator: EmulatorServer, transport: RpcTransport
) -> None:
    # Three calls on one transport: each with its own nonce (the emulator refuses a nonce seen
    # before), over whatever connection the pool gives.
    for _ in range(3):
        who = call(
            transport, emulated(emulator), "GetCallerIdentity", STS_VERSION, {}, creds=FUNCTION
        )
        assert who["Arn"] == "acs:ram::1234567890123456:user/vend-function"
        assert who["RequestId"]


def test_the_emulator_accepts_the_signature_of_a_kms_call_with_encoded_values(
    emulator: EmulatorServer, transport: RpcTransport
) -> None:
    context = json.dumps({"purpose": "vend test", "odd": "a+b*c~d/e=f&g", "name": "ünï"})
    body = call(
        transport,
        emulated(emulator),
        "GenerateDataKey",
        KMS_VERSION,
        {"KeyId": "key-billing", "KeySpec": "AES_256", "EncryptionContext": context},
        creds=FUNCTION,
    )
    assert body["KeyId"] == "key-billing"
    assert body["CiphertextBlob"] and body["Plaintext"]


def test_the_emulator_accepts_the_signature_with_a_security_token(
    emulator: EmulatorServer, transport: RpcTransport
) -> None:
    assumed = call(
        transport,
        emulated(emulator),
        "AssumeRole",
        STS_VERSION,
        {"RoleArn": sdk.ROLE_ARN, "RoleSessionName": "transport-test", "DurationSeconds": "900"},
        creds=FUNCTION,
    )
    key = assumed["Credentials"]
    session = Credentials(key["AccessKeyId"], key["AccessKeySecret"], key["SecurityToken"])
    who = call(transport, emulated(emulator), "GetCallerIdentity", STS_VERSION, {}, creds=session)
    assert "vend-eiam" in who["Arn"]
    assert who["Arn"] != "acs:ram::1234567890123456:user/vend-function"
    # The token is checked: another one is refused.
    forged = Credentials(session.access_key_id, session.access_key_secret, "not-the-token")
    with pytest.raises(ClientException) as info:
        call(transport, emulated(emulator), "GetCallerIdentity", STS_VERSION, {}, creds=forged)
    assert info.value.code == "InvalidSecurityToken.MismatchWithAccessKey"


def test_a_wrong_secret_is_signature_does_not_match(
    emulator: EmulatorServer, transport: RpcTransport
) -> None:
    wrong = Credentials(FUNCTION.access_key_id, "not-the-secret")
    with pytest.raises(ClientException) as info:
        call(transport, emulated(emulator), "GetCallerIdentity", STS_VERSION, {}, creds=wrong)
    exc = info.value
    assert (exc.status_code, exc.code) == (400, "SignatureDoesNotMatch")
    assert exc.request_id and exc.request_id != "None"
    assert exc.data["Code"] == "SignatureDoesNotMatch"
    # The refusal did not spoil the connection or the transport: the right secret works next.
    who = call(transport, emulated(emulator), "GetCallerIdentity", STS_VERSION, {}, creds=FUNCTION)
    assert who["Arn"].endswith(":user/vend-function")


# -- answers --------------------------------------------------------------------------------------


def _error(status: int, code: str = "InvalidParameter", **extra: Any) -> dict[str, Any]:
    return {"RequestId": f"req-{status}", "HostId": "eiam", "Code": code, "Message": "no", **extra}


ERROR_ANSWERS = [
    pytest.param(400, _error(400), {}, ClientException, id="400"),
    pytest.param(403, _error(403, "Forbidden.RAM"), {}, ClientException, id="403"),
    pytest.param(
        404,
        {"requestId": "req-lower", "code": "EntityNotExists.Secret", "message": "gone"},
        {},
        ClientException,
        id="404-lowercase-keys",
    ),
    # A 429 is a ThrottlingException only with a positive x-acs-retry-after, as in the SDK.
    pytest.param(429, _error(429, "Throttling.User"), {}, ClientException, id="429"),
    pytest.param(
        429,
        _error(429, "Throttling.User"),
        {"x-acs-retry-after": "2"},
        ThrottlingException,
        id="429-retry-after",
    ),
    pytest.param(
        503,
        _error(503, "ServiceUnavailable"),
        {"x-acs-retry-after": "3"},
        ThrottlingException,
        id="503-retry-after",
    ),
    pytest.param(
        429,
        _error(429, "Throttling.Api"),
        {"x-acs-retry-after": "0"},
        ClientException,
        id="429-retry-after-0",
    ),
    pytest.param(
        429,
        _error(429, "Throttling.Api"),
        {"x-acs-retry-after": "soon"},
        ClientException,
        id="429-retry-after-not-a-number",
    ),
    pytest.param(500, _error(500, "InternalError"), {}, ServerException, id="500"),
    pytest.param(
        503,
        _error(503, "ServiceUnavailable", Detail="d", Description="x"),
        {},
        ServerException,
        id="503-with-detail",
    ),
]


@pytest.mark.parametrize(("status", "body", "headers", "kind"), ERROR_ANSWERS)
def test_an_error_answer_raises_what_the_sdk_raises(
    httpserver: HTTPServer,
    transport: RpcTransport,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    kind: type[Exception],
) -> None:
    httpserver.expect_request("/", method="POST").respond_with_json(
        body, status=status, headers=headers
    )
    with pytest.raises(kind) as ours:
        call(transport, local(httpserver))
    with pytest.raises(kind) as theirs:
        sdk_call(local(httpserver), "ObtainApplicationClientSecret", EIAM_VERSION, {"A": "1"})
    assert type(ours.value) is type(theirs.value) is kind
    for name in ("status_code", "code", "message", "detail", "description", "data", "request_id"):
        assert getattr(ours.value, name) == getattr(theirs.value, name), name
    assert getattr(ours.value, "retry_after", None) == getattr(theirs.value, "retry_after", None)
    # ...and, spelled out, what the callers read of it.
    exc: Any = ours.value
    assert exc.status_code == status
    assert exc.code == (body.get("Code") or body["code"])
    assert exc.request_id == (body.get("RequestId") or body["requestId"])
    assert exc.data == {**body, "statusCode": status}
    if kind is ThrottlingException:
        assert exc.retry_after == int(headers["x-acs-retry-after"])


def test_a_200_returns_the_json_body(httpserver: HTTPServer, transport: RpcTransport) -> None:
    body = {"RequestId": "r", "ApplicationClientSecret": {"SecretId": "s", "ClientSecret": "c"}}
    httpserver.expect_request("/", method="POST").respond_with_json(body)
    assert call(transport, local(httpserver)) == body


def test_a_json_answer_that_is_not_an_object_is_returned_as_it_is(
    httpserver: HTTPServer, transport: RpcTransport
) -> None:
    # Whether that will do is the caller's business (shared/upstream/rpc.py: a 502).
    httpserver.expect_request("/", method="POST").respond_with_json([1, 2])
    assert call(transport, local(httpserver)) == [1, 2]


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        pytest.param(
            503, "<html><body>503 Service Unavailable</body></html>", "text/html", id="html-503"
        ),
        pytest.param(502, "<html>Bad Gateway</html>", "text/html", id="html-502"),
        pytest.param(200, "not json at all", "application/json", id="200-not-json"),
        pytest.param(200, "", "application/json", id="200-empty"),
        pytest.param(200, '{"RequestId": "r", "Applic', "application/json", id="200-cut"),
        pytest.param(200, b"\xff\xfe\xfa{}", "application/json", id="200-not-utf8"),
        pytest.param(500, "[1, 2]", "application/json", id="500-json-not-an-object"),
    ],
)
def test_an_answer_that_is_not_json_is_unreadable_with_its_status(
    httpserver: HTTPServer,
    transport: RpcTransport,
    status: int,
    body: str | bytes,
    content_type: str,
) -> None:
    httpserver.expect_request("/", method="POST").respond_with_data(
        body, status=status, content_type=content_type
    )
    with pytest.raises(WireError) as info:
        call(transport, local(httpserver))
    assert (info.value.kind, info.value.status_code) == ("unreadable", status)


def test_a_body_over_1_mib_is_unreadable(httpserver: HTTPServer, transport: RpcTransport) -> None:
    pad = "x" * MIB
    httpserver.expect_request("/", method="POST").respond_with_json({"RequestId": "r", "Pad": pad})
    with pytest.raises(WireError) as info:
        call(transport, local(httpserver))
    assert (info.value.kind, info.value.status_code) == ("unreadable", 200)


def test_a_body_of_exactly_1_mib_is_read(httpserver: HTTPServer, transport: RpcTransport) -> None:
    prefix = '{"RequestId": "r", "Pad": "'
    body = prefix + "x" * (MIB - len(prefix) - 2) + '"}'
    assert len(body) == MIB
    httpserver.expect_request("/", method="POST").respond_with_data(
        body, content_type="application/json"
    )
    assert len(call(transport, local(httpserver))["Pad"]) == MIB - len(prefix) - 2


# -- a bare HTTP/1.1 server, for connections -------------------------------------------------------


@dataclass(frozen=True)
class Received:
    connection: int  # which accepted TCP connection it came on, 0, 1, ...
    head: str  # request line and headers

    @property
    def target(self) -> str:
        return self.head.split(" ", 2)[1]


@dataclass(frozen=True)
class Reply:
    body: bytes = b'{"RequestId": "r"}'
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    delay_s: float = 0.0
    close_after: bool = False  # close the connection after answering (no header says so)
    answer: bool = True  # False: close the connection without answering
    trickle_s: float = 0.0  # send the answer one byte at a time, this long apart

    def encode(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} X", "Content-Type: application/json"]
        lines.append(f"Content-Length: {len(self.body)}")
        lines.extend(f"{k}: {v}" for k, v in self.headers)
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body


class RawServer:
    """Serves each accepted connection on a thread of its own, request after request, with
    `reply(received)`; records which connection each request came on."""

    def __init__(self, reply: Callable[[Received], Reply]) -> None:
        self._reply = reply
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.received: list[Received] = []
        self.connections = 0
        self._closed = 0
        self._cond = threading.Condition()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint("http", f"127.0.0.1:{self.port}")

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._cond:
                index = self.connections
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn, index), daemon=True).start()

    def _serve(self, conn: socket.socket, index: int) -> None:
        try:
            buffered = b""
            while True:
                while b"\r\n\r\n" not in buffered:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffered += chunk
                head, _, buffered = buffered.partition(b"\r\n\r\n")  # no request has a body
                received = Received(index, head.decode("latin-1"))
                with self._cond:
                    self.received.append(received)
                reply = self._reply(received)
                time.sleep(reply.delay_s)
                if not reply.answer:
                    return
                if reply.trickle_s:
                    for byte in reply.encode():
                        conn.sendall(bytes([byte]))
                        time.sleep(reply.trickle_s)
                else:
                    conn.sendall(reply.encode())
                if reply.close_after:
                    return
        except OSError:
            return
        finally:
            conn.close()
            with self._cond:
                self._closed += 1
                self._cond.notify_all()

    def wait_closed(self, count: int, timeout_s: float = 5.0) -> None:
        """Until the server has closed `count` connections."""
        with self._cond:
            assert self._cond.wait_for(lambda: self._closed >= count, timeout_s)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()


@pytest.fixture
def serve() -> Iterator[Callable[[Callable[[Received], Reply]], RawServer]]:
    servers: list[RawServer] = []

    def start(reply: Callable[[Received], Reply]) -> RawServer:
        servers.append(RawServer(reply))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


Serve = Callable[[Callable[[Received], Reply]], RawServer]


# -- keep-alive -----------------------------------------------------------------------------------


def test_calls_reuse_one_connection(serve: Serve, transport: RpcTransport) -> None:
    server = serve(lambda r: Reply())
    for _ in range(3):
        assert call(transport, server.endpoint) == {"RequestId": "r"}
    assert [r.connection for r in server.received] == [0, 0, 0]
    assert server.connections == 1


def test_an_error_answer_leaves_the_connection_reusable(
    serve: Serve, transport: RpcTransport
) -> None:
    answers = iter([Reply(json.dumps(_error(400)).encode(), 400), Reply()])
    server = serve(lambda r: next(answers))
    with pytest.raises(ClientException):
        call(transport, server.endpoint)
    assert call(transport, server.endpoint) == {"RequestId": "r"}
    assert server.connections == 1


def test_a_connection_the_server_closed_while_idle_is_replaced(
    serve: Serve, transport: RpcTransport
) -> None:
    """A keep-alive answer, then the server drops the idle connection (its idle timeout): the
    next call must not fail on the dead one (for a create, a failure after sending would be a
    MaybeActed), but open another."""
    server = serve(lambda r: Reply(close_after=r.connection == 0))
    assert call(transport, server.endpoint) == {"RequestId": "r"}
    server.wait_closed(1)
    time.sleep(0.1)  # the FIN crosses the loopback
    assert call(transport, server.endpoint) == {"RequestId": "r"}
    assert [r.connection for r in server.received] == [0, 1]


def test_a_connection_close_answer_is_not_pooled(serve: Serve, transport: RpcTransport) -> None:
    # The server says close but keeps the connection open and would answer on it: the next
    # call must still come on a new connection.
    server = serve(lambda r: Reply(headers=(("Connection", "close"),)))
    for _ in range(2):
        assert call(transport, server.endpoint) == {"RequestId": "r"}
    assert [r.connection for r in server.received] == [0, 1]


def test_a_connection_with_an_oversized_answer_is_not_pooled(
    serve: Serve, transport: RpcTransport
) -> None:
    # Its rest is unread: the next answer read on it would be that rest.
    big = b'{"Pad": "' + b"x" * MIB + b'"}'
    answers = iter([Reply(big), Reply()])
    server = serve(lambda r: next(answers))
    with pytest.raises(WireError) as info:
        call(transport, server.endpoint)
    assert info.value.kind == "unreadable"
    assert call(transport, server.endpoint) == {"RequestId": "r"}
    assert [r.connection for r in server.received] == [0, 1]


def test_a_timed_out_connection_is_not_reused(serve: Serve, transport: RpcTransport) -> None:
    """The late answer to a timed-out request must never be read as the answer to the next."""

    def reply(r: Received) -> Reply:
        n = r.target.rsplit("N=", 1)[1]
        return Reply(json.dumps({"N": n}).encode(), delay_s=0.5 if n == "1" else 0.0)

    server = serve(reply)
    with pytest.raises(WireError) as info:
        call(transport, server.endpoint, query={"N": "1"}, timeout_ms=100)
    assert info.value.kind == "timeout"
    assert call(transport, server.endpoint, query={"N": "2"}) == {"N": "2"}
    assert [r.connection for r in server.received] == [0, 1]


def test_threads_sharing_the_transport_each_get_their_own_answer(
    serve: Serve, transport: RpcTransport
) -> None:
    server = serve(lambda r: Reply(json.dumps({"N": r.target.rsplit("N=", 1)[1]}).encode()))
    mixed: list[tuple[str, object]] = []

    def worker(t: int) -> None:
        for i in range(10):
            n = f"{t}-{i}"
            got = call(transport, server.endpoint, query={"N": n})
            if got != {"N": n}:
                mixed.append((n, got))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert mixed == []
    assert len(server.received) == 60
    assert server.connections <= 6  # pooled, not one connection per call


# -- failures of the exchange ---------------------------------------------------------------------


def test_the_read_timeout_is_honoured(serve: Serve, transport: RpcTransport) -> None:
    server = serve(lambda r: Reply(delay_s=1.0))
    started = time.monotonic()
    with pytest.raises(WireError) as info:
        call(transport, server.endpoint, timeout_ms=200)
    elapsed = time.monotonic() - started
    assert info.value.kind == "timeout"
    assert info.value.status_code is None
    assert elapsed < 0.9


def test_a_trickled_answer_cannot_stretch_the_call_past_its_timeout(
    serve: Serve, transport: RpcTransport
) -> None:
    """One byte every 50 ms, each well within any read timeout: the call still ends when its
    time is up (the whole answer would take about 6 s)."""
    server = serve(lambda r: Reply(trickle_s=0.05))
    started = time.monotonic()
    with pytest.raises(WireError) as info:
        call(transport, server.endpoint, timeout_ms=300)
    elapsed = time.monotonic() - started
    assert info.value.kind == "timeout"
    assert elapsed < 1.0


def test_a_refused_connection_is_connection(transport: RpcTransport) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(WireError) as info:
        call(transport, Endpoint("http", f"127.0.0.1:{port}"))
    assert info.value.kind == "connection"


def test_a_connection_closed_without_an_answer_is_dropped(
    serve: Serve, transport: RpcTransport
) -> None:
    server = serve(lambda r: Reply(answer=False))
    with pytest.raises(WireError) as info:
        call(transport, server.endpoint)
    assert info.value.kind == "dropped"
    assert len(server.received) == 1  # it was sent


def _answer_once(
    raw: bytes,
    transport: RpcTransport,
    *,
    host: str = "127.0.0.1",
    family: int = socket.AF_INET,
    creds: Credentials = KEY,
    listener: socket.socket | None = None,
) -> Any:
    """What a call returns, or the WireError it raises, when the server reads the request,
    sends `raw` and closes (on `listener`, bound to `host`, or a new one)."""
    if listener is None:
        listener = socket.create_server((host, 0), family=family)
    with listener:

        def answer() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(65536)
                conn.sendall(raw)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        netloc = f"[{host}]" if family == socket.AF_INET6 else host
        try:
            return call(
                transport, Endpoint("http", f"{netloc}:{listener.getsockname()[1]}"), creds=creds
            )
        except WireError as exc:
            return exc
        finally:
            thread.join(1)


def test_an_answer_that_is_not_http_is_dropped(transport: RpcTransport) -> None:
    exc = _answer_once(b"SSH-2.0-OpenSSH_9.6\r\n", transport)
    assert (exc.kind, exc.status_code) == ("dropped", None)


def test_a_body_cut_short_is_unreadable_with_its_status(transport: RpcTransport) -> None:
    """The status line and headers came, then the connection ended inside the body: http.client's
    read(amt) returns what came without raising IncompleteRead, so it is an answer that is not
    JSON, with its status (the upstream did answer: it is done acting)."""
    exc = _answer_once(b'HTTP/1.1 503 X\r\nContent-Length: 100\r\n\r\n{"Req', transport)
    assert (exc.kind, exc.status_code) == ("unreadable", 503)


def test_after_a_failure_the_next_call_succeeds(serve: Serve, transport: RpcTransport) -> None:
    answers = iter([Reply(answer=False), Reply()])
    server = serve(lambda r: next(answers))
    with pytest.raises(WireError):
        call(transport, server.endpoint)
    assert call(transport, server.endpoint) == {"RequestId": "r"}


def test_a_waitress_server_sees_one_client_port(transport: RpcTransport) -> None:
    """The same on a real keep-alive HTTP/1.1 server (waitress, as the emulator runs): every
    request from one client port."""
    ports: list[str] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        ports.append(str(environ.get("REMOTE_PORT")))
        body = b'{"RequestId": "r"}'
        start_response(
            "200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        )
        return [body]

    with WsgiServer(app, threads=2) as server:
        for _ in range(3):
            assert call(transport, Endpoint("http", server.endpoint)) == {"RequestId": "r"}
        transport.close()
    assert len(ports) == 3
    assert len(set(ports)) == 1


# -- hostile or odd inputs, each once a failure of the transport ---------------------------------


def test_a_deeply_nested_json_body_is_unreadable(transport: RpcTransport) -> None:
    body = b"[" * 100_000 + b"]" * 100_000  # 200 KB, under the limit; json.loads recurses
    exc = _answer_once(
        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body, transport
    )
    assert isinstance(exc, WireError)
    assert (exc.kind, exc.status_code) == ("unreadable", 200)


def test_an_ipv6_literal_endpoint_is_reached(transport: RpcTransport) -> None:
    body = b'{"RequestId": "r"}'
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    try:
        listener = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")
    answer = _answer_once(raw, transport, host="::1", family=socket.AF_INET6, listener=listener)
    assert answer == {"RequestId": "r"}


def test_a_token_with_a_line_break_is_a_wire_error_and_sends_nothing(
    transport: RpcTransport,
) -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    exc = _answer_once(raw, transport, creds=Credentials("STS.N1", "secret", "token\n"))
    assert isinstance(exc, WireError)
    assert exc.kind == "connection"
