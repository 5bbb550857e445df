"""Issue 9's reproductions, each as the caller met it, against the whole local stack (the FC
HTTP handler and vend-events behind the local FC API, the emulator, the real SDKs).
Reproduction 1 (a failed read of an adopted secret) is in test_idempotent_create.py."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator

import pytest
import requests
from fc2.fc_exceptions import FcError
from stack import Stack, running_stack

from infra.emulator import Seed
from vend_client import VendApiError

OBTAIN = {
    "instance_id": "idaas_demo",
    "application_id": "app_billing",
    "secret_id": "sct_billing_1",
}


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed, timeout_s=3) as running:
        yield running


def _faults(stack: Stack, *faults: dict[str, object]) -> None:
    requests.put(
        f"{stack.emulator.url}/_emulator/faults", json=list(faults), timeout=5
    ).raise_for_status()


def _audited(stack: Stack, request_id: str) -> dict[str, object]:
    (record,) = [
        json.loads(r.getMessage())
        for r in stack.audit.records
        if json.loads(r.getMessage())["request_id"] == request_id
    ]
    return record


# -- 2: a create throttled after it acted is not sent again ------------------------------------


@pytest.mark.parametrize("keyed", [True, False], ids=["with-key", "without-key"])
def test_a_create_throttled_after_it_acted_makes_one_secret(stack: Stack, keyed: bool) -> None:
    _faults(
        stack,
        {
            "action": "CreateApplicationClientSecret",
            "status": 429,
            "code": "Throttling",
            "phase": "after",
            "times": 1,
        },
    )
    made = stack.client().create(
        "idaas_demo", "app_empty", idempotency_key="repro-2" if keyed else None
    )
    assert stack.secret_ids("app_empty") == [made.secret_id]
    assert len(stack.emulator.emulator.params("CreateApplicationClientSecret")) == 1


def test_a_create_throttled_before_it_acted_is_sent_again_once_listing_shows_nothing(
    stack: Stack,
) -> None:
    _faults(
        stack,
        {
            "action": "CreateApplicationClientSecret",
            "status": 429,
            "code": "Throttling",
            "times": 1,
        },
    )
    made = stack.client().create("idaas_demo", "app_empty")
    assert stack.secret_ids("app_empty") == [made.secret_id]
    creates = [code for _, _, code in stack.calls("CreateApplicationClientSecret")]
    assert creates == ["Throttling", "OK"]


def test_two_new_secrets_after_a_lost_answer_are_named_not_guessed(stack: Stack) -> None:
    """The operator creates a secret while this request's answer is lost: the request cannot
    tell which is its own, so it returns neither, names both, and creates nothing more."""
    _faults(
        stack,
        {
            "action": "CreateApplicationClientSecret",
            "status": 503,
            "code": "ServiceUnavailable",
            "phase": "after",
            "times": 1,
        },
        # Each listing waits 0.6 s before it looks: time for the operator's create to land.
        {"action": "ListApplicationClientSecrets", "latency_ms": 600},
    )
    emulator = stack.emulator.emulator

    def operator_creates_after_ours() -> None:
        deadline = time.monotonic() + 5
        while not emulator.params("CreateApplicationClientSecret"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        stack.operator_create("app_empty")

    racer = threading.Thread(target=operator_creates_after_ours)
    racer.start()
    with pytest.raises(VendApiError) as info:
        stack.client().create("idaas_demo", "app_empty")
    racer.join()
    assert info.value.status == 502
    ids = stack.secret_ids("app_empty")
    assert len(ids) == 2
    assert all(secret_id in info.value.message for secret_id in ids)
    assert len(emulator.params("CreateApplicationClientSecret")) == 2  # ours, the operator's


# -- 3: a stale STS session does not strand the service ----------------------------------------


def test_an_upstream_that_forgot_its_sessions_is_served_with_a_fresh_one(stack: Stack) -> None:
    client = stack.client()
    client.obtain(**OBTAIN)
    assumed = len(stack.calls("AssumeRole"))
    stack.emulator.emulator.restart()  # every STS session it issued is forgotten
    again = client.obtain(**OBTAIN)
    assert again.secret_id == "sct_billing_1"
    obtains = [code for _, _, code in stack.calls("ObtainApplicationClientSecret")]
    assert obtains == ["OK", "InvalidAccessKeyId.NotFound", "OK"]
    assert len(stack.calls("AssumeRole")) == assumed + 1
    client.obtain(**OBTAIN)  # and the fresh session is cached
    assert len(stack.calls("AssumeRole")) == assumed + 1


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (404, "InvalidAccessKeyId.NotFound"),
        (400, "InvalidSecurityToken.Expired"),
        (400, "InvalidSecurityToken.MismatchWithAccessKey"),
        (400, "SignatureDoesNotMatch"),
    ],
)
def test_scoped_credentials_refused_twice_is_502_never_404(
    stack: Stack, status: int, code: str
) -> None:
    _faults(
        stack,
        {"action": "ObtainApplicationClientSecret", "status": status, "code": code, "times": 2},
    )
    with pytest.raises(VendApiError) as info:
        stack.client().obtain(**OBTAIN)
    assert (info.value.status, info.value.code) == (502, "UpstreamError")
    assert code in info.value.message
    assert [c for _, _, c in stack.calls("ObtainApplicationClientSecret")] == [code, code]
    # The fault is spent: the next request succeeds on a fresh session.
    assert stack.client().obtain(**OBTAIN).secret_id == "sct_billing_1"


def test_a_create_refused_for_its_session_is_sent_again_with_a_fresh_one(stack: Stack) -> None:
    _faults(
        stack,
        {
            "action": "CreateApplicationClientSecret",
            "status": 404,
            "code": "InvalidAccessKeyId.NotFound",
            "times": 1,
        },
    )
    made = stack.client().create("idaas_demo", "app_empty", idempotency_key="repro-3")
    assert stack.secret_ids("app_empty") == [made.secret_id]


# -- 4: a deeply nested body is a client's mistake ---------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 30_000,
        b'{"instance_id":' + b"[" * 40 + b"]" * 40 + b"}",
        b"\xff\xfe{}",
    ],
    ids=["30000-deep", "41-deep", "not-utf8"],
)
def test_a_hostile_body_is_400_with_an_audit_record(stack: Stack, body: bytes) -> None:
    resp = requests.post(f"{stack.api.url}/v1/secrets/obtain", data=body, timeout=10)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == "MalformedRequest"
    record = _audited(stack, resp.headers["X-Request-Id"])
    assert record["outcome"] == "MalformedRequest"


@pytest.mark.parametrize("kind", ["Sync", "Async"])
def test_a_deeply_nested_event_is_returned_not_raised(stack: Stack, kind: str) -> None:
    reply = stack.fc().invoke_function(
        "any-service",
        "vend-events",
        payload=b"[" * 30_000,
        headers={"x-fc-invocation-type": kind},
    )
    if kind == "Sync":
        body = json.loads(reply.data)
        assert (body["status"], body["error"]["code"]) == (400, "MalformedRequest")
    else:
        assert stack.invoke_idle(10)
        request_id = reply.headers["X-Fc-Request-Id"]
        assert _audited(stack, request_id)["outcome"] == "MalformedRequest"  # once: no retry
        assert "failed" not in stack.logs.text()


def test_what_fc_shows_of_a_raised_error_is_the_handlers_frame_only(stack: Stack) -> None:
    _faults(
        stack, {"action": "ObtainApplicationClientSecret", "status": 503, "code": "Unavailable"}
    )
    event = {"action": "obtain", **OBTAIN, "authorization": stack.client().authorization()}
    with pytest.raises(FcError) as info:
        stack.fc().invoke_function("any-service", "vend-events", payload=json.dumps(event).encode())
    shown = json.loads(info.value.message)
    assert shown["errorType"] == "RetryableError"
    assert "502 UpstreamError" in shown["errorMessage"]
    files = [frame[0] for frame in shown["stackTrace"]]
    assert files and all("functions/events.py" in f for f in files), files


# -- 5: messages echo no unbounded input --------------------------------------------------------


def test_an_unknown_long_path_is_not_echoed_whole(stack: Stack) -> None:
    resp = requests.post(f"{stack.api.url}/v1/{'x' * 8000}", data=b"{}", timeout=10)
    assert resp.status_code == 404
    assert len(resp.json()["error"]["message"]) < 100


def test_an_unknown_long_field_name_is_not_echoed_whole(stack: Stack) -> None:
    body = json.dumps({**OBTAIN, "y" * 8000: 1})
    resp = requests.post(
        f"{stack.api.url}/v1/secrets/obtain",
        data=body,
        headers={"Authorization": stack.client().authorization()},
        timeout=10,
    )
    assert resp.status_code == 400
    assert len(resp.json()["error"]["message"]) < 120
