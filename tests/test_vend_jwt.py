"""A caller with an IDaaS M2M access token (Bearer JWT) instead of a RAM proof, end to end."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator

import jwt
import pytest
import sdk_clients as sdk
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import RSAAlgorithm
from pytest_httpserver import HTTPServer
from stack import Stack, running_stack

from infra.emulator import Seed
from vend_client import Credentials, VendApiError

pytestmark = pytest.mark.contract("3")

ISSUER = "https://idaas.example.com/api/v2/app/oauth2"
REPORTS_SECRET = "CSdemoReportsSecretValue000000000000001"
KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


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


def _claims(sub: str = "app_reports", **claims: object) -> dict[str, object]:
    now = int(time.time())
    return {"iss": ISSUER, "sub": sub, "aud": "vend-local", "iat": now, "exp": now + 300, **claims}


def _token(
    sub: str = "app_reports", *, kid: str = "k1", key: rsa.RSAPrivateKey = KEY, **claims: object
) -> str:
    return jwt.encode(_claims(sub, **claims), key, algorithm="RS256", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned() -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT", "kid": "k1"}).encode())
    return f"{header}.{_b64(json.dumps(_claims()).encode())}."


def _hs256_with_the_public_key() -> str:
    """The classic confusion: HMAC keyed with the issuer's public key, which anyone has."""
    pem = KEY.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "k1"}).encode())
    body = _b64(json.dumps(_claims()).encode())
    signature = hmac.new(pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


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
    assert stack.calls("GetCallerIdentity") == []  # no RAM proof involved


@pytest.mark.parametrize(
    ("token", "code"),
    [
        pytest.param(lambda: _token(sub="app_billing"), "AccessDenied", id="not-approved"),
        pytest.param(lambda: _token(aud="someone-else"), "Unauthenticated", id="wrong-aud"),
        pytest.param(lambda: _token(exp=int(time.time()) - 1), "Unauthenticated", id="expired"),
        pytest.param(
            lambda: _token(iss="https://evil.example.com"), "Unauthenticated", id="wrong-iss"
        ),
        pytest.param(_unsigned, "Unauthenticated", id="alg-none"),
        pytest.param(_hs256_with_the_public_key, "Unauthenticated", id="hs256-public-key"),
        pytest.param(lambda: _token(kid="k-unknown"), "Unauthenticated", id="unknown-kid"),
        pytest.param(lambda: _token(key=OTHER_KEY), "Unauthenticated", id="forged"),
    ],
)
def test_bearer_refusals(stack: Stack, token: Callable[[], str], code: str) -> None:
    value = token()
    client = stack.client(sdk.REPORTS, token=value)
    with pytest.raises(VendApiError) as info:
        client.obtain("idaas_demo", "app_reports", "sct_reports_1")
    assert info.value.code == code
    assert value not in info.value.message
    assert stack.calls("ObtainApplicationClientSecret") == []


def test_an_event_whose_token_no_encoding_accepts_is_refused_as_malformed(stack: Stack) -> None:
    """A JWT is ASCII, but an event's JSON may carry any string, even a lone surrogate (written
    `\\ud800`), which UTF-8 cannot encode: the token is malformed (401), not a crash (500)."""
    event = {
        "action": "obtain",
        "instance_id": "idaas_demo",
        "application_id": "app_reports",
        "secret_id": "sct_reports_1",
        "authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.\ud800.c2ln",
    }
    reply = stack.fc().invoke_function(
        "any-service",
        "vend-events",
        payload=json.dumps(event).encode(),
        headers={"x-fc-invocation-type": "Sync"},
    )
    body = json.loads(reply.data)
    assert (body["status"], body["error"]["code"]) == (401, "Unauthenticated")
    assert body["error"]["message"] == "malformed bearer token"
    assert stack.calls("ObtainApplicationClientSecret") == []


@pytest.mark.parametrize("way", ["http", "events"])
def test_an_expired_token_from_a_callable_is_renewed_once(stack: Stack, way: str) -> None:
    """The token a callable gave has expired by the time the service reads it: the client asks
    the callable again and sends the request once more, over HTTP and through FC alike."""
    given: list[str] = []

    def tokens() -> str:
        expired = not given
        given.append(_token(exp=int(time.time()) - 1) if expired else _token())
        return given[-1]

    keys = Credentials(*sdk.REPORTS)
    ids = ("idaas_demo", "app_reports", "sct_reports_1")
    if way == "http":
        response = stack.client(sdk.REPORTS, token=tokens, credentials=keys).obtain(*ids)
    else:
        response = stack.events(sdk.REPORTS, token=tokens, credentials=keys).obtain(*ids)
    assert response.secret_id == "sct_reports_1"
    assert len(given) == 2
    outcomes = [json.loads(r.getMessage())["outcome"] for r in stack.audit.records]
    assert outcomes == ["Unauthenticated", "ok"]


def test_a_bearer_caller_without_run_doctor_gets_403_and_no_upstream_is_asked(
    stack: Stack,
) -> None:
    """A JWT is verified against the cached JWKS, so a refused doctor event costs the cloud
    nothing at all: not even the STS call a RAM proof needs."""
    before = len(stack.emulator.emulator.calls())
    with pytest.raises(VendApiError) as info:
        stack.events(sdk.REPORTS, token=_token()).doctor()
    assert (info.value.status, info.value.code) == (403, "AccessDenied")
    assert stack.emulator.emulator.calls()[before:] == []
