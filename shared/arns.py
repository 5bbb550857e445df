"""Resource names, built only from IDs that `shared.models` has validated: an ID cannot carry a
`*`, `?`, `/` or `:`, so it can never widen an ARN or the session policy built from it."""

from __future__ import annotations

import json
from typing import Literal

from shared.wire.arns import application_arn, secret_arn

__all__ = [
    "EIAM_ACTIONS",
    "EIAM_DELETE",
    "EIAM_DISABLE",
    "EIAM_LIST",
    "ROTATION_ACTIONS",
    "RUN_DOCTOR",
    "RUN_DOCTOR_RESOURCE",
    "SERVICE_ACTIONS",
    "Action",
    "application_arn",
    "kms_key_arn",
    "secret_arn",
    "session_policy",
]

Action = Literal["obtain", "create", "current"]

# The action each request is approved for. The current secret is an obtain of a secret not named
# yet (contract section 14): approved on `.../secret/*`, every secret of the application.
EIAM_ACTIONS: dict[Action, str] = {
    "obtain": "eiam:ObtainApplicationClientSecret",
    "create": "eiam:CreateApplicationClientSecret",
    "current": "eiam:ObtainApplicationClientSecret",
}
# A create lists (to recover a lost answer), and the current secret is chosen from the listing;
# both on `.../application/{id}/secret/*`: RAM authorizes List on the resource type Secret (the
# API reference; infra/ASSUMPTIONS.md I9).
EIAM_LIST = "eiam:ListApplicationClientSecrets"
# Rotation's steps (contract section 14): the approval policy decides each on `.../secret/*`;
# the session of a disable or a delete is scoped to the one secret it acts on.
EIAM_DISABLE = "eiam:DisableApplicationClientSecret"
EIAM_DELETE = "eiam:DeleteApplicationClientSecret"
ROTATION_ACTIONS = {
    "create": EIAM_ACTIONS["create"],
    "disable": EIAM_DISABLE,
    "delete": EIAM_DELETE,
}
# The service's own action (contract section 5): who may run the deployment checks over events.
# It names no resource of a cloud service, so the approval policy decides it on `*`.
RUN_DOCTOR = "vend:RunDoctor"
RUN_DOCTOR_RESOURCE = "*"
SERVICE_ACTIONS = (RUN_DOCTOR,)


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
