"""A caller with an IDaaS M2M access token (Bearer JWT) instead of a RAM proof, end to end."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import jwt
import pytest
import sdk_clients as sdk
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from pytest_httpserver import HTTPServer
from stack import Stack, running_stack

from infra.emulator import Seed
from shared.client import VendApiError
from shared.upstream.rpc import Credentials

ISSUER = "https://idaas.example.com/api/v2/app/oauth2"
REPORTS_SECRET = "CSdemoReportsSecretValue000000000000001"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def stack(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, httpserver: HTTPServer
) -> Iterator[Stack]:
    jwk = json.loads(RSAAlgorithm.to_jwk(KEY.public_key()))
    httpserver.expect_request("/jwks").respond_with_json(
        {"keys": [{**jwk, "kid": "k1", "use": "sig"}]}
    )
    issuers = [
        {
            "name": "demo",
            "issuer": ISSUER,
            "jwks_url": httpserver.url_for("/jwks"),
            "algorithms": ["RS256"],
        }
    ]
    with running_stack(
        monkeypatch, demo_seed, env={"VEND_JWT_ISSUERS": json.dumps(issuers)}
    ) as running:
        yield running


def _token(sub: str = "app_reports", **claims: object) -> str:
    now = int(time.time())
    payload = {
        "iss": ISSUER,
        "sub": sub,
        "aud": "vend-local",
        "iat": now,
        "exp": now + 300,
        **claims,
    }
    return jwt.encode(payload, KEY, algorithm="RS256", headers={"kid": "k1"})


def test_bearer_caller_gets_a_secret_sealed_with_its_recipient_key(stack: Stack) -> None:
    client = stack.client(sdk.REPORTS, token=_token(), credentials=Credentials(*sdk.REPORTS))
    response = client.obtain("idaas_demo", "app_reports", "sct_reports_1")
    assert response.envelope.key_id == "key-reports"
    assert response.envelope.encryption_context["vend:principal"] == "jwt:app_reports@demo"
    secret = client.open(
        response,
        instance_id="idaas_demo",
        application_id="app_reports",
        secret_id="sct_reports_1",
        expected_principal="jwt:app_reports@demo",
    )
    assert secret == REPORTS_SECRET
    assert {who for _, who, _ in stack.calls("GetCallerIdentity")} == set()  # no RAM proof involved


@pytest.mark.parametrize(
    ("token", "code"),
    [
        pytest.param(lambda: _token(sub="app_billing"), "AccessDenied", id="not-approved"),
        pytest.param(lambda: _token(aud="someone-else"), "Unauthenticated", id="audience"),
        pytest.param(lambda: _token(exp=int(time.time()) - 1), "Unauthenticated", id="expired"),
        pytest.param(
            lambda: _token(iss="https://evil.example.com"), "Unauthenticated", id="issuer"
        ),
    ],
)
def test_bearer_refusals(stack: Stack, token: object, code: str) -> None:
    client = stack.client(sdk.REPORTS, token=token())  # type: ignore[operator]
    with pytest.raises(VendApiError) as info:
        client.obtain("idaas_demo", "app_reports", "sct_reports_1")
    assert info.value.code == code
    assert stack.calls("ObtainApplicationClientSecret") == []
