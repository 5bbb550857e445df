"""Glob matching for policy values: ``*`` is any run of characters (even empty), ``?`` one."""

from __future__ import annotations

import re
from collections.abc import Iterable


def translate(pattern: str) -> str:
    """Return the regular-expression source for one glob pattern."""
    parts: list[str] = []
    for char in pattern:
        if char == "*":
            # A run of stars means the same as one; collapsing it avoids needless backtracking.
            if not parts or parts[-1] != ".*":
                parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return "".join(parts)


def compile_patterns(patterns: Iterable[str], *, ignore_case: bool = False) -> re.Pattern[str]:
    """Compile glob patterns into one regex; its ``fullmatch`` tests a value against them all."""
    # DOTALL so that "*" and "?" also cover newlines: a value must not escape a pattern by
    # containing one. ASCII limits case folding to what RAM action names use (so the Kelvin
    # sign does not equal "k").
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if ignore_case else 0)
    unique = dict.fromkeys(patterns)
    return re.compile("|".join(f"(?:{translate(p)})" for p in unique), flags)
