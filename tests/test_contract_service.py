"""The contract's rules where a caller meets them (issue 21, item 2): each test drives the whole
service over real HTTP (the FC HTTP handler behind the local FC bridge) or through FC's invoke
API with the unchanged fc2 SDK, against the emulator, and asserts what the caller sees, what the
emulator was asked and what the audit says. Each is marked with its section of the contract
(tests/test_contract_sections.py checks that every section has one).

tests/test_planted_bugs.py plants the bugs these tests exist for and checks that they fail."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import sdk_clients as sdk
from alibabacloud_kms20160120 import models as kms_models
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fc2.fc_exceptions import FcError
from pytest_httpserver import HTTPServer
from stack import LapseClock, Stack, running_stack

from infra.emulator import Seed
from vend_client import VendApiError, VendResponse

BILLING = f"acs:ram::{sdk.ACCOUNT}:user/billing"
REPORTS = f"acs:ram::{sdk.ACCOUNT}:user/reports"
BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"
OBTAIN = {
    "instance_id": "idaas_demo",
    "application_id": "app_billing",
    "secret_id": "sct_billing_1",
}
APP_BILLING = sdk.secret_arn("app_billing", "*")
OBTAIN_ACTION = "eiam:ObtainApplicationClientSecret"
# Contract section 7 and the README: an upstream call is tried at most four times. Written here
# as a number, not read from shared/upstream/retry.py: the test must not ask the code under test
# what to expect of it.
UPSTREAM_ATTEMPTS = 4

WAYS = ["http", "events"]


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed) as running:
        yield running


def _policy(statements: list[dict[str, Any]], recipients: list[dict[str, str]]) -> str:
    return json.dumps({"Version": "1", "Statement": statements, "Recipients": recipients})


def _obtain(stack: Stack, way: str, key: tuple[str, str] = sdk.BILLING) -> VendResponse:
    """billing's sct_billing_1, asked as a caller asks it: the client library over HTTP, or the
    events client through FC's invoke API."""
    if way == "http":
        return stack.client(key).obtain(**OBTAIN)
    return stack.events(key).obtain(**OBTAIN)


def _audit(stack: Stack) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in stack.audit.records]


def _faults(stack: Stack, *faults: dict[str, object]) -> None:
    requests.put(f"{stack.emulator.url}/_emulator/faults", json=list(faults), timeout=5)


# -- section 5: an explicit Deny beats an Allow that matches the same request ----------------------

DENY_ONE_SECRET = _policy(
    [
        {
            # The Allow comes first and matches: an evaluation that stops at the first matching
            # statement, or tries the Allows before the Denies, lets billing through.
            "Sid": "billing-and-reports-read-app-billing",
            "Effect": "Allow",
            "Principal": {"RAM": [BILLING, REPORTS]},
            "Action": OBTAIN_ACTION,
            "Resource": APP_BILLING,
        },
        {
            "Sid": "but-billing-never-its-first-secret",
            "Effect": "Deny",
            "Principal": {"RAM": BILLING},
            "Action": OBTAIN_ACTION,
            "Resource": sdk.secret_arn("app_billing", "sct_billing_1"),
        },
    ],
    [],
)


@pytest.mark.contract("5")
@pytest.mark.contract("9")
@pytest.mark.parametrize("way", WAYS)
def test_an_explicit_deny_beats_a_matching_allow(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, way: str
) -> None:
    with running_stack(monkeypatch, demo_seed, env={"VEND_POLICY": DENY_ONE_SECRET}) as stack:
        # The Allow does match this resource: reports, whom no Deny names, gets it.
        assert _obtain(stack, way, sdk.REPORTS).secret_id == "sct_billing_1"
        before = len(stack.emulator.emulator.history)
        with pytest.raises(VendApiError) as info:
            _obtain(stack, way)
        assert (info.value.status, info.value.code) == (403, "AccessDenied")
        # Only the RAM proof's GetCallerIdentity reached the cloud: no AssumeRole, EIAM or KMS.
        assert list(stack.emulator.emulator.history)[before:] == [
            ("GetCallerIdentity", BILLING, "OK")
        ]
        allowed, denied = _audit(stack)
    assert (allowed["decision"], allowed["statement"]) == (
        "allow",
        "billing-and-reports-read-app-billing",
    )
    assert (denied["principal"], denied["decision"], denied["outcome"]) == (
        BILLING,
        "deny",
        "AccessDenied",
    )
    assert denied["statement"] == "but-billing-never-its-first-secret"


@pytest.mark.contract("5")
@pytest.mark.contract("9")
def test_a_default_deny_names_no_statement(stack: Stack) -> None:
    """reports is named by no statement on app_billing: denied by default, and the audit says
    so by naming none (a Deny would be named)."""
    with pytest.raises(VendApiError) as info:
        stack.client(sdk.REPORTS).obtain(**OBTAIN)
    assert info.value.code == "AccessDenied"
    (record,) = _audit(stack)
    assert record["decision"] == "deny"
    assert "statement" not in record


# -- sections 4 and 5: the first matching recipient's key seals the answer ---------------------

FIRST_RECIPIENT_WINS = _policy(
    [
        {
            "Sid": "billing-reads-app-billing",
            "Effect": "Allow",
            "Principal": {"RAM": BILLING},
            "Action": OBTAIN_ACTION,
            "Resource": APP_BILLING,
        }
    ],
    [
        {"Principal": BILLING, "KeyId": "key-billing"},
        {"Principal": BILLING, "KeyId": "key-reports"},  # a later entry for the same caller
    ],
)


@pytest.mark.contract("4")
@pytest.mark.contract("5")
@pytest.mark.parametrize("way", WAYS)
def test_the_first_matching_recipient_key_seals_the_answer(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, way: str
) -> None:
    with running_stack(monkeypatch, demo_seed, env={"VEND_POLICY": FIRST_RECIPIENT_WINS}) as stack:
        response = _obtain(stack, way)
        assert response.envelope.key_id == "key-billing"
        # billing may Decrypt with key-billing only: it opens what was sealed for it.
        opened = stack.client().open(
            response,
            instance_id="idaas_demo",
            application_id="app_billing",
            secret_id="sct_billing_1",
        )
        assert opened == BILLING_SECRET
        (sealed,) = stack.emulator.emulator.params("GenerateDataKey")
    assert sealed["KeyId"] == "key-billing"


# -- section 4: the envelope opens as the contract says, with nothing of this project -----------


@pytest.mark.contract("4")
@pytest.mark.parametrize("way", WAYS)
def test_the_envelope_opens_with_kms_decrypt_and_plain_aes_gcm(stack: Stack, way: str) -> None:
    """What a caller in another language does: KMS Decrypt through Alibaba Cloud's own SDK with
    the envelope's context, then AES-256-GCM with the context's canonical JSON as associated
    data. The project's own opener shares its code with the sealer (shared/wire is
    vend_client/wire), so only an opener written from the contract can tell them both wrong."""
    envelope = _obtain(stack, way).envelope
    context = envelope.encryption_context
    assert set(context) == {"vend:arn", "vend:principal", "vend:request_id"}
    request = kms_models.DecryptRequest(
        ciphertext_blob=envelope.encrypted_data_key, encryption_context=context
    )
    opened = sdk.kms(stack.emulator.endpoint, sdk.BILLING).decrypt(request).body
    assert opened.key_id == envelope.key_id == "key-billing"
    aad = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    plaintext = AESGCM(base64.b64decode(opened.plaintext)).decrypt(
        base64.b64decode(envelope.iv), base64.b64decode(envelope.ciphertext), aad.encode()
    )
    assert plaintext == BILLING_SECRET.encode()
    assert len(base64.b64decode(envelope.iv)) == 12


# -- sections 2 and 7: the headers of every answer, whatever its status ---------------------------


def _answers(stack: Stack) -> dict[str, requests.Response]:
    """One answer of each kind a caller can get over HTTP."""
    url = stack.api.url

    def post(path: str, body: object, key: tuple[str, str] = sdk.BILLING) -> requests.Response:
        auth = {"Authorization": stack.client(key).authorization()}
        return requests.post(url + path, json=body, headers=auth, timeout=20)

    answers = {
        "200 obtain": post("/v1/secrets/obtain", OBTAIN),
        "200 health": requests.get(url + "/v1/health", timeout=10),
        "400": requests.post(url + "/v1/secrets/obtain", data=b"[1]", timeout=10),
        "401": requests.post(url + "/v1/secrets/obtain", json=OBTAIN, timeout=10),
        "403": post("/v1/secrets/obtain", OBTAIN, sdk.REPORTS),
        "404": requests.get(url + "/v1/nowhere", timeout=10),
        "405": requests.get(url + "/v1/secrets/obtain", timeout=10),
        "413": requests.post(url + "/v1/secrets/obtain", data=b"x" * (65 * 1024), timeout=10),
    }
    _faults(stack, {"action": "ObtainApplicationClientSecret", "status": 503})
    answers["502"] = post("/v1/secrets/obtain", OBTAIN)
    return answers


@pytest.mark.contract("2")
@pytest.mark.contract("7")
def test_every_answer_is_no_store_and_names_its_request(stack: Stack) -> None:
    answers = _answers(stack)
    statuses = {kind: r.status_code for kind, r in answers.items()}
    assert statuses == {kind: int(kind[:3]) for kind in answers}
    for kind, answer in answers.items():
        # Exactly no-store: `max-age=...`, `private` or `no-cache` would let something keep it.
        assert answer.headers.get("Cache-Control") == "no-store", kind
        request_id = answer.headers.get("X-Request-Id")
        assert request_id, kind
        body = answer.json()
        if "error" in body:
            assert body["error"]["request_id"] == request_id, kind
        elif kind == "200 obtain":
            assert body["request_id"] == request_id
    ids = [a.headers["X-Request-Id"] for a in answers.values()]
    assert len(set(ids)) == len(ids)  # one per request
    audited = {r["request_id"] for r in _audit(stack)}
    assert audited >= {answers[k].headers["X-Request-Id"] for k in ("200 obtain", "403", "502")}


# -- section 7: a bug is a 500 InternalError with no detail, and its traceback is in the log -------

# A bug is provoked through a public seam, never by patching the service's code: the clock its
# idempotency marks lapse by (composition_root's `lapse_now_ms`, which every keyed create reads)
# raises what no code of the service expects.
PLANTED = "planted-clock-failure-detail"


class BrokenClock(LapseClock):
    def now_ms(self) -> int:
        raise ArithmeticError(PLANTED)


CREATE = {"instance_id": "idaas_demo", "application_id": "app_billing"}
KEY = "contract-bug-key-1"
# What no answer of a bug may show: the exception, its text, a module of the service.
DETAIL = ("Traceback", "ArithmeticError", PLANTED, "shared/", "create_once")


@pytest.fixture
def broken_clock(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed, lapse_clock=BrokenClock()) as running:
        yield running


def _traceback_logged(stack: Stack, request_id: str) -> str:
    """The formatted log lines about `request_id` that carry a traceback."""
    text = logging.Formatter("%(name)s %(message)s")
    lines = [text.format(r) for r in stack.logs.records if request_id in r.getMessage()]
    return "\n".join(line for line in lines if "Traceback (most recent call last)" in line)


@pytest.mark.contract("7")
@pytest.mark.contract("9")
def test_a_bug_over_http_is_500_internal_error_without_detail(broken_clock: Stack) -> None:
    stack = broken_clock
    headers = {"Authorization": stack.client().authorization(), "Idempotency-Key": KEY}
    answer = requests.post(stack.api.url + "/v1/secrets/create", json=CREATE, headers=headers)
    assert answer.status_code == 500
    request_id = answer.headers["X-Request-Id"]
    assert answer.json() == {
        "error": {
            "code": "InternalError",
            "message": "An internal error occurred.",
            "request_id": request_id,
        }
    }
    assert answer.headers["Cache-Control"] == "no-store"
    for detail in DETAIL:
        assert detail not in answer.text
    assert PLANTED in _traceback_logged(stack, request_id)
    (record,) = _audit(stack)
    assert (record["request_id"], record["outcome"]) == (request_id, "InternalError")
    assert stack.calls("CreateApplicationClientSecret") == []


@pytest.mark.contract("6")
@pytest.mark.contract("7")
def test_a_bug_over_events_is_raised_as_internal_error_without_detail(broken_clock: Stack) -> None:
    stack = broken_clock
    event = {
        **CREATE,
        "idempotency_key": KEY,
        "action": "create",
        "authorization": stack.client().authorization(),
    }
    with pytest.raises(FcError) as info:
        stack.fc().invoke_function(
            "any-service",
            "vend-events",
            payload=json.dumps(event).encode(),
            headers={"x-fc-invocation-type": "Sync"},
        )
    # Raised (a bug is the service's, and FC may retry it), as FC shows a raised error: the
    # code, the fixed message and the request id; of the traceback, the handler's frame only.
    shown = str(info.value)
    (record,) = _audit(stack)
    request_id = record["request_id"]
    assert f"500 InternalError: An internal error occurred. (request {request_id})" in shown
    for detail in DETAIL:
        assert detail not in shown
    assert record["outcome"] == "InternalError"
    assert PLANTED in _traceback_logged(stack, request_id)


# -- section 7: an upstream's answer it cannot have meant is its failure, not the service's -------

# A 200 from EIAM whose client id is not a string: EIAM's fault, a 502 UpstreamError, as an answer
# without a ClientSecret is; never a 500, and never the odd value or the secret in the answer.
ODD_OBTAIN_ANSWER = {
    "RequestId": "eiam-odd-answer",
    "ApplicationClientSecret": {
        "InstanceId": "idaas_demo",
        "ApplicationId": "app_billing",
        "SecretId": "sct_billing_1",
        "ClientId": {"not": "a string"},
        "ClientSecret": BILLING_SECRET,
        "Status": "enabled",
    },
}


@pytest.fixture
def odd_eiam(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, httpserver: HTTPServer
) -> Iterator[Stack]:
    """The demo stack with EIAM played by pytest-httpserver, answering every call as above."""
    httpserver.expect_request("/").respond_with_json(ODD_OBTAIN_ANSWER)
    env = {"VEND_EIAM_ENDPOINT": f"http://127.0.0.1:{httpserver.port}"}
    with running_stack(monkeypatch, demo_seed, env=env) as running:
        yield running


@pytest.mark.contract("7")
@pytest.mark.parametrize("action", ["obtain", "create"])
def test_an_eiam_answer_with_a_client_id_that_is_not_text_is_502(
    odd_eiam: Stack, action: str
) -> None:
    stack = odd_eiam
    headers = {"Authorization": stack.client().authorization()}
    if action == "create":  # keyed: a create whose answer EIAM garbled is settled by listing
        headers["Idempotency-Key"] = "odd-eiam-key"
    body = OBTAIN if action == "obtain" else CREATE
    answer = requests.post(f"{stack.api.url}/v1/secrets/{action}", json=body, headers=headers)
    assert (answer.status_code, answer.json()["error"]["code"]) == (502, "UpstreamError")
    for detail in ("not a string", BILLING_SECRET, "Traceback"):
        assert detail not in answer.text
    (record,) = _audit(stack)
    assert record["upstream"] == "eiam"


# -- section 7: an upstream failure is tried four times, then answered ---------------------------


@pytest.mark.contract("7")
@pytest.mark.contract("9")
def test_an_upstream_that_keeps_failing_is_tried_four_times(stack: Stack) -> None:
    _faults(stack, {"action": "ObtainApplicationClientSecret", "status": 503})
    with pytest.raises(VendApiError) as info:
        stack.client().obtain(**OBTAIN)
    assert (info.value.status, info.value.code) == (502, "UpstreamError")
    assert len(stack.calls("ObtainApplicationClientSecret")) == UPSTREAM_ATTEMPTS
    (record,) = _audit(stack)
    assert (record["upstream"], record["upstream_status"]) == ("eiam", 503)
    assert record["attempts"] == UPSTREAM_ATTEMPTS
