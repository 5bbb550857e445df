"""STS AssumeRole and GetCallerIdentity, through the real STS client."""

from __future__ import annotations

import json

import pytest
import sdk_clients as sdk
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_tea_openapi.exceptions import ClientException

from infra.emulator import EmulatorServer, Seed


def _assume(
    endpoint: str, key: tuple[str, str] = sdk.FUNCTION, **kw: object
) -> sts_models.AssumeRoleResponseBody:
    fields: dict[str, object] = {"role_arn": sdk.ROLE_ARN, "role_session_name": "vend-test"}
    fields.update(kw)
    return sdk.sts(endpoint, key).assume_role(sts_models.AssumeRoleRequest(**fields)).body


def test_assume_role_returns_credentials_and_the_assumed_user(emulator: EmulatorServer) -> None:
    body = _assume(emulator.endpoint, duration_seconds=900)
    assert body.request_id
    assert body.assumed_role_user.arn == f"{sdk.ROLE_ARN}/vend-test"
    assert body.assumed_role_user.assumed_role_id.endswith(":vend-test")
    creds = body.credentials
    assert creds.access_key_id.startswith("STS.")
    assert creds.access_key_secret and creds.security_token
    assert creds.expiration.endswith("Z")


def test_caller_identity_of_a_user_and_of_an_assumed_role(emulator: EmulatorServer) -> None:
    user = sdk.sts(emulator.endpoint, sdk.BILLING).get_caller_identity().body
    assert (user.identity_type, user.account_id) == ("RAMUser", sdk.ACCOUNT)
    assert user.arn == f"acs:ram::{sdk.ACCOUNT}:user/billing"
    assert user.user_id and user.principal_id == user.user_id

    creds = _assume(emulator.endpoint).credentials
    role = (
        sdk.sts(
            emulator.endpoint, (creds.access_key_id, creds.access_key_secret), creds.security_token
        )
        .get_caller_identity()
        .body
    )
    assert role.identity_type == "AssumedRoleUser"
    assert role.arn == f"acs:ram::{sdk.ACCOUNT}:assumed-role/vend-eiam/vend-test"
    assert role.role_id and role.principal_id == f"{role.role_id}:vend-test"


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        pytest.param(
            {"role_session_name": "x"}, "InvalidParameter.RoleSessionName", id="name-too-short"
        ),
        pytest.param(
            {"role_session_name": "a" * 65}, "InvalidParameter.RoleSessionName", id="name-too-long"
        ),
        pytest.param(
            {"role_session_name": "has space"},
            "InvalidParameter.RoleSessionName",
            id="name-charset",
        ),
        pytest.param(
            {"duration_seconds": 899}, "InvalidParameter.DurationSeconds", id="duration-low"
        ),
        pytest.param(
            {"duration_seconds": 3601}, "InvalidParameter.DurationSeconds", id="duration-over-max"
        ),
        pytest.param(
            {"policy": "{not json"}, "InvalidParameter.PolicyGrammar", id="policy-not-json"
        ),
        pytest.param(
            {
                "policy": json.dumps(
                    {
                        "Version": "1",
                        "Statement": [{"Effect": "Allow", "Actions": "*", "Resource": "*"}],
                    }
                )
            },
            "InvalidParameter.PolicyGrammar",
            id="policy-unknown-element",
        ),
        pytest.param(
            {"policy": json.dumps(sdk.allow("eiam:*", ["x" * 2100]))},
            "InvalidParameter.PolicySize",
            id="policy-too-long",
        ),
    ],
)
def test_assume_role_validates_its_input(
    emulator: EmulatorServer, fields: dict[str, object], code: str
) -> None:
    with pytest.raises(ClientException) as info:
        _assume(emulator.endpoint, **fields)
    assert (info.value.status_code, info.value.code) == (400, code)


def test_duration_at_the_bounds_is_accepted(emulator: EmulatorServer) -> None:
    _assume(emulator.endpoint, duration_seconds=900)
    _assume(emulator.endpoint, duration_seconds=3600)


def test_policy_of_exactly_2048_characters_is_accepted(emulator: EmulatorServer) -> None:
    base = json.dumps(sdk.allow("eiam:ObtainApplicationClientSecret", ""))
    policy = json.dumps(sdk.allow("eiam:ObtainApplicationClientSecret", "a" * (2048 - len(base))))
    assert len(policy) == 2048
    _assume(emulator.endpoint, policy=policy)


def test_caller_not_trusted_by_the_role_is_refused(emulator: EmulatorServer) -> None:
    # The operator may do eiam:* but has no sts:AssumeRole and is not in the trust policy.
    with pytest.raises(ClientException) as info:
        _assume(emulator.endpoint, sdk.OPERATOR)
    assert (info.value.status_code, info.value.code) == (403, "NoPermission")


def test_trusted_caller_without_its_own_permission_is_refused(demo_seed: Seed) -> None:
    data = demo_seed.model_dump(mode="json")
    data["users"][0]["policies"] = [sdk.allow("kms:GenerateDataKey", "*")]
    with (
        EmulatorServer(Seed.model_validate(data)) as server,
        pytest.raises(ClientException) as info,
    ):
        _assume(server.endpoint)
    assert info.value.code == "NoPermission"


def test_unknown_role_is_not_found(emulator: EmulatorServer) -> None:
    with pytest.raises(ClientException) as info:
        _assume(emulator.endpoint, role_arn=f"acs:ram::{sdk.ACCOUNT}:role/nobody")
    assert (info.value.status_code, info.value.code) == (404, "EntityNotExist.Role")
