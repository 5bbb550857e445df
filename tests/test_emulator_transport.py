"""One port for three services, RPC parameters from the query or a form body, fault injection
and the loopback-only admin API."""

from __future__ import annotations

import io
import json
from collections import deque
from typing import Any

import pytest
import requests
import sdk_clients as sdk
from alibabacloud_eiam20211201 import models as eiam_models
from alibabacloud_eiam20211201.client import Client as EiamClient
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_tea_openapi import models as openapi
from alibabacloud_tea_openapi.client import Client as OpenApiClient
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from darabonba.runtime import RuntimeOptions

from infra.emulator import EmulatorServer, Seed
from shared.wire.rpc import rpc_params


def _generic(
    endpoint: str,
    action: str,
    version: str,
    *,
    query: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
    key: tuple[str, str] = sdk.FUNCTION,
) -> dict[str, Any]:
    params = rpc_params(action, version)
    request = openapi.OpenApiRequest(query=query, body=body)
    result: dict[str, Any] = OpenApiClient(sdk.config(endpoint, key)).call_api(
        params, request, RuntimeOptions()
    )
    return result


def _obtain(endpoint: str, read_timeout: int | None = None) -> object:
    config = sdk.config(endpoint, sdk.OPERATOR)
    if read_timeout:
        config.read_timeout = read_timeout
    request = eiam_models.ObtainApplicationClientSecretRequest(
        instance_id=sdk.INSTANCE, application_id="app_billing", secret_id="sct_billing_1"
    )
    return EiamClient(config).obtain_application_client_secret(request).body


def _set_faults(server: EmulatorServer, faults: list[dict[str, Any]]) -> requests.Response:
    return requests.put(f"{server.url}/_emulator/faults", json=faults, timeout=5)


def test_parameters_in_a_form_body_are_read(emulator: EmulatorServer) -> None:
    result = _generic(
        emulator.endpoint,
        "GenerateDataKey",
        "2016-01-20",
        body={"KeyId": "alias/vend-billing", "NumberOfBytes": 16},
    )
    assert result["body"]["KeyId"] == "key-billing"
    assert result["headers"]["content-type"].startswith("application/json")


def test_the_version_header_picks_the_service(emulator: EmulatorServer) -> None:
    who = _generic(emulator.endpoint, "GetCallerIdentity", "2015-04-01")
    assert who["body"]["Arn"].endswith(":user/vend-function")
    with pytest.raises(ClientException) as info:
        _generic(emulator.endpoint, "GetCallerIdentity", "2016-01-20")  # KMS has no such action
    assert (info.value.status_code, info.value.code) == (404, "InvalidAction.NotFound")
    with pytest.raises(ClientException) as info:
        _generic(emulator.endpoint, "GetCallerIdentity", "2099-01-01")
    assert (info.value.status_code, info.value.code) == (400, "InvalidVersion")


def test_injected_latency_makes_a_client_time_out(emulator: EmulatorServer) -> None:
    assert _set_faults(
        emulator, [{"action": "ObtainApplicationClientSecret", "latency_ms": 1500}]
    ).ok
    with pytest.raises(Exception, match=r"(?i)timed? ?out"):
        _obtain(emulator.endpoint, read_timeout=300)
    # Other actions are untouched.
    assert _generic(emulator.endpoint, "GetCallerIdentity", "2015-04-01")["statusCode"] == 200


def test_injected_server_error(emulator: EmulatorServer) -> None:
    _set_faults(
        emulator, [{"action": "*", "status": 503, "code": "ServiceUnavailable", "times": 1}]
    )
    with pytest.raises(ServerException) as info:
        _obtain(emulator.endpoint)
    assert (info.value.status_code, info.value.code) == (503, "ServiceUnavailable")
    assert _obtain(emulator.endpoint) is not None  # `times: 1` spent


def test_injected_throttling_with_retry_after(emulator: EmulatorServer) -> None:
    _set_faults(
        emulator,
        [
            {
                "action": "ObtainApplicationClientSecret",
                "status": 429,
                "code": "Throttling.User",
                "retry_after_s": 2,
            }
        ],
    )
    with pytest.raises(ThrottlingException) as info:
        _obtain(emulator.endpoint)
    assert info.value.code == "Throttling.User" and info.value.retry_after


def test_fault_with_rate_zero_never_fires(emulator: EmulatorServer) -> None:
    _set_faults(emulator, [{"action": "*", "status": 500, "code": "InternalError", "rate": 0.0}])
    for _ in range(5):
        assert _obtain(emulator.endpoint) is not None


def test_fault_after_the_action_loses_the_answer_not_the_effect(emulator: EmulatorServer) -> None:
    _set_faults(
        emulator,
        [
            {
                "action": "CreateApplicationClientSecret",
                "status": 503,
                "code": "ServiceUnavailable",
                "phase": "after",
                "times": 1,
            }
        ],
    )
    client = sdk.eiam(emulator.endpoint, sdk.OPERATOR)
    with pytest.raises(ServerException):
        client.create_application_client_secret(
            eiam_models.CreateApplicationClientSecretRequest(
                instance_id=sdk.INSTANCE, application_id="app_empty"
            )
        )
    listed = client.list_application_client_secrets(
        eiam_models.ListApplicationClientSecretsRequest(
            instance_id=sdk.INSTANCE, application_id="app_empty"
        )
    ).body
    assert listed.total_count == 1


def test_seed_faults_apply_from_the_start(demo_seed: Seed) -> None:
    data = demo_seed.model_dump(mode="json")
    data["faults"] = [
        {"action": "ObtainApplicationClientSecret", "status": 500, "code": "InternalError"}
    ]
    with EmulatorServer(Seed.model_validate(data)) as server, pytest.raises(ServerException):
        _obtain(server.endpoint)


def test_admin_api_lists_replaces_and_clears_faults(emulator: EmulatorServer) -> None:
    resp = _set_faults(emulator, [{"action": "Decrypt", "latency_ms": 5}])
    assert resp.status_code == 200
    listed = requests.get(f"{emulator.url}/_emulator/faults", timeout=5).json()["faults"]
    assert [(f["action"], f["latency_ms"]) for f in listed] == [("Decrypt", 5)]
    assert requests.delete(f"{emulator.url}/_emulator/faults", timeout=5).json() == {"faults": []}
    bad = _set_faults(emulator, [{"action": "Decrypt", "status": 200}])
    assert bad.status_code == 400
    assert requests.get(f"{emulator.url}/_emulator/health", timeout=5).json() == {"status": "ok"}


def test_admin_api_counts_calls_per_action(emulator: EmulatorServer) -> None:
    for _ in range(2):
        _generic(emulator.endpoint, "GetCallerIdentity", "2015-04-01")
    _obtain(emulator.endpoint)
    counts = requests.get(f"{emulator.url}/_emulator/calls", timeout=5).json()["calls"]
    assert counts == {"GetCallerIdentity": 2, "ObtainApplicationClientSecret": 1}


def test_admin_api_counts_every_call_since_start_not_just_the_history(
    emulator: EmulatorServer,
) -> None:
    # The history is bounded (10,000 calls); a benchmark's counts must not roll over with it.
    emulator.emulator.history = deque(maxlen=2)
    for _ in range(5):
        _generic(emulator.endpoint, "GetCallerIdentity", "2015-04-01")
    counts = requests.get(f"{emulator.url}/_emulator/calls", timeout=5).json()["calls"]
    assert counts["GetCallerIdentity"] == 5


@pytest.mark.parametrize(
    ("method", "path"), [("DELETE", "/_emulator/faults"), ("POST", "/_emulator/restart")]
)
def test_admin_api_refuses_callers_off_loopback(
    emulator: EmulatorServer, method: str, path: str
) -> None:
    creds = sts_models.AssumeRoleRequest(role_arn=sdk.ROLE_ARN, role_session_name="kept")
    key = sdk.sts(emulator.endpoint, sdk.FUNCTION).assume_role(creds).body.credentials
    seen: list[str] = []
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "REMOTE_ADDR": "10.1.2.3",
        "wsgi.input": io.BytesIO(b""),
        "CONTENT_LENGTH": "0",
    }
    body = b"".join(emulator.emulator(environ, lambda status, headers: seen.append(status)))
    assert seen[0].startswith("403") and json.loads(body)["Code"] == "Forbidden"
    assert emulator.emulator.account.key_secret(str(key.access_key_id)) is not None


def test_admin_restart_forgets_sessions_and_clears_faults(emulator: EmulatorServer) -> None:
    _set_faults(emulator, [{"action": "Decrypt", "latency_ms": 5}])
    request = sts_models.AssumeRoleRequest(role_arn=sdk.ROLE_ARN, role_session_name="gone")
    creds = sdk.sts(emulator.endpoint, sdk.FUNCTION).assume_role(request).body.credentials
    resp = requests.post(f"{emulator.url}/_emulator/restart", timeout=5)
    assert resp.status_code == 200
    assert resp.json()["restarted"] is True and resp.json()["sessions"] == 1
    assert requests.get(f"{emulator.url}/_emulator/faults", timeout=5).json() == {"faults": []}
    key = (str(creds.access_key_id), str(creds.access_key_secret))
    with pytest.raises(ClientException) as info:
        sdk.sts(emulator.endpoint, key, creds.security_token).get_caller_identity()
    assert (info.value.status_code, info.value.code) == (404, "InvalidAccessKeyId.NotFound")
    assert _generic(emulator.endpoint, "GetCallerIdentity", "2015-04-01")["statusCode"] == 200
