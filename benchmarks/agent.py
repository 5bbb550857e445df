"""`vend-client agent`: a cached `GET /v1/secret` over one keep-alive connection.

- Latency: 100 requests a second on a fixed schedule (open loop) for `--seconds`, each timed
  from when it was sent to its answer's last byte; and from when it was due, which adds the
  benchmark's own wake-up from its sleep but counts a slow answer against the ones queued behind
  it (at 10 ms apart, none queue unless an answer takes 10 ms). Target: p99 <= 1 ms. Beside it, the same schedule against a floor: a waitress server whose
  WSGI app answers a constant JSON body (the server alone, no agent).
- Memory: the agent's RSS (from /proc) after a warm-up and then every 1,000 of `--requests`
  requests sent back to back. Target: flat.

The agent runs as a caller would run it, a process of its own (`vend-client agent`), against
`vend serve` and the emulator (the demo caller `billing`, a RAM proof): one real obtain, then
hits.

    .venv/bin/python benchmarks/agent.py [--seconds 30] [--requests 10000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from processes import free_port, wait_for_port
from world import BILLING, running_world, start_serve

TOKEN = "bench-agent-token-0123456789abcdef"
PATH = "/v1/secret?instance_id=idaas_bench&application_id=app_bench_0&secret_id=sct_1"
AGENT = [sys.executable, "-m", "vend_client.cli", "agent"]
# The floor: waitress and a constant answer, as the agent is served (same server, same threads).
FLOOR = r"""
import sys, waitress
body = b'{"instance_id":"idaas_bench","application_id":"app_bench_0","secret_id":"sct_1"}'
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]
waitress.serve(app, host="127.0.0.1", port=int(sys.argv[1]), threads=4, _quiet=True)
"""


def paced(port: int, seconds: float, rate: float) -> tuple[list[float], list[float]]:
    """Milliseconds to each answer's last byte: from when the request was sent, and from when
    it was due."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"X-Vend-Agent-Token": TOKEN}
    for _ in range(200):  # warm: the connection, the agent's threads, the cache
        conn.request("GET", PATH, headers=headers)
        conn.getresponse().read()
    latencies, late = [], []
    start = time.perf_counter()
    for i in range(int(seconds * rate)):
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sent = time.perf_counter()
        conn.request("GET", PATH, headers=headers)
        reply = conn.getresponse()
        reply.read()
        if reply.status != 200:
            raise SystemExit(f"the agent answered {reply.status}")
        done = time.perf_counter()
        latencies.append((done - sent) * 1000)
        late.append((done - due) * 1000)
    conn.close()
    return latencies, late


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def memory(port: int, pid: int, count: int) -> list[int]:
    """The agent's RSS in KiB: after the warm-up, then after each 1,000 requests."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"X-Vend-Agent-Token": TOKEN}
    samples = [rss_kib(pid)]
    for i in range(1, count + 1):
        conn.request("GET", PATH, headers=headers)
        conn.getresponse().read()
        if i % 1000 == 0:
            samples.append(rss_kib(pid))
    conn.close()
    return samples


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--requests", type=int, default=10_000)
    args = parser.parse_args()
    rate = 100.0

    with running_world(latency_ms=0) as world:
        serve_port, agent_port, floor_port = free_port(), free_port(), free_port()
        serve = start_serve(world, serve_port)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_"))},
            "VEND_AGENT_TOKEN": TOKEN,
            "VEND_URL": f"http://127.0.0.1:{serve_port}",
            "VEND_AUDIENCE": "vend-local",
            "VEND_STS_ENDPOINT": world.emulator,
            "VEND_KMS_ENDPOINT": world.emulator,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": BILLING[0],
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": BILLING[1],
        }
        agent = subprocess.Popen(
            [*AGENT, "--port", str(agent_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        floor = subprocess.Popen(
            [sys.executable, "-c", FLOOR, str(floor_port)], stderr=subprocess.DEVNULL, text=True
        )
        try:
            wait_for_port(serve_port, serve)
            wait_for_port(agent_port, agent)
            wait_for_port(floor_port, floor)
            # In turn, a tenth of the time each, so that drift of the machine hits both alike.
            hits: list[float] = []
            floors: list[float] = []
            hits_due: list[float] = []
            floors_due: list[float] = []
            for _ in range(10):
                sent, due = paced(agent_port, args.seconds / 10, rate)
                hits, hits_due = hits + sent, hits_due + due
                sent, due = paced(floor_port, args.seconds / 10, rate)
                floors, floors_due = floors + sent, floors_due + due
            rss = memory(agent_port, agent.pid, args.requests)
        finally:
            for proc in (agent, floor, serve):
                proc.terminate()
                proc.wait(timeout=10)

    print(f"agent GET /v1/secret, a cache hit, {rate:g}/s over keep-alive (target p99 <= 1 ms):")
    for name, values in (
        ("agent, from sent", hits),
        ("floor, from sent", floors),
        ("agent, from due", hits_due),
        ("floor, from due", floors_due),
    ):
        print(
            f"  {name:26} p50 {pct(values, 0.5):6.3f} ms   p99 {pct(values, 0.99):6.3f} ms"
            f"   max {max(values):7.2f} ms   ({len(values)} requests)"
        )
    print("  (the floor: waitress answering a constant body, the same schedule, in turn)")
    print(
        f"  from sent, ratio of p99s: {pct(hits, 0.99) / pct(floors, 0.99):.2f}; "
        f"of p50s: {pct(hits, 0.5) / pct(floors, 0.5):.2f}"
    )
    print(f"agent RSS over {args.requests} requests back to back (KiB, every 1,000):")
    print("  " + " ".join(str(s) for s in rss))
    print(f"  growth after warm-up: {rss[-1] - rss[0]:+d} KiB")


if __name__ == "__main__":
    main()
