"""Resource names, built only from IDs that `shared.models` has validated: an ID cannot carry a
`*`, `?`, `/` or `:`, so it can never widen an ARN or the session policy built from it."""

from __future__ import annotations

import json
import re
from typing import Literal

Action = Literal["obtain", "create"]

EIAM_ACTIONS: dict[Action, str] = {
    "obtain": "eiam:ObtainApplicationClientSecret",
    "create": "eiam:CreateApplicationClientSecret",
}
# Only a create lists (to recover a lost answer), on the ARN it creates on: RAM authorizes List on
# the resource type Secret, `.../application/{id}/secret/*` (the API reference).
EIAM_LIST = "eiam:ListApplicationClientSecrets"

_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _check(*ids: str) -> None:
    for value in ids:
        if not _ID.fullmatch(value):
            raise ValueError(f"not a valid ID: {value!r}")


def application_arn(region: str, account: str, instance_id: str, application_id: str) -> str:
    _check(instance_id, application_id)
    return f"acs:eiam:{region}:{account}:instance/{instance_id}/application/{application_id}"


def secret_arn(
    region: str, account: str, instance_id: str, application_id: str, secret_id: str | None
) -> str:
    """The secret's ARN; for `create` (no secret yet) the contract's `.../secret/*`."""
    base = application_arn(region, account, instance_id, application_id)
    if secret_id is None:
        return f"{base}/secret/*"
    _check(secret_id)
    return f"{base}/secret/{secret_id}"


def kms_key_arn(region: str, account: str, key_id: str) -> str:
    return f"acs:kms:{region}:{account}:key/{key_id}"


def session_policy(eiam_action: str, resource: str) -> str:
    """The inline STS session policy: exactly one action on exactly one resource."""
    return json.dumps(
        {
            "Version": "1",
            "Statement": [{"Effect": "Allow", "Action": [eiam_action], "Resource": [resource]}],
        },
        separators=(",", ":"),
    )
