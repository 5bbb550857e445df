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
import subprocess
import sys
from pathlib import Path
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


def proof_headers(server: HTTPServer) -> list[dict[str, str]]:
    """The signed headers of each RAM proof sent to the service."""
    found = []
    for request, _ in server.log:
        if request.path == "/v1/secrets/obtain":
            proof = request.headers["Authorization"].removeprefix("RAM ")
            document = json.loads(base64.urlsafe_b64decode(proof + "=" * (-len(proof) % 4)))
            found.append(document["headers"])
    return found


def audiences(server: HTTPServer) -> list[str]:
    """The audience each RAM proof sent to the service named."""
    return [headers["x-acs-vend-audience"] for headers in proof_headers(server)]


def signed_by(server: HTTPServer, action: str) -> tuple[str, str | None]:
    """The access key ID and security token the one call of `action` (STS, KMS) was signed with."""
    (request,) = [r for r, _ in server.log if r.headers.get("x-acs-action") == action]
    credential = request.headers["Authorization"].split("Credential=")[1].split(",")[0]
    return credential, request.headers.get("x-acs-security-token")


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


def test_an_endpoint_is_kept_as_written_but_its_trailing_slash(env: pytest.MonkeyPatch) -> None:
    """Found by `make mutate`: only a trailing `/` is dropped (not an upper-case X before it)."""
    env.setenv("VEND_URL", "https://vend.example")
    env.setenv("VEND_AUDIENCE", "vend-prod")
    env.setenv("VEND_STS_ENDPOINT", "https://STS.EXAMPLE.MX/")
    env.setenv("VEND_KMS_ENDPOINT", "KMS.EXAMPLE.MX/")
    client = VendClient.from_env()
    assert client.sts_endpoint.url == "https://STS.EXAMPLE.MX"
    assert client.kms_endpoint.url == "https://KMS.EXAMPLE.MX"


def test_sts_credentials_in_the_variables_sign_with_their_token(
    env: pytest.MonkeyPatch, service: str, httpserver: HTTPServer
) -> None:
    """Found by `make mutate`: ALIBABA_CLOUD_SECURITY_TOKEN, read when the call is made, goes
    with its key into the proof and the calls to STS and KMS."""
    for name in ("VEND_URL", "VEND_STS_ENDPOINT", "VEND_KMS_ENDPOINT"):
        env.setenv(name, service)
    env.setenv("VEND_AUDIENCE", "vend-from-env")
    env.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "sts-token-of-the-variables")
    assert opened(VendClient.from_env()) == SECRET
    (proof,) = proof_headers(httpserver)
    assert proof["x-acs-accesskey-id"] == KEYS.access_key_id
    assert proof["x-acs-security-token"] == "sts-token-of-the-variables"
    for action in ("GetCallerIdentity", "Decrypt"):
        assert signed_by(httpserver, action) == (KEYS.access_key_id, "sts-token-of-the-variables")


def test_without_both_variables_the_default_chain_finds_the_cli_profile(
    service: str, httpserver: HTTPServer, tmp_path: Path
) -> None:
    """Found by `make mutate`. In a process of its own: the credentials library reads HOME and its
    variables when imported. ALIBABA_CLOUD_ACCESS_KEY_ID alone (no secret) is not used: the
    chain's ~/.aliyun/config.json is, an STS profile, its token too. No ECS metadata lookups."""
    profile = {
        "name": "billing",
        "mode": "StsToken",
        "access_key_id": "STS.ProfileKey000001",
        "access_key_secret": "profile-secret-never-sent",
        "sts_token": "sts-token-of-the-profile",
        "region_id": "cn-hangzhou",
    }
    (tmp_path / ".aliyun").mkdir()
    (tmp_path / ".aliyun" / "config.json").write_text(
        json.dumps({"current": "billing", "profiles": [profile]})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "VEND_"))}
    env.update(
        {
            "HOME": str(tmp_path),
            "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tHalfSetKey0001",
            "VEND_URL": service,
            "VEND_AUDIENCE": "vend-from-env",
            "VEND_STS_ENDPOINT": service,
            "VEND_KMS_ENDPOINT": service,
        }
    )
    code = f"""
from vend_client import VendClient
client = VendClient.from_env()
response = client.obtain(*{IDS!r})
print(client.open(response, instance_id={IDS[0]!r}, application_id={IDS[1]!r}, secret_id={IDS[2]!r}))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout) == (0, f"{SECRET}\n"), done.stderr
    (proof,) = proof_headers(httpserver)
    assert proof["x-acs-accesskey-id"] == "STS.ProfileKey000001"
    assert proof["x-acs-security-token"] == "sts-token-of-the-profile"
    for action in ("GetCallerIdentity", "Decrypt"):
        assert signed_by(httpserver, action) == ("STS.ProfileKey000001", "sts-token-of-the-profile")
    assert "profile-secret-never-sent" not in str([r for r, _ in httpserver.log])


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
