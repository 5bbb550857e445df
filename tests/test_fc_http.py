"""The FC HTTP handler called as FC calls it: an event of JSON bytes and a context object."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import sdk_clients as sdk
from function_role import THE_ROLE, expire, fc_hands_over, function_role_seed, signers
from stack import Stack, running_stack

from functions import http
from infra.emulator import Seed
from shared import composition_root
from shared.config import ConfigError
from shared.wire.credentials import Credentials

BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed) as running:
        yield running


def _context(credentials: Any = None, request_id: str = "fc-req-1") -> SimpleNamespace:
    return SimpleNamespace(
        request_id=request_id,
        function=SimpleNamespace(
            name="vend-http", handler="functions.http.handler", memory=512, timeout=15
        ),
        region="cn-hangzhou",
        account_id=sdk.ACCOUNT,
        credentials=credentials,
    )


def _event(
    stack: Stack,
    body: bytes,
    *,
    b64: bool = False,
    request_id: str | None = "1-abc-def",
    source_ip: str = "10.0.0.1",
) -> bytes:
    auth = stack.client().authorization()
    event = {
        "version": "v1",
        "rawPath": "/v1/secrets/obtain",
        "headers": {"Authorization": auth, "Content-Type": "application/json"},
        "queryParameters": {},
        "body": base64.b64encode(body).decode() if b64 else body.decode(),
        "isBase64Encoded": b64,
        "requestContext": {
            "accountId": sdk.ACCOUNT,
            "http": {
                "method": "POST",
                "path": "/v1/secrets/obtain",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": "test",
            },
            "requestId": request_id,
        },
    }
    return json.dumps(event).encode()


BODY = json.dumps(
    {"instance_id": "idaas_demo", "application_id": "app_billing", "secret_id": "sct_billing_1"}
).encode()


@pytest.mark.parametrize("b64", [False, True], ids=["text-body", "base64-body"])
def test_handler_answers_in_the_shape_fc_expects(stack: Stack, b64: bool) -> None:
    result = http.handler(_event(stack, BODY, b64=b64), _context())
    assert set(result) == {"statusCode", "headers", "isBase64Encoded", "body"}
    assert (result["statusCode"], result["isBase64Encoded"]) == (200, False)
    body = json.loads(result["body"])
    assert body["request_id"] == "1-abc-def" == result["headers"]["X-Request-Id"]
    assert BILLING_SECRET not in result["body"]


def test_request_id_falls_back_to_the_context(stack: Stack) -> None:
    result = http.handler(_event(stack, BODY, request_id=None), _context(request_id="ctx-42"))
    assert json.loads(result["body"])["request_id"] == "ctx-42"


@pytest.mark.parametrize(
    "claimed", ["A" * 10 * 1024, "B" * 65, "nel\x85split", "ctl\x1b[2J", "has space", "a/b"]
)
def test_a_request_id_without_the_contracts_shape_is_never_used(stack: Stack, claimed: str) -> None:
    """Contract section 7: a platform's request id is 1 to 64 of [A-Za-z0-9_.:-]. The event's
    falls back to the context's, and a context's that fails too to the service's own UUID; the
    request is served all the same, never a 5xx."""
    from_context = http.handler(_event(stack, BODY, request_id=claimed), _context())
    own = http.handler(_event(stack, BODY, request_id=claimed), _context(request_id=claimed))
    for result in (from_context, own):
        assert result["statusCode"] == 200, result["body"]
        body = json.loads(result["body"])
        request_id = result["headers"]["X-Request-Id"]
        assert body["request_id"] == request_id
        assert body["envelope"]["encryption_context"]["vend:request_id"] == request_id
    assert from_context["headers"]["X-Request-Id"] == "fc-req-1"
    assert UUID.fullmatch(own["headers"]["X-Request-Id"])


def test_source_ip_is_the_events_address_and_unknown_when_it_is_not_one(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed
) -> None:
    """acs:SourceIp is requestContext.http.sourceIp (never a header); a sourceIp that is not an
    address is unknown, and an IP condition then fails closed: `NotIpAddress` does not allow."""
    policy = json.dumps(
        {
            "Version": "1",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"RAM": f"acs:ram::{sdk.ACCOUNT}:user/billing"},
                    "Action": "eiam:ObtainApplicationClientSecret",
                    "Resource": "*",
                    "Condition": {"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}},
                }
            ],
        }
    )
    with running_stack(monkeypatch, demo_seed, env={"VEND_POLICY": policy}) as stack:
        outside = http.handler(_event(stack, BODY, source_ip="203.0.113.7"), _context())
        inside = http.handler(_event(stack, BODY, source_ip="10.0.0.1"), _context())
        garbage = http.handler(_event(stack, BODY, source_ip="203.0.113.7, x"), _context())
        empty = http.handler(_event(stack, BODY, source_ip=""), _context())
    assert outside["statusCode"] == 200, outside["body"]
    assert [r["statusCode"] for r in (inside, garbage, empty)] == [403, 403, 403]


@pytest.mark.contract("2")
def test_an_event_that_is_not_an_http_event_is_400(stack: Stack) -> None:
    result = http.handler(b"\x00not json", _context())
    assert result["statusCode"] == 400
    body = json.loads(result["body"])
    assert body["error"]["code"] == "MalformedRequest"
    # Refused before the API saw it, and stamped as every answer of the API is.
    assert result["headers"] == {
        "X-Request-Id": body["error"]["request_id"],
        "Content-Type": "application/json",
        "Cache-Control": "no-store",
    }


def test_python310_context_credentials_are_the_functions_identity(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The environment holds a caller that may not assume the vending role; the context (as on
    # FC's python3.9/3.10 runtimes) holds the function's own keys, and those must be used.
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", sdk.REPORTS[0])
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", sdk.REPORTS[1])
    creds = SimpleNamespace(
        access_key_id=sdk.FUNCTION[0], access_key_secret=sdk.FUNCTION[1], security_token=""
    )
    result = http.handler(_event(stack, BODY), _context(credentials=creds))
    assert result["statusCode"] == 200, result["body"]
    assert {who for _, who, _ in stack.calls("AssumeRole")} == {
        f"acs:ram::{sdk.ACCOUNT}:user/vend-function"
    }


def _as_context(creds: Credentials) -> SimpleNamespace:
    return SimpleNamespace(
        access_key_id=creds.access_key_id,
        access_key_secret=creds.access_key_secret,
        security_token=creds.security_token,
    )


def test_python310_each_invocation_signs_with_its_own_context_keys(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed
) -> None:
    """The instance lives on after the keys of its first invocation expire: the next one signs
    with the keys its own context carries. Only the function role may assume the vending role
    here, so the environment's keys (the user vend-function) cannot stand in."""
    with running_stack(monkeypatch, function_role_seed(demo_seed)) as stack:
        first = fc_hands_over(stack.emulator, "fc-first")
        result = http.handler(_event(stack, BODY), _context(_as_context(first), "fc-req-1"))
        assert result["statusCode"] == 200, result["body"]
        expire(stack.emulator, first)
        fresh = fc_hands_over(stack.emulator, "fc-second")
        result = http.handler(_event(stack, BODY), _context(_as_context(fresh), "fc-req-2"))
        assert result["statusCode"] == 200, result["body"]
        assert THE_ROLE + "fc-second" in signers(stack.emulator, "AssumeRole")


def test_initializer_fails_the_instance_on_bad_configuration(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    composition_root.reset_instance()
    monkeypatch.setenv("VEND_ROLE_ARN", "not-an-arn")
    with pytest.raises(ConfigError, match="VEND_ROLE_ARN"):
        http.initializer(_context())
