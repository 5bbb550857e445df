"""No silent skip under CI (issue 21): a pytest plugin, registered by tests/conftest.py for the
whole run (client/tests/ too: a registered plugin sees every test, a conftest's hooks only its
own directory's).

Under CI (tests/ci.py) a test or module skipped for a reason that is not in ALLOWED fails, with
that reason; the allowed skips are counted and printed at the end of every run. Outside CI a
skip is reported the same way but does not fail: a developer's machine may lack a tool.

An entry belongs here only when the check cannot run on CI's machine at all and another check
that needs no missing tool covers the same property; its text says which.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator

import pytest
from ci import under_ci

# reason of the skip, exactly as the test gives it -> why CI may skip it
ALLOWED: dict[str, str] = {
    "terraform is not installed": (
        "Terraform's own plan, console, templatefile and fmt cross-check the static tests, and "
        "CI has no terraform (nor its registry); without it, tests/hcl_eval.py evaluates the "
        "variables' validations and reads the audit queries' strings as the HCL spec does, and "
        "infra/policies.py fills only the template syntax both read alike; fmt is style only"
    ),
    "no python3.10 here to import the FC target with": (
        "FC's runtime is 3.10 and CI's Python 3.11; the zip's wheels are checked for cp310 "
        "manylinux x86_64 tags and every .py in it parsed with the 3.10 grammar instead"
    ),
    "no python3.10 here to make bytecode with": (
        "bytecode for FC can only be made by a 3.10; without one the zip ships sources, which "
        "the 3.10 grammar check of test_package covers"
    ),
    "no IPv6 loopback here": (
        "a container without IPv6 cannot listen on ::1; only the creation of the listener may "
        "skip, the transport's own failures fail"
    ),
}

_PREFIX = "Skipped: "


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return text.removeprefix(_PREFIX)


class SkipPolicy:
    def __init__(self) -> None:
        self.allowed: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()

    def judge(self, report: pytest.TestReport | pytest.CollectReport) -> None:
        if not report.skipped or hasattr(report, "wasxfail"):
            return
        reason = _reason(report)
        if reason in ALLOWED:
            self.allowed[reason] += 1
            return
        self.refused[reason] += 1
        if under_ci():
            report.outcome = "failed"
            report.longrepr = (
                f"skipped under CI for a reason that is not allowed (tests/skip_policy.py): "
                f"{reason}"
            )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        self.judge(report)
        return report

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(
        self,
    ) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
        report = yield
        self.judge(report)
        return report

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not self.allowed and not self.refused:
            return
        terminalreporter.section("skips")
        for reason, count in sorted(self.allowed.items()):
            terminalreporter.write_line(f"{count} allowed: {reason} ({ALLOWED[reason]})")
        verdict = "failed under CI" if under_ci() else "would fail under CI"
        for reason, count in sorted(self.refused.items()):
            terminalreporter.write_line(f"{count} {verdict}: {reason}")
