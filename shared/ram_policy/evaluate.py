"""Evaluation of parsed policies against a request."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from .model import Effect, Policy, RequestContext, Statement


class Decision(enum.Enum):
    ALLOW = "allow"
    EXPLICIT_DENY = "explicit_deny"
    IMPLICIT_DENY = "implicit_deny"


@dataclass(frozen=True)
class Result:
    """A decision with the statement (and its policy) that decided it, if any."""

    decision: Decision
    statement: Statement | None
    policy: Policy | None

    @property
    def allowed(self) -> bool:
        return self.decision is Decision.ALLOW


_IMPLICIT_DENY = Result(Decision.IMPLICIT_DENY, None, None)


def evaluate(policies: Sequence[Policy], ctx: RequestContext) -> Result:
    """Evaluate one permission set: any matching Deny wins, else any matching Allow, else deny.

    The deciding statement is the first matching Deny, else the first matching Allow.
    """
    allow: Result | None = None
    for policy in policies:
        for statement in policy.statements:
            if statement.effect is Effect.DENY:
                if statement.matches(ctx):
                    return Result(Decision.EXPLICIT_DENY, statement, policy)
            elif allow is None and statement.matches(ctx):
                allow = Result(Decision.ALLOW, statement, policy)
    return allow if allow is not None else _IMPLICIT_DENY


def evaluate_session(
    identity_policies: Sequence[Policy], session_policy: Policy | None, ctx: RequestContext
) -> Result:
    """Evaluate an STS session: the identity policies and the session policy must both allow.

    A session policy only narrows what the role grants. An explicit Deny in either set wins
    (the identity set's first). If the identity policies allow but the session policy does
    not, the result is an implicit deny with no statement and ``policy`` set to the session
    policy. When allowed, the deciding statement is the identity policies' Allow.
    """
    identity = evaluate(identity_policies, ctx)
    if session_policy is None or identity.decision is Decision.EXPLICIT_DENY:
        return identity
    session = evaluate([session_policy], ctx)
    if session.decision is Decision.EXPLICIT_DENY:
        return session
    if not identity.allowed:
        return identity
    if session.decision is Decision.IMPLICIT_DENY:
        return Result(Decision.IMPLICIT_DENY, None, session_policy)
    return identity
