"""Other functions invoke `vend-events` with the unchanged fc2 SDK, sync and async, through the
local FC invoke API of `vend local`."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from types import SimpleNamespace

import fc2
import pytest
import requests
import sdk_clients as sdk
from fc2.fc_exceptions import FcError
from stack import Stack, running_stack

from functions import events as events_function
from infra.emulator import Seed
from vend_client import VendApiError

pytestmark = pytest.mark.contract("6")

BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed) as running:
        yield running


def _invoke(
    stack: Stack, event: dict[str, object], kind: str = "Sync", fc: fc2.Client | None = None
) -> object:
    client = fc or stack.fc()
    return client.invoke_function(
        "any-service",
        "vend-events",
        payload=json.dumps(event).encode(),
        headers={"x-fc-invocation-type": kind},
    )


def _wait_until(predicate: object, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("the condition never held")


def test_sync_obtain_whose_envelope_the_caller_opens(stack: Stack) -> None:
    events = stack.events()
    response = events.obtain("idaas_demo", "app_billing", "sct_billing_1")
    assert response.envelope.key_id == "key-billing"
    secret = events.vend.open(
        response, instance_id="idaas_demo", application_id="app_billing", secret_id="sct_billing_1"
    )
    assert secret == BILLING_SECRET


def test_a_403_is_returned_not_raised(stack: Stack) -> None:
    event = {
        "action": "obtain",
        "instance_id": "idaas_demo",
        "application_id": "app_reports",
        "secret_id": "sct_reports_1",
        "authorization": stack.client().authorization(),
    }
    reply = _invoke(stack, event)
    body = json.loads(reply.data)  # type: ignore[attr-defined]
    assert body["status"] == 403 and body["error"]["code"] == "AccessDenied"
    assert body["error"]["request_id"]
    with pytest.raises(VendApiError) as info:
        stack.events().obtain("idaas_demo", "app_reports", "sct_reports_1")
    assert (info.value.status, info.value.code) == (403, "AccessDenied")


@pytest.mark.parametrize(
    ("event", "code"),
    [
        pytest.param({"action": "delete"}, "InvalidParameter", id="bad-action"),
        pytest.param(
            {
                "action": "obtain",
                "instance_id": "idaas_demo",
                "application_id": "app_billing",
                "secret_id": "*",
            },
            "InvalidParameter",
            id="bad-id",
        ),
        pytest.param(
            {
                "action": "obtain",
                "instance_id": "idaas_demo",
                "application_id": "app_billing",
                "secret_id": "sct_billing_1",
                "idempotency_key": "k",
            },
            "InvalidParameter",
            id="key-on-obtain",
        ),
        pytest.param(
            {
                "action": "obtain",
                "instance_id": "idaas_demo",
                "application_id": "app_billing",
                "secret_id": "sct_billing_1",
                "extra": 1,
            },
            "InvalidParameter",
            id="unknown-field",
        ),
        pytest.param(
            {
                "action": "obtain",
                "instance_id": "idaas_demo",
                "application_id": "app_billing",
                "secret_id": "sct_billing_1",
            },
            "Unauthenticated",
            id="no-authorization",
        ),
    ],
)
def test_client_errors_are_returned(stack: Stack, event: dict[str, object], code: str) -> None:
    body = json.loads(_invoke(stack, event).data)  # type: ignore[attr-defined]
    assert body["error"]["code"] == code and body["status"] in (400, 401)


def test_malformed_event_is_returned_as_400(stack: Stack) -> None:
    reply = stack.fc().invoke_function(
        "svc", "vend-events", payload=b"[not json", headers={"x-fc-invocation-type": "Sync"}
    )
    assert json.loads(reply.data)["error"]["code"] == "MalformedRequest"


def test_a_retryable_failure_is_raised_for_fc(stack: Stack) -> None:
    requests.put(
        f"{stack.emulator.url}/_emulator/faults",
        timeout=5,
        json=[{"action": "GenerateDataKey", "status": 503, "code": "ServiceUnavailable"}],
    )
    with pytest.raises(FcError) as info:
        _invoke(
            stack,
            {
                "action": "obtain",
                "instance_id": "idaas_demo",
                "application_id": "app_billing",
                "secret_id": "sct_billing_1",
                "authorization": stack.client().authorization(),
            },
        )
    assert "502 UpstreamError" in str(info.value)
    assert BILLING_SECRET not in str(info.value)


def _doctor_records(stack: Stack) -> list[dict[str, object]]:
    records = [json.loads(r.getMessage()) for r in stack.audit.records]
    return [r for r in records if r["action"] == "doctor"]


def test_the_doctor_runs_inside_the_function(stack: Stack) -> None:
    """The operator's one-off check after `s deploy`: the function's own environment and
    credentials, for a principal the approval policy allows `vend:RunDoctor`; a failing check
    is a report (returned), never an error FC would retry."""
    operator = stack.events(sdk.OPERATOR)
    report = operator.doctor()
    assert report["ok"] is True and report["request_id"]
    names = {c["name"] for c in report["checks"]}
    assert {"identity", "assume-role", "data-key:key-default", "store"} <= names
    (record,) = _doctor_records(stack)
    assert record["principal"] == f"acs:ram::{sdk.ACCOUNT}:user/operator"
    assert (record["resource"], record["decision"], record["outcome"]) == ("*", "allow", "ok")
    assert record["request_id"] == report["request_id"]
    requests.put(
        f"{stack.emulator.url}/_emulator/faults",
        timeout=5,
        json=[{"action": "AssumeRole", "status": 403, "code": "NoPermission"}],
    )
    report = operator.doctor()
    failed = {c["name"]: c for c in report["checks"] if c["status"] != "ok"}
    # Every check that assumes the vending role: the role itself, and VEND_ROTATION's listing.
    assert report["ok"] is False and set(failed) == {"assume-role", "rotation-list"}
    assert failed["assume-role"]["upstream_code"] == "NoPermission"
    assert _doctor_records(stack)[-1]["outcome"] == "DoctorCheckFailed"
    event = {"action": "doctor", "authorization": stack.client(sdk.OPERATOR).authorization()}
    body = json.loads(_invoke(stack, {**event, "x": 1}).data)  # type: ignore[attr-defined]
    assert (body["status"], body["error"]["code"]) == (400, "InvalidParameter")


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="none"),
        pytest.param("", id="empty"),
        pytest.param("Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln", id="no-jwt-issuer"),
        pytest.param("RAM not-a-proof", id="not-a-proof"),
    ],
)
def test_the_doctor_without_authorization_is_401_and_asks_no_upstream(
    stack: Stack, authorization: str | None
) -> None:
    """The report names the account, the roles and every recipient's key, and a run costs an
    AssumeRole and a data key per key: an invoker who proves no identity gets neither."""
    event: dict[str, object] = {"action": "doctor"}
    if authorization is not None:
        event["authorization"] = authorization
    before = len(stack.emulator.emulator.calls())
    body = json.loads(_invoke(stack, event).data)  # type: ignore[attr-defined]
    assert (body["status"], body["error"]["code"]) == (401, "Unauthenticated")
    assert "checks" not in body and sdk.ACCOUNT not in json.dumps(body)
    assert stack.emulator.emulator.calls()[before:] == []
    (record,) = _doctor_records(stack)
    assert (record["principal"], record["decision"]) == (None, "none")
    assert record["outcome"] == "Unauthenticated"


def test_the_doctor_for_a_principal_without_run_doctor_is_403(stack: Stack) -> None:
    """billing may obtain its secrets, not run the deployment checks: its proof is verified
    (STS GetCallerIdentity, the one call authentication makes) and nothing else is asked."""
    before = len(stack.emulator.emulator.calls())
    with pytest.raises(VendApiError) as info:
        stack.events(sdk.BILLING).doctor()
    assert (info.value.status, info.value.code) == (403, "AccessDenied")
    billing = f"acs:ram::{sdk.ACCOUNT}:user/billing"
    assert stack.emulator.emulator.calls()[before:] == [("GetCallerIdentity", billing, "OK")]
    assert stack.calls("AssumeRole") == [] and stack.calls("GenerateDataKey") == []
    (record,) = _doctor_records(stack)
    assert (record["principal"], record["resource"]) == (billing, "*")
    assert (record["decision"], record["outcome"]) == ("deny", "AccessDenied")


def test_fc_signature_is_checked_against_the_emulators_keys(stack: Stack) -> None:
    forged = fc2.Client(
        endpoint=stack.api.url, accessKeyID=sdk.BILLING[0], accessKeySecret="wrong-secret"
    )
    with pytest.raises(FcError) as info:
        _invoke(stack, {"action": "obtain"}, fc=forged)
    assert info.value.status_code == 403
    unknown = fc2.Client(
        endpoint=stack.api.url, accessKeyID="LTAI5tNobody000001", accessKeySecret="x" * 20
    )
    with pytest.raises(FcError):
        _invoke(stack, {"action": "obtain"}, fc=unknown)


def test_async_create_lands_exactly_once_even_when_the_first_attempt_raises(stack: Stack) -> None:
    # The first GenerateDataKey fails: the first attempt raises 502, FC retries with the same
    # request id (so the same idempotency key), and the retry creates the secret.
    requests.put(
        f"{stack.emulator.url}/_emulator/faults",
        timeout=5,
        json=[
            {"action": "GenerateDataKey", "status": 503, "code": "ServiceUnavailable", "times": 4}
        ],
    )
    before = stack.secret_ids("app_empty")
    request_id = stack.events().create_async("idaas_demo", "app_empty")
    assert request_id
    _wait_until(lambda: len(stack.secret_ids("app_empty")) > len(before))
    assert stack.invoke_idle(10)
    made = [s for s in stack.secret_ids("app_empty") if s not in before]
    assert len(made) == 1
    outcomes = [
        json.loads(r.getMessage())["outcome"]
        for r in stack.audit.records
        if json.loads(r.getMessage())["action"] == "create"
    ]
    assert outcomes[0] == "UpstreamError" and outcomes[-1] == "ok"
    # A later sync create with the FC request id as key returns that very secret.
    again = stack.events().create("idaas_demo", "app_empty", idempotency_key=request_id)
    assert again.secret_id == made[0]
    assert len(stack.secret_ids("app_empty")) == len(before) + 1


def _fc_context(request_id: str) -> SimpleNamespace:
    """The context FC's Python runtime hands the handler, with the request id it chose."""
    return SimpleNamespace(
        request_id=request_id,
        function=SimpleNamespace(
            name="vend-events", handler="functions.events.handler", memory=512, timeout=15
        ),
        region=sdk.REGION,
        account_id=sdk.ACCOUNT,
        credentials=None,
    )


def _obtain_event(stack: Stack, application: str = "app_billing") -> bytes:
    secret = {"app_billing": "sct_billing_1", "app_reports": "sct_reports_1"}[application]
    return json.dumps(
        {
            "action": "obtain",
            "instance_id": "idaas_demo",
            "application_id": application,
            "secret_id": secret,
            "authorization": stack.client().authorization(),
        }
    ).encode()


@pytest.mark.parametrize("claimed", ["A" * 10 * 1024, "nel\x85split", "has space"])
def test_a_context_request_id_without_the_contracts_shape_is_never_used(
    stack: Stack, claimed: str
) -> None:
    """The handler called as FC calls it, with a request id the contract does not allow: the
    service's own UUID names the request, in the answer and in the envelope."""
    reply = json.loads(events_function.handler(_obtain_event(stack), _fc_context(claimed)))
    assert UUID.fullmatch(reply["request_id"]), reply
    assert reply["envelope"]["encryption_context"]["vend:request_id"] == reply["request_id"]
    kept = json.loads(events_function.handler(_obtain_event(stack), _fc_context("1-ab_c.d:e")))
    assert kept["request_id"] == "1-ab_c.d:e"


def test_an_event_has_no_address_so_an_ip_condition_fails_closed(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed
) -> None:
    """Another function's invocation carries no caller address: `Allow ... NotIpAddress` does not
    allow it (as if any address could be the one excluded), `Deny ... IpAddress` denies it."""
    billing = f"acs:ram::{sdk.ACCOUNT}:user/billing"
    policy = {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"RAM": billing},
                "Action": "eiam:ObtainApplicationClientSecret",
                "Resource": "*",
                "Condition": {"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}},
            },
            {
                "Effect": "Allow",
                "Principal": {"RAM": billing},
                "Action": "eiam:ObtainApplicationClientSecret",
                "Resource": "*/application/app_reports/*",
            },
            {
                "Effect": "Deny",
                "Principal": {"RAM": billing},
                "Action": "eiam:ObtainApplicationClientSecret",
                "Resource": "*/application/app_reports/*",
                "Condition": {"IpAddress": {"acs:SourceIp": "198.51.100.0/24"}},
            },
        ],
    }
    with running_stack(monkeypatch, demo_seed, env={"VEND_POLICY": json.dumps(policy)}) as stack:
        not_ip = json.loads(events_function.handler(_obtain_event(stack), _fc_context("r-1")))
        denied = json.loads(
            events_function.handler(_obtain_event(stack, "app_reports"), _fc_context("r-2"))
        )
    assert (not_ip["status"], not_ip["error"]["code"]) == (403, "AccessDenied")
    assert (denied["status"], denied["error"]["code"]) == (403, "AccessDenied")
