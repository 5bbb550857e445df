"""What Terraform reads, without Terraform: a quoted string's value, and `-var` values against
variables.tf (the variables' types and defaults, and their `validation` conditions).

CI has no `terraform` and no registry; the conditions in infra/terraform/variables.tf use a small
part of HCL (`var.x`, `can(regex(...))`, `floor`, `alltrue([for k, v in m : ...])`, comparisons
and `&&`, `||`, `!`), which is translated here, string literals kept whole. A condition outside
that part raises ValueError: the test fails, rather than checking less. Where Terraform is
installed, tests/test_terraform_kms.py asks `terraform plan` the same table, so the two readings
are held to agree.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
# alltrue([for k, v in var.m : body]): the one loop the conditions use.
_ALLTRUE = re.compile(r"alltrue\(\[\s*for (\w+), (\w+) in ([\w.]+)\s*:(.*)\]\)", re.DOTALL)
_ALLOWED_WORDS = {"can", "regex", "floor", "alltrue", "for", "in", "S"}


# HCL native syntax, "Template Literals" and "Escape Sequences" (hashicorp/hcl spec.md).
_ESCAPE = re.compile(r"\\(?:u([0-9A-Fa-f]{4})|U([0-9A-Fa-f]{8})|(.))|\$\$\{|%%\{", re.DOTALL)
_SIMPLE = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def string_value(literal: str) -> str:
    """The value of a quoted HCL string with no interpolation, as the spec reads it: escapes,
    and `$${` and `%%{` for a literal `${` and `%{`. A template (`${`, `%{`) raises ValueError:
    its value is not the literal's."""
    if len(literal) < 2 or literal[0] != '"' or literal[-1] != '"':
        raise ValueError(f"not a quoted string: {literal!r}")

    def read(match: re.Match[str]) -> str:
        text = match.group(0)
        if text in ("$${", "%%{"):
            return text[1:]
        code = match.group(1) or match.group(2)
        if code is not None:
            return chr(int(code, 16))
        if match.group(3) not in _SIMPLE:
            raise ValueError(f"no such escape: {text!r}")
        return _SIMPLE[match.group(3)]

    body = literal[1:-1]
    if re.search(r"(?<![$%])[$%]\{", _ESCAPE.sub("", body)):
        raise ValueError(f"a template, not a literal: {literal!r}")
    return _ESCAPE.sub(read, body)


def _regex(pattern: str, value: str) -> str | None:
    found = re.search(pattern, value)
    return None if found is None else found.group(0)


def _translate(condition: str) -> tuple[str, list[str]]:
    """The condition (the parser's `${...}`) as a Python expression over V (the variables) and
    S (its string literals, kept aside so that no operator inside one is touched)."""
    if not (condition.startswith("${") and condition.endswith("}")):
        raise ValueError(f"not an expression: {condition!r}")
    strings: list[str] = []

    def keep(match: re.Match[str]) -> str:
        if "${" in match.group(1) or "%{" in match.group(1):
            raise ValueError(f"a template in a condition: {match.group(0)}")
        strings.append(json.loads(match.group(0)))
        return f"S[{len(strings) - 1}]"

    text = _STRING.sub(keep, condition[2:-1])
    loop = _ALLTRUE.search(text)
    names = _ALLOWED_WORDS | (set(loop.groups()[:2]) if loop else set())
    unknown = set(re.findall(r"\b[A-Za-z_]\w*\b", re.sub(r"\bvar\.\w+", "", text))) - names
    if unknown:
        raise ValueError(f"{sorted(unknown)} in {condition!r}: not read here")
    if loop is not None:
        key, value, source, body = loop.groups()
        python_loop = f"alltrue([({body}) for {key}, {value} in ({source}).items()])"
        text = text.replace(loop.group(0), python_loop)
    text = re.sub(r"\bvar\.(\w+)", r'V["\1"]', text)
    text = text.replace("&&", " and ").replace("||", " or ")
    text = re.sub(r"!(?!=)", " not ", text)
    return text, strings


def evaluate(condition: str, values: Mapping[str, Any]) -> bool:
    text, strings = _translate(condition)
    scope = {
        "__builtins__": {},
        "V": values,
        "S": strings,
        "can": lambda result: result is not None,
        "regex": _regex,
        "floor": math.floor,
        "alltrue": all,
    }
    # our own template's conditions, translated above
    return bool(eval(text, scope))


def _convert(kind: str, raw: str) -> Any:
    """A `-var name=value` as Terraform types it; ValueError where Terraform refuses it."""
    if kind == "string":
        return raw
    if kind == "number":
        if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", raw):
            raise ValueError(f"not a number: {raw!r}")
        number = float(raw)
        return int(number) if number.is_integer() else number
    if kind == "bool":
        if raw not in ("true", "false"):
            raise ValueError(f"not a bool: {raw!r}")
        return raw == "true"
    raise ValueError(f"a -var of type {kind} is not read here")


def accepted(declared: Mapping[str, Any], given: Mapping[str, str]) -> bool:
    """Whether `terraform plan -var ...` of these variable blocks (terraform_hcl.variables())
    gets past the variables: every required one given, each of its type, each validation true."""
    unknown = set(given) - set(declared)
    if unknown:
        raise ValueError(f"no such variables: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, block in declared.items():
        if name in given:
            try:
                values[name] = _convert(block["type"], given[name])
            except ValueError:
                return False
        elif "default" in block:
            values[name] = block["default"]
        else:
            return False
    return all(
        evaluate(validation["condition"], values)
        for block in declared.values()
        for validation in block.get("validation", [])
    )
