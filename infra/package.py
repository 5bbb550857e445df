"""Builds the code package for Function Compute: `dist/vend-fc.zip`, which `code:` in `s.yaml`
points to (`s build` needs Docker, which we do not have).

    python -m infra.package [--python-version 3.10] [--platform manylinux2014_x86_64]
                            [--policy examples/policy.json] [--output dist/vend-fc.zip]

The zip root holds `functions/` and `shared/` (their `.py` files only) and the runtime
dependencies of `requirements.txt` as wheels for the target Python and platform, so that FC's
`handler: functions.http.handler` imports as it is. Nothing else of the repository goes in: not
`infra/` (the emulator), `tests/`, `benchmarks/`, `examples/` (except `--policy`, copied to
`policy.json`, and `--rotation`, copied to `rotation.json`), nor the dev tools.

How the dependencies are installed, and why not with one `pip install -r requirements.txt`:
- pip evaluates environment markers (`; python_version < "3.11"`) against the interpreter that
  runs it, not against `--python-version`, in requirement lines and in the packages' own
  `Requires-Dist` alike. So the markers of `requirements.txt` are evaluated here, for the
  target, and pip installs the result with `--no-deps`; then every installed distribution's
  `Requires-Dist` is checked, again for the target, against what was installed. A dependency
  that only the target needs (aiohttp needs async-timeout below Python 3.11) and that the lock
  does not pin stops the build with its name.
- Some pinned packages are published as sdists only (aliyun-fc2, alibabacloud-tea, ...). They
  are downloaded, built into wheels here, and accepted only if the wheel is pure Python
  (`*-none-any.whl`): a compiled one would be built for this machine, not for the target.

Reproducible: files in sorted order, one fixed date, normalised permissions, and nothing that
depends on where or when it was built (pip's `RECORD`, `INSTALLER`, `REQUESTED` and
`direct_url.json` are left out, and so are the console scripts in `bin/`, whose first line names
this machine's interpreter). Two builds from the same inputs with the same zlib give the same
bytes.

The standard library and `packaging` (requirement and marker parsing, as pip does it); pip runs
as a subprocess of this interpreter (`python -m pip`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path

from packaging.markers import InvalidMarker, Marker, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement
from packaging.requirements import Requirement as PackagingRequirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("functions", "shared")
DEFAULT_PYTHON = "3.10"
DEFAULT_PLATFORM = "manylinux2014_x86_64"
DEFAULT_OUTPUT = ROOT / "dist" / "vend-fc.zip"
DEFAULT_REQUIREMENTS = ROOT / "requirements.txt"
POLICY_NAME = "policy.json"
ROTATION_NAME = "rotation.json"  # VEND_ROTATION=/code/rotation.json
ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # the earliest date a zip can hold
# zlib's default: level 9 made the zip 0.6 % smaller (13.08 MB against 13.16) in five times the
# time (9.0 s against 1.7 s here), and every `make package` and every test build pays it.
ZIP_LEVEL = 6

# Left out of the dependencies: compiled bytecode, type stubs and Cython sources (never
# imported), test suites shipped inside packages, console scripts, and pip's install records.
PRUNED_SUFFIXES = (".pyc", ".pyo", ".pyi", ".pyx", ".pxd", ".pxi")
PRUNED_DIRS = ("__pycache__",)
PRUNED_PACKAGE_DIRS = ("tests",)  # only inside a package, never a top-level name
PRUNED_TOP_LEVEL = ("bin",)
PRUNED_DIST_INFO = ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")

_MACHINES = ("x86_64", "aarch64")
_PLATFORM = re.compile(r"(?:(?:many|musl)linux(?:1|2010|2014|_\d+_\d+)|linux)_(x86_64|aarch64)")


class PackageError(Exception):
    """The package cannot be built as asked; the message says why."""


@dataclass(frozen=True)
class Target:
    """The Python version and the wheel platform tag of the runtime the zip is for."""

    python_version: str
    platform: str

    def __post_init__(self) -> None:
        if not re.fullmatch(r"3\.\d{1,2}(?:\.\d{1,2})?", self.python_version):
            raise PackageError(f"--python-version {self.python_version!r}: expected 3.N or 3.N.M")
        if not _PLATFORM.fullmatch(self.platform):
            raise PackageError(
                f"--platform {self.platform!r}: expected a Linux wheel tag such as "
                f"{DEFAULT_PLATFORM} (FC runs Linux on {' or '.join(_MACHINES)})"
            )

    @property
    def machine(self) -> str:
        match = _PLATFORM.fullmatch(self.platform)
        assert match is not None  # checked when built
        return match.group(1)

    def pip_args(self) -> list[str]:
        return [
            "--platform",
            self.platform,
            "--python-version",
            self.python_version,
            "--implementation",
            "cp",
        ]

    @property
    def minor_version(self) -> str:
        return ".".join(self.python_version.split(".")[:2])

    def environment(self, patch: str) -> dict[str, str]:
        """PEP 508 marker variables of the target, with `patch` as its patch release unless the
        version given has one. `platform_release` and `platform_version` cannot be known here
        and are left out (a marker that uses them is refused)."""
        full = (
            self.python_version
            if self.python_version.count(".") == 2
            else f"{self.python_version}.{patch}"
        )
        return {
            "python_version": self.minor_version,
            "python_full_version": full,
            "implementation_version": full,
            "implementation_name": "cpython",
            "platform_python_implementation": "CPython",
            "sys_platform": "linux",
            "platform_system": "Linux",
            "os_name": "posix",
            "platform_machine": self.machine,
        }

    def __str__(self) -> str:
        return f"Python {self.python_version} on {self.platform}"


@dataclass(frozen=True)
class BuildResult:
    path: Path
    size: int
    files: int
    unpacked_size: int


# -- environment markers (PEP 508), evaluated for the target --------------------------------


def normalize_name(name: str) -> str:
    """PEP 503 / PEP 685 form of a distribution or extra name."""
    return str(canonicalize_name(name))


# Markers on these name the build machine's kernel (packaging fills in the running one's), not
# FC's: a requirement that depends on them cannot be decided here.
_UNKNOWABLE = ("platform_release", "platform_version")


def evaluate_marker(marker: str, env: Mapping[str, str]) -> bool:
    unknowable = [name for name in _UNKNOWABLE if name in marker]
    if unknowable:
        raise PackageError(
            f"marker {marker!r}: {unknowable[0]} of the target cannot be decided here"
        )
    try:
        return Marker(marker).evaluate(dict(env))
    except (InvalidMarker, UndefinedEnvironmentName) as exc:
        raise PackageError(f"marker {marker!r}: {exc}") from None


def marker_holds(marker: str, target: Target, extras: Iterable[str] = ()) -> bool:
    """Whether `marker` holds on the target for a distribution installed with `extras`. The
    target's patch release is unknown: a marker whose answer depends on it is refused."""
    answers = set()
    for patch in ("0", "999"):
        env = target.environment(patch)
        answers.add(
            any(evaluate_marker(marker, {**env, "extra": extra}) for extra in ("", *extras))
        )
    if len(answers) != 1:
        raise PackageError(
            f"marker {marker!r}: its answer depends on the patch release of {target}; "
            "give --python-version as 3.N.M"
        )
    return answers.pop()


# -- requirements --------------------------------------------------------------------------


@dataclass(frozen=True)
class Requirement:
    name: str  # normalized
    extras: frozenset[str]  # normalized
    spec: str  # the requirement without its marker
    marker: str | None

    @classmethod
    def parse(cls, text: str) -> Requirement:
        try:
            parsed = PackagingRequirement(text)
        except InvalidRequirement as exc:
            raise PackageError(f"cannot read the requirement {text!r}: {exc}") from None
        extras = f"[{','.join(sorted(parsed.extras))}]" if parsed.extras else ""
        return cls(
            name=normalize_name(parsed.name),
            extras=frozenset(normalize_name(e) for e in parsed.extras),
            spec=f"{parsed.name}{extras}{parsed.specifier}",
            marker=str(parsed.marker) if parsed.marker is not None else None,
        )


def read_requirements(path: Path, target: Target) -> list[Requirement]:
    """The pinned lines of a requirements file whose markers hold on the target."""
    kept: list[Requirement] = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        where = f"{path.name}:{number}"
        if line.startswith("-") or line.endswith("\\"):
            raise PackageError(f"{where}: pip options are not supported here: {line!r}")
        req = Requirement.parse(line)
        if not re.search(r"(?<![=!<>~])==(?!=)\s*[A-Za-z0-9]", req.spec) or "*" in req.spec:
            raise PackageError(f"{where}: {req.spec!r} is not pinned with ==: the build must be")
        if req.marker is None or marker_holds(req.marker, target):
            kept.append(req)
    return kept


def check_complete(site: Path, requirements: Sequence[Requirement], target: Target) -> None:
    """Every distribution that the installed ones require on the target is installed too."""
    dists: dict[str, tuple[str, list[str]]] = {}
    for metadata in sorted(site.glob("*.dist-info/METADATA")):
        headers = HeaderParser().parsestr(metadata.read_text(encoding="utf-8"))
        name = headers["Name"]
        dists[normalize_name(name)] = (
            f"{name} {headers['Version']}",
            list(headers.get_all("Requires-Dist") or []),
        )
    missing: list[str] = []
    seen: dict[str, set[str]] = {}
    pending: list[tuple[str, frozenset[str], str]] = [
        (req.name, req.extras, f"the requirements file ({req.spec})") for req in requirements
    ]
    while pending:
        name, extras, wanted_by = pending.pop()
        if name not in dists:
            missing.append(f"{name}, wanted by {wanted_by}")
            continue
        known = seen.get(name)
        if known is not None and extras <= known:
            continue
        all_extras = (known or set()) | set(extras)
        seen[name] = all_extras
        label, requires = dists[name]
        for text in requires:
            dep = Requirement.parse(text)
            if dep.marker is None or marker_holds(dep.marker, target, all_extras):
                because = f"{label} ({text})"
                pending.append((dep.name, dep.extras, because))
    if missing:
        lines = "\n  ".join(sorted(set(missing)))
        raise PackageError(
            f"the pinned requirements are not complete for {target}; missing:\n  {lines}\n"
            "pin each of them in the requirements file"
        )


# -- building ------------------------------------------------------------------------------


def _pip(*args: str | Path) -> None:
    command = [sys.executable, "-m", "pip", *map(str, args)]
    done = subprocess.run(command, check=False)
    if done.returncode != 0:
        raise PackageError(
            f"pip {args[0]} failed (exit {done.returncode}); its output is above:\n  "
            + " ".join(command)
        )


_PIP_QUIET = ("--quiet", "--disable-pip-version-check", "--no-input")


def install_dependencies(
    requirements: Path, target: Target, site: Path, work: Path, wheel_cache: Path | None
) -> None:
    """The pinned requirements, installed for the target into `site`."""
    kept = read_requirements(requirements, target)
    filtered = work / "requirements.txt"
    filtered.write_text("".join(f"{req.spec}\n" for req in kept), encoding="utf-8")
    downloads = work / "downloads"
    cache_args: list[str | Path] = []
    if wheel_cache:
        wheel_cache.mkdir(parents=True, exist_ok=True)
        cache_args = ["--find-links", wheel_cache]
    # Wheels for the target where there are some, sdists otherwise; --no-deps because the lock
    # is the whole set and pip would read the packages' markers for this interpreter.
    _pip(
        "download",
        *_PIP_QUIET,
        "--no-deps",
        "--dest",
        downloads,
        *target.pip_args(),
        *cache_args,
        "-r",
        filtered,
    )
    sdists = sorted(p for p in downloads.iterdir() if not p.name.endswith(".whl"))
    if sdists:
        built = work / "built"
        _pip("wheel", *_PIP_QUIET, "--no-deps", "--wheel-dir", built, *sdists)
        wheels = sorted(built.glob("*.whl"))
        compiled = [w.name for w in wheels if not w.name.endswith("-none-any.whl")]
        if compiled or len(wheels) != len(sdists):
            raise PackageError(
                "only pure-Python packages can be built here from source, for another Python "
                f"and platform; these are not: {', '.join(compiled or [s.name for s in sdists])}"
            )
        for wheel in wheels:
            shutil.copy2(wheel, downloads / wheel.name)
            if wheel_cache:
                shutil.copy2(wheel, wheel_cache / wheel.name)
    wheels = sorted(downloads.glob("*.whl"))
    # pip refuses a wheel that does not fit the target's tags.
    _pip(
        "install",
        *_PIP_QUIET,
        "--no-deps",
        "--no-index",
        "--target",
        site,
        *target.pip_args(),
        "--only-binary=:all:",
        "--no-compile",
        *wheels,
    )
    check_complete(site, kept, target)


def source_files(root: Path = ROOT) -> dict[str, Path]:
    """The `.py` files of `functions/` and `shared/`, by their path in the zip. Linked folders
    are followed (`shared/wire` links to the caller's package, which holds those files), so
    the zip holds their files as its own."""
    files: dict[str, Path] = {}
    for package in SOURCES:
        top = root / package
        if not (top / "__init__.py").is_file():
            raise PackageError(f"{top} is not a package")
        seen: set[str] = set()
        for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
            real = os.path.realpath(dirpath)
            if real in seen:  # a link back up the tree
                dirnames.clear()
                continue
            seen.add(real)
            dirnames[:] = [d for d in dirnames if d not in PRUNED_DIRS]
            for name in filenames:
                path = Path(dirpath) / name
                if name.endswith(".py") and path.is_file():
                    files[path.relative_to(root).as_posix()] = path
    return files


def _pruned(rel: Path) -> bool:
    parts = rel.parts
    if parts[0] in PRUNED_TOP_LEVEL or any(part in PRUNED_DIRS for part in parts):
        return True
    if any(part in PRUNED_PACKAGE_DIRS for part in parts[1:-1]):
        return True
    if parts[0].endswith(".dist-info"):
        return len(parts) == 2 and parts[1] in PRUNED_DIST_INFO
    return rel.suffix in PRUNED_SUFFIXES


def dependency_files(site: Path) -> dict[str, Path]:
    """What pip installed into `site`, less what `_pruned` leaves out, by path in the zip."""
    files: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(site):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(site)
            if not _pruned(rel):
                files[rel.as_posix()] = path
    return files


def find_interpreter(target: Target) -> str | None:
    """An interpreter of the target's minor version on this machine, if any: `python3.10` on
    PATH, else one that pyenv installed (its PATH shim may refuse to run it)."""
    name = f"python{target.minor_version}"
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    installed = sorted(str(p) for p in pyenv.glob(f"{target.minor_version}.*/bin/{name}"))
    for found in filter(None, [shutil.which(name), *installed]):
        done = subprocess.run(
            [found, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.stdout.strip() == target.minor_version:
            return found
    return None


def compiled(
    files: Mapping[str, Path], interpreter: str, target: Target, stage: Path
) -> dict[str, Path]:
    """Bytecode for every module, made by `interpreter` (the target's version). FC's /code is
    read-only, so without it every cold start compiles every import from source, which is about
    half of it. `unchecked-hash` pycs are reproducible (no timestamps) and are trusted without
    reading the source again."""
    for arcname, source in files.items():
        if arcname.endswith(".py"):
            staged = stage / arcname
            staged.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, staged)
    done = subprocess.run(
        [
            interpreter,
            "-m",
            "compileall",
            "-q",
            "-j",
            "0",
            "--invalidation-mode",
            "unchecked-hash",
            "-d",
            "",
            str(stage),
        ],
        check=False,
    )
    if done.returncode != 0:
        raise PackageError(f"{interpreter} -m compileall failed (exit {done.returncode})")
    tag = f"cpython-{target.minor_version.replace('.', '')}"
    return {str(path.relative_to(stage)): path for path in stage.rglob(f"__pycache__/*.{tag}.pyc")}


def write_zip(output: Path, files: Mapping[str, Path]) -> None:
    """A zip that depends on the files' paths and bytes only: sorted, one date, one mode."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for arcname in sorted(files):
            source = files[arcname]
            info = zipfile.ZipInfo(arcname, date_time=ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, so that the mode below is read
            executable = source.stat().st_mode & 0o111
            info.external_attr = (stat.S_IFREG | (0o755 if executable else 0o644)) << 16
            archive.writestr(info, source.read_bytes(), compresslevel=ZIP_LEVEL)
    partial.replace(output)


def build(
    target: Target,
    output: Path = DEFAULT_OUTPUT,
    *,
    requirements: Path | None = None,
    policy: Path | None = None,
    rotation: Path | None = None,
    wheel_cache: Path | None = None,
    root: Path = ROOT,
    compile_with: str | None = None,
) -> BuildResult:
    """`compile_with`: an interpreter of the target's Python version; with it, the zip carries
    bytecode (see `compiled`)."""
    files = source_files(root)
    if policy is not None:
        try:
            json.loads(policy.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PackageError(f"--policy {policy}: not a readable JSON file: {exc}") from None
        files[POLICY_NAME] = policy
    if rotation is not None:
        try:
            json.loads(rotation.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise PackageError(f"--rotation {rotation}: not a readable JSON file: {exc}") from None
        files[ROTATION_NAME] = rotation
    with tempfile.TemporaryDirectory(prefix="vend-package-") as tmp:
        work = Path(tmp)
        site = work / "site"
        install_dependencies(requirements or DEFAULT_REQUIREMENTS, target, site, work, wheel_cache)
        dependencies = dependency_files(site)
        ours = {name.split("/", 1)[0] for name in files}
        clash = sorted(n for n in dependencies if n.split("/", 1)[0] in ours)
        if clash:
            raise PackageError(f"dependencies would overwrite our files: {', '.join(clash[:5])}")
        files.update(dependencies)
        if compile_with is not None:
            files.update(compiled(files, compile_with, target, work / "compiled"))
        write_zip(output, files)
        unpacked = sum(path.stat().st_size for path in files.values())
    return BuildResult(output, output.stat().st_size, len(files), unpacked)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m infra.package", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--python-version", default=DEFAULT_PYTHON, help="default: %(default)s")
    parser.add_argument("--platform", default=DEFAULT_PLATFORM, help="default: %(default)s")
    parser.add_argument(
        "--output", type=Path, default=DEFAULT_OUTPUT, help="default: dist/vend-fc.zip"
    )
    parser.add_argument(
        "--requirements", type=Path, default=DEFAULT_REQUIREMENTS, help="default: requirements.txt"
    )
    parser.add_argument(
        "--policy", type=Path, help=f"a JSON approval policy to ship as {POLICY_NAME} (off)"
    )
    parser.add_argument(
        "--rotation",
        type=Path,
        help=f"VEND_ROTATION's JSON list to ship as {ROTATION_NAME} (off)",
    )
    parser.add_argument(
        "--wheel-cache",
        type=Path,
        help="keep the pure wheels built from sdists here and reuse them (off)",
    )
    parser.add_argument(
        "--bytecode",
        choices=("auto", "yes", "no"),
        default="auto",
        help="ship .pyc made by a python3.N of the target on PATH (auto: if there is one)",
    )
    args = parser.parse_args(argv)
    try:
        target = Target(args.python_version, args.platform)
        interpreter = None if args.bytecode == "no" else find_interpreter(target)
        if interpreter is None and args.bytecode == "yes":
            raise PackageError(f"--bytecode yes: no python{target.minor_version} on PATH")
        if interpreter is None and args.bytecode == "auto":
            print(
                f"package: no python{target.minor_version} here: no bytecode in the zip, so "
                "each cold start compiles its imports",
                file=sys.stderr,
            )
        result = build(
            target,
            args.output,
            requirements=args.requirements,
            policy=args.policy,
            rotation=args.rotation,
            wheel_cache=args.wheel_cache,
            compile_with=interpreter,
        )
    except PackageError as exc:
        print(f"package: {exc}", file=sys.stderr)
        return 1
    try:
        shown = result.path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        shown = result.path
    print(
        f"{shown}: {result.size / 1e6:.1f} MB, {result.files} files "
        f"({result.unpacked_size / 1e6:.1f} MB unpacked), for {target}"
        f"{', with bytecode' if interpreter else ''}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
