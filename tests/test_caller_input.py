"""Input is input (issue 17, items 5, 10 and 11), over real HTTP against the servers a user runs:
`vend serve` (the custom runtime's server outside FC), the same server as FC runs it (FC's
instance variables set), and `vend local`. What a caller sends never becomes the request id,
never frames a second request on the connection, and never becomes the address an approval
policy's IP condition decides on."""

from __future__ import annotations

import json
import os
import re
import socket
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests
import sdk_clients as sdk
from processes import CUSTOM_RUNTIME, VEND, Server, custom_runtime

from infra.emulator import EmulatorServer
from infra.local.cli import DEMO_POLICY, DEMO_SEED, local_environment
from vend_client import Credentials, VendClient, VendResponse
from vend_client import parse_endpoint as endpoint

pytestmark = pytest.mark.contract("7")

# FC's system variables of an instance (infra/ASSUMPTIONS.md F25).
IN_FC = {"FC_FUNCTION_NAME": "vend-http-custom", "FC_INSTANCE_ID": "c-6789abcd-0123"}
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
LONG_ID = "A" * 10 * 1024
# A bound far above any honest audit line, far below what a caller's 10 KB would make.
MAX_AUDIT_LINE = 2000
BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"
ACCT = sdk.ACCOUNT
SECRETS = f"acs:eiam:cn-hangzhou:{ACCT}:instance/idaas_demo/application"
BILLING_SECRETS = {"instance_id": "idaas_demo", "application_id": "app_billing"}
OBTAIN_BILLING = {**BILLING_SECRETS, "secret_id": "sct_billing_1"}
OBTAIN_REPORTS = {
    "instance_id": "idaas_demo",
    "application_id": "app_reports",
    "secret_id": "sct_reports_1",
}
# The caller's own address is 127.0.0.1 in every test; 203.0.113.7 is the one it claims (or,
# inside FC, the one FC appended).
CLAIMED = "203.0.113.7"
IP_POLICY = json.dumps(
    {
        "Version": "1",
        "Statement": [
            {
                "Sid": "billing-only-from-203",
                "Effect": "Allow",
                "Principal": {"RAM": f"acs:ram::{ACCT}:user/billing"},
                "Action": "eiam:ObtainApplicationClientSecret",
                "Resource": f"{SECRETS}/app_billing/secret/*",
                "Condition": {"IpAddress": {"acs:SourceIp": "203.0.113.0/24"}},
            },
            {
                "Sid": "reports-from-anywhere-but-10",
                "Effect": "Allow",
                "Principal": {"RAM": f"acs:ram::{ACCT}:user/billing"},
                "Action": "eiam:ObtainApplicationClientSecret",
                "Resource": f"{SECRETS}/app_reports/secret/*",
                "Condition": {"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}},
            },
        ],
        "Recipients": [{"Principal": f"acs:ram::{ACCT}:user/billing", "KeyId": "key-billing"}],
    }
)


@dataclass
class Served:
    url: str
    output: str = ""  # everything the server printed, once it stopped

    def audit_lines(self) -> list[str]:
        return [line for line in self.output.split("\n") if line.startswith('{"log":"audit"')]


@contextmanager
def _server(
    emulator: EmulatorServer | None, command: Sequence[str], env: Mapping[str, str] = {}
) -> Iterator[Served]:
    """`command --port 0` as its own process, at the address it prints; `emulator` None: the
    command brings its own."""
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_", "FC_"))
    }
    clean["PYTHONIOENCODING"] = "utf-8"
    if emulator is not None:
        clean.update(local_environment(emulator.url, DEMO_SEED, DEMO_POLICY))
    clean.update(env)
    if command == CUSTOM_RUNTIME:
        server, url = custom_runtime(clean)
    else:
        server = Server([*command, "--port", "0"], " ".join(command[2:]), clean)
        try:
            printed = server.wait_for(r"(?:HTTP API at |  API +)(http://127\.0\.0\.1:[0-9]+)/v1/")
        except BaseException:
            server.stop()
            raise
        url = printed.group(1)
    served = Served(url)
    try:
        yield served
    finally:
        out, log = server.stop()
        served.output = out + log
    assert BILLING_SECRET not in served.output


def _client(served: Served, emulator: EmulatorServer) -> VendClient:
    return VendClient(
        url=served.url,
        audience="vend-local",
        credentials=Credentials(*sdk.BILLING),
        sts_endpoint=endpoint(emulator.url),
        kms_endpoint=endpoint(emulator.url),
    )


def _obtain(
    client: VendClient, body: Mapping[str, str], headers: Mapping[str, str | bytes] = {}
) -> requests.Response:
    return requests.post(
        f"{client.url}/v1/secrets/obtain",
        json=body,
        headers={"Authorization": client.authorization(), **headers},
        timeout=15,
    )


def _request_id(answer: requests.Response) -> str:
    """The request id the answer carries, the same in its header, its body and (on success)
    the envelope's encryption context, which KMS binds the data key to."""
    assert answer.status_code < 500, answer.text
    body = answer.json()
    request_id = answer.headers["X-Request-Id"]
    if answer.status_code == 200:
        assert body["request_id"] == request_id
        assert body["envelope"]["encryption_context"]["vend:request_id"] == request_id
    else:
        assert body["error"]["request_id"] == request_id
    return request_id


def _assert_audit_is_bounded(served: Served, requests_made: int) -> None:
    """One audit record per request, each a short line of ASCII JSON, and no line a
    Unicode-aware splitter would cut in two (U+0085, U+2028, U+2029, control characters)."""
    lines = served.audit_lines()
    assert len(lines) == requests_made, served.output
    for line in lines:
        assert line.isascii() and len(line) < MAX_AUDIT_LINE, line[:200]
        json.loads(line)
    assert served.output.splitlines() == served.output.rstrip("\n").split("\n")
    assert '"log":"upstream"' not in served.output  # no WARNING: no upstream refused anything


# -- item 5: the request id ------------------------------------------------------------------


def test_vend_serve_makes_its_own_request_id(emulator: EmulatorServer) -> None:
    """Outside FC every header is the caller's: X-Fc-Request-Id never names a request, however
    long, odd or repeated; the service's own UUID does, in the header, the body, the envelope
    and the audit."""
    with _server(emulator, [*VEND, "serve"]) as served:
        client = _client(served, emulator)
        ids = []
        # Latin-1 bytes as WSGI gives them: 0x85 is U+0085 (NEL) to the app.
        for claimed in (LONG_ID, b"id\x85NEL\xa0", "dup", "dup"):
            answer = _obtain(client, OBTAIN_BILLING, {"X-Fc-Request-Id": claimed})
            assert answer.status_code == 200, answer.text
            ids.append(_request_id(answer))
        # Control characters never reach the app: waitress refuses the header itself.
        control = _obtain(client, OBTAIN_BILLING, {"X-Fc-Request-Id": b"id\x01\x1b[2J"})
        assert control.status_code == 400
        opened = client.open(
            VendResponse.from_dict(answer.json()),
            instance_id="idaas_demo",
            application_id="app_billing",
            secret_id="sct_billing_1",
        )
        assert opened == BILLING_SECRET
    assert all(UUID.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == len(ids)
    _assert_audit_is_bounded(served, len(ids))
    for request_id in ids:
        assert f'"request_id":"{request_id}"' in served.output


def test_inside_fc_the_platform_id_is_used_only_when_it_has_the_contracts_shape(
    emulator: EmulatorServer,
) -> None:
    """Where FC sets x-fc-request-id it names the request, if it is 1 to 64 characters of
    [A-Za-z0-9_.:-]; anything else is replaced by the service's own UUID, never a 5xx."""
    fc_id = "1-6582d1a0-0b3c_4d5e.6f:7a"
    with _server(emulator, CUSTOM_RUNTIME, IN_FC) as served:
        client = _client(served, emulator)
        kept = _request_id(_obtain(client, OBTAIN_BILLING, {"X-Fc-Request-Id": fc_id}))
        replaced = [
            _request_id(_obtain(client, OBTAIN_BILLING, {"X-Fc-Request-Id": claimed}))
            for claimed in (LONG_ID, "B" * 65, b"ok\x85", "has space", "a/b")
        ]
        refused = requests.post(
            f"{served.url}/v1/secrets/obtain",
            data=b"[",
            headers={"X-Fc-Request-Id": b"x\x85"},
            timeout=5,
        )
        assert refused.status_code == 400
        replaced.append(_request_id(refused))
    assert kept == fc_id
    assert all(UUID.fullmatch(i) for i in replaced), replaced
    _assert_audit_is_bounded(served, 1 + len(replaced))


# -- item 10: Content-Length beside Transfer-Encoding ----------------------------------------

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: vend\r\n\r\n"
STATUS_LINE = re.compile(rb"HTTP/1\.[01] [0-9]{3} ")


def _raw(url: str, request: bytes) -> tuple[bytes, bool]:
    """Sends `request` on a fresh connection; what came back, and whether the server closed."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except TimeoutError:
            return received, False
        return received, True


@pytest.mark.parametrize(
    "head",
    [
        b"POST /v1/secrets/obtain HTTP/1.1\r\nHost: vend\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n",
        b"POST /v1/secrets/obtain HTTP/1.1\r\nHost: vend\r\ntransfer-encoding: chunked\r\n"
        b"content-length: 0\r\n",
        b"POST /v1/secrets/obtain HTTP/1.0\r\nHost: vend\r\nConnection: keep-alive\r\n"
        b"Transfer-Encoding: chunked\r\n",
    ],
    ids=["cl-then-te", "te-then-cl", "te-in-http-1.0"],
)
@pytest.mark.parametrize("server", ["vend serve", "vend local"])
def test_ambiguous_framing_is_refused_and_the_connection_closed(
    emulator: EmulatorServer, server: str, head: bytes
) -> None:
    """RFC 9112: a request framed by both Content-Length and Transfer-Encoding (or by
    Transfer-Encoding in HTTP/1.0) is answered 400 and the connection closed, so the request
    smuggled behind it on the same connection is never served."""
    command = [*VEND, "serve"] if server == "vend serve" else [*VEND, "local"]
    with _server(emulator if server == "vend serve" else None, command) as served:
        answer, closed = _raw(served.url, head + b"\r\n0\r\n\r\n" + SMUGGLED)
        still_serving = requests.get(f"{served.url}/v1/health", timeout=5)
    assert answer.startswith(b"HTTP/1.") and answer.split(b" ", 2)[1] == b"400", answer
    assert len(STATUS_LINE.findall(answer)) == 1, answer  # nothing after it was read
    assert closed
    assert still_serving.status_code == 200
    # Neither the refused request nor the smuggled one reached the API.
    assert served.audit_lines() == [], served.output


def test_chunked_requests_still_work(emulator: EmulatorServer) -> None:
    """Transfer-Encoding alone is ordinary HTTP/1.1 and keeps the connection for the next
    request."""
    body = json.dumps(OBTAIN_BILLING).encode()
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    with _server(emulator, [*VEND, "serve"]) as served:
        answer, closed = _raw(
            served.url,
            b"POST /v1/secrets/obtain HTTP/1.1\r\nHost: vend\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
            + chunked
            + b"GET /v1/health HTTP/1.1\r\nHost: vend\r\nConnection: close\r\n\r\n",
        )
    # The whole body arrived (a valid request without credentials: 401), and the next request
    # on the connection was answered too.
    assert [s.split()[1] for s in STATUS_LINE.findall(answer)] == [b"401", b"200"], answer
    assert closed  # after the second answer, which asked for it


# -- item 11: the caller's address -----------------------------------------------------------

FORGERIES = {
    "X-Forwarded-For": CLAIMED,
    "X-Real-IP": CLAIMED,
    "X-Client-IP": CLAIMED,
    "Forwarded": f"for={CLAIMED}",
}


def test_under_vend_serve_a_forged_forwarded_for_never_satisfies_an_ip_condition(
    emulator: EmulatorServer,
) -> None:
    """Outside FC the address is the socket's: claiming 203.0.113.7 in any header does not
    satisfy `IpAddress 203.0.113.0/24`, and the real one (127.0.0.1) is what `NotIpAddress`
    sees."""
    with _server(emulator, [*VEND, "serve"], {"VEND_POLICY": IP_POLICY}) as served:
        client = _client(served, emulator)
        forged = _obtain(client, OBTAIN_BILLING, FORGERIES)
        chain = _obtain(client, OBTAIN_BILLING, {"X-Forwarded-For": f"{CLAIMED}, {CLAIMED}"})
        real = _obtain(client, OBTAIN_REPORTS, FORGERIES)
    assert (forged.status_code, forged.json()["error"]["code"]) == (403, "AccessDenied")
    assert (chain.status_code, chain.json()["error"]["code"]) == (403, "AccessDenied")
    assert real.status_code == 200, real.text


def test_inside_fc_only_the_hop_fc_appends_counts(emulator: EmulatorServer) -> None:
    """Inside FC the connection is FC's, and the caller's address is the last X-Forwarded-For
    hop, the one FC appends (ASSUMPTIONS F28): what the caller put before it never counts, and
    without it the address is unknown and every IP condition fails closed, NotIpAddress too."""
    with _server(emulator, CUSTOM_RUNTIME, {**IN_FC, "VEND_POLICY": IP_POLICY}) as served:
        client = _client(served, emulator)
        appended = _obtain(client, OBTAIN_BILLING, {"X-Forwarded-For": CLAIMED})
        forged = _obtain(client, OBTAIN_BILLING, {"X-Forwarded-For": f"{CLAIMED}, 192.0.2.1"})
        no_hop = [
            _obtain(client, body, headers)
            for body in (OBTAIN_BILLING, OBTAIN_REPORTS)
            for headers in ({}, {"X-Forwarded-For": "unknown"}, {"X-Real-IP": CLAIMED})
        ]
        outside_10 = _obtain(client, OBTAIN_REPORTS, {"X-Forwarded-For": "10.1.1.1, 192.0.2.1"})
    assert appended.status_code == 200, appended.text
    assert forged.status_code == 403
    assert [a.status_code for a in no_hop] == [403] * len(no_hop)
    assert outside_10.status_code == 200, outside_10.text
