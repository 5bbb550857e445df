"""The caller package's tests: every log line of the session is checked
(client_log_scan.py), and one that fails fails the run, whatever order the tests ran in."""

from __future__ import annotations

import pytest
from client_log_scan import SESSION_LOG


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    SESSION_LOG.attach()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After every fixture ended: a log line that failed fails the run."""
    if SESSION_LOG.failures and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.write_line(f"caller package's log lines checked: {SESSION_LOG.checked}")
    failures = SESSION_LOG.report()
    if failures:
        terminalreporter.section("caller package's log lines that fail", red=True)
        for failure in failures:
            terminalreporter.write_line(failure, red=True)
