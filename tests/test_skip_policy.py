"""The skip policy (tests/skip_policy.py) in a pytest run of its own (pytester): under CI a skip
for an unlisted reason fails, a listed one is counted and printed; outside CI both skip."""

from __future__ import annotations

import pytest
from skip_policy import ALLOWED, SkipPolicy

pytest_plugins = ("pytester",)

ALLOWED_REASON = "terraform is not installed"
TESTS = f"""
import pytest

def test_unexplained():
    pytest.skip("no reason anyone wrote down")

def test_allowed():
    pytest.skip({ALLOWED_REASON!r})

@pytest.fixture
def tool():
    pytest.skip({ALLOWED_REASON!r})

def test_allowed_in_a_fixture(tool):
    pass

@pytest.mark.xfail(reason="a known bug", strict=True)
def test_expected_to_fail():
    assert False

def test_passes():
    pass
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_inner=TESTS)
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", *args, plugins=[SkipPolicy()])


def test_under_ci_an_unexplained_skip_fails_and_the_allowed_ones_are_counted(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert ALLOWED_REASON in ALLOWED
    monkeypatch.setenv("CI", "true")
    result = _run(pytester)
    result.assert_outcomes(failed=1, skipped=2, xfailed=1, passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*= skips =*",
            f"2 allowed: {ALLOWED_REASON} (*",
            "1 failed under CI: no reason anyone wrote down",
            "FAILED test_inner.py::test_unexplained - skipped under CI for a reason that is not "
            "allowed (tests/skip_policy.py): no reason anyone wrote down",
        ]
    )


def test_outside_ci_a_skip_is_a_skip_and_says_it_would_fail_there(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    result = _run(pytester)
    result.assert_outcomes(skipped=3, xfailed=1, passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["1 would fail under CI: no reason anyone wrote down"])


def test_under_ci_a_module_skipped_whole_fails(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    pytester.makepyfile(
        test_module='import pytest\npytest.skip("no fc2", allow_module_level=True)\n'
        "def test_never():\n    pass\n"
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", plugins=[SkipPolicy()])
    result.assert_outcomes(errors=1)
    assert result.ret == pytest.ExitCode.INTERRUPTED  # a collection error stops the run
    result.stdout.fnmatch_lines(["1 failed under CI: no fc2"])


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_ci_set_to_nothing_or_false_is_not_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", value)
    _run(pytester).assert_outcomes(skipped=3, xfailed=1, passed=1)


def test_every_allowed_reason_says_why() -> None:
    assert ALLOWED
    assert all(len(why) > 40 for why in ALLOWED.values())
