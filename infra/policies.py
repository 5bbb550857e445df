"""The RAM policy documents of `infra/policies/`, filled in the way Terraform's `templatefile()`
fills them, so that what the tests evaluate is what `infra/terraform/` deploys.

The files are JSON with placeholders in the part of Terraform's template syntax that both sides
read the same way:

- `${name}`, inside a JSON string: replaced by a string, verbatim;
- `${jsonencode(name)}`, standing for a whole JSON value: replaced by a list of strings,
  JSON-encoded.

Anything else that Terraform would read as template syntax (another `${...}`, `%{...}`) is
refused, as are unknown and missing variables. A value may not carry a quote, a backslash, a
control character, a wildcard (`*`, `?`) or template syntax (`$`, `%`, braces): verbatim
insertion is then the same as JSON encoding, and no value can widen a policy.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.ram_policy import PolicyError, PolicyKind, parse_policy

POLICY_DIR = Path(__file__).resolve().parent / "policies"

_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_PLACEHOLDER = re.compile(
    r"\$\{(?:(?P<scalar>[a-z][a-z0-9_]*)|jsonencode\((?P<list>[a-z][a-z0-9_]*)\))\}"
)
_UNSAFE = re.compile(r'["\\*?$%{}\x00-\x1f\x7f]')

Value = str | Sequence[str]


class PolicyTemplateError(ValueError):
    """A policy file or a variable that cannot make a valid policy."""


@dataclass(frozen=True)
class PolicyTemplate:
    """One file of `infra/policies/`: its text and the variables its placeholders name."""

    name: str
    text: str

    @classmethod
    def parse(cls, name: str, text: str) -> PolicyTemplate:
        """Checks that the text's only template syntax is `${name}` and `${jsonencode(name)}`."""
        rest = _PLACEHOLDER.sub("", text)
        if "$" in rest or "%{" in rest:
            raise PolicyTemplateError(
                f"policy file {name}.json: template syntax other than ${{name}} and"
                " ${jsonencode(name)}"
            )
        return cls(name, text)

    @property
    def kind(self) -> PolicyKind:
        """Trust policies (`*-trust.json`) name a Principal; the others are identity policies."""
        return "trust" if self.name.endswith("-trust") else "identity"

    @property
    def scalars(self) -> frozenset[str]:
        """Variables filled with a string (`${name}`)."""
        return frozenset(m["scalar"] for m in _PLACEHOLDER.finditer(self.text) if m["scalar"])

    @property
    def lists(self) -> frozenset[str]:
        """Variables filled with a list of strings (`${jsonencode(name)}`)."""
        return frozenset(m["list"] for m in _PLACEHOLDER.finditer(self.text) if m["list"])

    @property
    def variables(self) -> frozenset[str]:
        return self.scalars | self.lists

    def fill(self, variables: Mapping[str, Value]) -> dict[str, Any]:
        """The filled document, checked by the project's RAM policy engine."""
        where = f"policy file {self.name}.json"
        if self.scalars & self.lists:
            raise PolicyTemplateError(
                f"{where}: {sorted(self.scalars & self.lists)} used both as a string and a list"
            )
        missing = sorted(self.variables - set(variables))
        if missing:
            raise PolicyTemplateError(f"{where}: missing variable(s) {', '.join(missing)}")
        unknown = sorted(set(variables) - self.variables)
        if unknown:
            raise PolicyTemplateError(f"{where}: unknown variable(s) {', '.join(unknown)}")
        values = {
            name: _encode(name, value, as_list=name in self.lists)
            for name, value in variables.items()
        }
        text = _PLACEHOLDER.sub(lambda m: values[m["scalar"] or m["list"]], self.text)
        try:
            document = json.loads(text)
        except ValueError as exc:
            raise PolicyTemplateError(f"{where}: not JSON once filled: {exc}") from None
        if not isinstance(document, dict):
            raise PolicyTemplateError(f"{where}: not a JSON object")
        try:
            parse_policy(document, kind=self.kind, name=self.name)
        except PolicyError as exc:
            raise PolicyTemplateError(str(exc)) from None
        return document


def _encode(name: str, value: Value, *, as_list: bool) -> str:
    if isinstance(value, str):
        if as_list:
            raise PolicyTemplateError(f"variable {name} must be a list of strings")
        _check(name, value)
        return value
    if not as_list:
        raise PolicyTemplateError(f"variable {name} must be a string")
    items = list(value)
    if not items:
        raise PolicyTemplateError(f"variable {name} must not be empty")
    for item in items:
        if not isinstance(item, str):
            raise PolicyTemplateError(f"variable {name} must be a list of strings")
        _check(name, item)
    return json.dumps(items)


def _check(name: str, value: str) -> None:
    if not value:
        raise PolicyTemplateError(f"variable {name} is empty")
    bad = _UNSAFE.search(value)
    if bad is not None:
        raise PolicyTemplateError(
            f"variable {name} contains {bad[0]!r}: a value may not carry quotes, backslashes,"
            " control characters, wildcards or template syntax"
        )


def policy_names() -> tuple[str, ...]:
    """The policy files there are, by name (without `.json`), sorted."""
    return tuple(sorted(p.stem for p in POLICY_DIR.glob("*.json")))


def policy_template(name: str) -> PolicyTemplate:
    """Reads `infra/policies/{name}.json` and checks that its only template syntax is ours."""
    if not _NAME.fullmatch(name):
        raise PolicyTemplateError(f"not a policy name: {name!r}")
    path = POLICY_DIR / f"{name}.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyTemplateError(f"no policy file {name}.json in {POLICY_DIR}") from None
    return PolicyTemplate.parse(name, text)


def load_policy(name: str, **variables: Value) -> dict[str, Any]:
    """`infra/policies/{name}.json` with its `${...}` placeholders filled from `variables`.

    A string fills `${var}`; a list of strings fills `${jsonencode(var)}`. Unknown or missing
    variables, unsafe values and a result that is not a valid policy raise PolicyTemplateError.
    """
    return policy_template(name).fill(variables)
