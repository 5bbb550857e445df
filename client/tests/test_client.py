"""The caller's package on its own, through its transports: pytest-httpserver plays the service,
STS and KMS (told apart by the `x-acs-action` header the SDK signs), so these tests need nothing
of the service and run wherever `pip install ./client[test]` does."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

import pytest
import sealed
from pytest_httpserver import HTTPServer

from vend_client import (
    CloudError,
    Credentials,
    Endpoint,
    EnvelopeError,
    VendApiError,
    VendClient,
    build_proof,
    parse_endpoint,
)
from vend_client.cli import main
from vend_client.exit_status import ExitStatus

ACCOUNT = "1234567890123456"
ME = f"acs:ram::{ACCOUNT}:user/billing"
ARN = f"acs:eiam:cn-hangzhou:{ACCOUNT}:instance/idaas_x/application/app_y/secret/sct_z"
SECRET = "CS-the-client-secret-0001"
KEYS = Credentials("LTAI5tCallerKey000001", "caller-secret-never-sent")
DATA_KEY = os.urandom(32)


def vend_response(principal: str = ME, arn: str = ARN) -> dict[str, Any]:
    return sealed.vend_response(secret=SECRET, arn=arn, principal=principal, data_key=DATA_KEY)


@pytest.fixture
def cloud(httpserver: HTTPServer) -> HTTPServer:
    """STS and KMS as the caller's calls need them."""
    httpserver.expect_request("/", headers={"x-acs-action": "GetCallerIdentity"}).respond_with_json(
        {"Arn": ME, "AccountId": ACCOUNT, "RequestId": "sts-1"}
    )
    httpserver.expect_request("/", headers={"x-acs-action": "Decrypt"}).respond_with_json(
        {"KeyId": "key-billing", "Plaintext": base64.b64encode(DATA_KEY).decode()}
    )
    return httpserver


def client(server: HTTPServer, **kw: Any) -> VendClient:
    fields: dict[str, Any] = {
        "url": server.url_for(""),
        "audience": "vend-prod",
        "credentials": KEYS,
        "sts_endpoint": parse_endpoint(server.url_for("").rstrip("/")),
        "kms_endpoint": parse_endpoint(server.url_for("").rstrip("/")),
        "timeout_s": 5,
    }
    return VendClient(**{**fields, **kw})


@pytest.mark.parametrize(
    ("value", "endpoint"),
    [
        ("sts.aliyuncs.com", Endpoint("https", "sts.aliyuncs.com")),
        ("http://127.0.0.1:9100/", Endpoint("http", "127.0.0.1:9100")),
        # the scheme is what precedes the first `://`; the rest is the host, as written
        ("https://http://sts.example", Endpoint("https", "http://sts.example")),
    ],
)
def test_parse_endpoint(value: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(value) == endpoint


def test_obtain_and_open(cloud: HTTPServer) -> None:
    cloud.expect_request("/v1/secrets/obtain", method="POST").respond_with_json(vend_response())
    vend = client(cloud)
    response = vend.obtain("idaas_x", "app_y", "sct_z")
    assert (response.secret_id, response.envelope.key_id) == ("sct_z", "key-billing")
    opened = vend.open(response, instance_id="idaas_x", application_id="app_y", secret_id="sct_z")
    assert opened == SECRET
    sent = next(r for r, _ in cloud.log if r.path == "/v1/secrets/obtain")
    assert sent.headers["Authorization"].startswith("RAM ")
    assert json.loads(sent.data) == {
        "instance_id": "idaas_x",
        "application_id": "app_y",
        "secret_id": "sct_z",
    }
    assert KEYS.access_key_secret not in str([r for r, _ in cloud.log])


@pytest.mark.parametrize(
    ("response", "asked", "words"),
    [
        pytest.param(
            vend_response(principal=f"acs:ram::{ACCOUNT}:user/other"),
            "sct_z",
            f"the envelope is for acs:ram::{ACCOUNT}:user/other, not {ME}",
            id="other-caller",
        ),
        pytest.param(
            vend_response(),
            "sct_other",
            f"the envelope is for {ARN}, not for instance/idaas_x/application/app_y/secret/sct_other",
            id="other-secret",
        ),
    ],
)
def test_an_envelope_for_someone_else_is_refused_before_kms(
    cloud: HTTPServer, response: dict[str, Any], asked: str, words: str
) -> None:
    cloud.expect_request("/v1/secrets/obtain").respond_with_json(response)
    vend = client(cloud)
    got = vend.obtain("idaas_x", "app_y", asked)
    with pytest.raises(EnvelopeError) as refused:
        vend.open(got, instance_id="idaas_x", application_id="app_y", secret_id=asked)
    assert str(refused.value) == words
    assert refused.value.request_id == "req-1"  # the request that sealed it
    assert not any(r.headers.get("x-acs-action") == "Decrypt" for r, _ in cloud.log)


def open_as_billing(vend: VendClient, response: Any) -> str:
    return vend.open(
        response,
        instance_id="idaas_x",
        application_id="app_y",
        secret_id="sct_z",
        expected_principal=ME,
    )


def test_an_envelope_opens_whatever_order_its_context_arrives_in(cloud: HTTPServer) -> None:
    """Found by `make mutate`: the associated data is the context with its keys sorted (contract
    section 4), so the order a sender or a JSON library wrote them in does not matter."""
    response = vend_response()
    context = response["envelope"]["encryption_context"]
    reordered = dict(reversed(list(context.items())))
    assert list(reordered) != sorted(reordered)
    response["envelope"]["encryption_context"] = reordered
    cloud.expect_request("/v1/secrets/obtain").respond_with_json(response)
    vend = client(cloud)
    assert open_as_billing(vend, vend.obtain("idaas_x", "app_y", "sct_z")) == SECRET


def test_kms_refusing_is_a_cloud_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/", headers={"x-acs-action": "Decrypt"}).respond_with_json(
        {"Code": "Forbidden.RAM", "Message": "no", "RequestId": "kms-9"}, status=403
    )
    httpserver.expect_request("/v1/secrets/obtain").respond_with_json(vend_response())
    vend = client(httpserver)
    response = vend.obtain("idaas_x", "app_y", "sct_z")
    with pytest.raises(CloudError) as info:
        open_as_billing(vend, response)
    assert (info.value.service, info.value.status, info.value.code) == ("KMS", 403, "Forbidden.RAM")
    assert info.value.request_id == "kms-9"


def test_kms_throttling_with_a_retry_after_is_retried_then_a_cloud_error(
    httpserver: HTTPServer,
) -> None:
    # With x-acs-retry-after, tea-openapi raises ThrottlingException, which is not a
    # ClientException: it is throttling all the same, retried, and in the end a CloudError.
    throttled = httpserver.expect_request("/", headers={"x-acs-action": "Decrypt"})
    throttled.respond_with_json(
        {"Code": "Throttling.User", "Message": "slow down", "RequestId": "kms-t"},
        status=429,
        headers={"x-acs-retry-after": "1"},
    )
    httpserver.expect_request("/v1/secrets/obtain").respond_with_json(vend_response())
    vend = client(httpserver, timeout_s=3.0)
    response = vend.obtain("idaas_x", "app_y", "sct_z")
    with pytest.raises(CloudError) as info:
        open_as_billing(vend, response)
    assert (info.value.service, info.value.status, info.value.code) == (
        "KMS",
        429,
        "Throttling.User",
    )
    assert "throttled" in str(info.value)
    decrypts = [r for r, _ in httpserver.log if r.headers.get("x-acs-action") == "Decrypt"]
    assert len(decrypts) >= 2  # retried


@pytest.mark.parametrize(
    ("status", "body", "code"),
    [
        (
            403,
            {"error": {"code": "AccessDenied", "message": "no", "request_id": "r"}},
            "AccessDenied",
        ),
        (502, "<html>bad gateway</html>", "BadResponse"),
        (200, {"request_id": "r", "envelope": {}}, "BadResponse"),
        (500, {"detail": "no error body"}, "BadResponse"),
    ],
)
def test_what_the_service_answers_wrongly_is_a_vend_api_error(
    httpserver: HTTPServer, status: int, body: Any, code: str
) -> None:
    if isinstance(body, str):
        httpserver.expect_request("/v1/secrets/obtain").respond_with_data(body, status=status)
    else:
        httpserver.expect_request("/v1/secrets/obtain").respond_with_json(body, status=status)
    with pytest.raises(VendApiError) as info:
        client(httpserver).obtain("idaas_x", "app_y", "sct_z")
    assert info.value.code == code


def test_a_proof_is_a_signed_unsent_request_with_the_audience() -> None:
    proof = build_proof(
        audience="vend-prod",
        sts_endpoint="sts.cn-hangzhou.aliyuncs.com",
        access_key_id=KEYS.access_key_id,
        access_key_secret=KEYS.access_key_secret,
    )
    document = json.loads(base64.urlsafe_b64decode(proof + "=" * (-len(proof) % 4)))
    headers = document["headers"]
    assert document["url"] == "https://sts.cn-hangzhou.aliyuncs.com/"
    assert headers["x-acs-action"] == "GetCallerIdentity"
    assert headers["x-acs-vend-audience"] == "vend-prod"
    assert "x-acs-vend-audience" in headers["authorization"]
    assert KEYS.access_key_secret not in proof and KEYS.access_key_secret not in str(document)


def test_the_command_prints_the_secret_or_one_line(
    cloud: HTTPServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", KEYS.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEYS.access_key_secret)
    cloud.expect_request("/v1/secrets/obtain").respond_with_json(vend_response())
    base = cloud.url_for("").rstrip("/")
    args = [
        "--url",
        base,
        "--audience",
        "vend-prod",
        "--sts-endpoint",
        base,
        "--kms-endpoint",
        base,
    ]
    ids = ["--instance", "idaas_x", "--application", "app_y"]
    assert main(["obtain", *args, *ids, "--secret", "sct_z"]) == 0
    assert capsys.readouterr().out.strip() == SECRET
    cloud.clear()
    cloud.expect_request("/v1/secrets/obtain").respond_with_json(
        {"error": {"code": "NotFound", "message": "no such secret", "request_id": "r-2"}},
        status=404,
    )
    assert main(["obtain", *args, *ids, "--secret", "sct_gone"]) == ExitStatus.NOT_FOUND
    err = capsys.readouterr().err.strip()
    assert err == "vend: 404 NotFound: no such secret (request r-2)"
