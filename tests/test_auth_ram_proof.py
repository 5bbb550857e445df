"""RAM proofs (contract section 3): built with the SDK's signer, checked before anything is sent,
then verified by the emulator's STS over real HTTP (signature, security token, single-use nonce)."""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import ports
import pytest
import sdk_clients as sdk
from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.models import Config as CredentialConfig
from alibabacloud_sts20150401 import models as sts_models
from pytest_httpserver import HTTPServer
from replay import capture
from trickle import TrickleServer, http_answer

from infra.emulator import EmulatorServer
from shared.auth.header import Authenticator
from shared.auth.ram_proof import (
    AUDIENCE_HEADER,
    ProofPolicy,
    RamProofVerifier,
    allowed_sts_targets,
)
from shared.errors import VendError
from shared.idempotency.memory import MemoryStore
from shared.idempotency.redis_store import RedisStore
from shared.upstream.deadline import Deadline
from shared.upstream.transport import MAX_BODY_BYTES, RpcTransport
from shared.wire.credentials import Credentials
from shared.wire.endpoint import Endpoint
from shared.wire.rpc import STS_VERSION
from vend_client.proof import build_proof

AUD = "vend-svc-7f3a"
USER_ARN = f"acs:ram::{sdk.ACCOUNT}:user/billing"
# A target nothing listens on, for the checks made before sending: a verifier that sent a proof
# there would fail with 502 (STS could not be reached), never the 401 those tests expect.
NOWHERE = "127.0.0.1:9"
TIMEOUTS = {"connect_timeout_ms": 2000, "timeout_ms": 2000}
# What a caller whose proof is refused reads: one sentence about its RAM proof.
REFUSAL = re.compile(r"(The|Every header of the) RAM proof\b[^\n]*\.")


# -- helpers -------------------------------------------------------------------------------------


def _proof(
    endpoint: str = NOWHERE,
    key: tuple[str, str] = sdk.BILLING,
    token: str | None = None,
    audience: str = AUD,
    protocol: str = "http",
) -> str:
    return build_proof(
        audience=audience,
        sts_endpoint=endpoint,
        protocol=protocol,
        access_key_id=key[0],
        access_key_secret=key[1],
        security_token=token,
    )


def _decode(proof: str) -> dict[str, Any]:
    doc = json.loads(base64.urlsafe_b64decode(proof + "=" * (-len(proof) % 4)))
    assert isinstance(doc, dict)
    return doc


def _encode(doc: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=").decode()


def _mutate(proof: str, change: Callable[[dict[str, Any]], None]) -> str:
    doc = _decode(proof)
    change(doc)
    return _encode(doc)


def _signed(doc: dict[str, Any]) -> list[str]:
    match = re.search(r"SignedHeaders=([^,]+)", doc["headers"]["authorization"])
    assert match
    return match[1].split(";")


def _set_signed(doc: dict[str, Any], names: list[str]) -> None:
    auth = doc["headers"]["authorization"]
    doc["headers"]["authorization"] = re.sub(
        r"SignedHeaders=[^,]+", "SignedHeaders=" + ";".join(names), auth
    )


def _verifier(
    *targets: tuple[str, str],
    transport: RpcTransport | None = None,
    clock: Callable[[], float] = time.time,
) -> RamProofVerifier:
    allowed = frozenset(targets) or frozenset({("http", NOWHERE)})
    return RamProofVerifier(ProofPolicy(AUD, allowed), transport=transport, clock=clock)


def _emulator_verifier(
    emulator: EmulatorServer, clock: Callable[[], float] = time.time
) -> RamProofVerifier:
    targets = allowed_sts_targets(sdk.REGION, emulator.url, [])
    return RamProofVerifier(ProofPolicy(AUD, targets), clock=clock)


def _local(httpserver: HTTPServer) -> str:
    return f"{httpserver.host}:{httpserver.port}"


def _assert_safe(message: str, proof: str) -> None:
    """A refusal names the check, never the proof or anything secret or specific in it."""
    try:
        headers = _decode(proof)["headers"]
    except Exception:
        headers = {}
    if not isinstance(headers, dict):
        headers = {}
    secrets = [proof, proof[:24], proof[-24:]] if proof else []
    for name in ("x-acs-signature-nonce", "x-acs-security-token", "user-agent", "x-acs-date"):
        if isinstance(headers.get(name), str) and headers[name]:
            secrets.append(headers[name])
    auth = headers.get("authorization")
    if isinstance(auth, str):
        secrets += re.findall(r"Signature=([0-9a-f]+)", auth)
        secrets += re.findall(r"Credential=([^,]+)", auth)
    for secret in secrets:
        assert secret not in message, secret


def _refused(
    verifier: RamProofVerifier, proof: str, match: str, status: int = 401, timeout_s: float = 2
) -> VendError:
    with pytest.raises(VendError) as info:
        verifier.authenticate(proof, timeout_s=timeout_s)
    err = info.value
    assert err.status == status, err.message
    assert match in err.message
    _assert_safe(err.message, proof)
    if status == 401:
        assert err.headers["WWW-Authenticate"] == "Bearer, RAM"
    return err


def _assume(endpoint: str) -> sts_models.AssumeRoleResponseBodyCredentials:
    request = sts_models.AssumeRoleRequest(role_arn=sdk.ROLE_ARN, role_session_name="proof-test")
    creds = sdk.sts(endpoint, sdk.FUNCTION).assume_role(request).body.credentials
    assert creds is not None
    return creds


@pytest.fixture
def transport() -> Iterator[RpcTransport]:
    """The connections a verifier sends proofs over, as the service's own."""
    rpc = RpcTransport()
    yield rpc
    rpc.close()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture
def full_port() -> Iterator[int]:
    with ports.full_port() as port:
        yield port


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# -- against the emulator's STS ------------------------------------------------------------------


def test_user_proof_authenticates_as_the_user(emulator: EmulatorServer) -> None:
    caller = _emulator_verifier(emulator).authenticate(_proof(emulator.endpoint), timeout_s=5)
    assert caller.name == USER_ARN
    assert caller.policy_principal.type == "RAM"
    assert caller.policy_principal.id == USER_ARN
    assert caller.policy_principal.account_id == sdk.ACCOUNT


def test_role_proof_authenticates_as_the_role_not_the_session(emulator: EmulatorServer) -> None:
    creds = _assume(emulator.endpoint)
    proof = _proof(
        emulator.endpoint, (creds.access_key_id, creds.access_key_secret), creds.security_token
    )
    headers = _decode(proof)["headers"]
    assert headers["x-acs-security-token"] == creds.security_token
    assert "x-acs-security-token" in _signed(_decode(proof))
    caller = _emulator_verifier(emulator).authenticate(proof, timeout_s=5)
    assert caller.name == sdk.ROLE_ARN
    assert caller.policy_principal.account_id == sdk.ACCOUNT


def test_replayed_proof_is_refused_by_sts(emulator: EmulatorServer) -> None:
    verifier = _emulator_verifier(emulator)
    proof = _proof(emulator.endpoint)
    assert verifier.authenticate(proof, timeout_s=5).name == USER_ARN
    _refused(verifier, proof, "STS rejected the proof: SignatureNonceUsed")


# An event's retry by FC (the same request id) carries the proof STS has already spent.


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (None, "an Authorization of the form 'Bearer <JWT>' or 'RAM <proof>' is required"),
        ("  ", "an Authorization of the form 'Bearer <JWT>' or 'RAM <proof>' is required"),
        ("RAM " + "A" * (16 * 1024 - 3), "the Authorization value is too long"),
        ("Bearer " + "x" * (16 * 1024 - 7), "no JWT issuer is configured; use RAM proofs"),
        ("RAM   ", "the Authorization value has no credential after its scheme"),
        ("Basic dXNlcjpwYXNz", "the Authorization scheme must be Bearer or RAM"),
        # the scheme is the first word: the rest is the credential, spaces and all
        ("RAM two words", "The RAM proof is not base64url."),
    ],
    ids=["none", "blank", "over-16-KiB", "16-KiB", "no-credential", "basic", "two-words"],
)
def test_the_authorization_value_is_refused_in_words(value: str | None, message: str) -> None:
    auth = Authenticator(_verifier())
    with pytest.raises(VendError) as info:
        auth.authenticate(value, Deadline(5))
    assert (info.value.status, info.value.message) == (401, message)


def test_an_event_retried_is_the_same_caller_though_sts_spent_its_proof(
    emulator: EmulatorServer,
) -> None:
    auth = Authenticator(_emulator_verifier(emulator), notes=MemoryStore())
    value = "RAM " + _proof(emulator.endpoint)
    first = auth.authenticate(value, Deadline(5), retry_of="fc-request-1")
    again = auth.authenticate(value, Deadline(5), retry_of="fc-request-1")
    assert again == first
    assert again.policy_principal.account_id == sdk.ACCOUNT
    with pytest.raises(VendError, match="SignatureNonceUsed"):
        auth.authenticate(value, Deadline(5), retry_of="fc-request-2")


def test_an_event_is_authenticated_when_the_store_of_notes_is_down(
    emulator: EmulatorServer,
) -> None:
    down = RedisStore(f"redis://{NOWHERE}/0")
    auth = Authenticator(_emulator_verifier(emulator), notes=down)
    value = "RAM " + _proof(emulator.endpoint)
    assert auth.authenticate(value, Deadline(5), retry_of="fc-request-1").name == USER_ARN
    # Without the note the retry is refused, as it would be without the store.
    with pytest.raises(VendError, match="SignatureNonceUsed"):
        auth.authenticate(value, Deadline(5), retry_of="fc-request-1")


def test_padded_proof_is_accepted(emulator: EmulatorServer) -> None:
    # The proof's length depends on the SDK's user-agent (the Python version, the OS): pad one
    # audience or another until the proof needs padding, else this test would prove nothing.
    for audience in (AUD, AUD + "x", AUD + "xy", AUD + "xyz"):
        proof = _proof(emulator.endpoint, audience=audience)
        if len(proof) % 4:
            break
    padded = proof + "=" * (-len(proof) % 4)
    assert padded != proof
    targets = allowed_sts_targets(sdk.REGION, emulator.url, [])
    verifier = RamProofVerifier(ProofPolicy(audience, targets))
    assert verifier.authenticate(padded, timeout_s=5).name == USER_ARN


def test_header_changed_after_signing_is_refused_by_sts(emulator: EmulatorServer) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["headers"]["user-agent"] += " tampered"

    proof = _mutate(_proof(emulator.endpoint), change)
    _refused(_emulator_verifier(emulator), proof, "STS rejected the proof: SignatureDoesNotMatch")


def test_wrong_secret_is_refused_by_sts(emulator: EmulatorServer) -> None:
    proof = _proof(emulator.endpoint, (sdk.BILLING[0], "not-the-secret"))
    _refused(_emulator_verifier(emulator), proof, "STS rejected the proof: SignatureDoesNotMatch")


def test_unknown_access_key_is_refused_by_sts(emulator: EmulatorServer) -> None:
    proof = _proof(emulator.endpoint, ("LTAI5tNobody000000001", "whatever"))
    _refused(_emulator_verifier(emulator), proof, "InvalidAccessKeyId.NotFound")


def test_date_within_the_skew_is_accepted(emulator: EmulatorServer) -> None:
    verifier = _emulator_verifier(emulator, clock=lambda: time.time() + 240)
    assert verifier.authenticate(_proof(emulator.endpoint), timeout_s=5).name == USER_ARN


@pytest.mark.parametrize("offset_s", [360, -360], ids=["6-min-old", "6-min-ahead"])
def test_date_outside_the_skew_is_refused_before_sending(offset_s: int) -> None:
    verifier = _verifier(clock=lambda: time.time() + offset_s)
    _refused(verifier, _proof(), "x-acs-date is more than 300 s from now")


def test_credentials_library_client_builds_a_valid_proof(emulator: EmulatorServer) -> None:
    credential = CredentialClient(
        CredentialConfig(
            type="access_key", access_key_id=sdk.BILLING[0], access_key_secret=sdk.BILLING[1]
        )
    )
    proof = build_proof(
        audience=AUD, sts_endpoint=emulator.endpoint, protocol="http", credential=credential
    )
    assert _decode(proof)["headers"]["x-acs-credentials-provider"] == "static_ak"
    assert _emulator_verifier(emulator).authenticate(proof, timeout_s=5).name == USER_ARN


def test_environment_variables_build_a_valid_proof(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", sdk.BILLING[0])
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", sdk.BILLING[1])
    monkeypatch.delenv("ALIBABA_CLOUD_SECURITY_TOKEN", raising=False)
    proof = build_proof(audience=AUD, sts_endpoint=emulator.endpoint, protocol="http")
    assert _decode(proof)["headers"]["authorization"].count(sdk.BILLING[0]) == 1
    assert _emulator_verifier(emulator).authenticate(proof, timeout_s=5).name == USER_ARN


def test_sts_credentials_from_environment_variables(
    emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = _assume(emulator.endpoint)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", creds.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", creds.access_key_secret)
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", creds.security_token)
    proof = build_proof(audience=AUD, sts_endpoint=emulator.endpoint, protocol="http")
    assert _emulator_verifier(emulator).authenticate(proof, timeout_s=5).name == sdk.ROLE_ARN


# -- what build_proof produces, compared with what the SDK really sends ---------------------------


@pytest.mark.parametrize("token", [None, "TOKEN-1"], ids=["access-key", "sts"])
def test_proof_is_the_request_the_sdk_sends_plus_the_audience(
    httpserver: HTTPServer, token: str | None
) -> None:
    sent = capture(httpserver, lambda ep: sdk.sts(ep, sdk.BILLING, token).get_caller_identity())
    assert (sent.method, sent.path, sent.body) == ("POST", "/", b"")  # no query at all
    proof = _proof(_local(httpserver), token=token)
    assert "=" not in proof
    doc = _decode(proof)
    assert list(doc) == ["method", "url", "headers", "body"]
    assert (doc["method"], doc["url"], doc["body"]) == ("POST", f"http://{_local(httpserver)}/", "")
    headers = doc["headers"]
    assert all(name == name.lower() for name in headers)
    transport = {"accept-encoding", "authorization"}
    assert set(headers) - {"authorization"} == set(sent.headers) - transport | {AUDIENCE_HEADER}
    for name in ("host", "x-acs-version", "x-acs-action", "accept", "user-agent"):
        assert headers[name] == sent.headers[name]
    assert headers["x-acs-content-sha256"] == sent.headers["x-acs-content-sha256"]
    sdk_signed = re.search(r"SignedHeaders=([^,]+)", sent.headers["authorization"])
    assert sdk_signed
    assert _signed(doc) == sorted([*sdk_signed[1].split(";"), AUDIENCE_HEADER])
    assert headers[AUDIENCE_HEADER] == AUD
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-acs-signature-nonce"])
    assert headers["x-acs-signature-nonce"] != _decode(_proof())["headers"]["x-acs-signature-nonce"]


def test_sent_request_is_exactly_the_proof(httpserver: HTTPServer, transport: RpcTransport) -> None:
    httpserver.expect_request("/", method="POST").respond_with_json(
        {"RequestId": "r", "Arn": USER_ARN, "AccountId": sdk.ACCOUNT}
    )
    # The connections have just carried a signed call of the service's own there, with headers
    # a proof does not have (a security token): none of them may go with the proof.
    own = Credentials("LTAI5tOwnCall0000001", "own-secret", "OWN-TOKEN")
    endpoint = Endpoint("http", _local(httpserver))
    transport.call(endpoint, own, "GetCallerIdentity", STS_VERSION, {}, **TIMEOUTS)
    proof = _proof(_local(httpserver))
    verifier = _verifier(("http", _local(httpserver)), transport=transport)
    assert verifier.authenticate(proof, timeout_s=2).name == USER_ARN
    assert len(httpserver.log) == 2
    request, _ = httpserver.log[1]
    assert (request.method, request.path, request.query_string, request.get_data()) == (
        "POST",
        "/",
        b"",
        b"",
    )
    received = {name.lower(): value for name, value in request.headers.items()}
    expected = _decode(proof)["headers"]
    added = set(received) - set(expected)
    assert added <= {"content-length", "accept-encoding"}, added
    assert {name: received[name] for name in expected} == expected


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"access_key_id": "AK"}, "together", id="id-without-secret"),
        pytest.param({"access_key_secret": "SK"}, "together", id="secret-without-id"),
        pytest.param(
            {"access_key_id": "AK", "access_key_secret": "SK", "credential": object()},
            "not both",
            id="keys-and-credential",
        ),
        pytest.param(
            {"access_key_id": "AK", "access_key_secret": "SK", "protocol": "ftp"},
            "protocol",
            id="protocol",
        ),
        pytest.param(
            {"access_key_id": "AK", "access_key_secret": "SK", "sts_endpoint": "http://sts.x"},
            "sts_endpoint",
            id="endpoint-with-scheme",
        ),
        pytest.param(
            {"access_key_id": "AK", "access_key_secret": "SK", "sts_endpoint": "sts.x/path"},
            "sts_endpoint",
            id="endpoint-with-path",
        ),
        pytest.param(
            {"access_key_id": "AK", "access_key_secret": "SK", "audience": ""},
            "audience",
            id="empty-audience",
        ),
        pytest.param(
            {"access_key_id": "AK", "access_key_secret": "SK", "audience": "a\r\nx-evil: 1"},
            "audience",
            id="audience-with-newline",
        ),
        pytest.param(
            {
                "credential": CredentialClient(
                    CredentialConfig(type="bearer", bearer_token="bearer-token")
                )
            },
            "access key",
            id="bearer-credential",
        ),
    ],
)
def test_build_proof_refuses_bad_arguments(kwargs: dict[str, Any], match: str) -> None:
    kwargs.setdefault("audience", AUD)
    with pytest.raises(ValueError, match=match):
        build_proof(**kwargs)


# -- checks made before anything is sent ---------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "protocol"),
    [
        pytest.param("evil.example.com", "https", id="other-host"),
        pytest.param(None, "https", id="allowed-address-over-https"),
        pytest.param("127.0.0.1:1", "http", id="other-port"),
    ],
)
def test_target_outside_the_allow_list_gets_no_request(
    httpserver: HTTPServer, endpoint: str | None, protocol: str
) -> None:
    httpserver.expect_request("/").respond_with_json({"Arn": USER_ARN, "AccountId": sdk.ACCOUNT})
    # The allow-list names the recording server over http; no proof for elsewhere may reach it,
    # nor anywhere else (real connections, so that a send would happen if the check let it).
    targets = allowed_sts_targets(sdk.REGION, f"http://{_local(httpserver)}", [])
    verifier = RamProofVerifier(ProofPolicy(AUD, targets))
    proof = _proof(endpoint or _local(httpserver), protocol=protocol)
    _refused(verifier, proof, "STS endpoint is not in the allow-list")
    assert httpserver.log == []


def test_allowed_target_is_reached(httpserver: HTTPServer) -> None:
    # The converse of the test above, so that its empty log means something.
    httpserver.expect_request("/").respond_with_json({"Arn": USER_ARN, "AccountId": sdk.ACCOUNT})
    targets = allowed_sts_targets(sdk.REGION, f"http://{_local(httpserver)}", [])
    verifier = RamProofVerifier(ProofPolicy(AUD, targets))
    assert verifier.authenticate(_proof(_local(httpserver)), timeout_s=2).name == USER_ARN
    assert len(httpserver.log) == 1


def test_proof_for_another_audience_is_refused() -> None:
    error = _refused(_verifier(), _proof(audience="other-service"), "made for another audience")
    assert error.message == "The RAM proof was made for another audience."


def test_a_proof_for_an_https_target_is_never_sent_in_the_clear(httpserver: HTTPServer) -> None:
    """To a server that speaks plain HTTP at an address allowed over https, the exchange fails
    (TLS cannot start) instead of handing it the proof."""
    httpserver.expect_request("/").respond_with_json({"Arn": USER_ARN, "AccountId": sdk.ACCOUNT})
    target = _local(httpserver)
    verifier = RamProofVerifier(ProofPolicy(AUD, frozenset({("https", target)})))
    error = _refused(verifier, _proof(target, protocol="https"), "could not be reached", status=502)
    assert error.message == "STS could not be reached to verify the RAM proof."
    assert httpserver.log == []


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        target = doc
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        target[last] = value

    return change


def _delete_header(name: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        del doc["headers"][name]

    return change


def _unsign(name: str) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        _set_signed(doc, [n for n in _signed(doc) if n != name])

    return change


def _add_header(name: str, value: str, *, signed: bool) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        doc["headers"][name] = value
        if signed:
            _set_signed(doc, sorted({*_signed(doc), name.lower()}))

    return change


@pytest.mark.parametrize(
    ("change", "match"),
    [
        pytest.param(_set("method", "GET"), "method must be POST", id="get"),
        pytest.param(_set("method", "post"), "method must be POST", id="lower-case-post"),
        pytest.param(_set("body", "Action=AssumeRole"), "body must be empty", id="body"),
        pytest.param(_set("url", f"http://{NOWHERE}/?Format=json"), "no query", id="query"),
        pytest.param(_set("url", f"http://{NOWHERE}/?"), "no query", id="empty-query"),
        pytest.param(_set("url", f"http://{NOWHERE}/x"), "path must be /", id="path"),
        pytest.param(_set("url", f"http://{NOWHERE}"), "path must be /", id="no-path"),
        pytest.param(_set("url", f"http://{NOWHERE}/#f"), "fragment", id="fragment"),
        pytest.param(_set("url", f"http://u:p@{NOWHERE}/"), "user information", id="userinfo"),
        pytest.param(_set("url", f"HTTP://{NOWHERE}/"), "canonical form", id="scheme-case"),
        pytest.param(_set("url", "http://[::1/"), "not a valid URL", id="bad-url"),
        pytest.param(_set("url", f"ftp://{NOWHERE}/"), "allow-list", id="ftp"),
        pytest.param(_set("headers.host", "127.0.0.1:10"), "host header", id="host-mismatch"),
        pytest.param(_delete_header("host"), "host header", id="host-missing"),
        pytest.param(_set("headers.x-acs-action", "AssumeRole"), "x-acs-action", id="action"),
        pytest.param(_delete_header("x-acs-action"), "x-acs-action", id="action-missing"),
        pytest.param(_set("headers.x-acs-version", "2021-12-01"), "x-acs-version", id="version"),
        pytest.param(_delete_header("authorization"), "not an ACS3", id="no-authorization"),
        pytest.param(
            _set("headers.authorization", "ACS3-HMAC-SHA256 Credential=AK"),
            "not an ACS3",
            id="authorization-garbage",
        ),
        pytest.param(
            _unsign(AUDIENCE_HEADER), "SignedHeaders must include x-acs-vend-audience", id="aud"
        ),
        pytest.param(_unsign("host"), "SignedHeaders must include host", id="unsigned-host"),
        pytest.param(_unsign("x-acs-date"), "must include x-acs-date", id="unsigned-date"),
        pytest.param(
            _unsign("x-acs-signature-nonce"), "must include x-acs-signature-nonce", id="nonce"
        ),
        pytest.param(
            _unsign("x-acs-content-sha256"), "must include x-acs-content-sha256", id="sha"
        ),
        pytest.param(_unsign("accept"), "must be signed", id="unsigned-accept"),
        pytest.param(
            _delete_header(AUDIENCE_HEADER), "lacks the headers x-acs-vend-audience", id="no-aud"
        ),
        pytest.param(_delete_header("accept"), "does not carry", id="signed-but-absent"),
        pytest.param(
            _add_header("x-acs-vend-audience-2", "x", signed=False), "must be signed", id="extra"
        ),
        pytest.param(
            _add_header("x-acs-security-token", "stolen", signed=False),
            "must include x-acs-security-token",
            id="unsigned-token",
        ),
        pytest.param(
            lambda doc: _set_signed(doc, list(reversed(_signed(doc)))),
            "sorted and unique",
            id="signed-unsorted",
        ),
        pytest.param(
            _set("headers.x-acs-content-sha256", "0" * 64), "empty body", id="content-sha"
        ),
        pytest.param(_set("headers.x-acs-date", "yesterday"), "must look like", id="date-format"),
        pytest.param(
            _set("headers.x-acs-date", "2026-13-01T00:00:00Z"), "must look like", id="month-13"
        ),
        pytest.param(
            _add_header("Content-Length", "100", signed=True), "may carry only", id="framing"
        ),
        pytest.param(_add_header("Host", NOWHERE, signed=False), "same header twice", id="dup"),
        pytest.param(_add_header("bad name", "x", signed=False), "HTTP token", id="name"),
        pytest.param(
            _add_header("x-acs-note", "a\r\nx-evil: 1", signed=True),
            "forbidden characters",
            id="crlf",
        ),
        pytest.param(_set("headers.accept", 1), "exactly the keys", id="header-not-string"),
        pytest.param(_set("headers", ["host"]), "exactly the keys", id="headers-not-object"),
        pytest.param(_set("extra", "x"), "exactly the keys", id="extra-key"),
        pytest.param(lambda doc: doc.pop("body"), "exactly the keys", id="missing-key"),
    ],
)
def test_malformed_proof_is_refused_before_sending(
    change: Callable[[dict[str, Any]], None], match: str
) -> None:
    error = _refused(_verifier(), _mutate(_proof(), change), match)
    assert REFUSAL.fullmatch(error.message), error.message


def _both(
    *changes: Callable[[dict[str, Any]], None],
) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        for one in changes:
            one(doc)

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            _both(_delete_header(AUDIENCE_HEADER), _delete_header("x-acs-date")),
            "The RAM proof lacks the headers x-acs-date, x-acs-vend-audience.",
            id="two-absent",
        ),
        pytest.param(
            _delete_header("authorization"),
            "The RAM proof's authorization header is not an ACS3-HMAC-SHA256 signature.",
            id="no-authorization",
        ),
        pytest.param(
            lambda doc: _set_signed(doc, list(reversed(_signed(doc)))),
            "The RAM proof's SignedHeaders must be sorted and unique.",
            id="signed-unsorted",
        ),
        pytest.param(
            _both(_unsign("host"), _unsign("x-acs-date")),
            "The RAM proof's SignedHeaders must include host, x-acs-date.",
            id="two-unsigned",
        ),
        pytest.param(
            _delete_header("accept"),
            "The RAM proof's SignedHeaders name a header it does not carry.",
            id="signed-but-absent",
        ),
        pytest.param(
            _unsign("accept"),
            "Every header of the RAM proof but authorization must be signed.",
            id="unsigned-accept",
        ),
        pytest.param(
            _set("headers.x-acs-date", "yesterday"),
            "The RAM proof's x-acs-date must look like 2026-01-01T00:00:00Z.",
            id="date-format",
        ),
        pytest.param(
            _add_header("Content-Length", "100", signed=True),
            "The RAM proof may carry only host, authorization, accept, user-agent, "
            "content-type and x-acs-* headers.",
            id="framing",
        ),
        pytest.param(
            _set("url", f"http://{NOWHERE}/#"),
            "The RAM proof's URL must not have a fragment.",
            id="empty-fragment",
        ),
    ],
)
def test_malformed_proof_is_refused_in_full_words(
    change: Callable[[dict[str, Any]], None], message: str
) -> None:
    assert _refused(_verifier(), _mutate(_proof(), change), message).message == message


def test_a_proof_dated_the_most_skew_allowed_from_now_is_sent() -> None:
    proof = _proof()
    date = _decode(proof)["headers"]["x-acs-date"]
    sent = datetime.strptime(date, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    for skew in (300, -300):
        verifier = _verifier(clock=lambda skew=skew: sent.timestamp() + skew)
        # past the date check: on to STS, for which no time is left
        _refused(verifier, proof, "No time was left", status=504, timeout_s=0)
        late = _verifier(clock=lambda skew=skew: sent.timestamp() + skew * 301 / 300)
        _refused(late, proof, "x-acs-date is more than 300 s from now", timeout_s=0)


@pytest.mark.parametrize(
    ("proof", "match"),
    [
        pytest.param("", "not base64url", id="empty"),
        pytest.param("RAM abc", "not base64url", id="with-scheme"),
        pytest.param("a+b/c", "not base64url", id="standard-alphabet"),
        pytest.param("abcde", "not base64url", id="bad-length"),
        pytest.param(_encode("x")[:-1] + "!", "not base64url", id="bad-char"),
        pytest.param(
            base64.urlsafe_b64encode(b"\xff\xfe{}").decode(), "not UTF-8 JSON", id="not-utf8"
        ),
        pytest.param(
            base64.urlsafe_b64encode(b"not json").decode(), "not UTF-8 JSON", id="not-json"
        ),
        pytest.param(_encode(["POST"]), "not a JSON object", id="array"),
        pytest.param(  # 16 KiB exactly, written with its padding: not too long
            base64.urlsafe_b64encode(b"[" + b" " * (16 * 1024 - 2) + b"]").decode(),
            "not a JSON object",
            id="16-KiB",
        ),
        pytest.param(
            base64.urlsafe_b64encode(b"[" * 9000 + b"]" * 9000).decode(),
            "longer than 16 KiB",
            id="too-long",
        ),
        pytest.param(
            base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode(),
            "not UTF-8 JSON",
            id="too-deep",
        ),
        pytest.param("A" * 30000, "longer than 16 KiB", id="too-long-text"),
        # one character more than 16 KiB takes: refused for its length before anything else
        pytest.param("!" * 21849, "longer than 16 KiB", id="16-KiB-and-a-character"),
        pytest.param(
            base64.urlsafe_b64encode(b'{"method":"POST","method":"POST"}').decode(),
            "duplicate key",
            id="duplicate-json-key",
        ),
    ],
)
def test_undecodable_proof_is_refused(proof: str, match: str) -> None:
    error = _refused(_verifier(), proof, match)
    assert REFUSAL.fullmatch(error.message), error.message


def test_proof_of_exactly_16_kib_is_decoded() -> None:
    doc = _decode(_proof())
    doc["headers"]["x-acs-padding"] = ""
    size = len(json.dumps(doc).encode())
    doc["headers"]["x-acs-padding"] = "p" * (16 * 1024 - size)
    assert len(json.dumps(doc).encode()) == 16 * 1024
    # Decoded and checked further: refused for the unsigned header, not for its size.
    _refused(_verifier(), _encode(doc), "must be signed")
    doc["headers"]["x-acs-padding"] += "p"
    # Short enough as text (base64url of 16 KiB and a byte), too long once decoded.
    error = _refused(_verifier(), _encode(doc), "longer than 16 KiB")
    assert error.message == "The RAM proof is longer than 16 KiB."


@pytest.mark.parametrize("text", ["abcdX", "abcdA", "abcdX=="])
def test_base64url_one_character_past_a_whole_group_is_not_base64url(text: str) -> None:
    """Five characters cannot be base64url, whatever the last one is; only `=` is taken off
    the end before decoding."""
    error = _refused(_verifier(), text, "not base64url")
    assert error.message == "The RAM proof is not base64url."


def test_a_proof_of_another_shape_is_refused_in_full_words() -> None:
    error = _refused(_verifier(), _mutate(_proof(), _set("extra", "x")), "exactly the keys")
    assert error.message == (
        "The RAM proof must have exactly the keys method, url, headers and body: strings, "
        "and headers an object of strings."
    )


def test_the_proof_policy_refuses_an_empty_audience_and_a_skew_under_a_second() -> None:
    with pytest.raises(ValueError, match="audience") as empty:
        ProofPolicy("", frozenset())
    assert str(empty.value) == "the RAM proof audience must not be empty"
    assert ProofPolicy("vend", frozenset(), max_skew_s=1).max_skew_s == 1
    with pytest.raises(ValueError, match="max_skew_s") as none:
        ProofPolicy("vend", frozenset(), max_skew_s=0)
    assert str(none.value) == "max_skew_s must be positive"


def test_checks_run_in_the_documented_order() -> None:
    proof = _proof("evil.example.com", audience="other", protocol="https")
    late = lambda: time.time() + 3600  # noqa: E731
    _refused(_verifier(clock=late), proof, "allow-list")
    wrong_action = _mutate(_proof(audience="other"), _set("headers.x-acs-action", "AssumeRole"))
    _refused(_verifier(clock=late), wrong_action, "x-acs-action")
    _refused(_verifier(clock=late), _proof(audience="other"), "another audience")
    _refused(_verifier(clock=late), _proof(), "x-acs-date")


def test_no_time_left_sends_nothing() -> None:
    error = _refused(_verifier(), _proof(), "No time was left", status=504, timeout_s=0)
    assert error.message == "No time was left to have STS verify the RAM proof."


# -- STS failing ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "answer", "message"),
    [
        pytest.param(
            500,
            {"Code": "InternalError"},
            502,
            "STS failed to verify the RAM proof (HTTP 500).",
            id="500",
        ),
        pytest.param(
            429, {"Code": "Busy"}, 429, "STS throttled the verification of the RAM proof.", id="429"
        ),
        pytest.param(
            400,
            {"Code": "Throttling.User"},
            429,
            "STS throttled the verification of the RAM proof.",
            id="throttling-code",
        ),
        pytest.param(
            404,
            {"Code": "InvalidAccessKeyId.NotFound"},
            401,
            "STS rejected the proof: InvalidAccessKeyId.NotFound",
            id="refused",
        ),
        pytest.param(499, {}, 401, "STS rejected the proof (HTTP 499).", id="refused-no-code"),
    ],
)
def test_what_sts_answers_decides_the_answer(
    httpserver: HTTPServer,
    transport: RpcTransport,
    status: int,
    body: dict[str, str],
    answer: int,
    message: str,
) -> None:
    httpserver.expect_request("/", method="POST").respond_with_json(
        {"RequestId": "r", **body}, status=status, headers={"x-acs-request-id": "sts-req-1"}
    )
    verifier = _verifier(("http", _local(httpserver)), transport=transport)
    err = _refused(verifier, _proof(_local(httpserver)), message, status=answer)
    assert err.message == message
    # What the audit record says: STS failing is named with its answer; a proof STS refused
    # is the caller's, and names no upstream.
    facts = (err.service, err.upstream_code, err.upstream_status, err.upstream_request_id)
    if answer == 401:
        assert facts == (None, None, None, None)
    else:
        assert facts == ("STS", body["Code"], status, "sts-req-1")
        assert err.attempts == 1


def test_sts_5xx_is_an_upstream_error_and_is_not_retried(
    httpserver: HTTPServer, transport: RpcTransport
) -> None:
    httpserver.expect_request("/", method="POST").respond_with_json(
        {"RequestId": "r", "Code": "ServiceUnavailable", "Message": "busy"}, status=503
    )
    verifier = _verifier(("http", _local(httpserver)), transport=transport)
    _refused(verifier, _proof(_local(httpserver)), "HTTP 503", status=502)
    assert len(httpserver.log) == 1


@pytest.mark.parametrize(
    ("status", "body", "match"),
    [
        pytest.param(
            400, {"Code": "InvalidTimeStamp.Expired"}, "InvalidTimeStamp.Expired", id="code"
        ),
        pytest.param(403, "Forbidden", "STS rejected the proof (HTTP 403)", id="no-json"),
        pytest.param(400, {"Code": "<b>x</b>"}, "STS rejected the proof (HTTP 400)", id="odd-code"),
    ],
)
def test_sts_4xx_is_unauthenticated(
    httpserver: HTTPServer, transport: RpcTransport, status: int, body: object, match: str
) -> None:
    handler = httpserver.expect_request("/", method="POST")
    if isinstance(body, str):
        handler.respond_with_data(body, status=status)
    else:
        handler.respond_with_json(body, status=status)
    verifier = _verifier(("http", _local(httpserver)), transport=transport)
    err = _refused(verifier, _proof(_local(httpserver)), match)
    assert "<b>" not in err.message


def test_sts_redirect_is_not_followed(httpserver: HTTPServer, transport: RpcTransport) -> None:
    httpserver.expect_request("/").respond_with_data(
        "", status=302, headers={"Location": "http://127.0.0.1:9/elsewhere"}
    )
    verifier = _verifier(("http", _local(httpserver)), transport=transport)
    _refused(verifier, _proof(_local(httpserver)), "unexpected HTTP 302", status=502)
    assert len(httpserver.log) == 1


NOT_JSON = "STS answered the RAM proof with a body that is not JSON."
NO_ARN = "STS answered the RAM proof without a valid Arn and AccountId."
ODD_FORM = "STS answered the RAM proof with an identity of an unexpected form."


@pytest.mark.parametrize(
    ("body", "match"),
    [
        pytest.param("<html>ok</html>", NOT_JSON, id="html"),
        pytest.param(["x"], NO_ARN, id="array"),
        pytest.param({"AccountId": sdk.ACCOUNT}, NO_ARN, id="no-arn"),
        pytest.param({"Arn": USER_ARN}, NO_ARN, id="no-account"),
        pytest.param({"Arn": USER_ARN, "AccountId": 123}, NO_ARN, id="number"),
        pytest.param({"Arn": USER_ARN, "AccountId": "999"}, ODD_FORM, id="other-account"),
        pytest.param(
            {"Arn": f"acs:ram::{sdk.ACCOUNT}:group/ops", "AccountId": sdk.ACCOUNT},
            ODD_FORM,
            id="group",
        ),
        pytest.param(
            {"Arn": f"acs:ram::{sdk.ACCOUNT}:role/vend-eiam", "AccountId": sdk.ACCOUNT},
            ODD_FORM,
            id="bare-role",
        ),
        pytest.param({"Arn": f"{USER_ARN}/x", "AccountId": sdk.ACCOUNT}, ODD_FORM, id="user-path"),
        pytest.param(
            {"Arn": f"acs:ram::{sdk.ACCOUNT}:assumed-role/r/s/t", "AccountId": sdk.ACCOUNT},
            ODD_FORM,
            id="assumed-role-extra",
        ),
        pytest.param({"Arn": f"{USER_ARN}\n", "AccountId": sdk.ACCOUNT}, ODD_FORM, id="newline"),
        pytest.param({"Arn": "acs:ram::999:root", "AccountId": sdk.ACCOUNT}, ODD_FORM, id="root-x"),
    ],
)
def test_garbage_200_from_sts_is_an_upstream_error(
    httpserver: HTTPServer, transport: RpcTransport, body: object, match: str
) -> None:
    handler = httpserver.expect_request("/", method="POST")
    if isinstance(body, str):
        handler.respond_with_data(body, content_type="text/html")
    else:
        handler.respond_with_json(body)
    verifier = _verifier(("http", _local(httpserver)), transport=transport)
    err = _refused(verifier, _proof(_local(httpserver)), match, status=502)
    assert err.message == match


@pytest.mark.parametrize(
    ("arn", "principal"),
    [
        pytest.param(USER_ARN, USER_ARN, id="user"),
        pytest.param(
            f"acs:ram::{sdk.ACCOUNT}:assumed-role/Vend.Role-1/sess@x.io",
            f"acs:ram::{sdk.ACCOUNT}:role/Vend.Role-1",
            id="assumed-role",
        ),
    ],
)
def test_identity_forms_sts_may_return(
    httpserver: HTTPServer, transport: RpcTransport, arn: str, principal: str
) -> None:
    httpserver.expect_request("/", method="POST").respond_with_json(
        {"RequestId": "r", "Arn": arn, "AccountId": sdk.ACCOUNT, "IdentityType": "x"}
    )
    verifier = _verifier(("http", _local(httpserver)), transport=transport)
    caller = verifier.authenticate(_proof(_local(httpserver)), timeout_s=2)
    assert (caller.name, caller.policy_principal.account_id) == (principal, sdk.ACCOUNT)


def test_an_sts_answer_of_the_largest_size_read_is_read_whole(
    httpserver: HTTPServer, transport: RpcTransport
) -> None:
    identity = json.dumps({"RequestId": "r", "Arn": USER_ARN, "AccountId": sdk.ACCOUNT})
    httpserver.expect_request("/", method="POST").respond_with_data(
        identity + " " * (MAX_BODY_BYTES - len(identity)), content_type="application/json"
    )
    verifier = _verifier(("http", _local(httpserver)), transport=transport)
    assert verifier.authenticate(_proof(_local(httpserver)), timeout_s=5).name == USER_ARN


def test_root_account_is_refused(httpserver: HTTPServer, transport: RpcTransport) -> None:
    httpserver.expect_request("/", method="POST").respond_with_json(
        {"RequestId": "r", "Arn": f"acs:ram::{sdk.ACCOUNT}:root", "AccountId": sdk.ACCOUNT}
    )
    verifier = _verifier(("http", _local(httpserver)), transport=transport)
    err = _refused(verifier, _proof(_local(httpserver)), "root credentials")
    assert err.message == (
        "The RAM proof was signed by the account's root credentials: use a RAM user or role."
    )


def test_sts_not_answering_is_a_timeout(silent_port: int, transport: RpcTransport) -> None:
    target = f"127.0.0.1:{silent_port}"
    verifier = _verifier(("http", target), transport=transport)
    started = time.monotonic()
    _refused(verifier, _proof(target), "did not answer in time", status=504, timeout_s=0.3)
    assert time.monotonic() - started < 2


def test_sts_trickling_its_answer_is_a_timeout_when_the_time_is_up(
    transport: RpcTransport,
) -> None:
    """A byte every 0.3 s, each well within any read timeout: the verification still ends when
    its time is up (the whole answer would take about 45 s; the server gives up after 5)."""
    body = json.dumps({"RequestId": "r", "Arn": USER_ARN, "AccountId": sdk.ACCOUNT}).encode()
    with TrickleServer(http_answer(body), every_s=0.3, for_s=5) as sts:
        target = f"127.0.0.1:{sts.port}"
        verifier = _verifier(("http", target), transport=transport)
        started = time.monotonic()
        _refused(verifier, _proof(target), "did not answer in time", status=504, timeout_s=1)
        assert time.monotonic() - started < 1.5
        assert sts.requests == 1


def test_sts_not_accepting_the_connection_in_time_is_a_timeout(
    full_port: int, transport: RpcTransport
) -> None:
    target = f"127.0.0.1:{full_port}"
    verifier = _verifier(("http", target), transport=transport)
    started = time.monotonic()
    _refused(verifier, _proof(target), "did not answer in time", status=504, timeout_s=0.3)
    assert time.monotonic() - started < 2


def test_sts_unreachable_is_an_upstream_error(transport: RpcTransport) -> None:
    target = f"127.0.0.1:{_closed_port()}"
    verifier = _verifier(("http", target), transport=transport)
    error = _refused(verifier, _proof(target), "could not be reached", status=502)
    # What the audit record says: STS decided it, after one call (a proof is sent once).
    assert (error.service, error.attempts) == ("STS", 1)


# -- configuration -------------------------------------------------------------------------------

# The longest host name a target may have: 253 characters, labels of 63 at most.
HOST_253 = "a" * 63 + ("." + "a" * 63) * 2 + "." + "a" * 61
DEFAULTS = {
    ("https", "sts.aliyuncs.com"),
    ("https", "sts.cn-hangzhou.aliyuncs.com"),
    ("https", "sts-vpc.cn-hangzhou.aliyuncs.com"),
}


@pytest.mark.parametrize(
    ("endpoint", "extra", "added"),
    [
        pytest.param(None, [], set(), id="defaults"),
        pytest.param("", [""], set(), id="empty"),
        pytest.param(
            "http://127.0.0.1:9100", [], {("http", "127.0.0.1:9100")}, id="emulator-endpoint"
        ),
        pytest.param("sts.example.com", [], {("https", "sts.example.com")}, id="bare-host"),
        pytest.param(
            "HTTPS://STS.Example.com:8443/", [], {("https", "sts.example.com:8443")}, id="https"
        ),
        pytest.param(
            None,
            [" sts.a.example ", "sts.b.example:444", "", "[::1]:9100", "10.0.0.1"],
            {
                ("https", "sts.a.example"),
                ("https", "sts.b.example:444"),
                ("https", "[::1]:9100"),
                ("https", "10.0.0.1"),
            },
            id="extra-hosts",
        ),
        pytest.param(
            None,
            ["[2001:db8:0:0:0:0:0:1]:443", HOST_253, "sts.c.example:65535"],
            {
                ("https", "[2001:db8:0:0:0:0:0:1]:443"),
                ("https", HOST_253),
                ("https", "sts.c.example:65535"),
            },
            id="full-ipv6-longest-name-last-port",
        ),
    ],
)
def test_allowed_sts_targets(endpoint: str | None, extra: list[str], added: set[Any]) -> None:
    assert allowed_sts_targets("cn-hangzhou", endpoint, extra) == frozenset(DEFAULTS | added)


NOT_HOST_PORT = "expected host[:port]"
NOT_A_HOST_NAME = "not a valid host name"


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("evil.example.com/path", NOT_A_HOST_NAME),
        ("https://sts.example.com", NOT_HOST_PORT),
        ("user@sts.example.com", NOT_A_HOST_NAME),
        ("sts.example.com:99999", "the port must be 1 to 65535"),
        ("sts.example.com:0", "the port must be 1 to 65535"),
        ("sts.example.com:65536", "the port must be 1 to 65535"),
        ("sts.example.com:08443", "the port must be 1 to 65535"),
        ("sts.example.com:", NOT_HOST_PORT),
        ("-sts.example.com", NOT_A_HOST_NAME),
        ("sts..example.com", NOT_A_HOST_NAME),
        ("sts.example.com?x=1", NOT_A_HOST_NAME),
        ("[::1", NOT_HOST_PORT),
        ("[not-ipv6]:1", NOT_HOST_PORT),
        ("[1:2:3]:1", "not an IPv6 address in brackets"),
        ("999.1.1.1", "not a valid IPv4 address"),
        ("sts example.com", NOT_A_HOST_NAME),
        ("a" * 63 + ("." + "a" * 63) * 3, NOT_A_HOST_NAME),  # 255 characters
        ("a" * 63 + ("." + "a" * 63) * 2 + "." + "a" * 62, NOT_A_HOST_NAME),  # 254
    ],
)
def test_bad_extra_host_is_named(entry: str, why: str) -> None:
    """Found by `make mutate`: the refusal names the entry and what is wrong with it."""
    words = f"invalid STS proof host {entry!r}: {why}"
    with pytest.raises(ValueError, match=f"^{re.escape(words)}$"):
        allowed_sts_targets("cn-hangzhou", None, ["sts.ok.example", entry])


@pytest.mark.parametrize(
    "endpoint",
    ["ftp://sts.example.com", "http://sts.example.com/path", "http://u@sts.example.com", "http://"],
)
def test_bad_sts_endpoint_is_named(endpoint: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(endpoint))):
        allowed_sts_targets("cn-hangzhou", endpoint, [])


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("ftp://sts.example.com", "the scheme must be http or https"),
        # the scheme is what precedes the first ://, so the rest is no host
        ("http://sts.example.com://x", "expected host[:port]"),
    ],
)
def test_bad_sts_endpoint_is_named_with_why(endpoint: str, why: str) -> None:
    words = f"invalid STS endpoint {endpoint!r}: {why}"
    with pytest.raises(ValueError, match=f"^{re.escape(words)}$"):
        allowed_sts_targets("cn-hangzhou", endpoint, [])


@pytest.mark.parametrize("region", ["", "cn hangzhou", "cn-hangzhou.evil.com/x", "CN-HANGZHOU"])
def test_bad_region_is_refused(region: str) -> None:
    with pytest.raises(ValueError, match="region"):
        allowed_sts_targets(region, None, [])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        pytest.param({"audience": ""}, "audience", id="empty-audience"),
        pytest.param({"max_skew_s": 0}, "max_skew_s", id="no-skew"),
        pytest.param({"allowed": frozenset({("ftp", "x")})}, "scheme", id="scheme"),
    ],
)
def test_bad_policy_is_refused(kwargs: dict[str, Any], match: str) -> None:
    fields: dict[str, Any] = {"audience": AUD, "allowed": frozenset(DEFAULTS), **kwargs}
    with pytest.raises(ValueError, match=match):
        ProofPolicy(**fields)
