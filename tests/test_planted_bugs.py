"""Planted bugs (issue 21): each row below is a bug a review planted in a clone, as one exact edit
of one file, with the few tests that must notice it. For each, the service's tree is copied to a
temporary directory, the edit applied there, and the named tests run on the copy in a
subprocess: they must fail. The same tests must pass on the copy with no edit.

The edit's old text must appear exactly once in its file. When a refactor moves or rewrites it,
this fails naming the row: plant the same bug in the new code (and check that the tests named
still catch it), do not delete the row.

Kept fast for `make test`: each row names the smallest selection that catches it (one test, or
one parameter of one), and the copy is made once and copied again per row."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What a run of the service's tests reads: the packages (vend_client too, since shared/wire is
# vend_client/wire), the tests and the demo world, and pytest's configuration.
TREE = (
    "shared",
    "functions",
    "infra",
    "tests",
    "examples",
    "client/vend_client",
    "client/tests/client_log_scan.py",  # tests/log_scan.py builds on it
    "pyproject.toml",
)
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", ".terraform*")


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # relative to the project's root
    old: str  # exactly once in the file
    new: str
    catchers: tuple[str, ...]  # pytest node ids that must fail
    symptom: str  # in their output: they fail for this bug, not for one the edit made


SERVICE = "tests/test_contract_service.py::"
LOGS = "tests/test_logs.py::"

MUTANTS = (
    Mutant(
        "every explicit Deny ignored",
        "shared/ram_policy/evaluate.py",
        "if statement.matches(ctx):\n                    return Result(Decision.EXPLICIT_DENY,",
        "if False:\n                    return Result(Decision.EXPLICIT_DENY,",
        (SERVICE + "test_an_explicit_deny_beats_a_matching_allow[http]",),
        "DID NOT RAISE",
    ),
    Mutant(
        "approval.decide tries the Allow statements first",
        "shared/approval.py",
        "        result = evaluate(\n            [self.policy],",
        "        result = (\n"
        "            lambda ps, ctx: next(\n"
        "                (\n"
        "                    __import__('sys').modules['shared.ram_policy.evaluate'].Result(\n"
        "                        Decision.ALLOW, s, p\n"
        "                    )\n"
        "                    for p in ps\n"
        "                    for s in p.statements\n"
        "                    if s.effect.value == 'Allow' and s.matches(ctx)\n"
        "                ),\n"
        "                None,\n"
        "            )\n"
        "            or evaluate(ps, ctx)\n"
        "        )(\n"
        "            [self.policy],",
        (SERVICE + "test_an_explicit_deny_beats_a_matching_allow[http]",),
        "DID NOT RAISE",
    ),
    Mutant(
        "the last matching recipient key wins",
        "shared/approval.py",
        "next((key for who, key in self.recipients if who in names), None)",
        "next((key for who, key in reversed(self.recipients) if who in names), None)",
        (SERVICE + "test_the_first_matching_recipient_key_seals_the_answer[http]",),
        "'key-reports' == 'key-billing'",
    ),
    Mutant(
        "Cache-Control: max-age=60 in place of no-store",
        "shared/http_api.py",
        'response.headers["Cache-Control"] = "no-store"',
        'response.headers["Cache-Control"] = "max-age=60"',
        (SERVICE + "test_every_answer_is_no_store_and_names_its_request",),
        "'max-age=60' == 'no-store'",
    ),
    Mutant(
        "an unexpected exception answered 200 with its traceback",
        "shared/errors.py",
        'VendError(500, "InternalError", "An internal error occurred.")',
        'VendError(200, "InternalError", __import__("traceback").format_exc())',
        (SERVICE + "test_a_bug_over_http_is_500_internal_error_without_detail",),
        "assert 200 == 500",
    ),
    Mutant(
        "six upstream attempts instead of four",
        "shared/upstream/retry.py",
        "max_attempts: int = 4",
        "max_attempts: int = 6",
        (SERVICE + "test_an_upstream_that_keeps_failing_is_tried_four_times",),
        "assert 6 == 4",
    ),
    Mutant(
        "the RAM proof's audience unchecked",
        "shared/auth/ram_proof.py",
        "if not hmac.compare_digest(audience.encode(), self._policy.audience.encode()):",
        "if False:",
        ("tests/test_vend_http.py::test_a_proof_for_another_audience_is_refused",),
        "DID NOT RAISE",
    ),
    Mutant(
        "the envelope's context dropped from the AES-GCM associated data",
        "client/vend_client/wire/envelope.py",  # shared/wire is this directory
        "AESGCM(data_key).encrypt(iv, plaintext, associated_data(context))",
        "AESGCM(data_key).encrypt(iv, plaintext, None)",
        (SERVICE + "test_the_envelope_opens_with_kms_decrypt_and_plain_aes_gcm[http]",),
        "InvalidTag",
    ),
    Mutant(
        "idempotency keys shared across principals",
        "shared/idempotent_create.py",
        'return f"{hashlib.sha256(principal.encode()).hexdigest()[:32]}:{key}"',
        'return f"shared:{key}"',
        ("tests/test_idempotent_create.py::test_keys_are_scoped_per_principal[memory]",),
        "!= 'sci_",
    ),
    Mutant(
        "the STS session policy on Resource *",
        "shared/arns.py",
        '"Action": [eiam_action], "Resource": [resource]}',
        '"Action": [eiam_action], "Resource": ["*"]}',
        ("tests/test_vend_http.py::test_the_session_policy_sent_names_one_action_and_one_arn",),
        "'Resource': ['*']",
    ),
    Mutant(
        "an expired JWT accepted",
        "shared/auth/jwt_bearer.py",
        "if not exp > now:",
        "if False:",
        ("tests/test_vend_jwt.py::test_bearer_refusals[expired]",),
        "DID NOT RAISE",
    ),
    Mutant(
        "the audit drops the request's trace id",
        "shared/audit.py",
        'data["trace_id"] = self.trace_id',
        "pass",
        (LOGS + "test_an_http_requests_traceparent_names_its_trace_in_the_audit",),
        "KeyError: 'trace_id'",
    ),
    Mutant(
        "a traceparent whose trace id is all zeros read as a trace",
        "client/vend_client/wire/traceparent.py",  # shared/wire is this directory
        'if trace_id == "0" * 32 or parent_id == "0" * 16:',
        'if parent_id == "0" * 16:',
        (
            LOGS + "test_a_traceparent_that_is_not_one_is_ignored_never_refused"
            "[00-00000000000000000000000000000000-00f067aa0ba902b7-01]",
        ),
        "assert 'trace_id' not in",
    ),
    Mutant(
        "a server's log in text (`vend serve` keeps logging's own format)",
        "infra/local/cli.py",
        'if getattr(args, "server", False):',
        "if False:",
        (LOGS + "test_readiness_warnings_are_json_naming_the_request_and_its_trace",),
        "JSONDecodeError",
    ),
)


def _run(tree: Path, selection: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """The selection, run by pytest on `tree`'s code: its directories come first on the path,
    ahead of the editable installs of this checkout."""
    path = os.pathsep.join([str(tree), str(tree / "client")])
    env = {**os.environ, "PYTHONPATH": path}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *selection],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _tail(done: subprocess.CompletedProcess[str]) -> str:
    return (done.stdout + done.stderr)[-3000:]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tree, whose every selection was run once: each must pass unplanted."""
    tree = tmp_path_factory.mktemp("planted") / "clean"
    for name in TREE:
        source, target = ROOT / name, tree / name
        if source.is_dir():
            shutil.copytree(source, target, symlinks=True, ignore=IGNORED)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    every = tuple(dict.fromkeys(c for m in MUTANTS for c in m.catchers))
    done = _run(tree, every)
    assert done.returncode == 0, "the unplanted selections must pass:\n" + _tail(done)
    return tree


def test_every_row_plants_its_bug_where_the_code_is_today() -> None:
    for mutant in MUTANTS:
        text = (ROOT / mutant.path).read_text(encoding="utf-8")
        assert text.count(mutant.old) == 1, (
            f"{mutant.name!r}: its old text is no longer exactly once in {mutant.path}: plant"
            " the same bug in the code as it is now, and update the row"
        )


def test_the_project_resolves_to_the_copy(clean: Path) -> None:
    """Otherwise every planted bug would be planted where no test runs it."""
    probe = (
        "import shared, vend_client.wire; print(shared.__file__); print(vend_client.wire.__file__)"
    )
    path = os.pathsep.join([str(clean), str(clean / "client")])
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=clean,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        check=True,
    )
    assert all(Path(line).is_relative_to(clean) for line in done.stdout.split()), done.stdout


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_the_planted_bug_fails_its_tests(clean: Path, tmp_path: Path, mutant: Mutant) -> None:
    tree = tmp_path / "planted"
    shutil.copytree(clean, tree, symlinks=True)
    target = tree / mutant.path
    text = target.read_text(encoding="utf-8")
    assert text.count(mutant.old) == 1, mutant.path
    target.write_text(text.replace(mutant.old, mutant.new), encoding="utf-8")
    done = _run(tree, mutant.catchers)
    # 1: tests ran and failed. Not 2 (the edit broke the import: nothing was tested) or 0.
    assert done.returncode == 1, f"{mutant.name!r} went unnoticed:\n" + _tail(done)
    assert mutant.symptom in done.stdout, f"{mutant.name!r} failed otherwise:\n" + _tail(done)
