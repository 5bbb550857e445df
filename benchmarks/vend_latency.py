"""Latency of one vend, end to end over HTTP against the emulator, as ratios measured in one run:
a warm obtain (STS session cached) and a cold one (a new secret ARN, so AssumeRole too), against
one signed emulator round trip. With `--upstream-ms N` every emulator action gets N ms of
latency, which shows what running STS+EIAM beside KMS saves.

    .venv/bin/python benchmarks/vend_latency.py [--runs 30] [--upstream-ms 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import sdk_clients as sdk

from functions import http
from infra.emulator import EmulatorServer, load_seed
from shared.cli import local_environment
from shared.client import (
    VendClient,
    endpoint,
)
from shared.serve import LocalFc
from shared.upstream.rpc import Credentials
from shared.wsgi_server import WsgiServer


def timed(fn: object, runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--upstream-ms", type=int, default=0)
    args = parser.parse_args()
    seed = load_seed(ROOT / "examples" / "seed.yaml")
    with EmulatorServer(seed) as emulator:
        os.environ.update(
            local_environment(
                emulator.url, ROOT / "examples" / "seed.yaml", ROOT / "examples" / "policy.json"
            )
        )
        if args.upstream_ms:
            requests.put(
                f"{emulator.url}/_emulator/faults",
                json=[{"action": "*", "latency_ms": args.upstream_ms}],
                timeout=5,
            )
        with WsgiServer(LocalFc(http.handler, region=None, account_id=None)) as api:
            client = VendClient(
                url=api.url,
                audience="vend-local",
                credentials=Credentials(*sdk.BILLING),
                sts=endpoint(emulator.url),
                kms=endpoint(emulator.url),
            )
            sts_client = sdk.sts(emulator.endpoint, sdk.BILLING)
            round_trip = timed(sts_client.get_caller_identity, args.runs)
            client.obtain("idaas_demo", "app_billing", "sct_billing_1")  # warm the STS cache
            warm = timed(
                lambda: client.obtain("idaas_demo", "app_billing", "sct_billing_1"), args.runs
            )

            def cold() -> None:
                http._vendor.sessions._cache.clear()  # type: ignore[union-attr]
                client.obtain("idaas_demo", "app_billing", "sct_billing_1")

            cold_s = timed(cold, args.runs)
    print(f"median of {args.runs}, upstream latency {args.upstream_ms} ms per emulator call")
    print(f"  one signed emulator round trip      {round_trip * 1000:7.1f} ms   x1.0")
    print(f"  obtain, STS session cached          {warm * 1000:7.1f} ms   x{warm / round_trip:.1f}")
    print(
        f"  obtain, new STS session             {cold_s * 1000:7.1f} ms   x{cold_s / round_trip:.1f}"
    )


if __name__ == "__main__":
    main()
