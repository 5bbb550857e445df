"""The build backend of `secret-vending-client`: setuptools', once this copy of `client/` is
known to hold every module the package imports.

A copy of the folder (vendored, or `git archive` of `client/`) must build a complete package or
none. setuptools packs whatever files it finds: a folder that is missing, or a symbolic link that
does not resolve in the copy, gives a wheel that installs and then fails on import. So before
each hook runs: nothing inside `vend_client/` may be a symbolic link, and every relative import
of every module must name a module that is a file here, in a package with its `__init__.py`.
"""

from __future__ import annotations

import ast
import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

PACKAGE = "vend_client"


class IncompletePackageError(Exception):
    """A package built from this copy of `client/` would lack modules it imports."""


def problems(root: Path) -> list[str]:
    """What would make a package built from `root` incomplete, one line each."""
    found = [
        f"{(Path(where) / name).relative_to(root)} is a symbolic link, not the files themselves"
        for where, dirnames, filenames in os.walk(root / PACKAGE)
        for name in (*dirnames, *filenames)
        if (Path(where) / name).is_symlink()
    ]
    importers: dict[str, list[str]] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        if not path.is_file():
            continue  # a dangling link, named above
        package = path.parent.relative_to(root).parts
        for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level:
                anchor = package[: len(package) - node.level + 1]
                target = [*anchor, *(node.module.split(".") if node.module else [])]
                missing = _missing(root, target)
                if missing is not None:
                    importers.setdefault(missing, []).append(path.relative_to(root).as_posix())
    found += [
        f"{missing} is missing (imported by {', '.join(sorted(set(by))[:3])}"
        f"{', ...' if len(set(by)) > 3 else ''})"
        for missing, by in sorted(importers.items())
    ]
    return found


def _missing(root: Path, module: list[str]) -> str | None:
    """The first file that importing `module` needs and `root` lacks, or None."""
    for depth in range(1, len(module)):
        init = Path(*module[:depth], "__init__.py")
        if not (root / init).is_file():
            return init.as_posix()
    as_module = Path(*module).with_suffix(".py")
    as_package = Path(*module, "__init__.py")
    if (root / as_module).is_file() or (root / as_package).is_file():
        return None
    return as_module.as_posix()


def check(root: Path) -> None:
    found = problems(root)
    if found:
        lines = "\n".join(f"  - {line}" for line in found)
        raise IncompletePackageError(
            f"secret-vending-client cannot be built from {root}: a package built from it would "
            f"lack modules that {PACKAGE} imports:\n{lines}\n"
            f"Every file of the package must be in client/ itself, none a symbolic link "
            f"({PACKAGE}/wire holds the modules the service shares; its shared/wire links to "
            "them). Build from a checkout of the repository, or from a copy that holds the files."
        )


def _checked(name: str) -> Callable[..., Any]:
    def hook(*args: Any, **kwargs: Any) -> Any:
        check(Path.cwd())  # a frontend runs each hook in the source tree
        # Imported here: the check above needs only the standard library.
        build_meta = importlib.import_module("setuptools.build_meta")
        return getattr(build_meta, name)(*args, **kwargs)

    hook.__name__ = name
    return hook


get_requires_for_build_sdist = _checked("get_requires_for_build_sdist")
get_requires_for_build_wheel = _checked("get_requires_for_build_wheel")
get_requires_for_build_editable = _checked("get_requires_for_build_editable")
prepare_metadata_for_build_wheel = _checked("prepare_metadata_for_build_wheel")
prepare_metadata_for_build_editable = _checked("prepare_metadata_for_build_editable")
build_sdist = _checked("build_sdist")
build_wheel = _checked("build_wheel")
build_editable = _checked("build_editable")
