"""The vending path end to end: the FC HTTP handler, behind the local FC bridge, against the
emulator, called with the shipped client library and RAM proofs over real HTTP."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import pytest
import requests
import sdk_clients as sdk
from pytest_httpserver import HTTPServer
from stack import Stack, running_stack

from infra.emulator import Seed
from shared.http_api import HttpApi, HttpRequest
from shared.vend import Vendor
from vend_client import CloudError, Credentials, EnvelopeError, VendApiError
from vend_client import parse_endpoint as endpoint

BILLING_ARN = f"acs:ram::{sdk.ACCOUNT}:user/billing"
REPORTS_ARN = f"acs:ram::{sdk.ACCOUNT}:user/reports"
BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed) as running:
        yield running


def _post(
    stack: Stack,
    path: str,
    body: object,
    headers: dict[str, str] | None = None,
    key: tuple[str, str] = sdk.BILLING,
) -> requests.Response:
    auth = {"Authorization": stack.client(key).authorization()}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(
        stack.api.url + path, data=data, headers={**auth, **(headers or {})}, timeout=20
    )


def _error(resp: requests.Response) -> tuple[int, str]:
    body = resp.json()
    assert set(body) == {"error"}
    assert body["error"]["request_id"] == resp.headers["X-Request-Id"]
    return resp.status_code, body["error"]["code"]


OBTAIN = {
    "instance_id": "idaas_demo",
    "application_id": "app_billing",
    "secret_id": "sct_billing_1",
}


@pytest.mark.contract("4")
def test_obtain_returns_an_envelope_only_the_caller_can_open(stack: Stack) -> None:
    client = stack.client()
    response = client.obtain("idaas_demo", "app_billing", "sct_billing_1")
    assert (response.client_id, response.secret_id, response.status) == (
        "app_billing",
        "sct_billing_1",
        "enabled",
    )
    assert response.upstream_request_id
    env = response.envelope
    assert (env.format, env.alg, env.key_id) == ("vend-envelope/1", "AES-256-GCM", "key-billing")
    assert env.encryption_context == {
        "vend:arn": sdk.secret_arn("app_billing", "sct_billing_1"),
        "vend:principal": BILLING_ARN,
        "vend:request_id": response.request_id,
    }
    assert BILLING_SECRET not in json.dumps(response.to_dict())
    assert (
        client.open(
            response,
            instance_id="idaas_demo",
            application_id="app_billing",
            secret_id="sct_billing_1",
        )
        == BILLING_SECRET
    )
    # Another caller can neither have KMS open it nor pass the client's own check.
    reports = stack.client(sdk.REPORTS)
    with pytest.raises(EnvelopeError):
        reports.open(
            response,
            instance_id="idaas_demo",
            application_id="app_billing",
            secret_id="sct_billing_1",
        )
    with pytest.raises(CloudError) as info:
        reports.open(
            response,
            instance_id="idaas_demo",
            application_id="app_billing",
            secret_id="sct_billing_1",
            expected_principal=BILLING_ARN,
        )
    # KMS: not its key
    assert (info.value.service, info.value.status, info.value.code) == ("KMS", 403, "Forbidden.RAM")


def test_each_response_has_a_fresh_data_key_and_request_id(stack: Stack) -> None:
    a = stack.client().obtain("idaas_demo", "app_billing", "sct_billing_1")
    b = stack.client().obtain("idaas_demo", "app_billing", "sct_billing_1")
    assert a.request_id != b.request_id
    assert a.envelope.encrypted_data_key != b.envelope.encrypted_data_key
    assert a.envelope.iv != b.envelope.iv


@pytest.mark.contract("2")
def test_response_headers(stack: Stack) -> None:
    resp = _post(stack, "/v1/secrets/obtain", OBTAIN)
    assert resp.status_code == 200
    assert resp.headers["X-Request-Id"] == resp.json()["request_id"]
    assert resp.headers["Content-Type"] == "application/json"


@pytest.mark.contract("1")
def test_create_makes_a_secret_and_seals_it(stack: Stack) -> None:
    client = stack.client()
    response = client.create("idaas_demo", "app_empty")
    assert response.secret_id.startswith("sci_")
    assert response.envelope.encryption_context["vend:arn"] == sdk.secret_arn("app_empty", "*")
    secret = client.open(
        response, instance_id="idaas_demo", application_id="app_empty", secret_id=None
    )
    assert secret.startswith("CS") and len(secret) > 30
    # The secret really exists in EIAM, as made.
    got = stack.client().obtain("idaas_demo", "app_empty", response.secret_id)
    assert (
        client.open(
            got, instance_id="idaas_demo", application_id="app_empty", secret_id=response.secret_id
        )
        == secret
    )


@pytest.mark.contract("7")
def test_create_past_the_quota_is_409(stack: Stack) -> None:
    stack.client().create("idaas_demo", "app_billing")  # the second and last slot
    with pytest.raises(VendApiError) as info:
        stack.client().create("idaas_demo", "app_billing")
    assert (info.value.status, info.value.code) == (409, "QuotaExceeded")


@pytest.mark.contract("5")
def test_not_approved_is_403_and_nothing_upstream(stack: Stack) -> None:
    before = len(stack.emulator.emulator.history)
    with pytest.raises(VendApiError) as info:
        stack.client(sdk.REPORTS).obtain("idaas_demo", "app_billing", "sct_billing_1")
    assert (info.value.status, info.value.code) == (403, "AccessDenied")
    # Only the proof's GetCallerIdentity reached the cloud: no STS AssumeRole, EIAM or KMS.
    assert [c[0] for c in list(stack.emulator.emulator.history)[before:]] == ["GetCallerIdentity"]


@pytest.mark.contract("5")
def test_explicit_deny_wins(stack: Stack) -> None:
    with pytest.raises(VendApiError) as info:
        stack.client().obtain("idaas_other", "app_other", "sct_other_1")
    assert info.value.code == "AccessDenied"
    # No Allow names idaas_other: this is the Deny's own line, not yet a Deny beating an Allow
    # (tests/test_contract_service.py has that).
    (record,) = [json.loads(r.getMessage()) for r in stack.audit.records]
    assert (record["decision"], record["statement"]) == (
        "deny",
        "nobody-touches-the-other-instance",
    )


@pytest.mark.contract("7")
def test_unknown_secret_is_404(stack: Stack) -> None:
    with pytest.raises(VendApiError) as info:
        stack.client().obtain("idaas_demo", "app_billing", "sct_nope")
    assert (info.value.status, info.value.code) == (404, "NotFound")


@pytest.mark.contract("1")
@pytest.mark.contract("7")
@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        pytest.param(
            "/v1/secrets/obtain", {**OBTAIN, "secret_id": "*"}, (400, "InvalidParameter"), id="star"
        ),
        pytest.param(
            "/v1/secrets/obtain",
            {**OBTAIN, "secret_id": "a/b"},
            (400, "InvalidParameter"),
            id="slash",
        ),
        pytest.param(
            "/v1/secrets/obtain",
            {**OBTAIN, "instance_id": "a:b"},
            (400, "InvalidParameter"),
            id="colon",
        ),
        pytest.param(
            "/v1/secrets/obtain",
            {**OBTAIN, "application_id": "?"},
            (400, "InvalidParameter"),
            id="question",
        ),
        pytest.param(
            "/v1/secrets/obtain", {**OBTAIN, "secret_id": ""}, (400, "InvalidParameter"), id="empty"
        ),
        pytest.param(
            "/v1/secrets/obtain",
            {**OBTAIN, "secret_id": "a b"},
            (400, "InvalidParameter"),
            id="space",
        ),
        pytest.param(
            "/v1/secrets/obtain",
            {**OBTAIN, "secret_id": "x" * 65},
            (400, "InvalidParameter"),
            id="65",
        ),
        pytest.param(
            "/v1/secrets/obtain", {**OBTAIN, "secret_id": 7}, (400, "InvalidParameter"), id="number"
        ),
        pytest.param(
            "/v1/secrets/obtain",
            {**OBTAIN, "extra": 1},
            (400, "InvalidParameter"),
            id="unknown-field",
        ),
        pytest.param(
            "/v1/secrets/obtain",
            {"instance_id": "idaas_demo"},
            (400, "InvalidParameter"),
            id="missing",
        ),
        pytest.param("/v1/secrets/obtain", "[1]", (400, "MalformedRequest"), id="not-object"),
        pytest.param("/v1/secrets/obtain", "{not json", (400, "MalformedRequest"), id="not-json"),
        pytest.param(
            "/v1/secrets/obtain", "x" * (64 * 1024 + 1), (413, "PayloadTooLarge"), id="too-large"
        ),
        pytest.param(
            "/v1/secrets/create",
            {"instance_id": "idaas_demo", "application_id": "app_empty", "expiration_time": 1},
            (400, "InvalidParameter.ExpirationTime"),
            id="past",
        ),
        pytest.param(
            "/v1/secrets/create",
            {"instance_id": "idaas_demo", "application_id": "app_empty", "expiration_time": "soon"},
            (400, "InvalidParameter.ExpirationTime"),
            id="string",
        ),
        pytest.param(
            "/v1/secrets/create",
            {"instance_id": "idaas_demo", "application_id": "app_empty", "expiration_time": 10**15},
            (400, "InvalidParameter.ExpirationTime"),
            id="far",
        ),
        pytest.param("/v1/nope", {}, (404, "NotFound"), id="unknown-route"),
    ],
)
def test_bad_input_is_refused_before_any_upstream_call(
    stack: Stack, path: str, body: object, expected: tuple[int, str]
) -> None:
    resp = requests.post(
        stack.api.url + path,
        data=body if isinstance(body, str) else json.dumps(body),
        headers={"Authorization": "RAM not-even-looked-at"},
        timeout=10,
    )
    assert _error(resp) == expected
    assert list(stack.emulator.emulator.history) == []
    (record,) = [json.loads(r.getMessage()) for r in stack.audit.records]
    assert (record["outcome"], record["decision"], record["principal"]) == (
        expected[1],
        "none",
        None,
    )


@pytest.mark.contract("7")
def test_wrong_method_is_405(stack: Stack) -> None:
    resp = requests.get(stack.api.url + "/v1/secrets/obtain", timeout=10)
    assert _error(resp) == (405, "MethodNotAllowed")
    assert resp.headers["Allow"] == "POST"


@pytest.mark.contract("2")
def test_bad_idempotency_key_is_400(stack: Stack) -> None:
    resp = _post(
        stack,
        "/v1/secrets/create",
        {"instance_id": "idaas_demo", "application_id": "app_empty"},
        {"Idempotency-Key": "has space"},
    )
    assert _error(resp) == (400, "InvalidParameter")


@pytest.mark.contract("3")
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic dXNlcjpwYXNz",
        "RAM",
        "RAM !!!not-base64!!!",
        "Bearer a.b.c",
        "RAM " + "A" * 20000,
    ],
    ids=[
        "missing",
        "empty",
        "basic",
        "no-credential",
        "garbage-proof",
        "bearer-without-issuers",
        "huge",
    ],
)
def test_unauthenticated(stack: Stack, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    resp = requests.post(
        stack.api.url + "/v1/secrets/obtain", json=OBTAIN, headers=headers, timeout=10
    )
    assert _error(resp) == (401, "Unauthenticated")
    assert resp.headers["WWW-Authenticate"] == "Bearer, RAM"
    credential = (authorization or "").partition(" ")[2]
    if len(credential) >= 8:
        assert credential[:64] not in resp.text


def test_a_proof_is_single_use(stack: Stack) -> None:
    auth = stack.client().authorization()
    first = requests.post(
        stack.api.url + "/v1/secrets/obtain",
        json=OBTAIN,
        headers={"Authorization": auth},
        timeout=10,
    )
    assert first.status_code == 200
    again = requests.post(
        stack.api.url + "/v1/secrets/obtain",
        json=OBTAIN,
        headers={"Authorization": auth},
        timeout=10,
    )
    assert _error(again) == (401, "Unauthenticated")
    assert "SignatureNonceUsed" in again.json()["error"]["message"]


@pytest.mark.contract("3")
def test_a_proof_for_another_audience_is_refused(stack: Stack) -> None:
    with pytest.raises(VendApiError) as info:
        stack.client(audience="another-service").obtain(
            "idaas_demo", "app_billing", "sct_billing_1"
        )
    assert info.value.code == "Unauthenticated"
    assert [c[0] for c in stack.calls("GetCallerIdentity")] == []  # refused before sending


def test_scoped_credentials_are_cached_per_secret(stack: Stack) -> None:
    client = stack.client()
    for _ in range(3):
        client.obtain("idaas_demo", "app_billing", "sct_billing_1")
    assert len(stack.calls("AssumeRole")) == 1
    client.create("idaas_demo", "app_billing")
    # A create lists the application's secrets first (to resolve a lost answer): one session
    # for the listing, one for the create.
    assert len(stack.calls("AssumeRole")) == 3
    # EIAM saw only scoped sessions of the vending role: one for the secret, one for create.
    obtainers = {who for _, who, _ in stack.calls("ObtainApplicationClientSecret")}
    creators = {who for _, who, _ in stack.calls("CreateApplicationClientSecret")}
    assert len(obtainers) == len(creators) == 1
    assert obtainers != creators
    prefix = f"acs:ram::{sdk.ACCOUNT}:assumed-role/vend-eiam/"
    assert all(who.startswith(prefix) for who in obtainers | creators)


@pytest.mark.contract("2")
def test_health_and_openapi(stack: Stack) -> None:
    health = requests.get(stack.api.url + "/v1/health", timeout=10)
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert health.headers["X-Request-Id"]
    doc = requests.get(stack.api.url + "/v1/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.1")
    assert set(doc["paths"]) == {
        "/v1/secrets/obtain",
        "/v1/secrets/create",
        "/v1/secrets/current",
        "/v1/secrets/rotate",
        "/v1/health",
        "/v1/ready",
        "/v1/openapi.json",
    }
    rotate = doc["paths"]["/v1/secrets/rotate"]["post"]["responses"]["200"]
    assert rotate["content"]["application/json"]["schema"]["$ref"].endswith("/RotationResponse")
    ready = doc["paths"]["/v1/ready"]["get"]["responses"]
    assert set(ready) == {"200", "503"}
    assert doc["components"]["schemas"]["Readiness"]["additionalProperties"] is False
    schema = doc["components"]["schemas"]["ObtainRequest"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["secret_id"]["pattern"] == "^[A-Za-z0-9_-]+$"
    current = doc["components"]["schemas"]["CurrentRequest"]
    assert (current["additionalProperties"], current["required"]) == (
        False,
        ["instance_id", "application_id"],
    )


@pytest.mark.contract("9")
def test_one_audit_record_per_request_and_no_secret_in_any_log(stack: Stack) -> None:
    client = stack.client()
    auth = client.authorization()
    ok = requests.post(
        stack.api.url + "/v1/secrets/obtain",
        json=OBTAIN,
        headers={"Authorization": auth},
        timeout=10,
    )
    assert ok.status_code == 200
    with pytest.raises(VendApiError):
        stack.client(sdk.REPORTS).obtain("idaas_demo", "app_billing", "sct_billing_1")
    records = [json.loads(r.getMessage()) for r in stack.audit.records]
    assert len(records) == 2
    allow, deny = records
    assert set(allow) == {
        "ts",
        "request_id",
        "principal",
        "action",
        "resource",
        "decision",
        "outcome",
        "upstream_request_id",
        "duration_ms",
        "log",  # "audit"
        "statement",  # the Allow that admitted billing
        # Every stage was reached; no upstream failed (upstream* and attempts are absent).
        "auth_ms",
        "sts_ms",
        "eiam_ms",
        "kms_ms",
        "seal_ms",
    }
    # A denial never reached STS, EIAM, KMS or the seal.
    # A denial never reached STS, EIAM, KMS or the seal; reports is denied by default (no
    # statement names it), so no statement decided.
    assert set(deny) == {*allow} - {"sts_ms", "eiam_ms", "kms_ms", "seal_ms", "statement"}
    assert allow["statement"] == "billing-reads-and-rotates-its-secrets"
    assert (allow["principal"], allow["decision"], allow["outcome"]) == (BILLING_ARN, "allow", "ok")
    assert allow["request_id"] == ok.json()["request_id"]
    assert allow["upstream_request_id"] == ok.json()["upstream_request_id"]
    assert allow["resource"] == sdk.secret_arn("app_billing", "sct_billing_1")
    assert (deny["principal"], deny["decision"], deny["outcome"]) == (
        REPORTS_ARN,
        "deny",
        "AccessDenied",
    )
    everything = stack.audit.text() + stack.logs.text()
    for secret in (BILLING_SECRET, auth.partition(" ")[2], sdk.BILLING[1], sdk.FUNCTION[1]):
        assert secret not in everything


@pytest.mark.contract("1")
def test_the_session_policy_sent_names_one_action_and_one_arn(stack: Stack) -> None:
    stack.client().obtain("idaas_demo", "app_billing", "sct_billing_1")
    stack.client().create("idaas_demo", "app_empty")
    sent = stack.emulator.emulator.params("AssumeRole")
    assert [p["RoleArn"] for p in sent] == [sdk.ROLE_ARN] * 3
    assert [p["DurationSeconds"] for p in sent] == ["900"] * 3
    policies = [json.loads(p["Policy"]) for p in sent]
    assert policies == [
        {"Version": "1", "Statement": [{"Effect": "Allow", "Action": [action], "Resource": [arn]}]}
        for action, arn in (
            ("eiam:ObtainApplicationClientSecret", sdk.secret_arn("app_billing", "sct_billing_1")),
            (
                "eiam:ListApplicationClientSecrets",
                sdk.secret_arn("app_empty", "*"),
            ),  # RAM checks List on secret/*
            ("eiam:CreateApplicationClientSecret", sdk.secret_arn("app_empty", "*")),
        )
    ]


def test_create_with_an_expiration_time(stack: Stack) -> None:
    expiration = int(time.time() * 1000) + 30 * 86_400_000
    response = stack.client().create("idaas_demo", "app_empty", expiration_time=expiration)
    assert response.expiration_time == expiration
    sent = stack.emulator.emulator.params("CreateApplicationClientSecret")
    assert sent[-1]["ExpirationTime"] == str(expiration)
    got = stack.client().obtain("idaas_demo", "app_empty", response.secret_id)
    assert got.expiration_time == expiration


def test_forged_proof_is_refused_by_sts(stack: Stack) -> None:
    bad = stack.client(credentials=Credentials(sdk.BILLING[0], "not-billings-secret"))
    with pytest.raises(VendApiError) as info:
        bad.obtain("idaas_demo", "app_billing", "sct_billing_1")
    assert info.value.code == "Unauthenticated"
    assert "SignatureDoesNotMatch" in info.value.message


def test_proof_for_a_host_off_the_allow_list_is_never_sent(
    stack: Stack, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/").respond_with_json({"Arn": BILLING_ARN, "AccountId": sdk.ACCOUNT})
    rogue = stack.client(sts_endpoint=endpoint(f"http://127.0.0.1:{httpserver.port}"))
    with pytest.raises(VendApiError) as info:
        rogue.obtain("idaas_demo", "app_billing", "sct_billing_1")
    assert info.value.code == "Unauthenticated"
    assert "allow-list" in info.value.message
    assert httpserver.log == []


def _refusal(resp: requests.Response) -> tuple[int, str, str]:
    status, code = _error(resp)
    return status, code, resp.json()["error"]["message"]


def test_a_refused_request_says_why_in_words_and_is_audited(stack: Stack) -> None:
    """Found by `make mutate`: the words of the refusals made before the pipeline, the route
    with or without its trailing slash, and the audit record of such a refusal."""
    url = stack.api.url
    assert _refusal(requests.get(url + "/v1/nope/", timeout=10)) == (
        404,
        "NotFound",
        "no route for /v1/nope",
    )
    assert _refusal(requests.get(url + "/", timeout=10)) == (404, "NotFound", "no route for /")
    assert _refusal(requests.get(url + "/v1/X", timeout=10))[2] == "no route for /v1/X"
    assert _refusal(requests.get(url + "/v1/secrets/obtain/", timeout=10)) == (
        405,
        "MethodNotAllowed",
        "/v1/secrets/obtain takes POST",
    )
    assert requests.get(url + "/v1/health/", timeout=10).json() == {"status": "ok"}
    assert requests.get(url + "/v1/openapi.json", timeout=10).status_code == 200
    stack.audit.records.clear()
    not_an_object = _post(stack, "/v1/secrets/obtain", [])
    assert _refusal(not_an_object) == (
        400,
        "MalformedRequest",
        "the body must be a JSON object",
    )
    (record,) = [json.loads(r.getMessage()) for r in stack.audit.records]
    assert (record["request_id"], record["action"], record["outcome"]) == (
        not_an_object.headers["X-Request-Id"],
        "obtain",
        "MalformedRequest",
    )
    stack.audit.records.clear()
    rotate = _post(stack, "/v1/secrets/rotate", "[")
    assert _refusal(rotate)[:2] == (400, "MalformedRequest")
    (record,) = [json.loads(r.getMessage()) for r in stack.audit.records]
    assert record["action"] == "rotate"  # not an action of the policy, but named all the same
    bad_key = _post(
        stack,
        "/v1/secrets/create",
        {"instance_id": "idaas_demo", "application_id": "app_empty"},
        {"Idempotency-Key": "has space"},
    )
    assert _refusal(bad_key) == (
        400,
        "InvalidParameter",
        "an idempotency key must be 1 to 128 of A-Z a-z 0-9 _ . : - (create only)",
    )


def test_a_create_sent_again_with_its_idempotency_key_is_made_once(stack: Stack) -> None:
    """Found by `make mutate`: the header's key reaches the create."""
    answers = [
        _post(
            stack,
            "/v1/secrets/create",
            {"instance_id": "idaas_demo", "application_id": "app_empty"},
            {"Idempotency-Key": "create-1"},
        )
        for _ in range(2)
    ]
    assert [a.status_code for a in answers] == [200, 200], answers[-1].text
    assert answers[0].json()["secret_id"] == answers[1].json()["secret_id"]
    assert len(stack.calls("CreateApplicationClientSecret")) == 1


def test_a_bug_outside_the_pipeline_is_500_and_its_traceback_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Found by `make mutate`: the API's own last resort. The pipeline answers its own bugs
    (tests/test_contract_service.py); one before it, here the vendor failing to be built with an
    unexpected exception, is answered 500 InternalError without detail, and logged with its
    traceback and request id."""

    def broken_vendor() -> Vendor:
        raise ArithmeticError("planted: no vendor")

    api = HttpApi(broken_vendor, deadline_s=5)
    request = HttpRequest("POST", "/v1/secrets/obtain", {}, b"{}", "req-bug-1")
    with caplog.at_level(logging.ERROR, logger="vend"):
        response = api.handle(request)
    assert (response.status, response.body) == (
        500,
        {
            "error": {
                "code": "InternalError",
                "message": "An internal error occurred.",
                "request_id": "req-bug-1",
            }
        },
    )
    assert response.headers["X-Request-Id"] == "req-bug-1"
    (logged,) = [r for r in caplog.records if r.exc_info]
    assert logged.getMessage() == "http: unexpected error in request req-bug-1"
    assert "planted: no vendor" in caplog.text


def test_a_callers_traceparent_names_the_trace_in_the_audit(stack: Stack) -> None:
    """Found by `make mutate`: the W3C trace id of the request's `traceparent` and the request's
    own id reach its audit record."""
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    stack.audit.records.clear()
    resp = _post(
        stack, "/v1/secrets/obtain", OBTAIN, {"traceparent": f"00-{trace}-00f067aa0ba902b7-01"}
    )
    assert resp.status_code == 200, resp.text
    (record,) = [json.loads(r.getMessage()) for r in stack.audit.records]
    assert (record["trace_id"], record["request_id"]) == (trace, resp.headers["X-Request-Id"])


def _nested(levels: int) -> str:
    return '{"x":' * (levels - 1) + "{}" + "}" * (levels - 1)


def _padded(size: int) -> str:
    head, tail = '{"pad":"', '"}'
    return head + "a" * (size - len(head) - len(tail)) + tail


def test_a_body_may_be_64_kib_and_32_levels_deep_and_no_more(stack: Stack) -> None:
    """Found by `make mutate`: the limits of a body are exact, and a refusal names them."""
    obtain = "/v1/secrets/obtain"
    assert _refusal(_post(stack, obtain, _nested(33))) == (
        400,
        "MalformedRequest",
        "the body nests deeper than 32 levels",
    )
    assert _refusal(_post(stack, obtain, _nested(32)))[1] != "MalformedRequest"
    lists = '{"x":' + "[" * 32 + "]" * 32 + "}"  # an object, then 32 lists: 33 levels
    assert _refusal(_post(stack, obtain, lists))[2] == "the body nests deeper than 32 levels"
    too_deep_to_parse = "[" * 30_000 + "]" * 30_000  # beyond Python's recursion: same words
    assert _refusal(_post(stack, obtain, too_deep_to_parse))[2] == (
        "the body nests deeper than 32 levels"
    )
    assert _refusal(_post(stack, obtain, "{")) == (
        400,
        "MalformedRequest",
        "the body is not JSON in UTF-8",
    )
    too_big = _post(stack, obtain, _padded(64 * 1024 + 1))
    assert _refusal(too_big) == (413, "PayloadTooLarge", "the body is over 64 KiB")
    assert _refusal(_post(stack, obtain, _padded(64 * 1024)))[1] != "PayloadTooLarge"
