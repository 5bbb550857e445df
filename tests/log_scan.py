"""Every log line of the test session, checked as it is written: each is one JSON object with
its `log` kind, and none holds a demo-world secret, an access key secret, a token or a proof.

Lines come from two places: every record logged in this process (`SESSION_LOG`, a handler on
the root logger and on the loggers that do not propagate), formatted as the service writes it
(shared.logs.JsonLines); and what the servers the tests start as processes wrote to their log
(`SESSION_LOG.output`, called by tests/processes.py when such a process ends). conftest.py
fails the session at its end if any line failed, naming where the line came from and what is
wrong with it, never the line."""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path

from infra.emulator import load_seed
from shared.logs import JsonLines

ROOT = Path(__file__).resolve().parent.parent
DEMO_SEED = ROOT / "examples" / "seed.yaml"
# The loggers whose records do not reach the root logger (shared.audit.configure).
UNPROPAGATED = ("vend.audit", "vend.upstream", "vend.rotation")

LEAKS = {
    # Standalone, as a created secret stands in JSON or text; not a run inside a base64 blob.
    "a created client secret": re.compile(
        r"(?<![A-Za-z0-9+/%=])CS[A-Za-z0-9]{40}(?![A-Za-z0-9+/%=])"
    ),
    "an STS security token": re.compile(r"CAIS[A-Za-z0-9]{40,}"),
    "a JWT": re.compile(r"eyJ(hbGci|0eXAi|raWQi)[A-Za-z0-9_-]{10,}"),
    "a RAM proof": re.compile(r"eyJtZXRob2Qi"),
    "an ACS3 signature": re.compile(r"Signature=[0-9a-f]{64}"),
    "a KMS plaintext": re.compile(r'"Plaintext"'),
    "STS credentials": re.compile(r'"AccessKeySecret"'),
    "a private key": re.compile(r"PRIVATE KEY"),
}


def _seeded_secrets() -> dict[str, str]:
    """The demo world's secrets (examples/seed.yaml), each with what to call it."""
    seed = load_seed(DEMO_SEED)
    named = {u.access_key_secret: f"the access key secret of {u.name}" for u in seed.users}
    for instance in seed.eiam_instances:
        for app in instance.applications:
            for s in app.secrets:
                named[s.client_secret] = f"the client secret {s.secret_id}"
    return named


def problem(line: str, seeded: dict[str, str]) -> str | None:
    """What is wrong with one log line, in words that never quote it; None if nothing."""
    try:
        data = json.loads(line)
    except ValueError:
        return "not JSON"
    if not isinstance(data, dict):
        return "JSON but not an object"
    if not isinstance(data.get("log"), str):
        return "a JSON object without its `log` kind"
    for value, name in seeded.items():
        if value in line:
            return f"holds {name}"
    for name, pattern in LEAKS.items():
        if pattern.search(line):
            return f"holds {name}"
    return None


class SessionLog(logging.Handler):
    """Checks each line as it comes; keeps what failed (where, and why) and a count."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(JsonLines())
        self.seeded = _seeded_secrets()
        self.checked = 0
        self.kinds: set[str] = set()
        self.failures: dict[str, int] = {}
        self._lock_ = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception as exc:  # a record that cannot format is a finding itself
            self._found(f"logger {record.name}: cannot format ({type(exc).__name__})")
            return
        self.check(f"logger {record.name}", text)

    def output(self, source: str, text: str) -> None:
        """A process's log, as it wrote it: each line must pass."""
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                self.check(f"{source}, line {number}", line)

    def check(self, source: str, text: str) -> None:
        for line in text.split("\n"):  # a record that spans lines is as many lines
            found = problem(line, self.seeded)
            with self._lock_:
                self.checked += 1
                if found is None:
                    self.kinds.add(json.loads(line)["log"])
            if found is not None:
                self._found(f"{source}: {found}")

    def _found(self, what: str) -> None:
        with self._lock_:
            self.failures[what] = self.failures.get(what, 0) + 1

    def attach(self) -> None:
        for name in ("", *UNPROPAGATED):
            logging.getLogger(name).addHandler(self)
        logging.getLogger().setLevel(logging.DEBUG)

    def report(self) -> list[str]:
        return [f"{what} (x{count})" for what, count in sorted(self.failures.items())]


SESSION_LOG = SessionLog()
