"""The faults beyond latency and JSON errors, as the real SDK client sees them over real HTTP: a
connection reset with no answer, a gateway's HTML error page, a malformed 200. Each either
instead of the action (phase before) or after it (the action happened, the answer is lost).

What the SDK (tea-openapi 0.4.6 on darabonba and requests) raises, pinned here because the
service's retry classifier depends on it:
- reset: darabonba UnretryableException -> .inner_exception RetryError -> .__context__
  requests ConnectionError -> ProtocolError('Connection aborted.') -> ConnectionResetError;
- an HTML (or any non-JSON) body, whatever the status, 200 included: UnretryableException ->
  .inner_exception RuntimeError("Failed to parse the value as json format, Value: ...") ->
  .__context__ JSONDecodeError; the HTTP status is lost;
- a 200 with JSON missing the action's fields: no exception, a body of None fields.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
import requests
import sdk_clients as sdk
import urllib3
from alibabacloud_eiam20211201 import models as eiam_models
from darabonba.exceptions import RetryError, UnretryableException

from infra.emulator import Emulator, EmulatorServer, Seed
from infra.emulator.faults import ConnectionDropped
from infra.emulator.seed import Fault

CREATE = "CreateApplicationClientSecret"


def _set_faults(server: EmulatorServer, faults: list[dict[str, Any]]) -> requests.Response:
    return requests.put(f"{server.url}/_emulator/faults", json=faults, timeout=5)


def _fault(server: EmulatorServer, **fields: Any) -> None:
    resp = _set_faults(server, [{"action": CREATE, "times": 1, **fields}])
    assert resp.status_code == 200, resp.text


def _create(server: EmulatorServer) -> Any:
    return (
        sdk.eiam(server.endpoint, sdk.OPERATOR)
        .create_application_client_secret(
            eiam_models.CreateApplicationClientSecretRequest(
                instance_id=sdk.INSTANCE, application_id="app_empty"
            )
        )
        .body
    )


def _secret_count(server: EmulatorServer) -> int:
    listed = (
        sdk.eiam(server.endpoint, sdk.OPERATOR)
        .list_application_client_secrets(
            eiam_models.ListApplicationClientSecretsRequest(
                instance_id=sdk.INSTANCE, application_id="app_empty"
            )
        )
        .body
    )
    return int(listed.total_count)


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps: UnretryableException's inner exception, then causes
    and contexts (darabonba raises its RetryError inside `except IOError`)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        inner = getattr(current, "inner_exception", None)
        current = inner or current.__cause__ or current.__context__
    return chain


def _expected_count(phase: str) -> int:
    return 1 if phase == "after" else 0


PHASES = pytest.mark.parametrize("phase", ["before", "after"])


# -- reset ----------------------------------------------------------------------------------


@PHASES
def test_reset_drops_the_connection_without_an_answer(emulator: EmulatorServer, phase: str) -> None:
    _fault(emulator, reset=True, phase=phase)
    with pytest.raises(UnretryableException) as info:
        _create(emulator)
    chain = _chain(info.value)
    assert [type(e) for e in chain] == [
        UnretryableException,
        RetryError,
        requests.exceptions.ConnectionError,
        urllib3.exceptions.ProtocolError,
        ConnectionResetError,
    ]
    assert "Connection aborted." in str(chain[2])  # after connecting: not a connect error
    assert _secret_count(emulator) == _expected_count(phase)
    assert emulator.emulator.calls(CREATE)[0][2] == "ConnectionReset"
    # `times: 1` is spent, and the client's next call (on a new connection) goes through.
    assert _create(emulator).application_client_secret.secret_id
    assert _secret_count(emulator) == _expected_count(phase) + 1


def test_reset_in_process_raises_connection_dropped(demo_seed: Seed) -> None:
    emulator = Emulator(demo_seed)
    emulator.faults.replace([Fault(action="*", reset=True)])
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_X_ACS_ACTION": "GetCallerIdentity",
        "HTTP_X_ACS_VERSION": "2015-04-01",
        "wsgi.input": io.BytesIO(b""),
        "CONTENT_LENGTH": "0",
    }
    with pytest.raises(ConnectionDropped):
        emulator(environ, lambda status, headers: None)


# -- a gateway's HTML error page ------------------------------------------------------------


def _unreadable(
    emulator: EmulatorServer,
) -> tuple[pytest.ExceptionInfo[UnretryableException], BaseException]:
    """A create whose answer the SDK cannot parse: UnretryableException <- RuntimeError <-
    JSONDecodeError. Returns the exception and the RuntimeError that quotes the body."""
    with pytest.raises(UnretryableException) as info:
        _create(emulator)
    chain = _chain(info.value)
    assert [type(e) for e in chain[:3]] == [
        UnretryableException,
        RuntimeError,
        json.JSONDecodeError,
    ]
    assert str(chain[1]).startswith("Failed to parse the value as json format")
    return info, chain[1]


@PHASES
@pytest.mark.parametrize("status", [502, 503])
def test_html_error_page_is_unreadable_to_the_sdk(
    emulator: EmulatorServer, phase: str, status: int
) -> None:
    _fault(emulator, status=status, body="html", phase=phase)
    info, parse_error = _unreadable(emulator)
    assert f"{status} " in str(parse_error)  # the status shows only in the page's text
    assert getattr(info.value, "status_code", None) is None
    assert info.value.code is None
    assert _secret_count(emulator) == _expected_count(phase)
    assert emulator.emulator.calls(CREATE)[0][2] == f"Html{status}"


def test_html_error_page_on_the_wire(emulator: EmulatorServer) -> None:
    # Phase before answers ahead of authentication, so a bare request shows the raw answer.
    _set_faults(emulator, [{"action": "*", "status": 502, "body": "html", "retry_after_s": 3}])
    resp = requests.post(
        emulator.url,
        headers={"x-acs-action": "GetCallerIdentity", "x-acs-version": "2015-04-01"},
        timeout=5,
    )
    assert resp.status_code == 502
    assert resp.headers["content-type"] == "text/html"
    assert resp.headers["x-acs-retry-after"] == "3"
    assert resp.text.startswith("<html>") and "502 Bad Gateway" in resp.text


# -- malformed 200 --------------------------------------------------------------------------


@PHASES
def test_200_without_the_actions_fields_is_returned_empty(
    emulator: EmulatorServer, phase: str
) -> None:
    _fault(emulator, malformed=True, phase=phase)
    body = _create(emulator)  # the SDK does not check: the fields are just absent
    assert body.request_id
    assert body.application_client_secret is None
    assert _secret_count(emulator) == _expected_count(phase)
    assert emulator.emulator.calls(CREATE)[0][2] == "MalformedJson"


@PHASES
def test_200_that_is_not_json_is_unreadable_to_the_sdk(
    emulator: EmulatorServer, phase: str
) -> None:
    _fault(emulator, malformed="not-json", phase=phase)
    _unreadable(emulator)
    assert _secret_count(emulator) == _expected_count(phase)


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"reset": True, "status": 503},
        {"reset": True, "code": "ServiceUnavailable"},
        {"reset": True, "retry_after_s": 2},
        {"reset": True, "malformed": True},
        {"reset": True, "status": 502, "body": "html"},
        {"malformed": True, "status": 500},
        {"malformed": "not-json", "retry_after_s": 1},
        {"malformed": "garbled"},
        {"body": "html"},
        {"body": "html", "status": 502, "code": "BadGateway"},
        {"body": "xml", "status": 502},
    ],
    ids=lambda fields: "+".join(f"{k}={v}" for k, v in fields.items()),
)
def test_conflicting_fault_fields_are_refused(
    emulator: EmulatorServer, fields: dict[str, Any]
) -> None:
    resp = _set_faults(emulator, [{"action": "*", **fields}])
    assert resp.status_code == 400, resp.text
    assert resp.json()["Code"] == "InvalidParameter"
    assert requests.get(f"{emulator.url}/_emulator/faults", timeout=5).json() == {"faults": []}


def test_new_fields_are_listed_and_combine_with_latency(emulator: EmulatorServer) -> None:
    faults: list[dict[str, Any]] = [
        {"action": "Decrypt", "reset": True, "latency_ms": 5, "rate": 0.5},
        {"action": "Encrypt", "status": 503, "body": "html", "phase": "after", "times": 2},
        {"action": "GenerateDataKey", "malformed": "not-json"},
    ]
    listed = _set_faults(emulator, faults).json()["faults"]
    assert [(f["reset"], f["body"], f["malformed"]) for f in listed] == [
        (True, "json", False),
        (False, "html", False),
        (False, "json", "not-json"),
    ]
