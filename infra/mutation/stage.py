"""Lays out the tree `mutmut run` works in for one group of modules (infra/mutation/groups.py),
build/mutate/GROUP by default, refreshed on every run.

    python -m infra.mutation.stage GROUP [--into build/mutate/GROUP]

mutmut names a mutant after the file's path (`client/vend_client/x.py` would be
`client.vend_client.x`) and activates it only where the running function's `__module__` is that
name, so the caller's package is staged at the top, as `vend_client/`, where its modules keep
their import names. The service imports the same wire files as `shared.wire` (a symbolic link
in the repository): in the mutants' tree each `shared/wire/X.py` is a stand-in that hands over
the very module `vend_client.wire.X`, so one mutant of a wire file is live for the service and
the caller at once, as an edit of the real file would be.

The staged pyproject.toml's `[tool.mutmut]` gets the group's `only_mutate` and tests. Files are
copied only when their bytes changed, keeping their times: mutmut tests again only
the functions of a file newer than its mutated copy, and keeps the other results.
"""

from __future__ import annotations

import argparse
import filecmp
import json
import shutil
import subprocess
from pathlib import Path

from infra.mutation.groups import GROUPS, Group

ROOT = Path(__file__).resolve().parent.parent.parent
CLIENT_PACKAGE = Path("client") / "vend_client"
WIRE = Path("shared") / "wire"
PYPROJECT = Path("pyproject.toml")

SHIM = '''"""Mutation testing's stand-in (infra/mutation/stage.py): the service's `{service}` is the
module `{client}` itself, so a mutant of the one file is live on both sides."""

import sys

import {client} as _same

sys.modules[__name__] = _same
'''


def repository_files(root: Path) -> list[Path]:
    """Every file git tracks or would track (so new, uncommitted files are tested too)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        check=True,
        capture_output=True,
    ).stdout.decode()
    return sorted({Path(name) for name in listed.split("\0") if name})


def copy_if_changed(source: Path, target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_file()):
        remove(target)
    if target.is_file() and filecmp.cmp(source, target, shallow=False):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def write_if_changed(target: Path, text: str) -> None:
    if target.is_file() and not target.is_symlink() and target.read_text() == text:
        return
    if target.is_symlink() or target.exists():
        remove(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def stage(root: Path, into: Path, group: Group) -> None:
    into.mkdir(parents=True, exist_ok=True)
    wanted: set[Path] = set()
    for name in repository_files(root):
        source = root / name
        if name in (WIRE, PYPROJECT) or source.is_symlink() or not source.is_file():
            continue  # both are staged below; a deleted but tracked file is skipped
        targets = [name]
        if CLIENT_PACKAGE in name.parents:
            targets.append(name.relative_to(CLIENT_PACKAGE.parent))
        for target in targets:
            copy_if_changed(source, into / target)
            wanted.add(target)
    write_if_changed(into / PYPROJECT, with_group(root / PYPROJECT, group))
    wanted.add(PYPROJECT)
    # mutmut walks `shared/` without following links, so the wire is mutated once, as vend_client's
    link = into / WIRE
    if not link.is_symlink():
        if link.exists():
            remove(link)
        link.symlink_to(Path("..") / "vend_client" / "wire", target_is_directory=True)
    wanted.add(WIRE)
    stage_wire_shims(root, into / "mutants")
    for stale in sorted(_staged_files(into), reverse=True):
        if stale.relative_to(into) not in wanted:
            stale.unlink()


def with_group(pyproject: Path, group: Group) -> str:
    """The project's pyproject.toml with the group's settings added to `[tool.mutmut]`."""
    header = "[tool.mutmut]\n"
    text = pyproject.read_text(encoding="utf-8")
    if header not in text:
        raise SystemExit(f"{pyproject} has no {header.strip()} table")
    # A TOML array of plain strings is written as JSON writes it.
    added = (
        f"only_mutate = {json.dumps(list(group.mutate))}\n"
        f"pytest_add_cli_args_test_selection = {json.dumps(list(group.tests))}\n"
    )
    return text.replace(header, header + added, 1)


def stage_wire_shims(root: Path, mutants: Path) -> None:
    for module in sorted((root / CLIENT_PACKAGE / "wire").glob("*.py")):
        target = mutants / WIRE / module.name
        if module.stem == "__init__":
            copy_if_changed(module, target)
            continue
        service, client = f"shared.wire.{module.stem}", f"vend_client.wire.{module.stem}"
        write_if_changed(target, SHIM.format(service=service, client=client))


def _staged_files(into: Path) -> list[Path]:
    """What an earlier staging left, outside mutmut's own tree."""
    found: list[Path] = []
    for path in into.rglob("*"):
        relative = path.relative_to(into)
        if relative.parts[0] == "mutants" or "__pycache__" in relative.parts:
            continue
        if path.is_file() and not path.is_symlink():
            found.append(path)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.mutation.stage", description=__doc__)
    parser.add_argument("group", choices=sorted(GROUPS))
    parser.add_argument("--into", type=Path, help="default: build/mutate/GROUP")
    args = parser.parse_args(argv)
    stage(ROOT, args.into or ROOT / "build" / "mutate" / args.group, GROUPS[args.group])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
