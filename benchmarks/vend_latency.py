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
import statistics
import subprocess
import sys
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import sdk_clients as sdk
from alibabacloud_eiam20211201.models import ObtainApplicationClientSecretRequest
from processes import free_port
from world import APPS, BILLING, running_world, start_serve

from vend_client.proof import build_proof


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
    procs: list[subprocess.Popen[str]] = []
    with running_world(args.latency_ms) as world:
        try:
            emu_port, api_port = world.emulator_port, free_port()
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
            procs.append(start_serve(world, api_port))
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
            before = world.calls()
            ram: list[float] = []
            for i in range(args.requests):
                headers = proof()
                start = time.perf_counter()
                reply = session.post(url, json=body(i), headers=headers, timeout=5)
                ram.append(time.perf_counter() - start)
                assert reply.status_code == 200, reply.text
            after = world.calls()
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

            bearer = {"Authorization": f"Bearer {world.token}"}
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
