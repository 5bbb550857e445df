"""A local Alibaba Cloud emulator of STS, EIAM and KMS that the real SDK clients reach unchanged.

Never packaged into the deployed function: it lives in `infra/`, beside the cloud resources.
"""

from .app import Emulator
from .seed import Seed, load_seed, parse_seed
from .server import EmulatorServer

__all__ = ["Emulator", "EmulatorServer", "Seed", "load_seed", "parse_seed"]
