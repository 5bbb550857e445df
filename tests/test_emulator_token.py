"""The emulator's IDaaS M2M token endpoint, over HTTP as a caller and a resource server meet it:
a client_credentials token for an enabled, unexpired secret (HTTP Basic or in the body) that
verifies against the JWKS the instance's discovery document names; `invalid_client` for every
other secret; OAuth's 400s for a malformed request (infra/ASSUMPTIONS.md T1 to T14)."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
import sdk_clients as sdk
from alibabacloud_eiam20211201 import models as eiam_models
from log_scan import DEMO_SEED
from processes import VEND, Server

from infra.emulator import EmulatorServer, Seed

CLIENT_ID = "app_reports"
SECRET = "CSdemoReportsSecretValue000000000000001"
PATH = "/api/v2/iauths_system/oauth2"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
SCOPE = "vend-local|obtain"


def _issuer(emulator: EmulatorServer, instance: str = "idaas_demo") -> str:
    return f"{emulator.url}/{instance}{PATH}"


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def _token(
    emulator: EmulatorServer,
    *,
    method: str = "basic",
    client_id: str = CLIENT_ID,
    secret: str = SECRET,
    instance: str = "idaas_demo",
    **params: str,
) -> requests.Response:
    form = {"grant_type": "client_credentials", "scope": SCOPE, **params}
    headers = dict(FORM)
    if method == "basic":
        headers.update(_basic(client_id, secret))
    else:
        form.update(client_id=client_id, client_secret=secret)
    return requests.post(
        f"{_issuer(emulator, instance)}/token", data=form, headers=headers, timeout=10
    )


def _verify(token: str, issuer: str, audience: str = "vend-local") -> dict[str, Any]:
    """As a resource server does it: the issuer's discovery document names the JWKS."""
    discovery = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    assert discovery["issuer"] == issuer
    key = jwt.PyJWKClient(discovery["jwks_uri"]).get_signing_key_from_jwt(token)
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=discovery["id_token_signing_alg_values_supported"],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "sub", "aud", "iss"]},
    )
    return claims


def _advance(emulator: EmulatorServer, seconds: float) -> None:
    done = requests.put(f"{emulator.url}/_emulator/clock", json={"advance_s": seconds}, timeout=10)
    assert done.status_code == 200, done.text


@pytest.mark.parametrize("method", ["basic", "post"])
def test_a_token_for_an_enabled_secret_verifies_against_the_published_jwks(
    emulator: EmulatorServer, method: str
) -> None:
    before = int(time.time())
    answer = _token(emulator, method=method)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    body = answer.json()
    assert set(body) == {"token_type", "access_token", "expires_in", "expires_at"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600
    claims = _verify(body["access_token"], _issuer(emulator))
    assert claims["sub"] == claims["client_id"] == CLIENT_ID
    assert claims["aud"] == "vend-local" and claims["scope"] == "obtain"
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] == claims["iat"] + 3600 == body["expires_at"]
    assert claims["jti"]
    # Each token is its own; the emulator's history names the client, never the token.
    assert _token(emulator, method=method).json()["access_token"] != body["access_token"]
    assert emulator.emulator.calls("OAuthToken") == [("OAuthToken", CLIENT_ID, "OK")] * 2


def test_a_token_of_one_instance_does_not_verify_with_another_instances_keys(
    emulator: EmulatorServer,
) -> None:
    other = _token(
        emulator,
        instance="idaas_other",
        client_id="app_other",
        secret="CSdemoOtherSecretValue00000000000000001",
    )
    assert other.status_code == 200, other.text
    token = other.json()["access_token"]
    assert _verify(token, _issuer(emulator, "idaas_other"))["sub"] == "app_other"
    demo_jwks = jwt.PyJWKClient(f"{_issuer(emulator)}/jwks")
    with pytest.raises(jwt.PyJWKClientError):
        demo_jwks.get_signing_key_from_jwt(token)


def test_a_token_without_scope_names_no_audience(emulator: EmulatorServer) -> None:
    answer = _token(emulator, scope="")
    token = answer.json()["access_token"]
    with pytest.raises(jwt.MissingRequiredClaimError):
        _verify(token, _issuer(emulator))
    assert "aud" not in jwt.decode(token, options={"verify_signature": False})


def test_a_token_is_a_use_of_the_secret(emulator: EmulatorServer) -> None:
    """ObtainApplicationClientSecret's LastUsedTime: when a token was last got with it."""
    before = int(time.time() * 1000)
    assert _token(emulator).status_code == 200
    request = eiam_models.ObtainApplicationClientSecretRequest(
        instance_id="idaas_demo", application_id="app_reports", secret_id="sct_reports_1"
    )
    eiam = sdk.eiam(emulator.endpoint, sdk.OPERATOR)
    used = eiam.obtain_application_client_secret(request).body.application_client_secret
    assert used.last_used_time is not None
    assert before <= used.last_used_time <= int(time.time() * 1000)


def _eiam_call(emulator: EmulatorServer, action: str, secret_id: str = "sct_reports_1") -> None:
    eiam = sdk.eiam(emulator.endpoint, sdk.OPERATOR)
    name = {"disable": "DisableApplicationClientSecret", "delete": "DeleteApplicationClientSecret"}
    request = getattr(eiam_models, f"{name[action]}Request")(
        instance_id="idaas_demo", application_id="app_reports", secret_id=secret_id
    )
    getattr(eiam, f"{action}_application_client_secret")(request)


def _wrong(emulator: EmulatorServer) -> dict[str, str]:
    return {"secret": SECRET[:-1] + "2"}


def _unknown_client(emulator: EmulatorServer) -> dict[str, str]:
    return {"client_id": "app_nobody"}


def _another_applications_secret(emulator: EmulatorServer) -> dict[str, str]:
    return {"secret": "CSdemoBillingSecretValue0000000000000001"}


def _disabled(emulator: EmulatorServer) -> dict[str, str]:
    _eiam_call(emulator, "disable")
    return {}


def _deleted(emulator: EmulatorServer) -> dict[str, str]:
    _eiam_call(emulator, "delete")
    return {}


def _expired(emulator: EmulatorServer) -> dict[str, str]:
    """A secret created to expire in a day, asked with two days later on the emulator's clock."""
    eiam = sdk.eiam(emulator.endpoint, sdk.OPERATOR)
    request = eiam_models.CreateApplicationClientSecretRequest(
        instance_id="idaas_demo",
        application_id="app_reports",
        expiration_time=int(time.time() * 1000) + 25 * 3600 * 1000,
    )
    created = eiam.create_application_client_secret(request).body.application_client_secret
    fresh = _token(emulator, secret=created.client_secret)
    assert fresh.status_code == 200, fresh.text  # it was good until then
    _advance(emulator, 2 * 24 * 3600)
    return {"secret": created.client_secret}


REFUSED: dict[str, tuple[Callable[[EmulatorServer], dict[str, str]], str]] = {
    "wrong-secret": (_wrong, "unknown client_id, or a wrong client_secret"),
    "unknown-client": (_unknown_client, "unknown client_id, or a wrong client_secret"),
    "another-applications-secret": (
        _another_applications_secret,
        "unknown client_id, or a wrong client_secret",
    ),
    "disabled-secret": (_disabled, "disabled"),
    "deleted-secret": (_deleted, "unknown client_id, or a wrong client_secret"),
    "expired-secret": (_expired, "expired"),
}


@pytest.mark.parametrize("method", ["basic", "post"])
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_every_other_secret_is_refused_with_invalid_client(
    emulator: EmulatorServer, case: str, method: str
) -> None:
    prepare, why = REFUSED[case]
    given = prepare(emulator)
    answer = _token(emulator, method=method, **given)
    assert answer.status_code == 401, answer.text
    body = answer.json()
    assert set(body) == {"error", "error_description"} and body["error"] == "invalid_client"
    assert why in body["error_description"]
    # RFC 6749 5.2: a client that tried HTTP Basic is told the scheme (and RFC 9110: every 401).
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")
    assert answer.headers["Cache-Control"] == "no-store"
    assert "access_token" not in answer.text and SECRET not in answer.text
    assert emulator.emulator.calls("OAuthToken")[-1][2] == "invalid_client"


def _request(
    emulator: EmulatorServer, form: dict[str, str], headers: dict[str, str] | None = None
) -> requests.Response:
    return requests.post(
        f"{_issuer(emulator)}/token", data=form, headers={**FORM, **(headers or {})}, timeout=10
    )


POST_CREDENTIALS = {"client_id": CLIENT_ID, "client_secret": SECRET}
MALFORMED: dict[str, tuple[dict[str, str], dict[str, str], int, str]] = {
    "grant-type-password": (
        {"grant_type": "password", **POST_CREDENTIALS},
        {},
        400,
        "unsupported_grant_type",
    ),
    "grant-type-missing": (dict(POST_CREDENTIALS), {}, 400, "invalid_request"),
    "no-credentials": ({"grant_type": "client_credentials"}, {}, 401, "invalid_client"),
    "secret-missing": (
        {"grant_type": "client_credentials", "client_id": CLIENT_ID},
        {},
        401,
        "invalid_client",
    ),
    "basic-and-post": (
        {"grant_type": "client_credentials", "client_secret": SECRET},
        _basic(CLIENT_ID, SECRET),
        400,
        "invalid_request",
    ),
    "bearer-scheme": (
        {"grant_type": "client_credentials"},
        {"Authorization": "Bearer x"},
        401,
        "invalid_client",
    ),
    "two-resource-servers": (
        {"grant_type": "client_credentials", "scope": "a|read b|read", **POST_CREDENTIALS},
        {},
        400,
        "invalid_scope",
    ),
    "scope-without-resource-server": (
        {"grant_type": "client_credentials", "scope": "read", **POST_CREDENTIALS},
        {},
        400,
        "invalid_scope",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_request_gets_the_oauth_error(emulator: EmulatorServer, case: str) -> None:
    form, headers, status, error = MALFORMED[case]
    answer = _request(emulator, form, headers)
    assert (answer.status_code, answer.json().get("error")) == (status, error), answer.text
    assert "access_token" not in answer.json()


def test_not_a_form_and_not_post_are_refused(emulator: EmulatorServer) -> None:
    as_json = requests.post(
        f"{_issuer(emulator)}/token", json={"grant_type": "client_credentials"}, timeout=10
    )
    assert (as_json.status_code, as_json.json().get("error")) == (400, "invalid_request")
    got = requests.get(f"{_issuer(emulator)}/token", timeout=10)
    assert (got.status_code, got.headers["Allow"]) == (405, "POST")
    twice = requests.post(
        f"{_issuer(emulator)}/token",
        data="grant_type=client_credentials&grant_type=client_credentials",
        headers={**FORM, **_basic(CLIENT_ID, SECRET)},
        timeout=10,
    )
    assert (twice.status_code, twice.json().get("error")) == (400, "invalid_request")


def test_an_unknown_instance_has_no_endpoints(emulator: EmulatorServer) -> None:
    answer = _token(emulator, instance="idaas_nowhere")
    assert answer.status_code == 404
    discovery = requests.get(
        f"{_issuer(emulator, 'idaas_nowhere')}/.well-known/openid-configuration", timeout=10
    )
    assert discovery.status_code == 404


def test_a_token_past_its_expiry_fails_verification(emulator: EmulatorServer) -> None:
    """Issued when the emulator's clock read 3601 s ago, a 3600 s token has expired by the
    resource server's clock: the emulator's clock, not the host's, dates the token."""
    _advance(emulator, -3601)
    answer = _token(emulator)
    assert answer.status_code == 200, answer.text
    assert answer.json()["expires_at"] < time.time()
    with pytest.raises(jwt.ExpiredSignatureError):
        _verify(answer.json()["access_token"], _issuer(emulator))


def test_the_lifetime_is_the_instances(demo_seed: Seed) -> None:
    data = demo_seed.model_dump()
    data["eiam_instances"][0]["access_token_expires_in"] = 30
    with EmulatorServer(Seed.model_validate(data)) as emulator:
        body = _token(emulator).json()
        assert body["expires_in"] == 30
        claims = _verify(body["access_token"], _issuer(emulator))
        assert claims["exp"] - claims["iat"] == 30


def test_tokens_outlive_a_restart_on_the_same_state(demo_seed: Seed, tmp_path: Path) -> None:
    """The signing keys are kept in the state file, as the secrets are: a token issued before
    the emulator restarts still verifies against the JWKS it publishes afterwards."""
    state = tmp_path / "state.json"
    with EmulatorServer(demo_seed, state_path=state) as first:
        token = _token(first).json()["access_token"]
        issuer = _issuer(first)
    with EmulatorServer(demo_seed, state_path=state) as second:
        key = jwt.PyJWKClient(f"{_issuer(second)}/jwks").get_signing_key_from_jwt(token)
        claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="vend-local")
        assert (claims["iss"], claims["sub"]) == (issuer, CLIENT_ID)


def test_an_injected_fault_answers_in_oauths_shape(emulator: EmulatorServer) -> None:
    fault = {"action": "OAuthToken", "status": 503, "retry_after_s": 7, "times": 1}
    done = requests.put(f"{emulator.url}/_emulator/faults", json=[fault], timeout=10)
    assert done.status_code == 200, done.text
    answer = _token(emulator)
    assert answer.status_code == 503
    assert answer.json()["error"] == "ServiceUnavailable"
    assert answer.headers["Retry-After"] == "7"
    assert _token(emulator).status_code == 200  # once only


def test_vend_emulator_prints_each_instances_token_endpoint() -> None:
    server = Server([*VEND, "emulator", "--seed", str(DEMO_SEED), "--port", "0"], "emulator")
    try:
        server.wait_for("idaas_other")
        endpoint = server.wait_for(r"instance idaas_demo: M2M token endpoint (\S+)").group(1)
        answer = requests.post(
            endpoint,
            data={"grant_type": "client_credentials"},
            auth=(CLIENT_ID, SECRET),
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
    finally:
        server.stop()
