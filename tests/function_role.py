"""The function's identity as FC gives it in the cloud: a role, whose temporary keys FC obtains
with AssumeRole and hands to the instance (its environment at start, then every request's
headers or context). The demo world's deployed policies, but the function is the role
`vend-function-role` instead of the user `vend-function`, and `fc-platform`, a user standing in
for FC itself, assumes it (the cloud's trust names the service fc.aliyuncs.com, which the
emulator has no caller for)."""

from __future__ import annotations

import pytest
import requests
import sdk_clients as sdk
from alibabacloud_sts20150401 import models as sts_models

from infra.emulator import EmulatorServer, Seed, parse_seed
from infra.policies import load_policy
from shared.wire.credentials import Credentials

FUNCTION_ROLE = "vend-function-role"
FUNCTION_ROLE_ARN = f"acs:ram::{sdk.ACCOUNT}:role/{FUNCTION_ROLE}"
FC_PLATFORM = ("LTAI5tFcPlatform00001", "demo-fc-platform-secret-0001")
THE_ROLE = f"acs:ram::{sdk.ACCOUNT}:assumed-role/{FUNCTION_ROLE}/"  # + the session's name
FC_ITSELF = f"acs:ram::{sdk.ACCOUNT}:user/fc-platform"
# STS's shortest session: FC's own last 36 hours (infra/ASSUMPTIONS.md F34).
SHORTEST_S = 900


def function_role_seed(demo: Seed) -> Seed:
    """`demo` (the deployed policies) with the function as a role: the vending role trusts that
    role alone, as it does in the cloud, so only the role's keys can assume it."""
    data = demo.model_dump(mode="json")
    function_user = next(u for u in data["users"] if u["name"] == "vend-function")
    data["users"].append(
        {
            "name": "fc-platform",
            "access_key_id": FC_PLATFORM[0],
            "access_key_secret": FC_PLATFORM[1],
            "policies": [sdk.allow("sts:AssumeRole", FUNCTION_ROLE_ARN)],
        }
    )
    data["roles"].append(
        {
            "name": FUNCTION_ROLE,
            "max_session_duration": 3600,
            "trust_policy": {
                "Version": "1",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "sts:AssumeRole",
                        "Principal": {"RAM": [f"acs:ram::{sdk.ACCOUNT}:user/fc-platform"]},
                    }
                ],
            },
            "policies": function_user["policies"],
        }
    )
    for role in data["roles"]:
        if role["name"] == "vend-eiam":
            role["trust_policy"] = load_policy(
                "vend-eiam-trust", function_principal=FUNCTION_ROLE_ARN
            )
    return parse_seed(data)


def fc_hands_over(emulator: EmulatorServer, session: str = "fc-instance") -> Credentials:
    """A fresh set of the function role's keys, as FC obtains them, lasting SHORTEST_S."""
    request = sts_models.AssumeRoleRequest(
        role_arn=FUNCTION_ROLE_ARN, role_session_name=session, duration_seconds=SHORTEST_S
    )
    got = sdk.sts(emulator.endpoint, FC_PLATFORM).assume_role(request).body.credentials
    return Credentials(got.access_key_id, got.access_key_secret, got.security_token)


def as_headers(creds: Credentials) -> dict[str, str]:
    """The set as FC's front end sends it to a custom runtime."""
    return {
        "x-fc-access-key-id": creds.access_key_id,
        "x-fc-access-key-secret": creds.access_key_secret,
        "x-fc-security-token": creds.security_token or "",
    }


def as_environment(creds: Credentials) -> dict[str, str]:
    """The set as FC puts it in the environment of an instance when it starts."""
    return {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": creds.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": creds.access_key_secret,
        "ALIBABA_CLOUD_SECURITY_TOKEN": creds.security_token or "",
    }


def expire(emulator: EmulatorServer, started_with: Credentials) -> None:
    """Moves the emulator's clock past the keys the instance started with (and past the
    vending role's sessions it holds, which last as long)."""
    answer = requests.put(
        f"{emulator.url}/_emulator/clock", json={"advance_s": SHORTEST_S + 60}, timeout=10
    )
    assert answer.status_code == 200, answer.text
    key = (started_with.access_key_id, started_with.access_key_secret)
    lapsed = sdk.sts(emulator.endpoint, key, started_with.security_token)
    with pytest.raises(Exception, match=r"InvalidSecurityToken\.Expired"):
        lapsed.get_caller_identity()


def signers(emulator: EmulatorServer, action: str) -> set[str]:
    """Who signed each call of `action` the emulator answered OK."""
    return {who for _, who, outcome in emulator.emulator.calls(action) if outcome == "OK"}
