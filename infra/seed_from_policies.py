"""An emulator seed whose RAM policies are the deployed ones: the files of `infra/policies/`,
filled as `infra/terraform/` fills them, in place of the hand-written policies of the demo world.

Locally there is no Function Compute, so the function's identity is a RAM user (`vend-function`)
rather than a role that FC assumes: the vending role's trust policy names that user where the
cloud names the function's role (the `function_principal` variable of `vend-eiam-trust.json`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from infra.emulator import Seed, parse_seed
from infra.policies import load_policy
from shared.arns import kms_key_arn

FUNCTION_USER = "vend-function"
VENDING_ROLE = "vend-eiam"
DEFAULT_KEY = "key-default"
STORE_PASSWORD_KEY = "key-store-password"  # Terraform's alicloud_kms_key.store_password
INSTANCE_ID = "idaas_demo"
DEMO_CALLERS: Mapping[str, str] = {"billing": "key-billing", "reports": "key-reports"}
"""The demo world's callers (RAM users of examples/seed.yaml) and their recipient keys."""


def rotation_function_arn(region: str, account_id: str) -> str:
    """The rotation schedule's function, as infra/terraform/main.tf names it."""
    return f"acs:fc:{region}:{account_id}:functions/vend-rotation"


def seed_with_infra_policies(
    base: Seed,
    *,
    callers: Mapping[str, str] = DEMO_CALLERS,
    instance_id: str = INSTANCE_ID,
    default_key: str = DEFAULT_KEY,
    store_password_key: str = STORE_PASSWORD_KEY,
) -> Seed:
    """`base` with the function user's policies, the vending role's trust policy and policies,
    and each caller's policies replaced by the filled `infra/policies/` documents.

    `callers` maps a caller's user name to its recipient key id. Every other identity (an
    operator, say) is kept as it is. A user, role or key that `base` lacks is a ValueError.
    """
    account, region = base.account_id, base.region
    function_arn = f"acs:ram::{account}:user/{FUNCTION_USER}"
    role_arn = f"acs:ram::{account}:role/{VENDING_ROLE}"
    key_ids = {k.key_id for k in base.kms_keys}
    wanted_keys = [default_key, *callers.values()]
    for key_id in [*wanted_keys, store_password_key]:
        if key_id not in key_ids:
            raise ValueError(f"the seed has no KMS key {key_id}")

    users: dict[str, list[dict[str, Any]]] = {
        FUNCTION_USER: [
            load_policy(
                "fc-function",
                vending_role_arn=role_arn,
                data_key_arns=list(
                    dict.fromkeys(kms_key_arn(region, account, k) for k in wanted_keys)
                ),
                rotation_function_arn=rotation_function_arn(region, account),
                store_password_key_arn=kms_key_arn(region, account, store_password_key),
            )
        ],
    }
    for name, key_id in callers.items():
        users[name] = [load_policy("caller-decrypt", key_arn=kms_key_arn(region, account, key_id))]

    data = base.model_dump(mode="json")
    seen_users = set()
    for user in data["users"]:
        if user["name"] in users:
            user["policies"] = users[user["name"]]
            seen_users.add(user["name"])
    missing = sorted(set(users) - seen_users)
    if missing:
        raise ValueError(f"the seed has no user(s) {', '.join(missing)}")
    for role in data["roles"]:
        if role["name"] == VENDING_ROLE:
            role["trust_policy"] = load_policy("vend-eiam-trust", function_principal=function_arn)
            role["policies"] = [
                load_policy("vend-eiam", region=region, account_id=account, instance_id=instance_id)
            ]
            break
    else:
        raise ValueError(f"the seed has no role {VENDING_ROLE}")
    return parse_seed(data)
