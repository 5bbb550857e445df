"""No `repr` or `str` of a client object shows a token, a secret or a key (contract section 13):
a repr ends up in logs, tracebacks, debuggers and crash reports. Each object is built holding
marker values, used for real over HTTP (pytest-httpserver plays the service, STS and KMS), and
its repr and str are searched for the markers."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from typing import Any

import pytest
import sealed
from pytest_httpserver import HTTPServer

from vend_client import (
    CachingClient,
    CloudError,
    Credentials,
    EventsClient,
    ServiceUnreachable,
    VendApiError,
    VendClient,
    parse_endpoint,
)
from vend_client.cli import main
from vend_client.exit_status import ExitStatus

ACCOUNT = "1234567890123456"
ME = f"acs:ram::{ACCOUNT}:user/billing"
ARN = f"acs:eiam:cn-hangzhou:{ACCOUNT}:instance/idaas_x/application/app_y/secret/sct_z"
TOKEN = "eyJtoken-marker.eyJtoken-marker-claims.token-marker-signature"
KEY_SECRET = "key-secret-marker"
STS_TOKEN = "sts-token-marker"
PASSWORD = "url-password-marker"
CLIENT_SECRET = "CS-client-secret-marker"
WRAPPED_KEY = "wrapped-data-key-marker"
MARKERS = (TOKEN, KEY_SECRET, STS_TOKEN, PASSWORD, CLIENT_SECRET, WRAPPED_KEY)
KEYS = Credentials("LTAI5tCallerKey000001", KEY_SECRET, STS_TOKEN)
DATA_KEY = os.urandom(32)


def assert_shows_nothing(*texts: str) -> None:
    for text in texts:
        shown = [m for m in MARKERS if m in text]
        assert shown == [], f"{text!r} shows {shown}"


def assert_repr_safe(thing: object) -> None:
    assert_shows_nothing(repr(thing), str(thing), f"{thing}", f"{thing!r}")


def _fc() -> Any:
    fc2 = pytest.importorskip("fc2")  # the `events` extra
    return fc2.Client(
        endpoint="http://127.0.0.1:1",
        accessKeyID="LTAI5tCallerKey000001",
        accessKeySecret=KEY_SECRET,
        securityToken=STS_TOKEN,
    )


@pytest.mark.parametrize(
    "build",
    [
        pytest.param(lambda: VendClient(url="https://vend.example", token=TOKEN), id="token"),
        pytest.param(
            lambda: VendClient(url="https://vend.example", audience="a", credentials=KEYS),
            id="credentials",
        ),
        pytest.param(
            lambda: VendClient(
                url=f"https://gateway:{PASSWORD}@vend.example:8443/base?token={TOKEN}",
                audience="a",
            ),
            id="secrets-in-the-url",
        ),
        pytest.param(lambda: KEYS, id="Credentials"),
        pytest.param(
            lambda: CachingClient("https://vend.example", token=TOKEN, credentials=KEYS),
            id="CachingClient",
        ),
        pytest.param(
            lambda: EventsClient(VendClient(url="", token=TOKEN, credentials=KEYS), _fc()),
            id="EventsClient",
        ),
    ],
)
def test_no_client_object_shows_a_token_or_a_key(build: Callable[[], object]) -> None:
    assert_repr_safe(build())


def test_what_the_repr_still_says(httpserver: HTTPServer) -> None:
    """Enough to tell two clients apart while debugging: where they ask, and how."""
    shown = repr(VendClient(url=f"https://u:{PASSWORD}@vend.example/v?t=1", token=TOKEN))
    assert "vend.example/v" in shown and "'bearer token'" in shown
    assert "LTAI5tCallerKey000001" in repr(VendClient(url="x", audience="a", credentials=KEYS))


def _serve(server: HTTPServer, envelope_key: str = WRAPPED_KEY) -> None:
    answer = sealed.vend_response(secret=CLIENT_SECRET, arn=ARN, principal=ME, data_key=DATA_KEY)
    answer["envelope"]["encrypted_data_key"] = envelope_key
    server.expect_request("/v1/secrets/obtain", method="POST").respond_with_json(answer)
    server.expect_request("/", headers={"x-acs-action": "Decrypt"}).respond_with_json(
        {"KeyId": "key-billing", "Plaintext": base64.b64encode(DATA_KEY).decode()}
    )


def test_a_caching_client_holding_a_secret_shows_none_of_it(httpserver: HTTPServer) -> None:
    """Also what a crash reporter captures of its state (`vars`): the cache's entries hold the
    opened secret."""
    _serve(httpserver)
    endpoint = parse_endpoint(httpserver.url_for("").rstrip("/"))
    with CachingClient(
        httpserver.url_for(""),
        token=TOKEN,
        credentials=KEYS,
        sts_endpoint=endpoint,
        kms_endpoint=endpoint,
        expected_principal=ME,
    ) as secrets:
        assert secrets.get("idaas_x", "app_y", "sct_z") == CLIENT_SECRET
        vended = secrets.get_secret("idaas_x", "app_y", "sct_z")
        assert vended.client_secret == CLIENT_SECRET
        assert_repr_safe(vended)
        assert len(secrets) == 1
        assert_repr_safe(secrets)
        assert_shows_nothing(repr(vars(secrets)))
        response = secrets.client.obtain("idaas_x", "app_y", "sct_z")
    assert response.envelope.encrypted_data_key == WRAPPED_KEY
    assert_repr_safe(response)
    assert_repr_safe(response.envelope)
    assert "key-billing" in repr(response.envelope)  # which key: not the key


def test_a_token_a_header_cannot_carry_is_refused_without_showing_it(
    httpserver: HTTPServer,
) -> None:
    """requests refuses such a header with the whole value in its message; a token file's
    final line break is not part of the token."""
    for bad in (f"{TOKEN} x", f'"{TOKEN}"', f"{TOKEN}\nX-Injected: 1", f"{TOKEN}\u00e9"):
        with pytest.raises(ValueError, match="bearer token") as info:
            VendClient(url=httpserver.url_for(""), token=bad)
        assert_repr_safe(info.value)
    httpserver.expect_request("/v1/secrets/obtain").respond_with_json(
        {"error": {"code": "Unauthenticated", "message": "expired", "request_id": "r-1"}},
        status=401,
    )
    client = VendClient(url=httpserver.url_for(""), token=f"{TOKEN}\n")
    with pytest.raises(VendApiError) as refused:
        client.obtain("idaas_x", "app_y", "sct_z")
    assert refused.value.status == 401
    assert_repr_safe(refused.value)
    (sent, _), *_ = httpserver.log
    assert sent.headers["Authorization"] == f"Bearer {TOKEN}"


def test_errors_of_a_failed_call_carry_no_token_or_key(httpserver: HTTPServer) -> None:
    client = VendClient(url="http://127.0.0.1:1", token=TOKEN, timeout_s=2)
    with pytest.raises(ServiceUnreachable) as unreachable:
        client.obtain("idaas_x", "app_y", "sct_z")
    assert_repr_safe(unreachable.value)

    answer = sealed.vend_response(secret=CLIENT_SECRET, arn=ARN, principal=ME, data_key=DATA_KEY)
    httpserver.expect_request("/v1/secrets/obtain").respond_with_json(answer)
    httpserver.expect_request("/", headers={"x-acs-action": "Decrypt"}).respond_with_json(
        {"Code": "Forbidden.NoPermission", "Message": "no", "RequestId": "kms-1"}, status=403
    )
    endpoint = parse_endpoint(httpserver.url_for("").rstrip("/"))
    client = VendClient(
        url=httpserver.url_for(""),
        token=TOKEN,
        credentials=KEYS,
        sts_endpoint=endpoint,
        kms_endpoint=endpoint,
    )
    response = client.obtain("idaas_x", "app_y", "sct_z")
    with pytest.raises(CloudError) as denied:
        client.open(
            response,
            instance_id="idaas_x",
            application_id="app_y",
            secret_id="sct_z",
            expected_principal=ME,
        )
    assert denied.value.code == "Forbidden.NoPermission"
    assert_repr_safe(denied.value)
    assert_shows_nothing(json.dumps(vars(denied.value), default=repr))


def test_the_command_refuses_such_a_token_as_a_usage_error_without_showing_it(
    httpserver: HTTPServer, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = ["--instance", "idaas_x", "--application", "app_y", "--secret", "sct_z"]
    status = main(["obtain", "--url", httpserver.url_for(""), "--token", f"{TOKEN} x", *ids])
    assert status == ExitStatus.USAGE
    said = capsys.readouterr()
    assert "--token" in said.err
    assert_shows_nothing(said.out, said.err)
    assert httpserver.log == []  # nothing was asked
