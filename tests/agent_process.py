"""`vend-client agent` as a process of its own, and `curl` asking it: how the service-level tests
meet the agent as a caller in another language would."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from log_scan import SESSION_LOG
from stack import Stack

from infra.emulator.oauth import ISSUER_PATH

VEND_CLIENT = Path(sys.executable).with_name("vend-client")


@dataclass
class Agent:
    url: str
    log: Path

    def stderr(self) -> str:
        return self.log.read_text()


@contextmanager
def running_agent(env: dict[str, str], tmp_path: Path, *args: str) -> Iterator[Agent]:
    log = tmp_path / "agent.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            [str(VEND_CLIENT), "agent", "--port", "0", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            text=True,
        )
    try:
        yield Agent(_listening_url(log, proc), log)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
        SESSION_LOG.output("vend-client agent (stderr)", log.read_text())
    assert code == 0, log.read_text()


def _listening_url(log: Path, proc: subprocess.Popen[str], seconds: float = 30) -> str:
    """Where the agent listens, from its `listening` log line: it binds port 0 itself."""
    deadline = time.monotonic() + seconds
    while True:
        for line in log.read_text().splitlines():
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("event") == "listening":
                url: str = record["urls"][0]
                return url
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"the agent did not listen:\n{log.read_text()}"
        time.sleep(0.02)


def token_endpoint(stack: Stack) -> str:
    """The emulator's IDaaS token endpoints, one per instance (infra/ASSUMPTIONS.md T2)."""
    return f"{stack.emulator.url}/{{instance_id}}{ISSUER_PATH}/token"


def curl(url: str, *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run(
        ["curl", "-sS", "-w", "\n%{http_code}", *args, url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    body, _, status = done.stdout.rpartition("\n")
    return int(status), json.loads(body)
