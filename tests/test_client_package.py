"""The caller's package installs beside any application. From a copy of `client/` with nothing of
the service beside it, `python -m build` makes an sdist and, from that sdist, a wheel; the wheel
goes into two fresh virtualenvs, and the package's own tests (from the sdist) pass in both:
- the floor: the oldest versions its ranges allow (`client/constraints-floor.txt`), installed
  first, as an application would have them; installing the package changes none of them;
- the newest: a plain install, which takes the newest versions the ranges allow.
The build and the two virtualenvs run at the same time. A copy that lacks a module the package
imports does not build at all. The wire modules live in the package; the service links to them."""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

import vend_client

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "client"
FLOOR = CLIENT / "constraints-floor.txt"
DISTRIBUTION = "secret-vending-client"
# What a caller must never have to install for the service's sake.
NOT_FOR_CALLERS = {"redis", "pyyaml", "pyjwt", "aliyun-fc2", "pydantic"}
# Nothing of the checkout leaks in, and nothing is written beside the sources the tests run from.
ENV = {
    **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
    "PYTHONDONTWRITEBYTECODE": "1",
}
# Run in each virtualenv: where vend_client comes from, and what a caller's tools see of it.
PROBE = """
import importlib.util, json, pathlib, vend_client
print(json.dumps({
    "file": vend_client.__file__,
    "version": vend_client.__version__,
    "typed": (pathlib.Path(vend_client.__file__).parent / "py.typed").is_file(),
    "shared": importlib.util.find_spec("shared") is not None,
}))
"""
# A caller's code with a type error that mypy finds only if it reads vend_client's own types.
CALLER = """
from vend_client import parse_endpoint

endpoint: int = parse_endpoint("kms.cn-hangzhou.aliyuncs.com")
"""


def _run(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _ok(done: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert done.returncode == 0, (done.args, done.stdout[-3000:], done.stderr[-3000:])
    return done


def copy_of_client(into: Path) -> Path:
    """`client/` alone, as a vendored copy or `git archive` of the folder gives it: links kept
    as links, nothing of the rest of the repository."""
    ignore = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__", ".*_cache")
    return Path(shutil.copytree(CLIENT, into, symlinks=True, ignore=ignore))


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    tests: Path  # the package's tests, as the sdist holds them


@dataclass(frozen=True)
class Venv:
    path: Path

    @classmethod
    def create(cls, path: Path) -> Venv:
        _ok(_run(sys.executable, "-m", "venv", path))
        return cls(path)

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def pip(self, *args: str | Path) -> subprocess.CompletedProcess[str]:
        return _ok(_run(self.python, "-m", "pip", "--disable-pip-version-check", *args))

    def versions(self) -> dict[str, str]:
        listed = json.loads(self.pip("list", "--format=json").stdout)
        return {canonicalize_name(d["name"]): d["version"] for d in listed}


@dataclass(frozen=True)
class Installed:
    venv: Venv
    before: dict[str, str]  # what the virtualenv held before the package went in
    after: dict[str, str]
    tests: subprocess.CompletedProcess[str]  # the package's tests, run there
    probe: dict[str, Any]
    version: subprocess.CompletedProcess[str]  # its `vend-client --version`


def build(work: Path) -> Built:
    """The sdist of a copy of `client/` alone, and the wheel built from that sdist."""
    source = copy_of_client(work / "client")
    dist = work / "dist"
    _ok(_run(sys.executable, "-m", "build", "--outdir", dist, source))
    (sdist,) = dist.glob("*.tar.gz")
    (wheel,) = dist.glob("*.whl")
    with tarfile.open(sdist) as archive:
        archive.extractall(work / "unpacked", filter="data")
    (tests,) = (work / "unpacked").glob("*/tests")
    return Built(sdist, wheel, tests)


def floor_pins() -> dict[str, str]:
    """`constraints-floor.txt`: each requirement's name and the one version it pins."""
    pins: dict[str, str] = {}
    for raw in FLOOR.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", line
            pins[canonicalize_name(requirement.name)] = spec.version
    return pins


def install(work: Path, built: Future[Built], *, floor: bool) -> Installed:
    """A fresh virtualenv (the floor set first, when asked), then the wheel with its test extra;
    the package's tests from the sdist run from a folder where nothing else is importable."""
    venv = Venv.create(work / "venv")
    if floor:
        venv.pip("install", "-q", "-r", FLOOR)
    before = venv.versions()
    dists = built.result()
    venv.pip("install", "-q", f"{dists.wheel}[test]")
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    tests = _run(
        venv.python,
        "-m",
        "pytest",
        "-q",
        "-rs",
        "-p",
        "no:cacheprovider",
        dists.tests,
        cwd=elsewhere,
    )
    probe = json.loads(_ok(_run(venv.python, "-c", PROBE, cwd=elsewhere)).stdout)
    version = _run(venv.path / "bin" / "vend-client", "--version", cwd=elsewhere)
    return Installed(venv, before, venv.versions(), tests, probe, version)


@dataclass(frozen=True)
class Made:
    built: Built
    floor: Installed
    newest: Installed


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    """The build and the two virtualenvs at once: each virtualenv waits for the wheel only
    when it has everything else in place."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        built = pool.submit(build, tmp_path_factory.mktemp("build"))
        floor = pool.submit(install, tmp_path_factory.mktemp("floor"), built, floor=True)
        newest = pool.submit(install, tmp_path_factory.mktemp("newest"), built, floor=False)
        return Made(built.result(), floor.result(), newest.result())


# The only skip the installed copies may report (the skip policy of tests/skip_policy.py does not
# reach a pytest run of its own): the tests of the `events` extra, which a caller without it
# never installs (NOT_FOR_CALLERS), and which the checkout's run covers with fc2 installed.
WITHOUT_EVENTS = "could not import 'fc2'"


def _passed(run: subprocess.CompletedProcess[str]) -> None:
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert " passed" in run.stdout
    skipped = [line for line in run.stdout.splitlines() if line.startswith("SKIPPED")]
    assert all(WITHOUT_EVENTS in line for line in skipped), skipped


def _metadata(wheel: Path) -> Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return HeaderParser().parsestr(archive.read(name).decode())


# -- where the wire modules live -----------------------------------------------------------


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


# -- the build -----------------------------------------------------------------------------


def test_the_sdist_and_wheel_of_a_copy_of_client_alone_hold_everything(made: Made) -> None:
    with zipfile.ZipFile(made.built.wheel) as archive:
        in_wheel = set(archive.namelist())
    headers = _metadata(made.built.wheel)
    wire = {f"vend_client/wire/{p.name}" for p in (CLIENT / "vend_client" / "wire").glob("*.py")}
    assert len(wire) > 1 and wire <= in_wheel
    assert "vend_client/py.typed" in in_wheel
    assert [n for n in in_wheel if n.endswith(".dist-info/licenses/LICENSE")]
    assert not [n for n in in_wheel if n.startswith(("tests/", "shared/", "build_backend/"))]
    assert headers["Version"] == vend_client.__version__
    assert headers["License-Expression"] == "Apache-2.0"
    assert headers["Description-Content-Type"] == "text/markdown"

    with tarfile.open(made.built.sdist) as archive:
        in_sdist = {n.split("/", 1)[1] for n in archive.getnames() if "/" in n}
    needed = {f"tests/{p.name}" for p in (CLIENT / "tests").glob("*.py")}
    assert "tests/sealed.py" in needed and needed <= in_sdist  # what the tests import, too
    assert {
        "README.md",
        "LICENSE",
        "constraints-floor.txt",
        "build_backend/vend_client_build.py",
        "vend_client/wire/__init__.py",
    } <= in_sdist


def test_each_dependency_is_a_range_whose_floor_the_floor_file_pins(made: Made) -> None:
    """What callers' resolvers read (the wheel's Requires-Dist): a range from a floor to below a
    ceiling for each, never a pin; and `constraints-floor.txt` pins exactly those floors."""
    floors: dict[str, str] = {}
    for requirement in map(Requirement, _metadata(made.built.wheel).get_all("Requires-Dist", [])):
        bounds = {spec.operator: spec.version for spec in requirement.specifier}
        assert set(bounds) == {">=", "<"}, str(requirement)
        marker = str(requirement.marker or "")
        if marker in ("", 'extra == "test"'):  # what the floor virtualenv installs
            floors[canonicalize_name(requirement.name)] = bounds[">="]
    assert "waitress" in floors  # `vend-client agent` serves with it
    assert floor_pins() == floors


@pytest.mark.parametrize("broken", ["removed", "the old dangling link"])
def test_a_copy_without_the_wire_modules_does_not_build(tmp_path: Path, broken: str) -> None:
    """Not a wheel that installs and then fails on import: the build stops, and says why."""
    source = copy_of_client(tmp_path / "client")
    shutil.rmtree(source / "vend_client" / "wire")
    if broken == "the old dangling link":
        (source / "vend_client" / "wire").symlink_to("../../shared/wire")
    out = tmp_path / "wheels"
    done = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, source)
    assert done.returncode != 0
    said = done.stdout + done.stderr
    assert "secret-vending-client cannot be built" in said
    assert "vend_client/wire/__init__.py is missing" in said
    assert not list(out.glob("*.whl"))


# -- installed beside an application -------------------------------------------------------


def test_beside_the_floor_versions_the_install_changes_none_and_its_tests_pass(
    made: Made,
) -> None:
    floor = made.floor
    pins = floor_pins()
    assert {name: floor.before.get(name) for name in pins} == pins  # the application's set
    changed = {
        name: (version, floor.after.get(name))
        for name, version in floor.before.items()
        if floor.after.get(name) != version
    }
    assert changed == {}
    assert set(floor.after) - set(floor.before) == {DISTRIBUTION}
    _passed(floor.tests)
    assert floor.probe["file"].startswith(f"{floor.venv.path}/")


def test_with_the_newest_versions_its_tests_pass(made: Made) -> None:
    newest = made.newest
    _passed(newest.tests)
    assert newest.probe["file"].startswith(f"{newest.venv.path}/")
    assert not set(newest.after) & NOT_FOR_CALLERS
    pins = floor_pins()
    for name in ("cryptography", "requests"):  # a plain install took newer releases
        assert Version(newest.after[name]) > Version(pins[name]), name


def test_installed_it_names_its_version_and_is_typed_without_the_service(
    made: Made, tmp_path: Path
) -> None:
    newest = made.newest
    assert newest.probe["version"] == vend_client.__version__
    assert (newest.version.returncode, newest.version.stdout) == (
        0,
        f"vend-client {vend_client.__version__}\n",
    )
    assert newest.probe["shared"] is False  # the service is not there to lean on
    assert newest.probe["typed"] is True
    # A caller's mypy --strict reads vend_client's own types (PEP 561): it finds the caller's bug.
    (tmp_path / "caller.py").write_text(CALLER)
    checked = _run(
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--config-file=",
        "--no-incremental",
        "--python-executable",
        newest.venv.python,
        "caller.py",
        cwd=tmp_path,
    )
    assert 'expression has type "Endpoint", variable has type "int"' in checked.stdout, (
        checked.stdout + checked.stderr
    )
