"""The latency benchmark of the vending path, all figures as ratios measured in one run.

The emulator runs as its own process (`vend emulator`) with 20 ms of latency injected into each
of AssumeRole, ObtainApplicationClientSecret and GenerateDataKey; the service runs as its own
process (`vend serve`). Reported:

- the median and p99 end-to-end latency of `obtain` (HTTP request to answer, the caller's RAM
  proof made beforehand), divided by the injected EIAM latency: 1.0 would be "as fast as the one
  EIAM call we cannot avoid"; target <= 1.10 (STS session cached, KMS beside EIAM);
- the same with a Bearer JWT, which needs no STS round trip to authenticate;
- AssumeRole calls per request at steady state, round-robin over 10 secret ARNs: target <= 0.01;
- the time from starting `vend serve` to its first answered `obtain`, divided by the time to
  import the SDK clients alone in a fresh interpreter.

    .venv/bin/python benchmarks/vend_latency.py [--requests 300] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
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

import sdk_clients as sdk
from alibabacloud_eiam20211201.models import ObtainApplicationClientSecretRequest
from processes import VEND, free_port, wait_for_port

from infra.local.cli import local_environment
from vend_client.proof import build_proof

ACCOUNT = "1234567890123456"
BILLING = ("LTAI5tDemoBilling00001", "demo-billing-secret-0001")
APPS = [f"app_bench_{i}" for i in range(10)]
ISSUER = "https://idaas.bench.example.com"


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


def import_time_s(runs: int = 7) -> float:
    code = "import alibabacloud_tea_openapi.client, alibabacloud_sts20150401.client"
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--latency-ms", type=int, default=20)
    args = parser.parse_args()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwks = HTTPServer(host="127.0.0.1", port=0)
    jwks.start()
    jwks.expect_request("/jwks").respond_with_json(
        {"keys": [{**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "b1"}]}
    )
    procs: list[subprocess.Popen[str]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            seed, policy, extra = bench_world(Path(tmp), jwks.url_for("/jwks"))
            emu_port, api_port = free_port(), free_port()
            emulator = f"http://127.0.0.1:{emu_port}"
            procs.append(
                subprocess.Popen(
                    [*VEND, "emulator", "--seed", str(seed), "--port", str(emu_port)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            )
            wait_for_port(emu_port, procs[0])
            slow = [
                {"action": a, "latency_ms": args.latency_ms}
                for a in ("AssumeRole", "ObtainApplicationClientSecret", "GenerateDataKey")
            ]
            requests.put(f"{emulator}/_emulator/faults", json=slow, timeout=5).raise_for_status()

            env = {
                k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_"))
            }
            env.update(local_environment(emulator, seed, policy))
            env.update(extra)
            session = requests.Session()
            url = f"http://127.0.0.1:{api_port}/v1/secrets/obtain"

            def proof() -> dict[str, str]:
                made = build_proof(
                    audience="vend-local",
                    sts_endpoint=f"127.0.0.1:{emu_port}",
                    protocol="http",
                    access_key_id=BILLING[0],
                    access_key_secret=BILLING[1],
                )
                return {"Authorization": f"RAM {made}"}

            def body(i: int) -> dict[str, str]:
                return {
                    "instance_id": "idaas_bench",
                    "application_id": APPS[i % 10],
                    "secret_id": "sct_1",
                }

            started = time.perf_counter()
            procs.append(
                subprocess.Popen(
                    [*VEND, "serve", "--port", str(api_port)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            )
            while True:
                try:
                    if (
                        session.post(url, json=body(0), headers=proof(), timeout=5).status_code
                        == 200
                    ):
                        break
                except requests.ConnectionError:
                    time.sleep(0.002)
            first_answer = time.perf_counter() - started
            imports = import_time_s()

            for i in range(10):  # warm: one STS session per ARN
                assert (
                    session.post(url, json=body(i), headers=proof(), timeout=5).status_code == 200
                )
            before = requests.get(f"{emulator}/_emulator/calls", timeout=5).json()["calls"]
            ram: list[float] = []
            for i in range(args.requests):
                headers = proof()
                start = time.perf_counter()
                reply = session.post(url, json=body(i), headers=headers, timeout=5)
                ram.append(time.perf_counter() - start)
                assert reply.status_code == 200, reply.text
            after = requests.get(f"{emulator}/_emulator/calls", timeout=5).json()["calls"]
            assume_per_request = (
                after.get("AssumeRole", 0) - before.get("AssumeRole", 0)
            ) / args.requests

            # The floor: the one EIAM call itself, straight from the SDK, with the same latency.
            operator = sdk.eiam(f"127.0.0.1:{emu_port}", sdk.OPERATOR)
            request = ObtainApplicationClientSecretRequest(
                instance_id="idaas_bench", application_id=APPS[0], secret_id="sct_1"
            )
            floor: list[float] = []
            for _ in range(min(100, args.requests)):
                start = time.perf_counter()
                operator.obtain_application_client_secret(request)
                floor.append(time.perf_counter() - start)

            bearer = {
                "Authorization": "Bearer "
                + jwt.encode(
                    {
                        "iss": ISSUER,
                        "sub": "bench",
                        "aud": "vend-local",
                        "exp": int(time.time()) + 3600,
                    },
                    key,
                    algorithm="RS256",
                    headers={"kid": "b1"},
                )
            }
            session.post(url, json=body(0), headers=bearer, timeout=5).raise_for_status()
            tokens: list[float] = []
            for i in range(args.requests):
                start = time.perf_counter()
                reply = session.post(url, json=body(i), headers=bearer, timeout=5)
                tokens.append(time.perf_counter() - start)
                assert reply.status_code == 200, reply.text
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=10)
        jwks.stop()

    eiam = args.latency_ms / 1000
    direct = statistics.median(floor)
    print(
        f"{args.requests} obtains over 10 ARNs; {args.latency_ms} ms injected into AssumeRole, "
        "the EIAM call and GenerateDataKey; emulator and service in their own processes"
    )
    for name, samples in (("RAM proof", ram), ("Bearer JWT", tokens)):
        med, p99 = statistics.median(samples), percentile(samples, 0.99)
        print(
            f"  obtain, {name:10s}  median {med * 1000:6.1f} ms = {med / eiam:.2f}x EIAM latency, "
            f"p99 {p99 * 1000:6.1f} ms = {p99 / eiam:.2f}x; median {med / direct:.2f}x a direct SDK call"
        )
    print(
        f"  floor: one EIAM call straight from the SDK, median {direct * 1000:.1f} ms = "
        f"{direct / eiam:.2f}x EIAM latency"
    )
    print(f"  AssumeRole per request at steady state: {assume_per_request:.3f}")
    print(
        f"  start to first answered obtain {first_answer * 1000:.0f} ms = "
        f"{first_answer / imports:.2f}x the SDK clients' import alone ({imports * 1000:.0f} ms)"
    )


if __name__ == "__main__":
    main()
