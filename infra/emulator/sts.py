"""STS 2015-04-01: AssumeRole and GetCallerIdentity."""

from __future__ import annotations

import re
from typing import Any

from shared.ram_policy import PolicyError

from .call import Call, Handler
from .errors import ActionErrors, ApiError
from .iam import Account, parse_session_policy

VERSION = "2015-04-01"
_SESSION_NAME = re.compile(r"[A-Za-z0-9._@-]{2,64}")
# acs:ram::{account}:role/{name}; whether that role exists is EntityNotExist.Role's business.
_ROLE_ARN = re.compile(r"acs:ram::[0-9]+:role/[A-Za-z0-9._-]{1,64}", re.IGNORECASE)
# "The size of Policy must be smaller than 2048 bytes" (the metadata); a policy of exactly
# 2,048 bytes is accepted, as the API reference's "up to 2,048" reads.
MAX_POLICY_BYTES = 2048

# The codes each action answers itself, with their HTTP status, beyond the gateway's
# (errors.GATEWAY_CODES): every one is listed for that action in
# infra/api-metadata/sts-2015-04-01.json, and tests/test_emulator_fidelity.py checks that this
# table, the metadata and the `ApiError`s this module can reach agree.
ERRORS: ActionErrors = {
    "AssumeRole": {
        "InvalidParameter.RoleArn": 400,
        "InvalidParameter.RoleSessionName": 400,
        "InvalidParameter.DurationSeconds": 400,
        "InvalidParameter.PolicySize": 400,
        "InvalidParameter.PolicyGrammar": 400,
        "NoPermission": 403,
        "EntityNotExist.Role": 404,
    },
    "GetCallerIdentity": {},
}
# Codes of ERRORS that the metadata does not list for the action (see DEVIATIONS.md): none.
UNLISTED: dict[str, frozenset[str]] = {}


class Sts:
    def __init__(self, account: Account) -> None:
        self.account = account
        self.actions: dict[str, Handler] = {
            "AssumeRole": self.assume_role,
            "GetCallerIdentity": self.get_caller_identity,
        }

    def assume_role(self, call: Call) -> dict[str, Any]:
        role_arn = call.required("RoleArn")
        if not _ROLE_ARN.fullmatch(role_arn):
            raise ApiError(
                400,
                "InvalidParameter.RoleArn",
                "RoleArn must look like acs:ram::{account}:role/{name}.",
            )
        session_name = call.required("RoleSessionName")
        if not _SESSION_NAME.fullmatch(session_name):
            raise ApiError(
                400,
                "InvalidParameter.RoleSessionName",
                "RoleSessionName must be 2 to 64 of A-Z a-z 0-9 . @ - _.",
            )
        role = self.account.role(role_arn)
        duration = _duration_seconds(call.optional("DurationSeconds"))
        if not 900 <= duration <= role.max_session_duration:
            raise ApiError(
                400,
                "InvalidParameter.DurationSeconds",
                f"DurationSeconds must be 900 to {role.max_session_duration}.",
            )
        policy_text = call.optional("Policy")
        session_policy = None
        if policy_text is not None:
            if len(policy_text.encode("utf-8")) > MAX_POLICY_BYTES:
                raise ApiError(
                    400,
                    "InvalidParameter.PolicySize",
                    f"The size of Policy must be at most {MAX_POLICY_BYTES} bytes.",
                )
            try:
                session_policy = parse_session_policy(policy_text)
            except PolicyError as exc:
                raise ApiError(400, "InvalidParameter.PolicyGrammar", str(exc)) from None
        if not self.account.may_assume(call.identity, role, call.conditions):
            raise ApiError(
                403,
                "NoPermission",
                f"You are not authorized to assume the role {role.arn}: "
                "check the caller's sts:AssumeRole permission and the role's trust policy.",
            )
        session = self.account.issue_session(role, session_name, duration, session_policy)
        return {
            "AssumedRoleUser": {
                "Arn": f"{role.arn}/{session_name}",
                "AssumedRoleId": session.identity.principal_id,
            },
            "Credentials": {
                "AccessKeyId": session.access_key_id,
                "AccessKeySecret": session.access_key_secret,
                "SecurityToken": session.security_token,
                "Expiration": self.account.clock.iso(session.expires_at),
            },
        }

    def get_caller_identity(self, call: Call) -> dict[str, Any]:
        who = call.identity
        body: dict[str, Any] = {
            "AccountId": who.account_id,
            "Arn": who.arn,
            "IdentityType": who.type,
            "PrincipalId": who.principal_id,
        }
        if who.user_id:
            body["UserId"] = who.user_id
        if who.role_id:
            body["RoleId"] = who.role_id
        return body


def _duration_seconds(text: str | None) -> int:
    """DurationSeconds, 3600 if absent; a value that is no integer is STS's own
    InvalidParameter.DurationSeconds (the range is checked against the role by the caller)."""
    if text is None:
        return 3600
    try:
        return int(text)
    except ValueError:
        raise ApiError(
            400, "InvalidParameter.DurationSeconds", "DurationSeconds must be an integer."
        ) from None
