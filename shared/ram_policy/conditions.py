"""Condition operators of the RAM policy language.

Semantics chosen where the language leaves room:

* A condition key absent from the request context (or present with no values) makes a
  positive operator false and a negated one (``StringNot*``, ``*NotEquals``,
  ``NotIpAddress``) true, so ``Deny ... NotIpAddress`` still denies a caller whose source
  address is unknown. A key the context marks *unknown* (``RequestContext.unknown``) is
  different: it applies but could not be learnt, so every condition on it fails closed (an
  Allow does not apply, a Deny does), whatever the operator.
* A context value that cannot be read as the operator's type (a malformed number, date,
  boolean or IP address) matches none of the policy's values, i.e. it is treated like a
  value that is present but different.
* Several policy values for one key: a positive operator holds if the context matches any
  of them, a negated one if it matches none. Several context values for one key: a positive
  operator holds if any context value matches, a negated one if none does.
* Keys compare case-insensitively; operator names are case-sensitive.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TypeVar

from .wildcard import compile_patterns

Test = Callable[[str], bool]
"""Whether one context value matches any of a clause's policy values."""

_Factory = Callable[[tuple[str, ...]], Test]
_T = TypeVar("_T", Decimal, datetime)

_KEY = re.compile(r"[^\s:]+:\S+")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_DATE = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?"
    r"(?:[Zz]|([+-])(\d{2}):?(\d{2}))",
    re.ASCII,
)
_MAX_QUOTED = 80


def quote(value: object) -> str:
    """Quote a policy fragment for an error message, escaped and cut to a sane length."""
    text = value if isinstance(value, str) else str(value)
    if len(text) > _MAX_QUOTED:
        text = text[:_MAX_QUOTED] + "..."
    return json.dumps(text)


@dataclass(frozen=True)
class ConditionClause:
    """One ``Operator: {Key: values}`` entry, compiled."""

    operator: str
    key: str
    values: tuple[str, ...]
    negated: bool = field(repr=False)
    test: Test = field(repr=False, compare=False)
    _lookup: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_lookup", self.key.lower())

    def holds(self, context: Mapping[str, tuple[str, ...]]) -> bool:
        """Evaluate against context values keyed by lower-cased condition key."""
        hit = any(self.test(value) for value in context.get(self._lookup, ()))
        return hit != self.negated


def _string_equals(values: tuple[str, ...]) -> Test:
    return frozenset(values).__contains__


def _string_equals_ignore_case(values: tuple[str, ...]) -> Test:
    wanted = frozenset(v.lower() for v in values)
    return lambda actual: actual.lower() in wanted


def _string_like(values: tuple[str, ...]) -> Test:
    pattern = compile_patterns(values)
    return lambda actual: pattern.fullmatch(actual) is not None


def _parse_number(text: str) -> Decimal | None:
    # A strict grammar, because Decimal alone also takes "NaN", "Infinity", "1_000", " 1 ".
    if _NUMBER.fullmatch(text) is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:  # an exponent beyond what decimal can represent
        return None


def parse_date(text: str) -> datetime | None:
    """Parse an ISO 8601 date-time with a zone (``Z`` or ``+08:00``); None if it is not one."""
    # Hand-parsed rather than datetime.fromisoformat, whose accepted forms differ between
    # Python 3.10 and 3.11 (3.10 refuses "Z").
    match = _DATE.fullmatch(text)
    if match is None:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:
        zone = timezone.utc
        if sign is not None:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            zone = timezone(-offset if sign == "-" else offset)
        micro = int((fraction or "0")[:6].ljust(6, "0"))
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, zone
        )
    except ValueError:  # day 31 of a short month, hour 25, offset beyond 24 h ...
        return None


def _ordered(
    parse: Callable[[str], _T | None], kind: str, compare: Callable[[_T, _T], bool]
) -> _Factory:
    """Factory for numeric and date operators: ``compare(context_value, policy_value)``."""

    def factory(values: tuple[str, ...]) -> Test:
        wanted: list[_T] = []
        for value in values:
            parsed = parse(value)
            if parsed is None:
                raise ValueError(f"invalid {kind} {quote(value)}")
            wanted.append(parsed)

        def test(actual: str) -> bool:
            parsed = parse(actual)
            return parsed is not None and any(compare(parsed, w) for w in wanted)

        return test

    return factory


def _bool(values: tuple[str, ...]) -> Test:
    wanted = frozenset(v.lower() for v in values)
    for value in values:
        if value.lower() not in ("true", "false"):
            raise ValueError(f"invalid boolean {quote(value)}")
    return lambda actual: actual.lower() in wanted


def _ip_address(values: tuple[str, ...]) -> Test:
    networks: list[IPv4Network | IPv6Network] = []
    for value in values:
        try:
            networks.append(ip_network(value, strict=False))
        except ValueError:
            raise ValueError(f"invalid IP address or network {quote(value)}") from None

    def test(actual: str) -> bool:
        try:
            address = ip_address(actual)
        except ValueError:
            return False
        # A dual-stack listener reports IPv4 callers as ::ffff:a.b.c.d; IPv4 ranges must
        # still apply to them.
        candidates = [address]
        if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(a in n for a in candidates for n in networks)

    return test


_POSITIVE: dict[str, _Factory] = {
    "StringEquals": _string_equals,
    "StringEqualsIgnoreCase": _string_equals_ignore_case,
    "StringLike": _string_like,
    "NumericEquals": _ordered(_parse_number, "number", operator.eq),
    "NumericLessThan": _ordered(_parse_number, "number", operator.lt),
    "NumericLessThanEquals": _ordered(_parse_number, "number", operator.le),
    "NumericGreaterThan": _ordered(_parse_number, "number", operator.gt),
    "NumericGreaterThanEquals": _ordered(_parse_number, "number", operator.ge),
    "DateEquals": _ordered(parse_date, "date", operator.eq),
    "DateLessThan": _ordered(parse_date, "date", operator.lt),
    "DateLessThanEquals": _ordered(parse_date, "date", operator.le),
    "DateGreaterThan": _ordered(parse_date, "date", operator.gt),
    "DateGreaterThanEquals": _ordered(parse_date, "date", operator.ge),
    "Bool": _bool,
    "IpAddress": _ip_address,
}

_NEGATED: dict[str, str] = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
}

OPERATORS = frozenset(_POSITIVE) | frozenset(_NEGATED)


def _scalar(value: object) -> str:
    # bool before int: JSON true is a Python int too.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return str(value)
    raise ValueError("condition values must be strings, numbers or booleans")


def _values(raw: object) -> tuple[str, ...]:
    if isinstance(raw, (list, tuple)):
        if not raw:
            raise ValueError("empty list of values")
        return tuple(_scalar(v) for v in raw)
    return (_scalar(raw),)


def compile_conditions(block: object) -> tuple[ConditionClause, ...]:
    """Compile a ``Condition`` element; raise ValueError naming the offending part."""
    if not isinstance(block, Mapping) or not block:
        raise ValueError('"Condition" must be a non-empty object')
    clauses: list[ConditionClause] = []
    for op, entries in block.items():
        base = _NEGATED.get(op, op) if isinstance(op, str) else None
        factory = _POSITIVE.get(base) if base is not None else None
        if factory is None:
            raise ValueError(f"unsupported condition operator {quote(op)}")
        if not isinstance(entries, Mapping) or not entries:
            raise ValueError(f"condition operator {quote(op)} must map keys to values")
        for key, raw in entries.items():
            if not isinstance(key, str) or _KEY.fullmatch(key) is None:
                raise ValueError(f"condition {quote(op)}: invalid condition key {quote(key)}")
            try:
                values = _values(raw)
                test = factory(values)
            except ValueError as exc:
                raise ValueError(f"condition {quote(op)} key {quote(key)}: {exc}") from None
            clauses.append(ConditionClause(op, key, values, op in _NEGATED, test))
    return tuple(clauses)
