"""STS 2015-04-01: AssumeRole and GetCallerIdentity."""

from __future__ import annotations

import re
from typing import Any

from shared.ram_policy import PolicyError

from .call import Call, Handler
from .errors import ApiError
from .iam import Account, parse_session_policy

VERSION = "2015-04-01"
_SESSION_NAME = re.compile(r"[A-Za-z0-9._@-]{2,64}")
MAX_POLICY_CHARS = 2048


class Sts:
    def __init__(self, account: Account) -> None:
        self.account = account
        self.actions: dict[str, Handler] = {
            "AssumeRole": self.assume_role,
            "GetCallerIdentity": self.get_caller_identity,
        }

    def assume_role(self, call: Call) -> dict[str, Any]:
        role_arn = call.required("RoleArn")
        session_name = call.required("RoleSessionName")
        if not _SESSION_NAME.fullmatch(session_name):
            raise ApiError(
                400,
                "InvalidParameter.RoleSessionName",
                "RoleSessionName must be 2 to 64 of A-Z a-z 0-9 . @ - _.",
            )
        role = self.account.role(role_arn)
        duration = call.optional_int("DurationSeconds") or 3600
        if not 900 <= duration <= role.max_session_duration:
            raise ApiError(
                400,
                "InvalidParameter.DurationSeconds",
                f"DurationSeconds must be 900 to {role.max_session_duration}.",
            )
        policy_text = call.optional("Policy")
        session_policy = None
        if policy_text is not None:
            if len(policy_text) > MAX_POLICY_CHARS:
                raise ApiError(
                    400, "InvalidParameter.PolicyLength", "Policy is longer than 2048 characters."
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
