"""Who is calling: the result of authentication, in the two forms the service needs."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.ram_policy import Principal


@dataclass(frozen=True)
class Caller:
    """`name` is the principal string of the contract: a RAM ARN (assumed roles normalized to the
    role) or `jwt:{sub}@{issuer_name}`. It goes into the envelope's encryption context and the
    audit record. `policy_principal` is what the approval policy's `Principal` is matched with."""

    name: str
    policy_principal: Principal

    @classmethod
    def ram(cls, arn: str, account_id: str) -> Caller:
        return cls(arn, Principal(type="RAM", id=arn, account_id=account_id))

    @classmethod
    def jwt(cls, subject: str, issuer_name: str) -> Caller:
        return cls(
            f"jwt:{subject}@{issuer_name}", Principal(type="JWT", id=f"{subject}@{issuer_name}")
        )


_ASSUMED = re.compile(r"acs:ram::([0-9]{16}):assumed-role/([A-Za-z0-9.@_-]{1,64})/[^/]+")
_RAM_ARN = re.compile(r"acs:ram::([0-9]{16}):(user|role)/[A-Za-z0-9.@_-]{1,64}")


def normalize_ram_arn(arn: str) -> tuple[str, str]:
    """(principal ARN, account) for an ARN that STS GetCallerIdentity reported: an assumed-role
    session becomes its role, so that policies name roles, not sessions."""
    match = _ASSUMED.fullmatch(arn)
    if match:
        return f"acs:ram::{match[1]}:role/{match[2]}", match[1]
    match = _RAM_ARN.fullmatch(arn)
    if match:
        return arn, match[1]
    raise ValueError("not a RAM user, role or assumed-role ARN")
