"""Every call to the emulator is authenticated as Alibaba Cloud does it: ACS3-HMAC-SHA256,
STS security tokens, a 15-minute clock window and single-use nonces."""

from __future__ import annotations

import hashlib
import re
from types import SimpleNamespace

import pytest
import requests
import sdk_clients as sdk
from alibabacloud_eiam20211201 import models as eiam_models
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.utils import Utils
from pytest_httpserver import HTTPServer
from replay import Captured, capture

from infra.emulator import Emulator, EmulatorServer, Seed
from infra.emulator.clock import Clock
from infra.emulator.errors import ApiError
from infra.emulator.iam import NONCE_TTL_S
from infra.emulator.signature import Request


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


def test_time_moved_on_for_everyone_ages_sessions_but_not_signatures(
    emulator: EmulatorServer,
) -> None:
    """The admin API's clock advance is time passing for the whole world, the callers' signing
    clocks included: a request signed now is in time however far it went (days, for rotation's
    tests), while an STS session issued before has expired."""
    creds = _assume(emulator.endpoint)
    key = (str(creds.access_key_id), str(creds.access_key_secret))
    moved = requests.put(
        f"{emulator.url}/_emulator/clock", json={"advance_s": 3 * 86400}, timeout=5
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["advanced_s"] == 3 * 86400
    assert _who_am_i(emulator.endpoint).endswith("user/billing")
    err = _error(lambda: _who_am_i(emulator.endpoint, key, creds.security_token))
    assert (err.status_code, err.code) == (400, "InvalidSecurityToken.Expired")
    # The clock alone off the callers' still shows as skew.
    emulator.emulator.clock.offset_s = 16 * 60
    err = _error(lambda: _who_am_i(emulator.endpoint))
    assert (err.status_code, err.code) == (400, "InvalidTimeStamp.Expired")


@pytest.mark.parametrize("advance", ["nan", "inf", "x", None])
def test_a_clock_advance_that_is_no_number_is_refused(
    emulator: EmulatorServer, advance: object
) -> None:
    moved = requests.put(f"{emulator.url}/_emulator/clock", json={"advance_s": advance}, timeout=5)
    assert moved.status_code == 400, moved.text
    assert emulator.emulator.clock.advanced_s == 0


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


# -- many nonces, and a restart ----------------------------------------------------------------

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _signed(clock: Clock, nonce: str, key: tuple[str, str] = sdk.BILLING) -> Request:
    """GetCallerIdentity with this nonce, dated now by the emulator's clock and signed by the
    SDK's own signer, as the emulator's verifier receives it."""
    headers = {
        "host": "sts.aliyuncs.com",
        "x-acs-action": "GetCallerIdentity",
        "x-acs-version": "2015-04-01",
        "x-acs-date": clock.iso(),
        "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": EMPTY_SHA256,
    }
    unsigned = SimpleNamespace(method="POST", pathname="/", query={}, headers=headers)
    headers["authorization"] = Utils.get_authorization(
        unsigned, "ACS3-HMAC-SHA256", EMPTY_SHA256, key[0], key[1]
    )
    return Request("POST", "/", [], headers, b"")


def _refused_as_used(emulator: Emulator, nonce: str) -> bool:
    with pytest.raises(ApiError) as info:
        emulator.account.authenticate(_signed(emulator.clock, nonce))
    return info.value.code == "SignatureNonceUsed"


def test_nonces_stay_single_use_among_many(demo_seed: Seed) -> None:
    emulator = Emulator(demo_seed)
    for i in range(20_000):
        emulator.account.authenticate(_signed(emulator.clock, f"bulk-{i}"))
    assert _refused_as_used(emulator, "bulk-19999")  # a recent one
    assert _refused_as_used(emulator, "bulk-0")  # the oldest, still within 15 minutes
    emulator.clock.offset_s += NONCE_TTL_S + 1
    emulator.account.authenticate(_signed(emulator.clock, "bulk-0"))  # forgotten: usable again
    assert _refused_as_used(emulator, "bulk-0")  # ... once
    # The 20,000 expired ones are forgotten, not only ignored.
    assert emulator.account.held()[1] == 1


def test_a_nonce_reused_after_expiry_is_not_forgotten_early(demo_seed: Seed) -> None:
    # The clock set back (as a test may do) queues a nonce behind one that expires later; when
    # that nonce is used again, its first expiry must not make the emulator forget the second.
    emulator = Emulator(demo_seed)
    clock = emulator.clock
    emulator.account.authenticate(_signed(clock, "first"))  # expires at 900
    clock.offset_s -= 100
    emulator.account.authenticate(_signed(clock, "again"))  # expires at 800, queued after 900
    clock.offset_s += 950  # 850: "again" has expired, though still queued
    emulator.account.authenticate(_signed(clock, "again"))  # now expires at 1750
    clock.offset_s += 51  # 901: both first entries leave the queue
    assert _refused_as_used(emulator, "again")
    emulator.account.authenticate(_signed(clock, "first"))


def test_expired_sessions_are_forgotten_when_another_is_issued(demo_seed: Seed) -> None:
    account = Emulator(demo_seed).account
    role = account.role(sdk.ROLE_ARN)
    short = account.issue_session(role, "short", 900, None)
    account.issue_session(role, "long", 3600, None)
    account.clock.offset_s = 901
    account.issue_session(role, "later", 900, None)
    assert account.held()[0] == 2  # "short" is gone; "long" and "later" stay
    assert account.key_secret(short.access_key_id) is None


def _restart(server: EmulatorServer) -> requests.Response:
    return requests.post(f"{server.url}/_emulator/restart", timeout=5)


def test_restart_forgets_sts_keys_and_nonces_and_keeps_eiam(
    emulator: EmulatorServer, httpserver: HTTPServer
) -> None:
    creds = _assume(emulator.endpoint)
    key = (str(creds.access_key_id), str(creds.access_key_secret))
    assert "assumed-role" in _who_am_i(emulator.endpoint, key, creds.security_token)
    captured = _captured_kms(httpserver)
    assert captured.send(emulator.url).status_code == 200
    operator = sdk.eiam(emulator.endpoint, sdk.OPERATOR)
    made = operator.create_application_client_secret(
        eiam_models.CreateApplicationClientSecretRequest(
            instance_id=sdk.INSTANCE, application_id="app_empty"
        )
    ).body.application_client_secret.secret_id
    requests.put(
        f"{emulator.url}/_emulator/faults", json=[{"action": "Decrypt", "latency_ms": 5}], timeout=5
    ).raise_for_status()

    resp = _restart(emulator)
    assert resp.status_code == 200
    assert resp.json()["restarted"] is True

    err = _error(lambda: _who_am_i(emulator.endpoint, key, creds.security_token))
    assert (err.status_code, err.code) == (404, "InvalidAccessKeyId.NotFound")
    assert captured.send(emulator.url).status_code == 200  # its nonce was forgotten too
    assert requests.get(f"{emulator.url}/_emulator/faults", timeout=5).json() == {"faults": []}
    # What persists is intact: the secret made before, the seed's users and roles.
    listed = operator.list_application_client_secrets(
        eiam_models.ListApplicationClientSecretsRequest(
            instance_id=sdk.INSTANCE, application_id="app_empty"
        )
    ).body
    assert [s.secret_id for s in listed.application_client_secrets] == [made]
    fresh = _assume(emulator.endpoint)
    fresh_key = (str(fresh.access_key_id), str(fresh.access_key_secret))
    assert "assumed-role" in _who_am_i(emulator.endpoint, fresh_key, fresh.security_token)


def test_restart_in_process_and_its_admin_method(emulator: EmulatorServer) -> None:
    creds = _assume(emulator.endpoint)
    key = (str(creds.access_key_id), str(creds.access_key_secret))
    emulator.emulator.restart()
    err = _error(lambda: _who_am_i(emulator.endpoint, key, creds.security_token))
    assert (err.status_code, err.code) == (404, "InvalidAccessKeyId.NotFound")
    assert requests.get(f"{emulator.url}/_emulator/restart", timeout=5).status_code == 405
