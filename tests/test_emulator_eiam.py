"""EIAM client secrets through the real EIAM client: the API, its quota and bounds, RAM on the
secret ARN, and a state file that survives a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import sdk_clients as sdk
from alibabacloud_eiam20211201 import models as eiam_models
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_tea_openapi.exceptions import ClientException

from infra.emulator import EmulatorServer, Seed

DAY_MS = 86_400_000


def _obtain(
    endpoint: str,
    key: tuple[str, str] = sdk.OPERATOR,
    token: str | None = None,
    *,
    app: str = "app_billing",
    secret: str = "sct_billing_1",
    instance: str = sdk.INSTANCE,
) -> eiam_models.ObtainApplicationClientSecretResponseBody:
    request = eiam_models.ObtainApplicationClientSecretRequest(
        instance_id=instance, application_id=app, secret_id=secret
    )
    return sdk.eiam(endpoint, key, token).obtain_application_client_secret(request).body


def _create(
    endpoint: str,
    app: str = "app_empty",
    expiration: int | None = None,
    key: tuple[str, str] = sdk.OPERATOR,
    token: str | None = None,
) -> eiam_models.CreateApplicationClientSecretResponseBody:
    request = eiam_models.CreateApplicationClientSecretRequest(
        instance_id=sdk.INSTANCE, application_id=app, expiration_time=expiration
    )
    return sdk.eiam(endpoint, key, token).create_application_client_secret(request).body


def _list(
    endpoint: str, app: str
) -> list[eiam_models.ListApplicationClientSecretsResponseBodyApplicationClientSecrets]:
    request = eiam_models.ListApplicationClientSecretsRequest(
        instance_id=sdk.INSTANCE, application_id=app
    )
    return (
        sdk.eiam(endpoint, sdk.OPERATOR)
        .list_application_client_secrets(request)
        .body.application_client_secrets
    )


def _scoped(endpoint: str, action: str, resource: str) -> tuple[tuple[str, str], str]:
    request = sts_models.AssumeRoleRequest(
        role_arn=sdk.ROLE_ARN,
        role_session_name="scoped",
        duration_seconds=900,
        policy=json.dumps(sdk.allow(action, resource)),
    )
    creds = sdk.sts(endpoint, sdk.FUNCTION).assume_role(request).body.credentials
    return (creds.access_key_id, creds.access_key_secret), creds.security_token


def _client_error(call: object) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()  # type: ignore[operator]
    return info.value


def test_obtain_returns_the_secret_with_the_sdk_fields(emulator: EmulatorServer) -> None:
    body = _obtain(emulator.endpoint)
    s = body.application_client_secret
    assert body.request_id
    assert (s.instance_id, s.application_id, s.client_id, s.secret_id, s.status) == (
        sdk.INSTANCE,
        "app_billing",
        "app_billing",
        "sct_billing_1",
        "enabled",
    )
    assert s.client_secret == "CSdemoBillingSecretValue0000000000000001"
    assert s.expiration_time is None and s.last_used_time is None


def test_client_id_defaults_to_the_application_id(emulator: EmulatorServer) -> None:
    s = _obtain(
        emulator.endpoint, app="app_reports", secret="sct_reports_1"
    ).application_client_secret
    assert s.client_id == "app_reports"


@pytest.mark.parametrize(
    ("where", "code"),
    [
        pytest.param({"instance": "idaas_nope"}, "EntityNotExists.Instance", id="instance"),
        pytest.param({"app": "app_nope"}, "EntityNotExists.Application", id="application"),
        pytest.param({"secret": "sct_nope"}, "EntityNotExists.Secret", id="secret"),
    ],
)
def test_unknown_entities_are_404(
    emulator: EmulatorServer, where: dict[str, str], code: str
) -> None:
    err = _client_error(lambda: _obtain(emulator.endpoint, **where))
    assert (err.status_code, err.code) == (404, code)


def test_ids_that_could_widen_an_arn_are_refused(emulator: EmulatorServer) -> None:
    err = _client_error(lambda: _obtain(emulator.endpoint, secret="*"))
    assert (err.status_code, err.code) == (400, "InvalidParameter")


def test_create_makes_a_strong_secret_and_obtain_returns_it(emulator: EmulatorServer) -> None:
    created = _create(emulator.endpoint).application_client_secret
    assert created.secret_id.startswith("sci_") and created.client_id == "app_empty"
    assert len(created.client_secret) >= 32
    again = _obtain(
        emulator.endpoint, app="app_empty", secret=created.secret_id
    ).application_client_secret
    assert again.client_secret == created.client_secret
    assert (
        created.client_secret != _create(emulator.endpoint).application_client_secret.client_secret
    )


def test_third_secret_exceeds_the_quota(emulator: EmulatorServer) -> None:
    _create(emulator.endpoint)
    _create(emulator.endpoint)
    err = _client_error(lambda: _create(emulator.endpoint))
    assert err.status_code == 400 and err.code.startswith("QuotaExceeded")
    assert len(_list(emulator.endpoint, "app_empty")) == 2


def _secret_call(endpoint: str, action: str, app: str, secret_id: str) -> None:
    request = getattr(eiam_models, f"{action}ApplicationClientSecretRequest")(
        instance_id=sdk.INSTANCE, application_id=app, secret_id=secret_id
    )
    client = sdk.eiam(endpoint, sdk.OPERATOR)
    getattr(client, f"{action.lower()}_application_client_secret")(request)


def test_the_quota_counts_disabled_secrets(emulator: EmulatorServer) -> None:
    """Rotation's R4 rests on it: a disabled secret still takes one of the two places."""
    first = _create(emulator.endpoint).application_client_secret.secret_id
    _create(emulator.endpoint)
    _secret_call(emulator.endpoint, "Disable", "app_empty", first)
    err = _client_error(lambda: _create(emulator.endpoint))
    assert err.status_code == 400 and err.code.startswith("QuotaExceeded")
    _secret_call(emulator.endpoint, "Delete", "app_empty", first)
    assert _create(emulator.endpoint).application_client_secret.secret_id


def test_disable_twice_is_disabled_and_delete_twice_is_not_found(
    emulator: EmulatorServer,
) -> None:
    """What rotation sends again after a lost answer: a second disable answers as the first (the
    metadata's empty 200), a second delete finds nothing (404), and so does a disable of it."""
    made = _create(emulator.endpoint).application_client_secret.secret_id
    _secret_call(emulator.endpoint, "Disable", "app_empty", made)
    _secret_call(emulator.endpoint, "Disable", "app_empty", made)
    assert [s.status for s in _list(emulator.endpoint, "app_empty")] == ["disabled"]
    _secret_call(emulator.endpoint, "Delete", "app_empty", made)
    for action in ("Delete", "Disable"):
        err = _client_error(
            lambda action=action: _secret_call(emulator.endpoint, action, "app_empty", made)
        )
        assert (err.status_code, err.code) == (404, "EntityNotExists.Secret")
    assert _list(emulator.endpoint, "app_empty") == []


@pytest.mark.parametrize(
    ("offset_ms", "ok"),
    [
        pytest.param(DAY_MS + 60_000, True, id="just-over-a-day"),
        pytest.param(3 * 365 * DAY_MS - 60_000, True, id="just-under-3-years"),
        pytest.param(DAY_MS // 2, False, id="half-a-day"),
        pytest.param(4 * 365 * DAY_MS, False, id="4-years"),
        pytest.param(-DAY_MS, False, id="past"),
    ],
)
def test_expiration_time_bounds(emulator: EmulatorServer, offset_ms: int, ok: bool) -> None:
    expiration = int(time.time() * 1000) + offset_ms
    if ok:
        created = _create(emulator.endpoint, expiration=expiration).application_client_secret
        got = _obtain(emulator.endpoint, app="app_empty", secret=created.secret_id)
        assert got.application_client_secret.expiration_time == expiration
    else:
        err = _client_error(lambda: _create(emulator.endpoint, expiration=expiration))
        assert (err.status_code, err.code) == (400, "InvalidParameter.ExpirationTime")


def test_list_masks_secrets_and_lifecycle_actions_work(emulator: EmulatorServer) -> None:
    created = _create(emulator.endpoint, app="app_billing").application_client_secret
    listed = {s.secret_id: s for s in _list(emulator.endpoint, "app_billing")}
    assert set(listed) == {"sct_billing_1", created.secret_id}
    assert created.client_secret not in {s.client_secret for s in listed.values()}
    client = sdk.eiam(emulator.endpoint, sdk.OPERATOR)
    ids = {
        "instance_id": sdk.INSTANCE,
        "application_id": "app_billing",
        "secret_id": created.secret_id,
    }
    client.disable_application_client_secret(
        eiam_models.DisableApplicationClientSecretRequest(**ids)
    )
    assert (
        _obtain(emulator.endpoint, secret=created.secret_id).application_client_secret.status
        == "disabled"
    )
    client.enable_application_client_secret(eiam_models.EnableApplicationClientSecretRequest(**ids))
    assert (
        _obtain(emulator.endpoint, secret=created.secret_id).application_client_secret.status
        == "enabled"
    )
    client.delete_application_client_secret(eiam_models.DeleteApplicationClientSecretRequest(**ids))
    assert [s.secret_id for s in _list(emulator.endpoint, "app_billing")] == ["sct_billing_1"]


def test_caller_without_eiam_permission_is_forbidden(emulator: EmulatorServer) -> None:
    err = _client_error(lambda: _obtain(emulator.endpoint, sdk.BILLING))
    assert (err.status_code, err.code) == (403, "Forbidden.RAM")


def test_session_policy_for_one_secret_lets_exactly_that_secret_through(
    emulator: EmulatorServer,
) -> None:
    _create(emulator.endpoint, app="app_billing")  # a sibling secret that must stay out of reach
    key, token = _scoped(
        emulator.endpoint,
        "eiam:ObtainApplicationClientSecret",
        sdk.secret_arn("app_billing", "sct_billing_1"),
    )
    assert (
        _obtain(emulator.endpoint, key, token).application_client_secret.secret_id
        == "sct_billing_1"
    )
    sibling = _list(emulator.endpoint, "app_billing")[-1].secret_id
    for where in ({"secret": sibling}, {"app": "app_reports", "secret": "sct_reports_1"}):
        err = _client_error(lambda w=where: _obtain(emulator.endpoint, key, token, **w))  # type: ignore[misc]
        assert (err.status_code, err.code) == (403, "Forbidden.RAM")
    # The session allows Obtain only: Create on the same application is refused.
    err = _client_error(lambda: _create(emulator.endpoint, "app_billing", key=key, token=token))
    assert err.code == "Forbidden.RAM"


def test_create_is_authorized_on_the_secret_wildcard_arn(emulator: EmulatorServer) -> None:
    key, token = _scoped(
        emulator.endpoint, "eiam:CreateApplicationClientSecret", sdk.secret_arn("app_empty", "*")
    )
    assert _create(emulator.endpoint, key=key, token=token).application_client_secret.secret_id
    err = _client_error(lambda: _create(emulator.endpoint, "app_reports", key=key, token=token))
    assert err.code == "Forbidden.RAM"


@pytest.mark.parametrize(
    ("resource", "allowed"),
    [
        (sdk.secret_arn("app_billing", "*"), True),
        # The application's own ARN is not what RAM checks List on (resource type Secret).
        (sdk.secret_arn("app_billing", "*").removesuffix("/secret/*"), False),
        (sdk.secret_arn("app_empty", "*"), False),
    ],
)
def test_list_is_authorized_on_the_applications_secrets(
    emulator: EmulatorServer, resource: str, allowed: bool
) -> None:
    key, token = _scoped(emulator.endpoint, "eiam:ListApplicationClientSecrets", resource)
    request = eiam_models.ListApplicationClientSecretsRequest(
        instance_id=sdk.INSTANCE, application_id="app_billing"
    )
    listing = lambda: sdk.eiam(emulator.endpoint, key, token).list_application_client_secrets(  # noqa: E731
        request
    )
    if allowed:
        assert listing().body.application_client_secrets
    else:
        assert _client_error(listing).code == "Forbidden.RAM"


def test_wide_session_policy_cannot_exceed_the_role(emulator: EmulatorServer) -> None:
    key, token = _scoped(emulator.endpoint, "*", "*")
    assert _obtain(emulator.endpoint, key, token).application_client_secret.client_secret
    # The role covers idaas_demo only; the session's "*" does not widen it.
    err = _client_error(
        lambda: _obtain(
            emulator.endpoint,
            key,
            token,
            instance="idaas_other",
            app="app_other",
            secret="sct_other_1",
        )
    )
    assert err.code == "Forbidden.RAM"
    # Nor to an action the role lacks (it may disable and delete for rotation, never enable).
    err = _client_error(
        lambda: sdk.eiam(emulator.endpoint, key, token).enable_application_client_secret(
            eiam_models.EnableApplicationClientSecretRequest(
                instance_id=sdk.INSTANCE, application_id="app_billing", secret_id="sct_billing_1"
            )
        )
    )
    assert err.code == "Forbidden.RAM"


def test_state_file_keeps_secrets_across_a_restart(demo_seed: Seed, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with EmulatorServer(demo_seed, state_path=state) as first:
        created = _create(first.endpoint).application_client_secret
    assert oct(state.stat().st_mode & 0o777) == "0o600"
    with EmulatorServer(demo_seed, state_path=state) as second:
        got = _obtain(
            second.endpoint, app="app_empty", secret=created.secret_id
        ).application_client_secret
        assert got.client_secret == created.client_secret
    with EmulatorServer(demo_seed) as fresh:
        err = _client_error(
            lambda: _obtain(fresh.endpoint, app="app_empty", secret=created.secret_id)
        )
        assert err.code == "EntityNotExists.Secret"
