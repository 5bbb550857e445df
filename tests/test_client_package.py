"""The caller's package installs alone: into a fresh virtualenv, from a copy of `client/` with
nothing of the service beside it, it pulls in none of the service's dependencies, and its own
tests pass there. Its one shared folder, `vend_client/wire`, is the service's `shared/wire`."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "client"
# What a caller must never have to install for the service's sake.
NOT_FOR_CALLERS = {"redis", "waitress", "pyyaml", "pyjwt", "aliyun-fc2", "pydantic"}


def test_the_wire_folder_is_the_callers_own_and_the_service_links_to_it() -> None:
    """The files live in the caller's package, so that a copy of `client/` alone holds them;
    the service's `shared/wire` is a relative link, which resolves in any checkout."""
    wire = CLIENT / "vend_client" / "wire"
    assert wire.is_dir() and not wire.is_symlink()
    assert (wire / "__init__.py").is_file() and not (wire / "__init__.py").is_symlink()
    link = ROOT / "shared" / "wire"
    assert link.is_symlink() and os.readlink(link) == "../client/vend_client/wire"


def test_the_wire_modules_import_only_each_other_the_stdlib_and_both_sides_dependencies() -> None:
    """They are imported as `shared.wire` by the service and as `vend_client.wire` by callers:
    nothing but what both install (the SDK's tea-openapi and credentials, cryptography)."""
    allowed = set(sys.stdlib_module_names) | {
        "cryptography",
        "alibabacloud_tea_openapi",
        "alibabacloud_credentials",
        "__future__",
    }
    for path in (CLIENT / "vend_client" / "wire").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                continue  # relative: the folder itself
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                assert name.split(".")[0] in allowed, f"{path.name} imports {name}"


def test_installs_alone_and_its_tests_pass(tmp_path: Path) -> None:
    source = tmp_path / "client"
    # A copy with the link resolved, so pip builds it with nothing of the checkout around it.
    shutil.copytree(
        CLIENT,
        source,
        symlinks=False,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"),
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    pip = [python, "-m", "pip", "--disable-pip-version-check"]
    done = subprocess.run(
        [*pip, "install", "-q", f"{source}[test]"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    listed = subprocess.run(
        [*pip, "list", "--format=freeze"], env=env, capture_output=True, text=True
    )
    installed = {line.split("==")[0].lower() for line in listed.stdout.splitlines()}
    assert "secret-vending-client" in installed
    assert not installed & NOT_FOR_CALLERS, installed & NOT_FOR_CALLERS
    # The tests run from a folder where nothing of the checkout is importable.
    tests = tmp_path / "tests"
    shutil.copytree(CLIENT / "tests", tests)
    run = subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
    where = subprocess.run(
        [python, "-c", "import vend_client, shared"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert "No module named 'shared'" in where.stderr  # the service is not there to lean on
    typed = subprocess.run(  # PEP 561: a caller's mypy reads vend_client's own types
        [python, "-c", "import pathlib, vend_client; "
         "print((pathlib.Path(vend_client.__file__).parent / 'py.typed').is_file())"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert typed.stdout.strip() == "True", typed.stderr
