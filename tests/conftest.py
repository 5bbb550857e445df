from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.emulator import EmulatorServer, Seed, load_seed

ROOT = Path(__file__).resolve().parent.parent
DEMO_SEED = ROOT / "examples" / "seed.yaml"


@pytest.fixture(scope="session")
def demo_seed() -> Seed:
    return load_seed(DEMO_SEED)


@pytest.fixture
def emulator(demo_seed: Seed) -> Iterator[EmulatorServer]:
    """A fresh emulator per test, on its own port, so no test sees another's state."""
    with EmulatorServer(demo_seed) as server:
        yield server
