"""`VendClient.from_env()` and `CachingClient.from_env()`: configured from the variables the
`vend-client` command reads (VEND_URL, VEND_AUDIENCE, VEND_STS_ENDPOINT, VEND_KMS_ENDPOINT,
VEND_REGION, VEND_TIMEOUT) and the default credential chain, keyword overrides winning; what is
missing or unparseable is a ConfigurationError naming the variable. pytest-httpserver plays the
service, STS and KMS."""

from __future__ import annotations

import base64
import json
import os
import socket
from typing import Any

import pytest
import sealed
from pytest_httpserver import HTTPServer

from vend_client import CachingClient, ConfigurationError, Credentials, VendClient
from vend_client.cli import main
from vend_client.exit_status import ExitStatus

ACCOUNT = "1234567890123456"
ME = f"acs:ram::{ACCOUNT}:user/billing"
ARN = f"acs:eiam:cn-hangzhou:{ACCOUNT}:instance/idaas_x/application/app_y/secret/sct_z"
KEYS = Credentials("LTAI5tCallerKey000001", "caller-secret-never-sent")
DATA_KEY = os.urandom(32)
SECRET = "CS-the-client-secret-0001"
IDS = ("idaas_x", "app_y", "sct_z")
VARIABLES = (
    "VEND_URL",
    "VEND_AUDIENCE",
    "VEND_STS_ENDPOINT",
    "VEND_KMS_ENDPOINT",
    "VEND_REGION",
    "VEND_TIMEOUT",
)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No VEND_* variable but those a test sets; the caller's keys in ALIBABA_CLOUD_*, where the
    default chain finds them."""
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", KEYS.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", KEYS.access_key_secret)
    monkeypatch.delenv("ALIBABA_CLOUD_SECURITY_TOKEN", raising=False)
    return monkeypatch


@pytest.fixture
def service(httpserver: HTTPServer) -> str:
    """The service, STS and KMS at one base URL."""
    httpserver.expect_request("/v1/secrets/obtain", method="POST").respond_with_json(
        sealed.vend_response(secret=SECRET, arn=ARN, principal=ME, data_key=DATA_KEY)
    )
    httpserver.expect_request("/", headers={"x-acs-action": "GetCallerIdentity"}).respond_with_json(
        {"Arn": ME, "AccountId": ACCOUNT, "RequestId": "sts-1"}
    )
    httpserver.expect_request("/", headers={"x-acs-action": "Decrypt"}).respond_with_json(
        {"KeyId": "key-billing", "Plaintext": base64.b64encode(DATA_KEY).decode()}
    )
    return httpserver.url_for("").rstrip("/")


def closed_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def opened(client: VendClient) -> str:
    response = client.obtain(*IDS)
    return client.open(response, instance_id=IDS[0], application_id=IDS[1], secret_id=IDS[2])


def audiences(server: HTTPServer) -> list[str]:
    """The audience each RAM proof sent to the service named."""
    named = []
    for request, _ in server.log:
        if request.path == "/v1/secrets/obtain":
            proof = request.headers["Authorization"].removeprefix("RAM ")
            document = json.loads(base64.urlsafe_b64decode(proof + "=" * (-len(proof) % 4)))
            named.append(document["headers"]["x-acs-vend-audience"])
    return named


def test_every_variable_is_read(
    env: pytest.MonkeyPatch, service: str, httpserver: HTTPServer
) -> None:
    for name, value in {
        "VEND_URL": service,
        "VEND_AUDIENCE": "vend-from-env",
        "VEND_STS_ENDPOINT": service,
        "VEND_KMS_ENDPOINT": service,
        "VEND_REGION": "cn-shanghai",
        "VEND_TIMEOUT": "7.5",
    }.items():
        env.setenv(name, value)
    client = VendClient.from_env()
    assert opened(client) == SECRET  # asked VEND_URL, STS (who am I) and KMS at their variables
    assert audiences(httpserver) == ["vend-from-env"]
    actions = [r.headers.get("x-acs-action") for r, _ in httpserver.log if r.path == "/"]
    assert actions == ["GetCallerIdentity", "Decrypt"]
    assert (client.region, client.timeout_s) == ("cn-shanghai", 7.5)


def test_the_region_names_the_default_kms_endpoint(env: pytest.MonkeyPatch) -> None:
    env.setenv("VEND_URL", "https://vend.example")
    env.setenv("VEND_AUDIENCE", "vend-prod")
    env.setenv("VEND_REGION", "cn-shanghai")
    client = VendClient.from_env()
    assert client.kms_endpoint.url == "https://kms.cn-shanghai.aliyuncs.com"
    assert client.sts_endpoint.url == "https://sts.aliyuncs.com"


def test_keyword_overrides_win(
    env: pytest.MonkeyPatch, service: str, httpserver: HTTPServer
) -> None:
    env.setenv("VEND_URL", closed_url())
    env.setenv("VEND_AUDIENCE", "vend-from-env")
    env.setenv("VEND_STS_ENDPOINT", closed_url())
    env.setenv("VEND_KMS_ENDPOINT", closed_url())
    env.setenv("VEND_TIMEOUT", "not a number: not read, timeout_s is given")
    client = VendClient.from_env(
        url=service,
        audience="vend-override",
        sts_endpoint=service,
        kms_endpoint=service,
        credentials=KEYS,
        timeout_s=5,
    )
    assert opened(client) == SECRET
    assert audiences(httpserver) == ["vend-override"]
    assert client.timeout_s == 5


def test_a_caching_client_from_the_environment(
    env: pytest.MonkeyPatch, service: str, httpserver: HTTPServer
) -> None:
    for name in ("VEND_URL", "VEND_STS_ENDPOINT", "VEND_KMS_ENDPOINT"):
        env.setenv(name, service)
    env.setenv("VEND_AUDIENCE", "vend-from-env")
    with CachingClient.from_env(ttl_s=60, expected_principal=ME) as cache:
        assert cache.get(*IDS) == cache.get(*IDS) == SECRET
        assert cache.client.url == service
    assert audiences(httpserver) == ["vend-from-env"]  # asked once, as VEND_AUDIENCE


@pytest.mark.parametrize("build", [VendClient.from_env, CachingClient.from_env])
@pytest.mark.parametrize("url", [None, ""], ids=["unset", "empty"])
def test_a_missing_url_is_named(env: pytest.MonkeyPatch, build: Any, url: str | None) -> None:
    env.setenv("VEND_AUDIENCE", "vend-prod")
    if url is not None:
        env.setenv("VEND_URL", url)
    with pytest.raises(ConfigurationError, match="VEND_URL is not set") as info:
        build()
    assert info.value.setting == "VEND_URL"
    assert build(url="https://vend.example") is not None  # given, it is not missing


def test_a_missing_audience_is_named_unless_a_token_is_given(env: pytest.MonkeyPatch) -> None:
    env.setenv("VEND_URL", "https://vend.example")
    with pytest.raises(ConfigurationError, match="VEND_AUDIENCE") as info:
        VendClient.from_env()
    assert info.value.setting == "VEND_AUDIENCE"
    assert VendClient.from_env(token="a-jwt").bearer


@pytest.mark.parametrize("timeout", ["soon", "0", "-1", "nan", "inf"])
def test_an_unusable_timeout_is_named_alike_by_from_env_and_the_command(
    env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], timeout: str
) -> None:
    env.setenv("VEND_URL", closed_url())
    env.setenv("VEND_AUDIENCE", "vend-prod")
    env.setenv("VEND_TIMEOUT", timeout)
    with pytest.raises(ConfigurationError, match="VEND_TIMEOUT") as info:
        CachingClient.from_env()
    assert info.value.setting == "VEND_TIMEOUT"
    ids = ["--instance", IDS[0], "--application", IDS[1], "--secret", IDS[2]]
    assert main(["obtain", *ids]) == ExitStatus.USAGE
    assert capsys.readouterr().err == f"vend: {info.value}\n"
    # Given, the setting is not read from its variable: by a flag, or by a keyword.
    assert main(["obtain", *ids, "--timeout", "5"]) == ExitStatus.UNREACHABLE
    assert CachingClient.from_env(timeout_s=5).client.timeout_s == 5


def test_a_caching_client_with_nothing_says_what_is_missing() -> None:
    with pytest.raises(ConfigurationError) as info:
        CachingClient()
    said = str(info.value)
    assert "url" in said and "VEND_URL" in said and "client=" in said
    assert "not both" not in said
