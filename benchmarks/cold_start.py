"""P2, the cold start: a fresh interpreter imports `functions.http`, runs FC's initializer and
serves its first obtain with a JWT (the emulator in its own process, 20 ms injected into each
of AssumeRole, the EIAM call and GenerateDataKey), against the floor: a fresh interpreter that
only imports the SDK clients the service needs (`alibabacloud_tea_openapi.client`,
`alibabacloud_sts20150401.client`, `alibabacloud_credentials.client`). The two run in pairs,
taken in turn; the ratio is of the medians of whole-process wall times. Target: <= 1.0.

Each cold start also reports its own stages (import, initializer, first obtain), medians.

    .venv/bin/python benchmarks/cold_start.py [--pairs 15] [--latency-ms 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from world import APPS, running_world

FLOOR = (
    "import alibabacloud_tea_openapi.client, alibabacloud_sts20150401.client, "
    "alibabacloud_credentials.client"
)
# The cold instance: what FC does, in order, with nothing of the benchmark imported first.
COLD = r"""
import time
t0 = time.perf_counter()
import json, os
import functions.http as handler
t1 = time.perf_counter()

class Function:
    timeout = 15

class Context:
    request_id = "bench-1"
    function = Function()
    region = None
    account_id = None
    credentials = None

handler.initializer(Context())
t2 = time.perf_counter()
body = json.dumps({"instance_id": "idaas_bench", "application_id": os.environ["BENCH_APP"],
                   "secret_id": "sct_1"})
event = {"version": "v1", "rawPath": "/v1/secrets/obtain", "body": body, "isBase64Encoded": False,
         "headers": {"Authorization": "Bearer " + os.environ["BENCH_TOKEN"],
                     "Content-Type": "application/json"},
         "queryParameters": {},
         "requestContext": {"requestId": "bench-1", "http": {"method": "POST",
                            "path": "/v1/secrets/obtain", "protocol": "HTTP/1.1",
                            "sourceIp": "127.0.0.1", "userAgent": "bench"}}}
result = handler.handler(json.dumps(event).encode(), Context())
t3 = time.perf_counter()
assert result["statusCode"] == 200, result
print("STAGES", json.dumps({"import": t1 - t0, "initializer": t2 - t1, "first obtain": t3 - t2}))
"""


def run_s(argv: list[str], env: dict[str, str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"failed: {argv[:3]}\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--latency-ms", type=int, default=20)
    args = parser.parse_args()
    cold: list[float] = []
    floor: list[float] = []
    stages: dict[str, list[float]] = {}
    with running_world(args.latency_ms) as world:
        env = {**world.env, "BENCH_TOKEN": world.token}
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # the venv's bytecode is there; write none new
        run_s([sys.executable, "-c", "import functions.http"], env)  # warm the disk cache
        for i in range(args.pairs):
            env["BENCH_APP"] = APPS[i % len(APPS)]  # a fresh STS session each time
            seconds, out = run_s([sys.executable, "-c", COLD], env)
            cold.append(seconds)
            line = next(x for x in out.splitlines() if x.startswith("STAGES "))
            for name, value in json.loads(line[7:]).items():
                stages.setdefault(name, []).append(value)
            floor.append(run_s([sys.executable, "-c", FLOOR], env)[0])

    a, b = statistics.median(cold), statistics.median(floor)
    print(
        f"P2, {args.pairs} pairs in turn, {args.latency_ms} ms injected per upstream action, "
        f"{sys.version.split()[0]}"
    )
    print(f"  cold start to first obtain (JWT), whole process  median {a * 1000:6.0f} ms")
    print(f"  floor: importing the SDK clients, whole process   median {b * 1000:6.0f} ms")
    print(f"  P2 = {a / b:.2f}  (target <= 1.0)")
    for name, values in stages.items():
        print(f"    {name:13s} median {statistics.median(values) * 1000:6.1f} ms")


if __name__ == "__main__":
    main()
