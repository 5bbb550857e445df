"""Who is calling: the result of authentication, in the two forms the service needs."""

from __future__ import annotations

from dataclasses import dataclass

from shared.ram_policy import Principal


@dataclass(frozen=True)
class Caller:
    """`name` is the principal string of the contract: a RAM ARN (assumed roles normalized to the
    role) or `jwt:{sub}@{issuer_name}`, or `service:{name}` for the service acting on its own
    schedule (never a caller: no authentication yields one). It goes into the envelope's
    encryption context and the audit record. `policy_principal` is what the approval policy's
    `Principal` is matched with."""

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

    @classmethod
    def service(cls, name: str) -> Caller:
        """The service itself, as its own schedule runs it (the approval policy's `Service`
        principal `name`): made in process only, never from a request's credentials."""
        return cls(f"service:{name}", Principal(type="Service", id=name))


# Who the scheduled rotation runs as (shared.lifecycle.schedule): the approval policy grants it
# the rotation's actions with `"Principal": {"Service": ["vend-rotation"]}`, as for any caller.
ROTATION_SERVICE = "vend-rotation"
