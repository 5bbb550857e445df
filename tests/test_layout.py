"""The three rooms, held by reading every import (at module level and inside functions): the core
that ships (`shared/`) leans on nothing of the functions, the caller's package, the laptop's
tools or the infrastructure; the functions lean on nothing of the laptop or the caller; the
caller's package on nothing of the service (the service's `shared/wire` links to the caller's
wire folder, and is walked as part of the core); and no package of the core imports in a
circle."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _module_name(path: Path, base: Path) -> str:
    rel = path.relative_to(base).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def imports_of(path: Path, base: Path) -> Iterator[str]:
    """Every module `path` imports, relative imports resolved against `base`."""
    here = _module_name(path, base).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                module = ".".join([*anchor, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            yield module
            yield from (f"{module}.{a.name}" for a in node.names)


def _files(folder: str) -> list[Path]:
    """The modules of `folder`, linked folders followed (`shared/wire` is a link)."""
    return sorted(
        Path(where) / name
        for where, _, names in os.walk(ROOT / folder, followlinks=True)
        for name in names
        if name.endswith(".py") and "__pycache__" not in Path(where).parts
    )


@pytest.mark.parametrize(
    ("folder", "base", "forbidden"),
    [
        ("shared", ROOT, ("functions", "infra", "vend_client", "client", "local", "tests")),
        ("functions", ROOT, ("infra", "vend_client", "client", "local", "tests")),
        ("client/vend_client", ROOT / "client", ("shared", "functions", "infra", "tests")),
    ],
)
def test_a_room_imports_nothing_of_the_rooms_it_must_not(
    folder: str, base: Path, forbidden: tuple[str, ...]
) -> None:
    leaks = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in _files(folder)
        for name in imports_of(path, base)
        if name.split(".")[0] in forbidden
    ]
    assert leaks == []


def test_the_walker_sees_lazy_and_relative_imports() -> None:
    """It must be able to fail: a lazy import inside a function and a relative one both count."""
    doctor = set(imports_of(ROOT / "shared" / "doctor.py", ROOT))
    assert "shared.composition_root" in doctor  # imported inside run()
    arns = set(imports_of(ROOT / "shared" / "wire" / "arns.py", ROOT))
    assert "shared.wire.envelope" in arns  # `from .envelope import ...`
    assert ROOT / "shared" / "wire" / "arns.py" in _files("shared")  # through the link


def test_no_package_of_the_core_imports_in_a_circle() -> None:
    modules = {_module_name(p, ROOT): p for p in _files("shared")}
    graph = {
        name: {m for m in imports_of(path, ROOT) if m in modules and m != name}
        for name, path in modules.items()
    }

    def cycle_from(start: str) -> list[str] | None:
        stack: list[tuple[str, list[str]]] = [(start, [start])]
        while stack:
            node, trail = stack.pop()
            for nxt in graph[node]:
                if nxt == start:
                    return [*trail, nxt]
                if nxt not in trail and nxt.rsplit(".", 1)[0] == start.rsplit(".", 1)[0]:
                    stack.append((nxt, [*trail, nxt]))
        return None

    # Within a package (a module and its siblings, `__init__` included): no circle.
    circles = [c for name in graph if (c := cycle_from(name)) is not None]
    assert circles == []


def test_the_handlers_import_only_what_every_request_needs() -> None:
    """What only some configurations use is imported when they are configured: PyYAML for a YAML
    policy, redis-py for a redis:// store, PyJWT for JWT issuers, the OpenAPI builder and the
    readiness checks on their routes. Each costs a cold start tens of milliseconds. And what the
    service never needs: requests (about 35 ms; RAM proofs go to STS over the service's own
    connections), tea-openapi's client and the credentials library's client (aiohttp with them,
    about 200 ms), which the floor of P2 pays and the service does not
    (shared/upstream/transport.py)."""
    code = (
        "import sys, functions.http, functions.events, functions.custom_runtime; "
        "print(' '.join(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(done.stdout.split())
    assert not loaded & {
        "yaml",
        "redis",
        "jwt",
        "requests",
        "shared.openapi",
        "shared.doctor",
        "shared.readiness",
        "aiohttp",
        "alibabacloud_tea_openapi.client",
        "alibabacloud_credentials.client",
    }


def test_the_vend_command_builds_its_parser_without_the_sdk() -> None:
    """`vend --help` lists every command, the caller's too, without importing the SDK (about
    0.4 s): each command imports what it needs when it runs."""
    code = (
        "import sys; from infra.local.cli import build_parser; build_parser(); "
        "print(' '.join(sorted(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    loaded = set(done.stdout.split())
    assert not loaded & {"alibabacloud_tea_openapi", "vend_client.http", "cryptography", "pydantic"}
