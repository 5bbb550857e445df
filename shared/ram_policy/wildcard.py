"""Glob matching for policy values: ``*`` is any run of characters (even empty), ``?`` one.

A resource that this service asks about may itself name every ID at once with a ``*`` of its own
(`.../secret/*`: create, and the current secret, are authorized on every secret of the
application). Such a value's ``*`` is matched by a ``*`` of the pattern only, never by a ``?``:
so a pattern matches it only if it matches every ID in its place, and a grant of one secret
(`.../secret/sct_1`) or of one-character IDs (`.../secret/?`) is not a grant of them all."""

from __future__ import annotations

import re
from collections.abc import Iterable


def translate(pattern: str, *, star_values: bool = False) -> str:
    """Return the regular-expression source for one glob pattern; `star_values`: a ``*`` in the
    value stands for any ID, and only a ``*`` of the pattern matches it (the module's docstring).
    """
    parts: list[str] = []
    for char in pattern:
        if char == "*":
            # A run of stars means the same as one; collapsing it avoids needless backtracking.
            if not parts or parts[-1] != ".*":
                parts.append(".*")
        elif char == "?":
            parts.append("[^*]" if star_values else ".")
        else:
            parts.append(re.escape(char))
    return "".join(parts)


def compile_patterns(
    patterns: Iterable[str], *, ignore_case: bool = False, star_values: bool = False
) -> re.Pattern[str]:
    """Compile glob patterns into one regex; its ``fullmatch`` tests a value against them all.
    `star_values`: see `translate`."""
    # DOTALL so that "*" and "?" also cover newlines: a value must not escape a pattern by
    # containing one. ASCII limits case folding to what RAM action names use (so the Kelvin
    # sign does not equal "k").
    flags = re.DOTALL | (re.IGNORECASE | re.ASCII if ignore_case else 0)
    unique = dict.fromkeys(patterns)
    return re.compile(
        "|".join(f"(?:{translate(p, star_values=star_values)})" for p in unique), flags
    )
