"""The approval policy (contract section 5): may this caller get this secret (or run the
deployment checks, `vend:RunDoctor`), and with which KMS key is the answer sealed. Loaded and
validated once, at start; evaluated per request, no I/O."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.arns import RUN_DOCTOR_RESOURCE, SERVICE_ACTIONS
from shared.principal import Caller
from shared.ram_policy import (
    Decision,
    Policy,
    PolicyError,
    RequestContext,
    Statement,
    evaluate,
    parse_policy,
)
from shared.ram_policy.conditions import quote
from shared.ram_policy.wildcard import compile_patterns

_VEND_PREFIX = "vend:"

_SOURCE_IP_UNKNOWN = frozenset({"acs:SourceIp"})


class _Recipient(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    Principal: str = Field(min_length=1)
    KeyId: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9:/_.-]+$")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    decision: Decision
    statement: str | None  # the deciding statement's Sid or Statement[i]
    recipient_key_id: str | None  # the caller's own KMS key, if the policy names one


@dataclass(frozen=True)
class ApprovalPolicy:
    policy: Policy
    recipients: tuple[tuple[str, str], ...]  # (principal, key id), first match wins

    def decide(
        self, caller: Caller, action: str, resource: str, *, source_ip: str | None = None
    ) -> Verdict:
        conditions = {"acs:CurrentTime": _now_iso()}
        if source_ip:
            conditions["acs:SourceIp"] = source_ip
        result = evaluate(
            [self.policy],
            RequestContext(
                action=action,
                resource=resource,
                principal=caller.policy_principal,
                conditions=conditions,
                # No address we can vouch for (an event, or an HTTP request whose address the
                # platform did not give): an IP condition fails closed, so that neither
                # `Allow ... NotIpAddress` nor `Allow ... IpAddress` lets it through and every
                # `Deny` on an address applies.
                unknown=frozenset() if source_ip else _SOURCE_IP_UNKNOWN,
            ),
        )
        return Verdict(
            allowed=result.allowed,
            decision=result.decision,
            statement=result.statement.label if result.statement else None,
            recipient_key_id=self.recipient_key(caller),
        )

    def recipient_key(self, caller: Caller) -> str | None:
        # A JWT caller may be named as in the policy ({sub}@{issuer}) or as its principal string.
        names = {caller.name, caller.policy_principal.id}
        return next((key for who, key in self.recipients if who in names), None)


def parse_approval_policy(document: str | bytes | Mapping[str, Any]) -> ApprovalPolicy:
    """Parses a policy document (JSON text or a decoded mapping). Raises PolicyError naming the
    statement and element at fault."""
    data: Any = document
    if isinstance(document, (str, bytes)):
        try:
            data = json.loads(document)
        except ValueError as exc:
            raise PolicyError(f"approval policy: not valid JSON: {exc}") from None
    policy = parse_policy(
        data, kind="resource", extra_top_level=frozenset({"Recipients"}), name="approval"
    )
    for statement in policy.statements:
        _check_vend_actions(statement)
    raw = data.get("Recipients", []) if isinstance(data, Mapping) else []
    if not isinstance(raw, list):
        raise PolicyError("approval policy: Recipients must be a list")
    recipients = []
    for i, entry in enumerate(raw):
        try:
            item = _Recipient.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "entry"
            raise PolicyError(f"approval policy: Recipients[{i}] {where}: {first['msg']}") from None
        recipients.append((item.Principal, item.KeyId))
    return ApprovalPolicy(policy, tuple(recipients))


def _check_vend_actions(statement: Statement) -> None:
    """The service's own actions (`vend:`) are few and fixed: a pattern in that namespace that
    names none of them is a typo that would silently grant or deny nothing, and a statement of
    `vend:` actions only whose Resource cannot be `*` (what they are decided on) is void."""
    where = f"policy {quote('approval')} Statement[{statement.index}]"  # as parse_policy says it
    if statement.sid is not None:
        where += f" ({quote(statement.sid)})"
    element = "NotAction" if statement.not_action else "Action"
    own = [a for a in statement.actions if a.lower().startswith(_VEND_PREFIX)]
    for pattern in own:
        matcher = compile_patterns([pattern], ignore_case=True)
        if not any(matcher.fullmatch(known) for known in SERVICE_ACTIONS):
            raise PolicyError(
                f"{where}: {element} {quote(pattern)} names no action of this service"
                f" (it knows {', '.join(SERVICE_ACTIONS)})"
            )
    only_own = bool(own) and len(own) == len(statement.actions) and not statement.not_action
    if not only_own or statement.resources is None:
        return
    resources = compile_patterns(statement.resources, star_values=True)  # as the statement's
    matches_any = resources.fullmatch(RUN_DOCTOR_RESOURCE) is not None
    if matches_any == statement.not_resource:
        element = "NotResource" if statement.not_resource else "Resource"
        raise PolicyError(
            f"{where}: {', '.join(SERVICE_ACTIONS)} is decided on Resource"
            f" {quote(RUN_DOCTOR_RESOURCE)}, which this statement's {element} leaves out"
        )


def load_approval_policy(value: str) -> ApprovalPolicy:
    """`VEND_POLICY`: the JSON itself, or a path to a JSON or YAML file."""
    text = value.strip()
    if text.startswith("{"):
        return parse_approval_policy(text)
    path = Path(value)
    try:
        content = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"approval policy: cannot read {value}: {exc.strerror}") from None
    if path.suffix in (".yaml", ".yml"):
        # Imported for a YAML policy only: PyYAML costs a cold start about 40 ms.
        import yaml  # noqa: PLC0415

        try:
            loaded = yaml.safe_load(content)
        except yaml.YAMLError as exc:
            raise PolicyError(f"approval policy: {value} is not valid YAML: {exc}") from None
        if not isinstance(loaded, Mapping):
            raise PolicyError(f"approval policy: {value} must hold a mapping")
        return parse_approval_policy(loaded)
    return parse_approval_policy(content)


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
