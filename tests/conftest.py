from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.emulator import EmulatorServer, Seed, load_seed
from infra.seed_from_policies import seed_with_infra_policies

ROOT = Path(__file__).resolve().parent.parent
DEMO_SEED = ROOT / "examples" / "seed.yaml"


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


class _Collector(logging.Handler):
    """Every log record of the whole test session, service and emulator alike."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot format is kept by name
            self.lines.append(record.name)


SESSION_LOG = _Collector()
SESSION_LOG.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))


@pytest.fixture(scope="session", autouse=True)
def _collect_all_logs() -> Iterator[None]:
    root, audit = logging.getLogger(), logging.getLogger("vend.audit")
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(SESSION_LOG)
    audit.addHandler(SESSION_LOG)  # audit records do not propagate to the root
    yield
    root.removeHandler(SESSION_LOG)
    audit.removeHandler(SESSION_LOG)
    root.setLevel(level)
