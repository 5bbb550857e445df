"""Throughput of the custom-runtime shape: one `vend serve` process (what `vend-http-custom` runs,
16 threads), obtains with a JWT at concurrency 1, 8, 32 and 64, the emulator in its own process
with 20 ms injected into each of AssumeRole, the EIAM call and GenerateDataKey. Reported per
level: requests/s, p50 and p99 latency, the server's CPU per request (its own user + system time
from /proc, so the load generator's CPU is not counted), and requests/s as a share of what the
upstream latency allows at that concurrency (concurrency / the floor latency of one direct SDK
EIAM call). Also P1 (warm obtain at concurrency 1 / one direct SDK EIAM call; target <= 1.10),
CPU per obtain (target <= 2.0 ms), and P4 (AssumeRole per request at steady state, RSS).

The load generator is asyncio over raw HTTP/1.1 keep-alive connections, one per concurrent
caller, requests prepared beforehand: it costs the machine far less than a `requests` client.
The emulator's CPU per request is reported too: on 2 cores it is what caps requests/s.

    .venv/bin/python benchmarks/throughput.py [--seconds 5] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import sdk_clients as sdk
from alibabacloud_eiam20211201.models import ObtainApplicationClientSecretRequest
from processes import free_port, wait_for_port
from world import APPS, running_world, start_serve

LEVELS = (1, 8, 32, 64)
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def request_bytes(port: int, token: str, app: str) -> bytes:
    body = json.dumps(
        {"instance_id": "idaas_bench", "application_id": app, "secret_id": "sct_1"}
    ).encode()
    head = (
        f"POST /v1/secrets/obtain HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def caller(
    port: int, payloads: list[bytes], until: float, latencies: list[float], failures: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.perf_counter() < until:
            start = time.perf_counter()
            writer.write(payloads[i % len(payloads)])
            i += 1
            status = int((await reader.readline()).split()[1])
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 200:
                failures.append(status)
    finally:
        writer.close()


async def load(
    port: int, payloads: list[bytes], concurrency: int, seconds: float
) -> tuple[list[float], list[int], float]:
    latencies: list[float] = []
    failures: list[int] = []
    start = time.perf_counter()
    until = start + seconds
    await asyncio.gather(
        *(caller(port, payloads, until, latencies, failures) for _ in range(concurrency))
    )
    return latencies, failures, time.perf_counter() - start


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--latency-ms", type=int, default=20)
    args = parser.parse_args()
    rows = []
    with running_world(args.latency_ms) as world:
        api_port = free_port()
        server = start_serve(world, api_port)
        try:
            wait_for_port(api_port, server)
            payloads = [request_bytes(api_port, world.token, app) for app in APPS]
            # Warm: one STS session per ARN, the JWKS fetched, every thread's clients made.
            asyncio.run(load(api_port, payloads, 16, 1.0))

            # The floor: one EIAM call straight from the SDK, the same latency.
            operator = sdk.eiam(f"127.0.0.1:{world.emulator_port}", sdk.OPERATOR)
            request = ObtainApplicationClientSecretRequest(
                instance_id="idaas_bench", application_id=APPS[0], secret_id="sct_1"
            )
            floor_samples = []
            for _ in range(100):
                start = time.perf_counter()
                operator.obtain_application_client_secret(request)
                floor_samples.append(time.perf_counter() - start)
            floor = statistics.median(floor_samples)

            assumed_before = world.calls().get("AssumeRole", 0)
            served = 0
            rss_first = rss_mib(server.pid)
            for level in LEVELS:
                cpu_before = cpu_s(server.pid)
                emulator_before = cpu_s(world.emulator_pid)
                latencies, failures, wall = asyncio.run(
                    load(api_port, payloads, level, args.seconds)
                )
                cpu = cpu_s(server.pid) - cpu_before
                emulator_cpu = cpu_s(world.emulator_pid) - emulator_before
                served += len(latencies)
                rate = len(latencies) / wall
                rows.append(
                    (
                        level,
                        rate,
                        statistics.median(latencies),
                        percentile(latencies, 0.99),
                        cpu / len(latencies),
                        rate / (level / floor),
                        len(failures),
                        emulator_cpu / len(latencies),
                    )
                )
            assume_per_request = (world.calls().get("AssumeRole", 0) - assumed_before) / served
            rss_last = rss_mib(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=10)

    print(
        f"one `vend serve` (16 threads), obtains with a JWT over 10 ARNs, {args.seconds:.0f} s per "
        f"level, {args.latency_ms} ms injected per upstream action; {os.cpu_count()} cores"
    )
    print(f"  floor: one EIAM call straight from the SDK, median {floor * 1000:.1f} ms")
    print(
        "  concurrency   req/s    p50 ms   p99 ms   server CPU ms/req   share of upstream bound"
        "   errors   emulator CPU ms/req"
    )
    for level, rate, p50, p99, cpu, share, failed, emulator_cpu in rows:
        print(
            f"  {level:11d} {rate:7.0f} {p50 * 1000:9.1f} {p99 * 1000:8.1f} "
            f"{cpu * 1000:19.2f} {share:25.2f} {failed:8d} {emulator_cpu * 1000:21.2f}"
        )
    p1 = rows[0][2] / floor
    print(
        f"  P1 (warm obtain at concurrency 1 / one direct SDK EIAM call) = {p1:.2f}  (target <= 1.10)"
    )
    print(f"  CPU per obtain at concurrency 1 = {rows[0][4] * 1000:.2f} ms  (target <= 2.0)")
    print(
        f"  P4: AssumeRole per request at steady state {assume_per_request:.4f}; "
        f"server RSS {rss_first:.0f} MiB -> {rss_last:.0f} MiB over {served} requests"
    )


if __name__ == "__main__":
    main()
