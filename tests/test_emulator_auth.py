"""Every call to the emulator is authenticated as Alibaba Cloud does it: ACS3-HMAC-SHA256,
STS security tokens, a 15-minute clock window and single-use nonces."""

from __future__ import annotations

import re

import pytest
import sdk_clients as sdk
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_tea_openapi.exceptions import ClientException
from pytest_httpserver import HTTPServer
from replay import Captured, capture

from infra.emulator import EmulatorServer


def _who_am_i(endpoint: str, key: tuple[str, str] = sdk.BILLING, token: str | None = None) -> str:
    body = sdk.sts(endpoint, key, token).get_caller_identity().body
    return str(body.arn)


def _error(call: object) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()  # type: ignore[operator]
    return info.value


def _code(resp: object) -> str:
    return str(resp.json()["Code"])  # type: ignore[attr-defined]


def _assume(endpoint: str, duration: int = 900) -> sts_models.AssumeRoleResponseBodyCredentials:
    request = sts_models.AssumeRoleRequest(
        role_arn=sdk.ROLE_ARN, role_session_name="auth-test", duration_seconds=duration
    )
    creds = sdk.sts(endpoint, sdk.FUNCTION).assume_role(request).body.credentials
    assert creds is not None
    return creds


def _captured_kms(httpserver: HTTPServer) -> Captured:
    request = kms_models.GenerateDataKeyRequest(
        key_id="alias/vend-default", encryption_context={"vend:arn": "a b/c*~ü"}
    )
    return capture(httpserver, lambda ep: sdk.kms(ep, sdk.FUNCTION).generate_data_key(request))


def test_sdk_signed_request_is_accepted(emulator: EmulatorServer) -> None:
    assert _who_am_i(emulator.endpoint) == f"acs:ram::{sdk.ACCOUNT}:user/billing"


def test_captured_sdk_request_replays_once(
    emulator: EmulatorServer, httpserver: HTTPServer
) -> None:
    captured = _captured_kms(httpserver)
    assert captured.send(emulator.url).status_code == 200
    second = captured.send(emulator.url)
    assert (second.status_code, _code(second)) == (400, "SignatureNonceUsed")


def test_wrong_secret_is_refused(emulator: EmulatorServer) -> None:
    err = _error(lambda: _who_am_i(emulator.endpoint, (sdk.BILLING[0], "not-the-secret")))
    assert (err.status_code, err.code) == (400, "SignatureDoesNotMatch")


def test_unknown_access_key_is_refused(emulator: EmulatorServer) -> None:
    err = _error(lambda: _who_am_i(emulator.endpoint, ("LTAI5tNobodyAtAll0001", "whatever-secret")))
    assert (err.status_code, err.code) == (404, "InvalidAccessKeyId.NotFound")


def _tamper_query(c: Captured) -> Captured:
    # Flip one character of the KeyId parameter's value.
    return Captured(c.method, c.path.replace("vend-default", "vend-defaulu"), c.headers, c.body)


def _tamper_header(c: Captured) -> Captured:
    return c.with_header("x-acs-action", "Encrypt")


def _tamper_body(c: Captured) -> Captured:
    return Captured(c.method, c.path, c.headers, c.body + b"x")


def _tamper_content_hash(c: Captured) -> Captured:
    return Captured(c.method, c.path, c.with_header("x-acs-content-sha256", "0" * 64).headers, b"x")


def _unsigned_nonce(c: Captured) -> Captured:
    headers = dict(c.headers)
    headers["authorization"] = re.sub(r";x-acs-signature-nonce", "", headers["authorization"])
    return Captured(c.method, c.path, headers, c.body)


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        pytest.param(_tamper_query, "SignatureDoesNotMatch", id="query"),
        pytest.param(_tamper_header, "SignatureDoesNotMatch", id="signed-header"),
        pytest.param(_tamper_body, "SignatureDoesNotMatch", id="body"),
        pytest.param(_tamper_content_hash, "SignatureDoesNotMatch", id="content-hash"),
        pytest.param(_unsigned_nonce, "IncompleteSignature", id="nonce-not-signed"),
    ],
)
def test_tampered_request_is_refused(
    emulator: EmulatorServer, httpserver: HTTPServer, tamper: object, code: str
) -> None:
    captured = _captured_kms(httpserver)
    resp = tamper(captured).send(emulator.url)  # type: ignore[operator]
    assert (resp.status_code, _code(resp)) == (400, code)
    body = resp.json()
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    # The untouched request still works: the refusal was about the change, not the setup.
    assert captured.send(emulator.url).status_code == 200


def test_unsigned_request_is_refused(emulator: EmulatorServer, httpserver: HTTPServer) -> None:
    captured = _captured_kms(httpserver)
    headers = {k: v for k, v in captured.headers.items() if k != "authorization"}
    resp = Captured(captured.method, captured.path, headers, captured.body).send(emulator.url)
    assert (resp.status_code, _code(resp)) == (400, "MissingAuthorization")


def test_request_dated_more_than_15_minutes_off_is_refused(emulator: EmulatorServer) -> None:
    emulator.emulator.clock.offset_s = 16 * 60
    err = _error(lambda: _who_am_i(emulator.endpoint))
    assert (err.status_code, err.code) == (400, "InvalidTimeStamp.Expired")
    emulator.emulator.clock.offset_s = 14 * 60
    assert _who_am_i(emulator.endpoint).endswith("user/billing")


def test_sts_credentials_work_until_they_expire(emulator: EmulatorServer) -> None:
    creds = _assume(emulator.endpoint)
    key = (str(creds.access_key_id), str(creds.access_key_secret))
    assert key[0].startswith("STS.")
    arn = _who_am_i(emulator.endpoint, key, creds.security_token)
    assert arn == f"acs:ram::{sdk.ACCOUNT}:assumed-role/vend-eiam/auth-test"
    emulator.emulator.clock.offset_s = 901
    err = _error(lambda: _who_am_i(emulator.endpoint, key, creds.security_token))
    assert (err.status_code, err.code) == (400, "InvalidSecurityToken.Expired")


def test_sts_key_with_another_sessions_token_is_refused(emulator: EmulatorServer) -> None:
    first, second = _assume(emulator.endpoint), _assume(emulator.endpoint)
    key = (str(first.access_key_id), str(first.access_key_secret))
    err = _error(lambda: _who_am_i(emulator.endpoint, key, second.security_token))
    assert (err.status_code, err.code) == (400, "InvalidSecurityToken.MismatchWithAccessKey")


def test_sts_key_without_its_token_is_refused(emulator: EmulatorServer) -> None:
    creds = _assume(emulator.endpoint)
    key = (str(creds.access_key_id), str(creds.access_key_secret))
    err = _error(lambda: _who_am_i(emulator.endpoint, key))
    assert (err.status_code, err.code) == (400, "MissingSecurityToken")


def test_token_sent_with_a_permanent_key_is_refused(emulator: EmulatorServer) -> None:
    creds = _assume(emulator.endpoint)
    err = _error(lambda: _who_am_i(emulator.endpoint, sdk.BILLING, creds.security_token))
    assert err.code == "InvalidSecurityToken.MismatchWithAccessKey"
