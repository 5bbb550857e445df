"""The .tf files of `infra/terraform/`, read with a real HCL parser (python-hcl2): CI has no
`terraform` binary, so the static tests read the template as Terraform would, without it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

TERRAFORM_DIR = Path(__file__).resolve().parent.parent / "infra" / "terraform"

# Plain values: "SOFTWARE" for a literal, "${var.x}" for an expression.
_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)


def parse(text: str) -> dict[str, Any]:
    document: dict[str, Any] = hcl2.loads(text, serialization_options=_OPTIONS)
    return document


def tf_texts() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(TERRAFORM_DIR.glob("*.tf"))}


def blocks(documents: dict[str, dict[str, Any]], kind: str, label: str) -> dict[str, Any]:
    """`kind "label" "name" {...}` (resource, data) across the files: name -> body."""
    found: dict[str, Any] = {}
    for file, document in documents.items():
        for entry in document.get(kind, []):
            for name, body in entry.get(label, {}).items():
                assert name not in found, f"{kind} {label}.{name} twice ({file})"
                found[name] = body
    return found


def resources(documents: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every `resource "type" "name" {...}` across the files: (type, name, body)."""
    return [
        (kind, name, body)
        for document in documents.values()
        for entry in document.get("resource", [])
        for kind, named in entry.items()
        for name, body in named.items()
    ]


def variables(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for document in documents.values():
        for entry in document.get("variable", []):
            found.update(entry)
    return found


def locals_of(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every local value across the files' `locals` blocks: name -> expression."""
    found: dict[str, Any] = {}
    for document in documents.values():
        for entry in document.get("locals", []):
            found.update(entry)
    return found
