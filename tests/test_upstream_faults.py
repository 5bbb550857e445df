"""The whole service against failing upstreams, over real HTTP: the FC HTTP handler behind the
local FC bridge, called with RAM proofs. A faithful upstream that fails on purpose is the
emulator with injected faults (PUT /_emulator/faults); a misbehaving one, which answers what no
Alibaba Cloud API would, is pytest-httpserver standing in for EIAM or KMS."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer
from stack import Stack, running_stack
from werkzeug import Request, Response

from infra.emulator import Seed
from vend_client import VendResponse

pytestmark = pytest.mark.contract("7")

OBTAIN = {
    "instance_id": "idaas_demo",
    "application_id": "app_billing",
    "secret_id": "sct_billing_1",
}
CREATE = {"instance_id": "idaas_demo", "application_id": "app_empty"}
BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"


def seed_secrets(seed: Seed) -> list[str]:
    """Every secret value of the demo world: client secrets and access key secrets."""
    values = [user.access_key_secret for user in seed.users]
    for instance in seed.eiam_instances:
        for app in instance.applications:
            values.extend(s.client_secret for s in app.secrets)
    assert BILLING_SECRET in values
    return values


@pytest.fixture
def secrets(demo_seed: Seed) -> list[str]:
    return seed_secrets(demo_seed)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed) as running:
        yield running


def set_faults(stack: Stack, faults: list[dict[str, Any]]) -> None:
    resp = requests.put(f"{stack.emulator.url}/_emulator/faults", json=faults, timeout=5)
    assert resp.status_code == 200, resp.text
    assert len(resp.json()["faults"]) == len(faults)


def post(stack: Stack, action: str, body: dict[str, Any], timeout: float = 20) -> requests.Response:
    auth = stack.client().authorization()
    return requests.post(
        f"{stack.api.url}/v1/secrets/{action}",
        data=json.dumps(body),
        headers={"Authorization": auth},
        timeout=timeout,
    )


def error(resp: requests.Response, secrets: list[str]) -> tuple[int, str]:
    """The status and code of an error answer, after checking its shape and that it tells no
    secret."""
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "request_id"}, body
    assert body["error"]["request_id"] == resp.headers["X-Request-Id"]
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    for value in secrets:
        assert value not in resp.text
    return resp.status_code, body["error"]["code"]


# -- the emulator with injected faults -----------------------------------------------------------


def test_eiam_503_once_is_retried_and_succeeds(stack: Stack) -> None:
    set_faults(
        stack,
        [
            {
                "action": "ObtainApplicationClientSecret",
                "status": 503,
                "code": "ServiceUnavailable",
                "times": 1,
            }
        ],
    )
    resp = post(stack, "obtain", OBTAIN)
    assert resp.status_code == 200, resp.text
    calls = stack.emulator.emulator.calls("ObtainApplicationClientSecret")
    assert [code for _, _, code in calls] == ["ServiceUnavailable", "OK"]
    # The secret is the real one, sealed for the caller.
    assert stack.client().open(VendResponse.from_dict(resp.json()), **OBTAIN) == BILLING_SECRET


def test_eiam_503_always_is_502_after_bounded_attempts(stack: Stack, secrets: list[str]) -> None:
    set_faults(
        stack,
        [{"action": "ObtainApplicationClientSecret", "status": 503, "code": "ServiceUnavailable"}],
    )
    resp = post(stack, "obtain", OBTAIN)
    assert error(resp, secrets) == (502, "UpstreamError")
    attempts = len(stack.calls("ObtainApplicationClientSecret"))
    assert 2 <= attempts <= 4


def test_eiam_throttling_always_is_429(stack: Stack, secrets: list[str]) -> None:
    set_faults(
        stack, [{"action": "ObtainApplicationClientSecret", "status": 429, "code": "Throttling"}]
    )
    resp = post(stack, "obtain", OBTAIN)
    assert error(resp, secrets) == (429, "Throttled")
    assert 2 <= len(stack.calls("ObtainApplicationClientSecret")) <= 4


def test_throttling_with_retry_after_waits_for_it(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, secrets: list[str]
) -> None:
    """`x-acs-retry-after: 1` (the SDK raises ThrottlingException): the one retry that fits the
    1.6 s deadline comes at least 1 s later; the next one would not fit, so it stops there."""
    with running_stack(monkeypatch, demo_seed, timeout_s=2) as stack:
        set_faults(
            stack,
            [
                {
                    "action": "ObtainApplicationClientSecret",
                    "status": 503,
                    "code": "Throttling.User",
                    "retry_after_s": 1,
                }
            ],
        )
        started = time.monotonic()
        resp = post(stack, "obtain", OBTAIN)
        elapsed = time.monotonic() - started
        assert error(resp, secrets) == (429, "Throttled")
        assert len(stack.calls("ObtainApplicationClientSecret")) == 2
        assert 1.0 <= elapsed < 3.0


def test_kms_503_always_is_502_and_no_secret_is_created(stack: Stack, secrets: list[str]) -> None:
    set_faults(stack, [{"action": "GenerateDataKey", "status": 503, "code": "ServiceUnavailable"}])
    resp = post(stack, "create", CREATE)
    assert error(resp, secrets) == (502, "UpstreamError")
    assert 2 <= len(stack.calls("GenerateDataKey")) <= 4
    # The service must not create a secret it cannot seal: it would burn one of two slots.
    assert stack.calls("CreateApplicationClientSecret") == []


def test_latency_past_the_deadline_is_504_within_the_deadline(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, secrets: list[str]
) -> None:
    with running_stack(monkeypatch, demo_seed, timeout_s=2) as stack:  # deadline 1.6 s
        set_faults(stack, [{"action": "ObtainApplicationClientSecret", "latency_ms": 3000}])
        started = time.monotonic()
        resp = post(stack, "obtain", OBTAIN)
        elapsed = time.monotonic() - started
        assert error(resp, secrets) == (504, "UpstreamTimeout")
        assert elapsed < 3.0  # about the deadline: not the upstream's 3 s, nor retries of it


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        pytest.param(
            {"action": "AssumeRole", "status": 403, "code": "NoPermission"},
            (403, "AccessDenied"),
            id="sts-403",
        ),
        pytest.param(
            {"action": "AssumeRole", "status": 503, "code": "ServiceUnavailable"},
            (502, "UpstreamError"),
            id="sts-503",
        ),
        pytest.param(
            {"action": "AssumeRole", "status": 400, "code": "Throttling.User"},
            (429, "Throttled"),
            id="sts-throttling",
        ),
        pytest.param(
            {"action": "ObtainApplicationClientSecret", "status": 403, "code": "Forbidden.RAM"},
            (403, "AccessDenied"),
            id="eiam-403",
        ),
        pytest.param(
            {
                "action": "ObtainApplicationClientSecret",
                "status": 404,
                "code": "EntityNotExists.Secret",
            },
            (404, "NotFound"),
            id="eiam-404",
        ),
        pytest.param(
            {"action": "ObtainApplicationClientSecret", "status": 400, "code": "InvalidParameter"},
            (502, "UpstreamError"),
            id="eiam-400",
        ),
        pytest.param(
            {"action": "GenerateDataKey", "status": 403, "code": "Forbidden.RAM"},
            (403, "AccessDenied"),
            id="kms-403",
        ),
        pytest.param(
            {"action": "GenerateDataKey", "status": 429, "code": "Rejected.Throttling"},
            (429, "Throttled"),
            id="kms-throttling",
        ),
        pytest.param(
            {"action": "GenerateDataKey", "status": 404, "code": "Forbidden.KeyNotFound"},
            (502, "UpstreamError"),
            id="kms-key-not-found",
        ),
    ],
)
def test_upstream_errors_map_to_the_contracts_codes(
    stack: Stack, secrets: list[str], fault: dict[str, Any], expected: tuple[int, str]
) -> None:
    set_faults(stack, [fault])
    resp = post(stack, "obtain", OBTAIN)
    assert error(resp, secrets) == expected
    if fault["action"] == "AssumeRole":
        assert stack.calls("ObtainApplicationClientSecret") == []  # no scoped session, no call


def test_sts_denial_is_403_and_not_retried(stack: Stack, secrets: list[str]) -> None:
    set_faults(stack, [{"action": "AssumeRole", "status": 403, "code": "NoPermission"}])
    resp = post(stack, "obtain", OBTAIN)
    assert error(resp, secrets) == (403, "AccessDenied")
    assert len(stack.calls("AssumeRole")) == 1
    assert stack.calls("ObtainApplicationClientSecret") == []


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(
            {
                "status": 409,
                "code": "QuotaExceeded.ClientSecret",
                "message": "The application already has 2 client secrets.",
            },
            id="409-QuotaExceeded",
        ),
        pytest.param(
            {
                "status": 400,
                "code": "EntityQuotaExceeded",
                "message": "The client secret quota of the application is exceeded.",
            },
            id="400-EntityQuotaExceeded",
        ),
        pytest.param(
            {
                "status": 400,
                "code": "OperationDenied",
                "message": "The quota of client secrets is exceeded.",
            },
            id="400-quota-in-message-only",
        ),
    ],
)
def test_eiam_quota_errors_are_409_in_every_form(
    stack: Stack, secrets: list[str], fault: dict[str, Any]
) -> None:
    set_faults(stack, [{"action": "CreateApplicationClientSecret", **fault}])
    resp = post(stack, "create", CREATE)
    assert error(resp, secrets) == (409, "QuotaExceeded")
    assert len(stack.calls("CreateApplicationClientSecret")) == 1  # a 4xx is not retried


def test_a_create_whose_answer_is_lost_is_not_sent_again(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed
) -> None:
    """EIAM makes the secret, then the answer never comes in time: the create is not sent
    again; listing finds the secret it made, and that is the answer."""
    with running_stack(monkeypatch, demo_seed, timeout_s=2) as stack:
        set_faults(
            stack,
            [{"action": "CreateApplicationClientSecret", "latency_ms": 2000, "phase": "after"}],
        )
        resp = post(stack, "create", CREATE)
        assert resp.status_code == 200, resp.text
        # The emulator notes a call when it arrives, before it acts: every attempt the service
        # made had arrived by the time it answered, and there was one.
        made = stack.emulator.emulator.params("CreateApplicationClientSecret")
        assert [p["ApplicationId"] for p in made] == ["app_empty"]
        assert stack.secret_ids("app_empty") == [resp.json()["secret_id"]]


# -- pytest-httpserver as a misbehaving EIAM ------------------------------------------------------


def _local(httpserver: HTTPServer) -> str:
    return f"http://{httpserver.host}:{httpserver.port}"


@pytest.fixture
def eiam_stack(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, httpserver: HTTPServer
) -> Iterator[Stack]:
    with running_stack(
        monkeypatch, demo_seed, env={"VEND_EIAM_ENDPOINT": _local(httpserver)}
    ) as running:
        yield running


@pytest.fixture
def kms_stack(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, httpserver: HTTPServer
) -> Iterator[Stack]:
    with running_stack(
        monkeypatch, demo_seed, env={"VEND_KMS_ENDPOINT": _local(httpserver)}
    ) as running:
        yield running


def _eiam_requests(httpserver: HTTPServer) -> list[str]:
    return [req.headers.get("x-acs-action", "") for req, _ in httpserver.log]


def test_eiam_stand_in_is_reached_with_scoped_credentials(
    eiam_stack: Stack, httpserver: HTTPServer
) -> None:
    """The premise of the tests below: the service's EIAM calls go to the stand-in, signed with
    the scoped STS session, and a well-formed answer is sealed and delivered."""
    httpserver.expect_request("/", method="POST").respond_with_json(
        {
            "RequestId": "eiam-req-1",
            "ApplicationClientSecret": {
                "ClientId": "app_billing",
                "SecretId": "sct_billing_1",
                "ClientSecret": "CSfromTheStandIn",
                "Status": "enabled",
            },
        }
    )
    resp = post(eiam_stack, "obtain", OBTAIN)
    assert resp.status_code == 200, resp.text
    assert resp.json()["upstream_request_id"] == "eiam-req-1"
    assert (
        eiam_stack.client().open(VendResponse.from_dict(resp.json()), **OBTAIN)
        == "CSfromTheStandIn"
    )
    ((req, _),) = httpserver.log
    assert req.headers["x-acs-action"] == "ObtainApplicationClientSecret"
    assert req.headers["x-acs-version"] == "2021-12-01"
    assert req.headers["x-acs-security-token"]  # an STS session, not the function's own key
    assert req.args["SecretId"] == "sct_billing_1"


def test_eiam_500_with_an_error_body_is_502_after_retries(
    eiam_stack: Stack, httpserver: HTTPServer, secrets: list[str]
) -> None:
    httpserver.expect_request("/", method="POST").respond_with_json(
        {"RequestId": "r-500", "HostId": "eiam", "Code": "InternalError", "Message": "boom"},
        status=500,
    )
    resp = post(eiam_stack, "obtain", OBTAIN)
    assert error(resp, secrets) == (502, "UpstreamError")
    assert 2 <= len(httpserver.log) <= 4
    assert set(_eiam_requests(httpserver)) == {"ObtainApplicationClientSecret"}


def test_eiam_html_5xx_is_502(
    eiam_stack: Stack, httpserver: HTTPServer, secrets: list[str]
) -> None:
    """A gateway's HTML error page: the SDK cannot parse it, the caller still gets 502."""
    httpserver.expect_request("/", method="POST").respond_with_data(
        "<html><body>502 Bad Gateway</body></html>", status=502, content_type="text/html"
    )
    resp = post(eiam_stack, "obtain", OBTAIN)
    assert error(resp, secrets) == (502, "UpstreamError")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param("<html>" + BILLING_SECRET + "</html>", "text/html", id="html"),
        pytest.param("not json at all", "application/json", id="not-json"),
        pytest.param("", "application/json", id="empty"),
        pytest.param(
            '{"RequestId": "r", "ApplicationClientSecret": {', "application/json", id="cut"
        ),
    ],
)
def test_eiam_200_with_garbage_is_502(
    eiam_stack: Stack, httpserver: HTTPServer, secrets: list[str], body: str, content_type: str
) -> None:
    httpserver.expect_request("/", method="POST").respond_with_data(
        body, status=200, content_type=content_type
    )
    resp = post(eiam_stack, "obtain", OBTAIN)
    assert error(resp, secrets) == (502, "UpstreamError")
    # A read is tried again (a gateway's garbled page is usually passing), within bounds.
    assert 2 <= len(httpserver.log) <= 4
    assert BILLING_SECRET not in eiam_stack.logs.text()
    assert BILLING_SECRET not in eiam_stack.audit.text()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {"RequestId": "r", "ClientSecret": BILLING_SECRET}, id="no-ApplicationClientSecret"
        ),
        pytest.param({"RequestId": "r", "ApplicationClientSecret": None}, id="null"),
        pytest.param({"RequestId": "r", "ApplicationClientSecret": {}}, id="empty-object"),
        pytest.param(
            {"RequestId": "r", "ApplicationClientSecret": {"SecretId": "s", "ClientSecret": 12345}},
            id="secret-not-a-string",
        ),
        pytest.param(
            {"RequestId": "r", "ApplicationClientSecret": [BILLING_SECRET]}, id="secret-a-list"
        ),
        pytest.param([], id="a-list"),
        pytest.param(None, id="json-null"),
        pytest.param("a string", id="json-string"),
    ],
)
def test_eiam_200_json_without_a_client_secret_is_502(
    eiam_stack: Stack, httpserver: HTTPServer, secrets: list[str], body: object
) -> None:
    httpserver.expect_request("/", method="POST").respond_with_json(body)
    resp = post(eiam_stack, "obtain", OBTAIN)
    assert error(resp, secrets) == (502, "UpstreamError")
    assert len(httpserver.log) == 1


def test_eiam_create_answered_without_a_secret_id_is_sent_again_only_after_a_listing(
    eiam_stack: Stack, httpserver: HTTPServer, secrets: list[str]
) -> None:
    """A 200 without a SecretId may have made a secret: the listing after it shows none, so
    each send is safe; after the last one, 502."""

    def answer(request: Request) -> Response:
        if request.headers.get("x-acs-action") == "ListApplicationClientSecrets":
            body: dict[str, Any] = {"RequestId": "r", "ApplicationClientSecrets": []}
        else:
            body = {"RequestId": "r", "ApplicationClientSecret": {"ClientSecret": "CSnew"}}
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/", method="POST").respond_with_handler(answer)
    resp = post(eiam_stack, "create", CREATE)
    assert error(resp, secrets) == (502, "UpstreamError")
    assert _eiam_requests(httpserver) == [
        "ListApplicationClientSecrets",
        *["CreateApplicationClientSecret", "ListApplicationClientSecrets"] * 3,
    ]


def test_eiam_create_answered_without_a_secret_id_adopts_the_listed_secret(
    eiam_stack: Stack, httpserver: HTTPServer
) -> None:
    listed: list[list[dict[str, str]]] = [[], [{"SecretId": "sct_new"}]]

    def answer(request: Request) -> Response:
        action = request.headers.get("x-acs-action")
        if action == "ListApplicationClientSecrets":
            body: dict[str, Any] = {"RequestId": "r", "ApplicationClientSecrets": listed.pop(0)}
        elif action == "CreateApplicationClientSecret":
            body = {"RequestId": "r", "ApplicationClientSecret": {"ClientSecret": "CSnew"}}
        else:
            body = {
                "RequestId": "r",
                "ApplicationClientSecret": {"SecretId": "sct_new", "ClientSecret": "CSnew"},
            }
        return Response(json.dumps(body), content_type="application/json")

    httpserver.expect_request("/", method="POST").respond_with_handler(answer)
    resp = post(eiam_stack, "create", CREATE)
    assert resp.status_code == 200, resp.text
    assert resp.json()["secret_id"] == "sct_new"
    assert _eiam_requests(httpserver) == [
        "ListApplicationClientSecrets",
        "CreateApplicationClientSecret",
        "ListApplicationClientSecrets",
        "ObtainApplicationClientSecret",
    ]


def test_eiam_404_is_404(eiam_stack: Stack, httpserver: HTTPServer, secrets: list[str]) -> None:
    httpserver.expect_request("/", method="POST").respond_with_json(
        {
            "RequestId": "r-404",
            "HostId": "eiam",
            "Code": "EntityNotExists.Secret",
            "Message": "The specified secret does not exist.",
        },
        status=404,
    )
    resp = post(eiam_stack, "obtain", OBTAIN)
    assert error(resp, secrets) == (404, "NotFound")
    assert len(httpserver.log) == 1


def test_eiam_answering_slowly_is_504(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, httpserver: HTTPServer, secrets: list[str]
) -> None:
    released = threading.Event()
    arrivals: list[float] = []

    def slow(request: Request) -> Response:
        arrivals.append(time.monotonic())
        released.wait(5)  # far past the 1.6 s deadline, unless the test lets it go
        return Response(json.dumps({"RequestId": "late"}), status=200)

    httpserver.expect_request("/", method="POST").respond_with_handler(slow)
    env = {"VEND_EIAM_ENDPOINT": _local(httpserver)}
    try:
        with running_stack(monkeypatch, demo_seed, timeout_s=2, env=env) as stack:
            started = time.monotonic()
            resp = post(stack, "obtain", OBTAIN)
            elapsed = time.monotonic() - started
            assert error(resp, secrets) == (504, "UpstreamTimeout")
            assert elapsed < 3.0
            assert len(arrivals) == 1  # a read timeout is not retried
    finally:
        released.set()
        # Let the stand-in finish that request now, so the next test finds its log empty.
        until = time.monotonic() + 5
        while arrivals and not httpserver.log and time.monotonic() < until:
            time.sleep(0.01)


# -- pytest-httpserver as a misbehaving KMS --------------------------------------------------------


def _data_key(*, drop: str = "", **fields: object) -> dict[str, object]:
    """A GenerateDataKey answer: a good one, with `fields` changed and `drop` left out."""
    answer: dict[str, object] = {
        "RequestId": "kms-req",
        "KeyId": "key-billing",
        "KeyVersionId": "v1",
        "CiphertextBlob": "Y2lwaGVydGV4dA==",
        "Plaintext": "A" * 43 + "=",  # 32 bytes
        **fields,
    }
    answer.pop(drop, None)
    return answer


def test_kms_stand_in_is_reached(kms_stack: Stack, httpserver: HTTPServer) -> None:
    """The premise of the tests below: a well-formed GenerateDataKey answer is used as it is."""
    httpserver.expect_request("/", method="POST").respond_with_json(_data_key())
    resp = post(kms_stack, "obtain", OBTAIN)
    assert resp.status_code == 200, resp.text
    assert resp.json()["envelope"]["encrypted_data_key"] == "Y2lwaGVydGV4dA=="
    ((req, _),) = httpserver.log
    assert req.headers["x-acs-action"] == "GenerateDataKey"
    assert req.args["KeySpec"] == "AES_256"


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(_data_key(Plaintext="not base64 !!"), id="plaintext-not-base64"),
        pytest.param(_data_key(Plaintext="QUJD"), id="plaintext-3-bytes"),
        pytest.param(_data_key(Plaintext="A" * 22 + "=="), id="plaintext-16-bytes"),
        pytest.param(_data_key(Plaintext=12345), id="plaintext-a-number"),
        pytest.param(_data_key(Plaintext=None), id="plaintext-null"),
        pytest.param(_data_key(drop="Plaintext"), id="no-plaintext"),
        pytest.param(_data_key(drop="CiphertextBlob"), id="no-ciphertext-blob"),
        pytest.param(_data_key(CiphertextBlob=None), id="ciphertext-blob-null"),
        pytest.param(_data_key(CiphertextBlob=""), id="ciphertext-blob-empty"),
        pytest.param(_data_key(drop="KeyId"), id="no-key-id"),
        pytest.param(_data_key(KeyId=None), id="key-id-null"),
        pytest.param([], id="a-list"),
    ],
)
def test_kms_200_without_a_usable_data_key_is_502(
    kms_stack: Stack, httpserver: HTTPServer, secrets: list[str], body: object
) -> None:
    httpserver.expect_request("/", method="POST").respond_with_json(body)
    resp = post(kms_stack, "obtain", OBTAIN)
    assert error(resp, secrets) == (502, "UpstreamError")
    assert len(httpserver.log) == 1


@pytest.mark.parametrize(
    ("status", "code", "expected", "message"),
    [
        (403, "NoPermission", (403, "AccessDenied"), "STS refused to assume the vending role"),
        (
            400,
            "InvalidParameter",
            (502, "UpstreamError"),
            "STS refused AssumeRole: InvalidParameter",
        ),
    ],
    ids=["denied", "refused"],
)
def test_an_sts_refusal_is_named_in_the_answer_and_its_audit(
    stack: Stack,
    secrets: list[str],
    status: int,
    code: str,
    expected: tuple[int, str],
    message: str,
) -> None:
    """Found by `make mutate`: the words of an STS refusal, and what its audit record says of
    the upstream (its code, status and request id, one call)."""
    set_faults(stack, [{"action": "AssumeRole", "status": status, "code": code}])
    stack.audit.records.clear()
    resp = post(stack, "obtain", OBTAIN)
    assert error(resp, secrets) == expected
    assert resp.json()["error"]["message"] == message
    (record,) = [json.loads(r.getMessage()) for r in stack.audit.records]
    upstream = [record[k] for k in ("upstream", "upstream_code", "upstream_status", "attempts")]
    assert upstream == ["sts", code, status, 1]
    assert record["upstream_request_id"]


@pytest.mark.parametrize(
    ("fault", "expected", "what"),
    [
        (
            {"status": 503, "code": "ServiceUnavailable"},
            502,
            "(a server error: ServiceUnavailable); no secret was created",
        ),
        (
            {"status": 429, "code": "Throttling"},
            429,
            "(throttled: Throttling); no secret was created",
        ),
        (
            {"status": 502, "body": "html"},
            502,
            "(an answer that is not JSON); no secret was created",
        ),
        (
            {"reset": True},
            502,
            "(the connection was lost); a secret may have been created, and EIAM may still be"
            " creating it (secrets before: none)",
        ),
    ],
    ids=["503", "429", "html", "reset"],
)
def test_a_create_that_failed_after_it_was_sent_says_how(
    stack: Stack, secrets: list[str], fault: dict[str, Any], expected: int, what: str
) -> None:
    """Found by `make mutate`: a create is not sent again once it may have acted; the answer
    says how it failed, and what the listing found; the audit, what the upstream said."""
    set_faults(stack, [{"action": "CreateApplicationClientSecret", **fault}])
    stack.audit.records.clear()
    resp = post(stack, "create", CREATE)
    assert resp.status_code == expected, resp.text
    assert resp.json()["error"]["message"] == f"EIAM failed after the request was sent {what}"
    (record,) = [json.loads(r.getMessage()) for r in stack.audit.records]
    upstream = [record[k] for k in ("upstream", "upstream_code", "upstream_status", "attempts")]
    assert upstream == ["eiam", fault.get("code"), fault.get("status"), 1]
    assert bool(record["upstream_request_id"]) == ("code" in fault)  # the JSON error bodies


def test_an_upstream_that_kept_failing_is_named_in_the_audit(
    stack: Stack, secrets: list[str]
) -> None:
    """Found by `make mutate`: the audit of retries that did not cure a failure names the
    upstream's last code and request id."""
    set_faults(stack, [{"action": "ObtainApplicationClientSecret", "status": 503, "code": "Busy"}])
    stack.audit.records.clear()
    assert error(post(stack, "obtain", OBTAIN), secrets) == (502, "UpstreamError")
    (record,) = [json.loads(r.getMessage()) for r in stack.audit.records]
    assert (record["upstream"], record["upstream_code"], record["upstream_status"]) == (
        "eiam",
        "Busy",
        503,
    )
    assert record["upstream_request_id"]


def test_a_create_unanswered_in_time_says_so(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed
) -> None:
    """Found by `make mutate`: the create that EIAM does not answer before the deadline."""
    with running_stack(monkeypatch, demo_seed, timeout_s=2) as stack:
        set_faults(stack, [{"action": "CreateApplicationClientSecret", "latency_ms": 4000}])
        resp = post(stack, "create", CREATE)
        assert resp.status_code == 504
        assert resp.json()["error"]["message"] == (
            "EIAM failed after the request was sent (no answer in time); a secret may have been"
            " created, and EIAM may still be creating it (secrets before: none)"
        )


def test_a_429_is_throttling_whatever_its_code(stack: Stack, secrets: list[str]) -> None:
    """Found by `make mutate`: the status says throttled even when the code does not."""
    fault = {"action": "ObtainApplicationClientSecret", "status": 429, "code": "TooManyRequests"}
    set_faults(stack, [fault])
    assert error(post(stack, "obtain", OBTAIN), secrets) == (429, "Throttled")


def test_an_sts_that_kept_failing_is_named(stack: Stack, secrets: list[str]) -> None:
    """Found by `make mutate`: the answer and the audit name STS when its retries ran out."""
    set_faults(stack, [{"action": "AssumeRole", "status": 503, "code": "ServiceUnavailable"}])
    stack.audit.records.clear()
    resp = post(stack, "obtain", OBTAIN)
    assert error(resp, secrets) == (502, "UpstreamError")
    assert resp.json()["error"]["message"] == "STS failed and retries did not cure it"
    (record,) = [json.loads(r.getMessage()) for r in stack.audit.records]
    assert (record["upstream"], record["upstream_code"]) == ("sts", "ServiceUnavailable")
