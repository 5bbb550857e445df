"""The FC code package (`infra/package.py`, `make package`): what goes in, what stays out, that
the handlers import from the unpacked zip alone, and that two builds give the same bytes.

Each zip is built once for the module. Two targets:
- the LOCAL interpreter's version and platform, whose compiled wheels this interpreter can load:
  it is unpacked and imported in a clean interpreter (`-I -S`: no site-packages, no cwd on the
  path; only the unpacked dir and the standard library; `-B`: no bytecode written, as on FC,
  whose /code is read-only, so every import compiles from source as a cold start does);
- the FC target (package.DEFAULT_PYTHON, 3.10), whose contents are checked. This interpreter
  cannot import it: pydantic-core, PyYAML, cffi, multidict, ... ship extensions built for one
  CPython version (`cp310-cp310`; only cryptography's is `abi3`), and a 3.11 interpreter does
  not load a `cpython-310` extension. On any interpreter, the wheels' tags are checked against
  FC's Python and platform and every .py is parsed with 3.10's grammar; where a python3.10 is
  installed (pyenv), the FC zip is imported under it too (elsewhere, CI's 3.11 included, that
  test skips: tests/skip_policy.py lists why).
"""

from __future__ import annotations

import ast
import glob
import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging import tags

from infra import package
from infra.package import BuildResult, PackageError, Requirement, Target

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "policy.json"
WHEEL_PLATFORMS = {"x86_64": "manylinux2014_x86_64", "aarch64": "manylinux2014_aarch64"}
# Named by the issue; the rest of the dev-only set is read from requirements-dev.txt.
DEV_TOP_LEVEL = {"pytest", "_pytest", "mypy", "mypyc", "ruff", "pytest_httpserver", "werkzeug"}
NOT_SHIPPED = ("infra/", "tests/", "benchmarks/", "examples/", "client/", "vend_client/")
# What the function never imports: the caller's fc2, and the SDK product modules of STS, EIAM and
# KMS (the core sends the SDK's own signed requests, shared/upstream/transport.py).
NEVER_IMPORTED = {
    "fc2",
    "alibabacloud_sts20150401",
    "alibabacloud_eiam20211201",
    "alibabacloud_kms20160120",
    "vend_client",
}
FC_TARGET = Target(package.DEFAULT_PYTHON, package.DEFAULT_PLATFORM)

# Run in the unpacked zip by a clean interpreter; prints one RESULT line of JSON.
IMPORT_CHECK = r"""
import importlib, json, os, pkgutil, sys, time
root = os.path.realpath(sys.argv[1])
base_path = list(sys.path)
sys.path.insert(0, root)
start = time.perf_counter()
import functions.http
http_s = time.perf_counter() - start
import functions.events
both_s = time.perf_counter() - start
failed = {}
for pkg in ("functions", "shared"):
    for info in pkgutil.walk_packages([os.path.join(root, pkg)], pkg + "."):
        try:
            importlib.import_module(info.name)
        except Exception as exc:
            failed[info.name] = repr(exc)
allowed = [root] + [os.path.realpath(p) for p in base_path]
outside = sorted(
    f for f in (getattr(m, "__file__", None) for m in list(sys.modules.values()))
    if isinstance(f, str)
    and not any(os.path.realpath(f).startswith(a + os.sep) for a in allowed)
)
class Context:
    request_id = "package-test"
answer = functions.http.handler(b"not an HTTP trigger event", Context())
policy = None
if os.path.exists("policy.json"):
    from shared.approval import load_approval_policy
    policy = type(load_approval_policy("policy.json")).__name__
print("RESULT " + json.dumps({
    "isolated": bool(sys.flags.isolated), "no_site": bool(sys.flags.no_site),
    "base_path": base_path, "http_import_s": http_s, "both_import_s": both_s,
    "callable": {f"{m.__name__}.{n}": callable(getattr(m, n, None))
                 for m in (functions.http, functions.events)
                 for n in ("handler", "initializer")},
    "files": {m.__name__: m.__file__ for m in (functions.http, functions.events)},
    "pydantic_core": sys.modules["pydantic_core"].__file__,
    "failed": failed, "outside": outside, "bad_event_status": answer.get("statusCode"),
    "policy": policy, "version": list(sys.version_info[:2]),
}))
"""


def _local_target() -> Target:
    machine = platform.machine()
    if sys.platform != "linux" or machine not in WHEEL_PLATFORMS:
        pytest.skip(f"no manylinux wheels for {sys.platform}/{machine}: cannot import locally")
    return Target("{}.{}.{}".format(*sys.version_info[:3]), WHEEL_PLATFORMS[machine])


def _interpreter(version: str) -> str | None:
    """A python of `version` (3.N) on this machine, or None."""
    pattern = os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")
    for candidate in [shutil.which(f"python{version}"), *sorted(glob.glob(pattern))]:
        if not candidate:
            continue
        probe = subprocess.run(
            [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def _names(built: BuildResult) -> list[str]:
    with zipfile.ZipFile(built.path) as archive:
        return archive.namelist()


def _unpack(built: BuildResult, into: Path) -> Path:
    with zipfile.ZipFile(built.path) as archive:
        archive.extractall(into)
    return into


def _import_check(python: str, unpacked: Path) -> dict[str, Any]:
    done = subprocess.run(
        [python, "-I", "-S", "-B", "-c", IMPORT_CHECK, str(unpacked)],
        cwd=unpacked,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert len(lines) == 1, done.stdout[-2000:]
    result: dict[str, Any] = json.loads(lines[0][len("RESULT ") :])
    return result


def _dist_names(names: list[str]) -> set[str]:
    """Normalized names of the distributions whose dist-info is in the zip."""
    tops = {n.split("/", 1)[0] for n in names}
    return {
        package.normalize_name(t[: -len(".dist-info")].rsplit("-", 1)[0])
        for t in tops
        if t.endswith(".dist-info")
    }


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "-")):
            names.add(Requirement.parse(line).name)
    return names


@pytest.fixture(scope="module")
def wheel_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Shared by the builds of this module: the sdist-only packages are built into wheels once."""
    return tmp_path_factory.mktemp("wheel-cache")


@pytest.fixture(scope="module")
def local_zip(tmp_path_factory: pytest.TempPathFactory, wheel_cache: Path) -> BuildResult:
    out = tmp_path_factory.mktemp("local") / "vend-fc.zip"
    return package.build(_local_target(), out, policy=POLICY, wheel_cache=wheel_cache)


@pytest.fixture(scope="module")
def fc_zip(tmp_path_factory: pytest.TempPathFactory, wheel_cache: Path) -> BuildResult:
    out = tmp_path_factory.mktemp("fc") / "vend-fc.zip"
    return package.build(FC_TARGET, out, wheel_cache=wheel_cache)


@pytest.fixture(scope="module")
def local_result(
    local_zip: BuildResult, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    unpacked = _unpack(local_zip, tmp_path_factory.mktemp("unpacked-local"))
    return _import_check(sys.executable, unpacked)


@pytest.fixture(params=["local", "fc"])
def built(request: pytest.FixtureRequest) -> BuildResult:
    result: BuildResult = request.getfixturevalue(f"{request.param}_zip")
    return result


# -- contents ------------------------------------------------------------------------------


def test_holds_the_handlers_and_the_core_at_the_zip_root(built: BuildResult) -> None:
    names = set(_names(built))
    for required in ("functions/http.py", "functions/events.py", "shared/__init__.py"):
        assert required in names
    # shared/wire is a link to the caller's package: the zip holds its files as the core's own.
    assert {"shared/wire/__init__.py", "shared/wire/envelope.py"} <= names
    # Every source file of functions/ and shared/, byte for byte, and nothing else of ours.
    sources = package.source_files(ROOT)
    ours = {n for n in names if n.startswith(("functions/", "shared/"))}
    assert ours == set(sources)
    with zipfile.ZipFile(built.path) as archive:
        for name, path in sources.items():
            assert archive.read(name) == path.read_bytes(), name


def test_ships_no_emulator_tests_benchmarks_examples_or_dev_tools(built: BuildResult) -> None:
    names = _names(built)
    assert not [n for n in names if n.startswith(NOT_SHIPPED)]
    assert not [n for n in names if "emulator" in n.split("/")]
    tops = {n.split("/", 1)[0].removesuffix(".py").lower() for n in names}
    assert not tops & DEV_TOP_LEVEL
    dev_only = _requirement_names(ROOT / "requirements-dev.txt") - _requirement_names(
        package.DEFAULT_REQUIREMENTS
    )
    assert "werkzeug" in dev_only  # the test-only server stays a dev dependency
    assert not _dist_names(names) & dev_only


def test_ships_every_pinned_runtime_dependency_and_no_other(built: BuildResult) -> None:
    assert _dist_names(_names(built)) == _requirement_names(package.DEFAULT_REQUIREMENTS)


def test_every_top_level_entry_is_the_function_or_a_shipped_dependency(built: BuildResult) -> None:
    """The zip, listed: `functions/`, `shared/`, the policy when asked, and the top-level
    packages of the pinned runtime dependencies (as this machine's copies of the same versions
    lay them out); nothing else."""
    allowed = {"functions", "shared", "policy.json"}
    for name in _requirement_names(package.DEFAULT_REQUIREMENTS):
        files = importlib.metadata.distribution(name).files or []
        allowed |= {_module_of(f.parts[0]) for f in files if not f.parts[0].startswith("..")}
    tops = {n.split("/", 1)[0] for n in _names(built)}
    stray = sorted(t for t in tops if _module_of(t) not in allowed)
    assert stray == []
    assert not {_module_of(t) for t in tops} & NEVER_IMPORTED


def _module_of(entry: str) -> str:
    """`pkg`, `mod.py` or `_ext.cpython-310-x86_64-linux-gnu.so` -> the module's name."""
    return entry.split(".", 1)[0] if entry.endswith((".py", ".so", ".pyd")) else entry


def test_no_bytecode_console_scripts_or_install_records(built: BuildResult) -> None:
    names = _names(built)
    assert not [n for n in names if n.endswith((".pyc", ".pyo")) or "/__pycache__/" in n]
    assert not [n for n in names if n.startswith("bin/")]
    records = ("/RECORD", "/INSTALLER", "/REQUESTED", "/direct_url.json")
    assert not [n for n in names if ".dist-info/" in n and n.endswith(records)]
    # The dist-info directories themselves stay: importlib.metadata reads them.
    assert "pydantic-core" in _dist_names(names)
    assert [n for n in names if n.endswith(".dist-info/METADATA")]


def test_entries_are_sorted_with_one_date_and_fixed_modes(built: BuildResult) -> None:
    with zipfile.ZipFile(built.path) as archive:
        infos = archive.infolist()
    assert [i.filename for i in infos] == sorted(i.filename for i in infos)
    assert {i.date_time for i in infos} == {package.ZIP_DATE}
    assert {i.external_attr >> 16 for i in infos} <= {0o100644, 0o100755}


def test_the_policy_is_shipped_only_when_asked(local_zip: BuildResult, fc_zip: BuildResult) -> None:
    with zipfile.ZipFile(local_zip.path) as archive:
        assert archive.read(package.POLICY_NAME) == POLICY.read_bytes()
    assert package.POLICY_NAME not in _names(fc_zip)


def test_fc_target_wheels_are_for_its_python(fc_zip: BuildResult) -> None:
    extensions = [n for n in _names(fc_zip) if ".cpython-" in n and n.endswith(".so")]
    tag = ".cpython-" + package.DEFAULT_PYTHON.replace(".", "") + "-x86_64-linux-gnu.so"
    assert [n for n in extensions if n.startswith("pydantic_core/") and n.endswith(tag)]
    assert [n for n in extensions if not n.endswith(tag)] == []


# FC's runtime: CPython 3.10 on x86_64 Linux with glibc 2.17 (package.DEFAULT_PLATFORM).
FC_GLIBC_MINOR = 17
FC_PLATFORMS = [
    *(f"manylinux_2_{minor}_x86_64" for minor in range(FC_GLIBC_MINOR, 4, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
]


def _fc_tags() -> set[tags.Tag]:
    version = tuple(int(p) for p in package.DEFAULT_PYTHON.split("."))
    interpreter = "cp" + package.DEFAULT_PYTHON.replace(".", "")
    return {
        *tags.cpython_tags(version, abis=[interpreter], platforms=FC_PLATFORMS),
        *tags.compatible_tags(version, interpreter, platforms=FC_PLATFORMS),
    }


def test_fc_target_wheels_are_tagged_for_its_python_and_platform(fc_zip: BuildResult) -> None:
    """Every distribution in the FC zip came from a wheel that installs on FC's Python and
    platform (the tags in its dist-info's WHEEL file): checked without a python3.10 (CI's is
    3.11), as pip would, beside the import under 3.10 below where there is one."""
    assert package.DEFAULT_PLATFORM == "manylinux2014_x86_64"
    supported = _fc_tags()
    with zipfile.ZipFile(fc_zip.path) as archive:
        wheels = {
            name: archive.read(name).decode()
            for name in archive.namelist()
            if name.count("/") == 1 and name.endswith(".dist-info/WHEEL")
        }
    assert len(wheels) == len(_dist_names(_names(fc_zip)))
    wrong = {}
    for name, text in sorted(wheels.items()):
        found = {
            tag
            for line in text.splitlines()
            if line.startswith("Tag: ")
            for tag in tags.parse_tag(line.removeprefix("Tag: "))
        }
        if not found & supported:
            wrong[name] = sorted(str(t) for t in found)
    assert wrong == {}


def test_fc_target_sources_parse_under_its_python(fc_zip: BuildResult) -> None:
    """Every .py in the FC zip is Python 3.10: parsed with 3.10's grammar (`feature_version`),
    so syntax that only a newer Python reads (`except*`, `type X = ...`, generics `def f[T]`)
    fails here, on any interpreter."""
    version = tuple(int(p) for p in package.DEFAULT_PYTHON.split("."))
    failed = {}
    with zipfile.ZipFile(fc_zip.path) as archive:
        sources = [n for n in archive.namelist() if n.endswith(".py")]
        for name in sources:
            try:
                ast.parse(archive.read(name), filename=name, feature_version=version)
            except SyntaxError as exc:
                failed[name] = str(exc)
    assert [n for n in sources if n.startswith(("shared/", "functions/"))]
    assert failed == {}


def test_size_is_sane(built: BuildResult) -> None:
    print(f"\n{built.path.name}: {built.size / 1e6:.1f} MB, {built.files} files")
    assert 1_000_000 < built.size < 100_000_000
    assert built.files == len(_names(built))


# -- importing from the unpacked zip -------------------------------------------------------


def test_handlers_import_from_the_unpacked_zip_in_a_clean_interpreter(
    local_result: dict[str, Any], record_property: pytest.RecordProperty
) -> None:
    assert local_result["isolated"] and local_result["no_site"]
    assert not [p for p in local_result["base_path"] if "site-packages" in p]
    assert local_result["callable"] == {
        "functions.http.handler": True,
        "functions.http.initializer": True,
        "functions.events.handler": True,
        "functions.events.initializer": True,
    }
    assert local_result["failed"] == {}
    assert local_result["outside"] == []
    assert local_result["bad_event_status"] == 400  # the handler ran, pydantic-core included
    assert local_result["policy"] == "ApprovalPolicy"
    for path in (*local_result["files"].values(), local_result["pydantic_core"]):
        assert "site-packages" not in path and "unpacked-local" in path, path
    # Recorded, not asserted: the cold-start cost of the handler's imports.
    http_ms = float(local_result["http_import_s"]) * 1000
    both_ms = float(local_result["both_import_s"]) * 1000
    record_property("http_import_ms", round(http_ms, 1))
    print(f"\nimport functions.http from the zip: {http_ms:.0f} ms (+events: {both_ms:.0f} ms)")


def test_fc_target_imports_under_its_own_python(
    fc_zip: BuildResult, tmp_path_factory: pytest.TempPathFactory
) -> None:
    python = _interpreter(package.DEFAULT_PYTHON)
    if python is None:
        pytest.skip(f"no python{package.DEFAULT_PYTHON} here to import the FC target with")
    unpacked = _unpack(fc_zip, tmp_path_factory.mktemp("unpacked-fc"))
    result = _import_check(python, unpacked)
    assert result["version"] == [int(p) for p in package.DEFAULT_PYTHON.split(".")]
    assert result["failed"] == {}
    assert result["outside"] == []
    assert result["bad_event_status"] == 400
    assert all(result["callable"].values())
    print(f"\npython{package.DEFAULT_PYTHON}: functions.http in {result['http_import_s']:.3f} s")


def test_fc_target_ships_bytecode_its_python_uses(
    wheel_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """FC's /code is read-only: without shipped bytecode every cold start compiles from source.
    The pycs are unchecked-hash, so a changed source is not even read: changing one after the
    build and still importing proves the bytecode is what runs."""
    python = package.find_interpreter(FC_TARGET)
    if python is None:
        pytest.skip(f"no python{package.DEFAULT_PYTHON} here to make bytecode with")
    out = tmp_path_factory.mktemp("fc-bytecode") / "vend-fc.zip"
    result = package.build(FC_TARGET, out, wheel_cache=wheel_cache, compile_with=python)
    with zipfile.ZipFile(result.path) as archive:
        names = set(archive.namelist())
    ours = [n for n in names if n.startswith(("shared/", "functions/")) and n.endswith(".py")]
    tag = "cpython-" + package.DEFAULT_PYTHON.replace(".", "")
    missing = [
        n
        for n in ours
        if f"{n.rsplit('/', 1)[0]}/__pycache__/{n.rsplit('/', 1)[1][:-3]}.{tag}.pyc" not in names
    ]
    assert ours and missing == []
    unpacked = _unpack(result, tmp_path_factory.mktemp("unpacked-bytecode"))
    errors = unpacked / "shared" / "errors.py"
    errors.write_text(errors.read_text() + "\nraise SystemExit('the source was compiled')\n")
    done = subprocess.run(
        [
            python,
            "-I",
            "-S",
            "-B",
            "-c",
            f"import sys; sys.path.insert(0, {str(unpacked)!r}); import functions.http, functions.events",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (0, "")


# -- reproducibility -----------------------------------------------------------------------


def test_a_second_build_gives_the_same_bytes(
    local_zip: BuildResult, wheel_cache: Path, tmp_path: Path
) -> None:
    again = package.build(
        _local_target(), tmp_path / "again.zip", policy=POLICY, wheel_cache=wheel_cache
    )
    assert again.path.read_bytes() == local_zip.path.read_bytes()


def test_the_source_part_does_not_depend_on_dates_or_umask(tmp_path: Path) -> None:
    copies = []
    for n, (mtime, mode) in enumerate([(1_000_000_000, 0o644), (1_700_000_000, 0o664)]):
        tree = tmp_path / f"tree{n}"
        for pkg in package.SOURCES:
            shutil.copytree(ROOT / pkg, tree / pkg, ignore=shutil.ignore_patterns("__pycache__"))
        for path in tree.rglob("*"):
            if path.is_file():
                path.chmod(mode)
                os.utime(path, (mtime, mtime))
        out = tmp_path / f"src{n}.zip"
        package.write_zip(out, package.source_files(tree))
        copies.append(out.read_bytes())
    assert copies[0] == copies[1]
    # and the bytes do follow the contents
    (tmp_path / "tree1" / "shared" / "__init__.py").write_text("# changed\n")
    package.write_zip(tmp_path / "changed.zip", package.source_files(tmp_path / "tree1"))
    assert (tmp_path / "changed.zip").read_bytes() != copies[0]


# -- markers and requirements, for the target rather than this interpreter ---------------------

PY310 = Target("3.10", "manylinux2014_x86_64")
PY311 = Target("3.11.7", "manylinux2014_aarch64")


@pytest.mark.parametrize(
    ("marker", "on_310", "on_311"),
    [
        ('python_version < "3.11"', True, False),
        ("python_full_version < '3.11.3'", True, False),
        ('python_version >= "3.10" and platform_machine == "x86_64"', True, False),
        (
            '(sys_platform == "win32" or os_name == "posix") and python_version ~= "3.10"',
            True,
            True,
        ),
        ('python_version == "3.10.*"', True, False),
        (
            'implementation_name != "PyPy" and platform_python_implementation == "CPython"',
            True,
            True,
        ),
        ('"linux" in sys_platform and python_version not in "3.9 3.10"', False, True),
        ('extra == "crypto"', False, False),
    ],
)
def test_markers_are_evaluated_for_the_target(marker: str, on_310: bool, on_311: bool) -> None:
    assert package.marker_holds(marker, PY310) is on_310
    assert package.marker_holds(marker, PY311) is on_311


def test_extras_and_undecidable_markers() -> None:
    assert package.marker_holds('extra == "Crypto"', PY310, {"crypto"})
    with pytest.raises(PackageError, match="patch release"):
        package.marker_holds("python_full_version < '3.10.5'", PY310)
    assert package.marker_holds("python_full_version < '3.10.5'", Target("3.10.4", "linux_x86_64"))
    with pytest.raises(PackageError, match="cannot be decided"):
        package.marker_holds('platform_release >= "5"', PY310)
    with pytest.raises(PackageError):
        package.marker_holds("python_version <", PY310)


def test_requirements_must_be_pinned_and_plain(tmp_path: Path) -> None:
    reqs = tmp_path / "r.txt"
    reqs.write_text('a==1.0\nb==2.0; python_version < "3.11"  # old only\n\n# c\n')
    assert [r.name for r in package.read_requirements(reqs, PY310)] == ["a", "b"]
    assert [r.name for r in package.read_requirements(reqs, PY311)] == ["a"]
    for bad in ("a>=1.0\n", "a\n", "-r other.txt\n", "a==1.*\n"):
        reqs.write_text(bad)
        with pytest.raises(PackageError):
            package.read_requirements(reqs, PY310)


def _fake_dist(site: Path, name: str, version: str, *requires: str) -> None:
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = [f"Name: {name}", f"Version: {version}", *(f"Requires-Dist: {r}" for r in requires)]
    (info / "METADATA").write_text("\n".join(lines) + "\n")


def test_a_dependency_only_the_target_needs_must_be_pinned(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _fake_dist(site, "aiohttp", "3.14.5", 'async-timeout<6.0,>=4.0; python_version < "3.11"')
    _fake_dist(site, "PyJWT", "2.15.1", 'cryptography>=3.4; extra == "crypto"')
    pins = [Requirement.parse("aiohttp==3.14.5"), Requirement.parse("PyJWT[crypto]==2.15.1")]
    with pytest.raises(PackageError, match="async-timeout, wanted by aiohttp") as caught:
        package.check_complete(site, pins, PY310)
    assert "cryptography, wanted by PyJWT" in str(caught.value)  # the extra is followed
    _fake_dist(site, "cryptography", "50.0.2")
    package.check_complete(site, pins, PY311)  # 3.11 needs no async-timeout
    with pytest.raises(PackageError, match="async-timeout"):
        package.check_complete(site, pins, PY310)
    _fake_dist(site, "async_timeout", "5.0.1")
    package.check_complete(site, pins, PY310)


def test_command_line_refuses_a_bad_target(capsys: pytest.CaptureFixture[str]) -> None:
    assert package.main(["--platform", "win_amd64", "--output", "/nonexistent/x.zip"]) == 1
    assert "--platform 'win_amd64'" in capsys.readouterr().err
    assert package.main(["--python-version", "3", "--output", "/nonexistent/x.zip"]) == 1
    assert "--python-version '3'" in capsys.readouterr().err
