"""The caller's package: a `CachingClient` hit, and what importing the client costs, now and
before issue 18 (the commit `--before`, taken from git into a temporary folder), side by side.

- A hit: `get_secret` of a cached secret, timed call by call (`perf_counter_ns`) after one real
  obtain through `vend serve` and the emulator (the demo caller `billing`, a RAM proof, the
  envelope opened with KMS). Target: <= 20 us. The floor beside it: a dict lookup under a lock,
  which any thread-safe cache pays.
- Import: a fresh interpreter running `from vend_client import CachingClient` (what a caller's
  process pays once), the current client against the one at `--before`, in pairs taken in turn;
  the ratio is of the medians of whole-process wall times. The floor: an interpreter that
  imports nothing.

    .venv/bin/python benchmarks/client_cache.py [--hits 100000] [--pairs 15] [--before REV]
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from processes import free_port, wait_for_port
from world import BILLING, running_world, start_serve

from vend_client import CachingClient, Credentials

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "e5176de"  # main before issue 18: the client as it was
IDS = ("idaas_bench", "app_bench_0", "sct_1")
IMPORT = "from vend_client import CachingClient"


def hits(count: int) -> tuple[list[int], list[int]]:
    """Nanoseconds per `get_secret` hit, and per floor lookup, `count` of each."""
    with running_world(latency_ms=0) as world:
        port = free_port()
        serve = start_serve(world, port)
        try:
            wait_for_port(port, serve)
            with CachingClient(
                f"http://127.0.0.1:{port}",
                audience="vend-local",
                credentials=Credentials(*BILLING),
                sts_endpoint=world.emulator,
                kms_endpoint=world.emulator,
            ) as cache:
                cache.get_secret(*IDS)  # the one real obtain
                clock = time.perf_counter_ns
                timed = []
                for _ in range(count):
                    start = clock()
                    cache.get_secret(*IDS)
                    timed.append(clock() - start)
        finally:
            serve.terminate()
            serve.wait(timeout=10)
    lock, table, floor = threading.Lock(), {IDS: object()}, []
    for _ in range(count):
        start = time.perf_counter_ns()
        with lock:
            table.get(IDS)
        floor.append(time.perf_counter_ns() - start)
    return timed, floor


def client_at(rev: str, into: Path) -> Path:
    """The `client/` folder (and the service's wire folder it may link to) as of `rev`."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "client", "shared/wire"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="tar")
    return into / "client"


def import_times(pairs: int, before: Path) -> dict[str, list[float]]:
    """Seconds of whole-process wall time, per run: nothing, the client now, the client before."""
    runs: dict[str, list[float]] = {"nothing": [], "now": [], "before": []}
    commands = {
        "nothing": ([sys.executable, "-c", "pass"], None),
        "now": ([sys.executable, "-c", IMPORT], str(ROOT / "client")),
        "before": ([sys.executable, "-c", IMPORT], str(before)),
    }
    for _ in range(pairs + 1):  # the first round warms the disk cache and is dropped
        for name, (argv, path) in commands.items():
            env = {"PYTHONPATH": path} if path else {}
            start = time.perf_counter()
            subprocess.run(argv, check=True, env={"PATH": "/usr/bin:/bin", **env}, cwd="/")
            runs[name].append(time.perf_counter() - start)
    return {name: times[1:] for name, times in runs.items()}


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=100_000)
    parser.add_argument("--pairs", type=int, default=15)
    parser.add_argument("--before", default=BEFORE)
    args = parser.parse_args()

    timed, floor = hits(args.hits)
    print(f"CachingClient.get_secret hit, {args.hits} calls (target <= 20 us):")
    for name, values in (("get_secret", timed), ("floor: dict under a lock", floor)):
        print(
            f"  {name:26} median {pct(values, 0.5):6.2f} us   p99 {pct(values, 0.99):6.2f} us"
            f"   max {max(values) / 1000:8.1f} us"
        )
    print(f"  ratio of medians: {pct(timed, 0.5) / pct(floor, 0.5):.1f}x the floor")

    with tempfile.TemporaryDirectory() as tmp:
        times = import_times(args.pairs, client_at(args.before, Path(tmp)))
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    print(f"`{IMPORT}` in a fresh interpreter, {args.pairs} rounds taken in turn (median ms):")
    print(f"  an empty interpreter {medians['nothing']:6.1f} ms")
    print(f"  the client now       {medians['now']:6.1f} ms")
    print(f"  the client at {args.before} {medians['before']:6.1f} ms")
    own_now = medians["now"] - medians["nothing"]
    own_before = medians["before"] - medians["nothing"]
    print(
        f"  the import's own part now / before: {own_now:.1f} / {own_before:.1f} ms = "
        f"{own_now / own_before:.2f}"
    )


if __name__ == "__main__":
    main()
