"""The world every latency benchmark runs in: the demo seed plus an instance of 10 applications,
a policy for the caller `billing` (RAM) and `bench` (JWT) over them, an issuer whose JWKS a local
server serves, and the emulator in its own process with latency injected into each of
AssumeRole, the EIAM call and GenerateDataKey."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import requests
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from pytest_httpserver import HTTPServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from processes import VEND, free_port, wait_for_port

from infra.local.cli import local_environment

ACCOUNT = "1234567890123456"
BILLING = ("LTAI5tDemoBilling00001", "demo-billing-secret-0001")
APPS = [f"app_bench_{i}" for i in range(10)]
ISSUER = "https://idaas.bench.example.com"
SLOWED = ("AssumeRole", "ObtainApplicationClientSecret", "GenerateDataKey")


def bench_world(tmp: Path, jwks_url: str) -> tuple[Path, Path, dict[str, str]]:
    """The demo seed plus an instance of 10 applications, and a policy for billing over them."""
    seed: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "seed.yaml").read_text())
    seed["eiam_instances"].append(
        {
            "instance_id": "idaas_bench",
            "applications": [
                {
                    "application_id": app,
                    "secrets": [{"secret_id": "sct_1", "client_secret": f"CSbench{i:034d}"}],
                }
                for i, app in enumerate(APPS)
            ],
        }
    )
    seed["roles"][0]["policies"][0]["Statement"][0]["Resource"] = (
        f"acs:eiam:cn-hangzhou:{ACCOUNT}:instance/*/application/*"
    )
    policy = {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"RAM": [f"acs:ram::{ACCOUNT}:user/billing"], "JWT": ["bench@bench"]},
                "Action": "eiam:ObtainApplicationClientSecret",
                "Resource": f"acs:eiam:cn-hangzhou:{ACCOUNT}:instance/idaas_bench/application/*/secret/*",
            }
        ],
        "Recipients": [{"Principal": f"acs:ram::{ACCOUNT}:user/billing", "KeyId": "key-billing"}],
    }
    (tmp / "seed.json").write_text(json.dumps(seed))
    (tmp / "policy.json").write_text(json.dumps(policy))
    issuers = [{"name": "bench", "issuer": ISSUER, "jwks_url": jwks_url, "algorithms": ["RS256"]}]
    return tmp / "seed.json", tmp / "policy.json", {"VEND_JWT_ISSUERS": json.dumps(issuers)}


@dataclass(frozen=True)
class World:
    emulator_port: int
    env: dict[str, str]  # the service's environment: VEND_*, the function's keys
    token: str  # a JWT of `bench`, valid for an hour
    emulator_pid: int = 0  # the emulator's process, whose CPU the throughput benchmark reads

    @property
    def emulator(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    def calls(self) -> dict[str, int]:
        counts: dict[str, int] = requests.get(f"{self.emulator}/_emulator/calls", timeout=5).json()[
            "calls"
        ]
        return counts


@contextmanager
def running_world(latency_ms: int) -> Iterator[World]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = HTTPServer(host="127.0.0.1", port=0)
    jwks.start()
    jwks.expect_request("/jwks").respond_with_json(
        {"keys": [{**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "b1"}]}
    )
    token = jwt.encode(
        {"iss": ISSUER, "sub": "bench", "aud": "vend-local", "exp": int(time.time()) + 3600},
        key,
        algorithm="RS256",
        headers={"kid": "b1"},
    )
    proc: subprocess.Popen[str] | None = None
    try:
        with tempfile.TemporaryDirectory() as tmp:
            seed, policy, extra = bench_world(Path(tmp), jwks.url_for("/jwks"))
            port = free_port()
            proc = subprocess.Popen(
                [*VEND, "emulator", "--seed", str(seed), "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            wait_for_port(port, proc)
            emulator = f"http://127.0.0.1:{port}"
            slow = [{"action": a, "latency_ms": latency_ms} for a in SLOWED]
            requests.put(f"{emulator}/_emulator/faults", json=slow, timeout=5).raise_for_status()
            env = {
                k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_"))
            }
            env.update(local_environment(emulator, seed, policy))
            env.update(extra)
            yield World(port, env, token, proc.pid)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=10)
        jwks.stop()


def start_serve(world: World, port: int) -> subprocess.Popen[str]:
    """`vend serve` (the custom runtime's server) on `port`, configured for the world."""
    return subprocess.Popen(
        [*VEND, "serve", "--port", str(port)],
        env=world.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        text=True,
    )
