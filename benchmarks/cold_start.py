"""Cold start: what importing each handler costs a new FC instance, as medians over fresh
interpreters and as a ratio to a bare interpreter measured in the same run.

    .venv/bin/python benchmarks/cold_start.py [runs]
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time

CASES = {
    "bare interpreter": "pass",
    "tea-openapi client alone": "import alibabacloud_tea_openapi.client",
    "EIAM product client (not used)": "import alibabacloud_eiam20211201.client",
    "functions.http (the HTTP handler)": "import functions.http",
}


def median_s(code: str, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 9
    subprocess.run([sys.executable, "-c", "import functions.http"], check=True)  # warm the disk
    results = {name: median_s(code, runs) for name, code in CASES.items()}
    bare = results["bare interpreter"]
    print(f"median of {runs} fresh interpreters each, {sys.version.split()[0]}")
    for name, seconds in results.items():
        print(f"  {name:38s} {seconds * 1000:7.1f} ms   x{seconds / bare:5.1f} of bare")


if __name__ == "__main__":
    main()
