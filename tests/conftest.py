from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest
from log_scan import DEMO_SEED, SESSION_LOG
from skip_policy import SkipPolicy

from infra.emulator import EmulatorServer, Seed, load_seed
from infra.local.cli import DEMO_POLICY, local_environment
from infra.seed_from_policies import seed_with_infra_policies
from shared import composition_root


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SkipPolicy(), "vend-skip-policy")


@pytest.fixture(scope="session")
def terraform() -> str:
    """The terraform binary, where one is installed (CI's machine has none: those tests skip)."""
    found = shutil.which("terraform")
    if found is None:
        pytest.skip("terraform is not installed")
    return found


@pytest.fixture(scope="session")
def demo_seed() -> Seed:
    """The demo world, with the RAM policies that are deployed (infra/policies/, filled as
    Terraform fills them) in place of its hand-written ones: every end-to-end test runs on
    exactly the policies of the cloud."""
    return seed_with_infra_policies(load_seed(DEMO_SEED))


@pytest.fixture
def emulator(demo_seed: Seed) -> Iterator[EmulatorServer]:
    """A fresh emulator per test, on its own port, so no test sees another's state."""
    with EmulatorServer(demo_seed) as server:
        yield server


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session: pytest.Session) -> None:
    """From the first test on, every log line of the session is checked (tests/log_scan.py)."""
    SESSION_LOG.attach()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After every fixture ended (the last module's servers included): a log line that failed
    fails the run, whatever the order the tests ran in."""
    if SESSION_LOG.failures and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    kinds = ", ".join(sorted(SESSION_LOG.kinds))
    terminalreporter.write_line(f"log lines checked: {SESSION_LOG.checked} ({kinds})")
    failures = SESSION_LOG.report()
    if failures:
        terminalreporter.section("log lines that fail (not JSON, or holding a secret)", red=True)
        for failure in failures:
            terminalreporter.write_line(failure, red=True)


@pytest.fixture
def local_world(emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """`vend local`'s environment in this process, and nothing else of VEND_* or credentials."""
    for name in list(os.environ):
        if name.startswith(("VEND_", "ALIBABA_CLOUD_")):
            monkeypatch.delenv(name)
    env = local_environment(emulator.url, DEMO_SEED, DEMO_POLICY)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def fresh_instance() -> Iterator[None]:
    """The FC instance's vendor built afresh by the test, and forgotten after it."""
    composition_root.reset_instance()
    yield
    composition_root.reset_instance()
