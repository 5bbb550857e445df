"""RAM policy documents: data model, parsing and validation.

Everything a policy says is checked and compiled here, once; anything this engine does not
understand is refused with a PolicyError rather than ignored, because an ignored element
would silently change what the policy grants.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from .conditions import ConditionClause, compile_conditions, quote
from .wildcard import compile_patterns

PolicyKind = Literal["identity", "trust", "resource"]

_KINDS: frozenset[str] = frozenset({"identity", "trust", "resource"})
_TOP_LEVEL = frozenset({"Version", "Statement"})
_ELEMENTS = frozenset(
    {"Sid", "Effect", "Action", "NotAction", "Resource", "NotResource", "Principal", "Condition"}
)
_PRINCIPAL_TYPES = frozenset({"RAM", "Service", "JWT"})
_ACTION = re.compile(r"[^\s:]+:[^\s:]+")
_ROOT = re.compile(r"acs:ram::([^:]+):root")
_ACCOUNT = re.compile(r"acs:ram::([^:]+):")

ANY_PRINCIPAL = ("*", "*")
"""The ``(type, pattern)`` pair standing for ``"Principal": "*"``."""


class PolicyError(ValueError):
    """A policy document that is malformed or uses something this engine does not support."""


class Effect(enum.Enum):
    ALLOW = "Allow"
    DENY = "Deny"


@dataclass(frozen=True)
class Principal:
    """The caller: ``type`` is "RAM", "Service" or "JWT"; ``id`` its ARN, service or subject."""

    type: str
    id: str
    account_id: str | None = None


@dataclass(frozen=True)
class RequestContext:
    """What is being asked: action, resource (None in trust evaluation), caller, condition keys."""

    action: str
    resource: str | None = None
    principal: Principal | None = None
    conditions: Mapping[str, str | Sequence[str]] = field(default_factory=dict)
    unknown: frozenset[str] = frozenset()
    """Condition keys that apply to the request but whose value the caller of the engine could
    not learn (an address it cannot trust). A condition on one fails closed: it never makes an
    Allow apply, and always lets a Deny apply, whatever its operator."""
    condition_values: Mapping[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    """``conditions`` with lower-cased keys and tuple values, built once per request."""
    unknown_keys: frozenset[str] = field(init=False, repr=False, compare=False)
    """``unknown``, lower-cased."""

    def __post_init__(self) -> None:
        values: dict[str, tuple[str, ...]] = {}
        for key, value in self.conditions.items():
            folded = key.lower()
            values[folded] = values.get(folded, ()) + (
                (value,) if isinstance(value, str) else tuple(value)
            )
        object.__setattr__(self, "condition_values", values)
        object.__setattr__(self, "unknown_keys", frozenset(k.lower() for k in self.unknown))


def _account_of(principal: Principal) -> str | None:
    if principal.account_id is not None:
        return principal.account_id
    match = _ACCOUNT.match(principal.id)
    return match[1] if match else None


@dataclass(frozen=True)
class _PrincipalMatcher:
    anyone: bool
    ids: Mapping[str, re.Pattern[str]]
    root_accounts: re.Pattern[str] | None

    @classmethod
    def build(cls, pairs: tuple[tuple[str, str], ...]) -> _PrincipalMatcher:
        by_type: dict[str, list[str]] = {}
        roots: list[str] = []
        for ptype, pattern in pairs:
            root = _ROOT.fullmatch(pattern) if ptype == "RAM" else None
            if root is not None:
                roots.append(root[1])
            else:
                by_type.setdefault(ptype, []).append(pattern)
        return cls(
            anyone=ANY_PRINCIPAL in pairs,
            ids={t: compile_patterns(p) for t, p in by_type.items()},
            root_accounts=compile_patterns(roots) if roots else None,
        )

    def matches(self, principal: Principal) -> bool:
        if self.anyone:
            return True
        pattern = self.ids.get(principal.type)
        if pattern is not None and pattern.fullmatch(principal.id) is not None:
            return True
        if self.root_accounts is None or principal.type != "RAM":
            return False
        account = _account_of(principal)
        return account is not None and self.root_accounts.fullmatch(account) is not None


@dataclass(frozen=True)
class Statement:
    """One parsed statement; the matchers are compiled from the raw fields on construction.

    ``resources``/``principals`` are None when the element is absent; ``principals`` holds
    ``(type, pattern)`` pairs, with ``ANY_PRINCIPAL`` for ``"Principal": "*"``.
    """

    index: int
    sid: str | None
    effect: Effect
    actions: tuple[str, ...]
    not_action: bool = False
    resources: tuple[str, ...] | None = None
    not_resource: bool = False
    principals: tuple[tuple[str, str], ...] | None = None
    conditions: tuple[ConditionClause, ...] = ()
    _action_re: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _resource_re: re.Pattern[str] | None = field(init=False, repr=False, compare=False)
    _principal: _PrincipalMatcher | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        resource_re = (
            None if self.resources is None else compile_patterns(self.resources, star_values=True)
        )
        principal = None if self.principals is None else _PrincipalMatcher.build(self.principals)
        object.__setattr__(self, "_action_re", compile_patterns(self.actions, ignore_case=True))
        object.__setattr__(self, "_resource_re", resource_re)
        object.__setattr__(self, "_principal", principal)

    @property
    def label(self) -> str:
        """The ``Sid`` if there is one, else ``Statement[i]``."""
        return self.sid if self.sid is not None else f"Statement[{self.index}]"

    def matches(self, ctx: RequestContext) -> bool:
        """Whether this statement applies to ``ctx``, whatever its effect."""
        if (self._action_re.fullmatch(ctx.action) is not None) == self.not_action:
            return False
        if (
            ctx.resource is not None
            and self._resource_re is not None
            and (self._resource_re.fullmatch(ctx.resource) is not None) == self.not_resource
        ):
            return False
        if self._principal is not None and (
            ctx.principal is None or not self._principal.matches(ctx.principal)
        ):
            return False
        fail_closed = self.effect is Effect.DENY
        return all(
            fail_closed if c.key.lower() in ctx.unknown_keys else c.holds(ctx.condition_values)
            for c in self.conditions
        )


@dataclass(frozen=True)
class Policy:
    statements: tuple[Statement, ...]
    kind: PolicyKind
    name: str | None = None

    def matches(self, ctx: RequestContext) -> tuple[Statement, ...]:
        """The statements that apply to ``ctx``, in document order."""
        return tuple(s for s in self.statements if s.matches(ctx))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of duplicate keys; a reviewer reading the first would be misled.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {quote(key)}")
        result[key] = value
    return result


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _load(document: str | bytes | Mapping[str, Any], where: str) -> Mapping[str, Any]:
    data: object = document
    # Text is decoded here; anything else was decoded by the caller (the approval policy reads
    # its own JSON first, for its Recipients) and must already be the object.
    if isinstance(document, (str, bytes, bytearray)):
        try:
            data = json.loads(
                document, object_pairs_hook=_unique_keys, parse_constant=_reject_constant
            )
        except (ValueError, RecursionError) as exc:
            raise PolicyError(f"{where}: invalid JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise PolicyError(f"{where}: the document must be a JSON object")
    return data


def _strings(value: object, element: str) -> tuple[str, ...]:
    items = (value,) if isinstance(value, str) else value
    if (
        not isinstance(items, (list, tuple))
        or not items
        or not all(isinstance(i, str) for i in items)
    ):
        raise ValueError(f"{quote(element)} must be a string or a non-empty list of strings")
    if "" in items:
        raise ValueError(f"{quote(element)} contains an empty string")
    return tuple(items)


def _either(raw: Mapping[str, Any], positive: str, negative: str) -> tuple[object, bool] | None:
    """The value of whichever of the two exclusive elements is present, and whether negated."""
    if positive in raw and negative in raw:
        raise ValueError(f"both {quote(positive)} and {quote(negative)}")
    if positive in raw:
        return raw[positive], False
    if negative in raw:
        return raw[negative], True
    return None


def _principals(value: object) -> tuple[tuple[str, str], ...]:
    if value == "*":
        return (ANY_PRINCIPAL,)
    if not isinstance(value, Mapping) or not value:
        raise ValueError('"Principal" must be "*" or a non-empty object')
    pairs: list[tuple[str, str]] = []
    for ptype, ids in value.items():
        if ptype not in _PRINCIPAL_TYPES:
            raise ValueError(f"unsupported principal type {quote(ptype)}")
        pairs.extend((ptype, i) for i in _strings(ids, f"Principal.{ptype}"))
    return tuple(pairs)


def _build_statement(raw: Mapping[str, Any], index: int, kind: PolicyKind) -> Statement:
    unknown = [k for k in raw if k not in _ELEMENTS]
    if unknown:
        raise ValueError(f"unknown element {quote(unknown[0])}")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise ValueError('"Sid" must be a string')

    if "Effect" not in raw:
        raise ValueError('missing "Effect"')
    effect = raw["Effect"]
    if effect not in ("Allow", "Deny"):
        raise ValueError(f'"Effect" must be "Allow" or "Deny", not {quote(effect)}')

    action = _either(raw, "Action", "NotAction")
    if action is None:
        raise ValueError('missing "Action" or "NotAction"')
    action_element = "NotAction" if action[1] else "Action"
    actions = _strings(action[0], action_element)
    for pattern in actions:
        if pattern != "*" and _ACTION.fullmatch(pattern) is None:
            raise ValueError(
                f'invalid {action_element} {quote(pattern)}: expected "*" or "service:Action"'
            )

    resource = _either(raw, "Resource", "NotResource")
    if resource is None and kind != "trust":
        raise ValueError(f'missing "Resource" or "NotResource" (required in a {kind} policy)')
    resources = None
    if resource is not None:
        resources = _strings(resource[0], "NotResource" if resource[1] else "Resource")

    if kind == "identity" and "Principal" in raw:
        raise ValueError('"Principal" is not allowed in an identity policy')
    if kind != "identity" and "Principal" not in raw:
        raise ValueError(f'missing "Principal" (required in a {kind} policy)')
    principals = _principals(raw["Principal"]) if "Principal" in raw else None

    conditions = compile_conditions(raw["Condition"]) if "Condition" in raw else ()

    return Statement(
        index=index,
        sid=sid,
        effect=Effect(effect),
        actions=actions,
        not_action=action[1],
        resources=resources,
        not_resource=resource is not None and resource[1],
        principals=principals,
        conditions=conditions,
    )


def _parse_statement(raw: object, index: int, kind: PolicyKind, where: str) -> Statement:
    label = f"{where} Statement[{index}]"
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{label}: a statement must be an object")
    if isinstance(raw.get("Sid"), str):
        label += f" ({quote(raw['Sid'])})"
    try:
        return _build_statement(raw, index, kind)
    except ValueError as exc:
        raise PolicyError(f"{label}: {exc}") from None


def _statement_list(data: Mapping[str, Any], extra_top_level: frozenset[str]) -> list[object]:
    for key in data:
        if key not in _TOP_LEVEL and key not in extra_top_level:
            raise ValueError(f"unknown top-level element {quote(key)}")
    if "Version" not in data:
        raise ValueError('missing "Version"')
    if data["Version"] != "1":
        raise ValueError('"Version" must be the string "1"')
    if "Statement" not in data:
        raise ValueError('missing "Statement"')
    statements = data["Statement"]
    if isinstance(statements, Mapping):
        return [statements]
    if not isinstance(statements, (list, tuple)) or not statements:
        raise ValueError('"Statement" must be an object or a non-empty list of objects')
    return list(statements)


def parse_policy(
    document: str | bytes | Mapping[str, Any],
    *,
    kind: PolicyKind = "identity",
    extra_top_level: frozenset[str] = frozenset(),
    name: str | None = None,
) -> Policy:
    """Parse and compile a policy; raise PolicyError if it is invalid or unsupported.

    ``document`` is JSON text or an already-decoded object. ``extra_top_level`` names
    top-level keys the caller handles itself; they are allowed and otherwise ignored.
    """
    if kind not in _KINDS:
        raise ValueError(f"unknown policy kind {kind!r}")
    where = "policy" if name is None else f"policy {quote(name)}"
    data = _load(document, where)
    try:
        raw_statements = _statement_list(data, extra_top_level)
    except ValueError as exc:
        raise PolicyError(f"{where}: {exc}") from None
    statements = tuple(
        _parse_statement(raw, i, kind, where) for i, raw in enumerate(raw_statements)
    )
    return Policy(statements, kind, name)
