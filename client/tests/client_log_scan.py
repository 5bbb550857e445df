"""Every log line of the caller package's tests, checked as it is written: each is one JSON
object with its `log` kind, and none holds a secret, a token or a password of these tests' world
(the markers the tests plant: `*-secret-marker`, `*-token-marker`, `CS-...`, the token
endpoint's `access-token-...`), nor anything shaped like an STS token, a JWT or a RAM proof.

Lines come from every record logged in this process (`SESSION_LOG`, on the root logger),
formatted as the agent writes them (vend_client.agent.logs.JsonLines), and from the agents the
tests start as processes (`SESSION_LOG.output`, called by agent_world.running_agent when one
ends). conftest.py fails the session at its end if any line failed, naming where the line came
from and what is wrong with it, never the line. Only vend_client and the test dependencies are
imported: these tests run from an installed copy of client/ alone. The service's tests build
their own session log on `SessionLog` (tests/log_scan.py), with the service's formatter and the
demo world's secrets."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping

from vend_client.agent.logs import JsonLines

# What any secret-vending log line must never hold, whoever wrote it.
SHAPES = {
    "an STS security token": re.compile(r"CAIS[A-Za-z0-9]{40,}"),
    "a JWT": re.compile(r"eyJ(hbGci|0eXAi|raWQi)[A-Za-z0-9_-]{10,}"),
    "a RAM proof": re.compile(r"eyJtZXRob2Qi"),
    "a KMS plaintext": re.compile(r'"Plaintext"'),
    "STS credentials": re.compile(r'"AccessKeySecret"'),
}
LEAKS = {
    # A wrapped data key (`wrapped-data-key-marker`) is not one: it is ciphertext, and KMS's
    # Decrypt carries it in its URL, which urllib3 logs at DEBUG.
    "a planted secret, token or password": re.compile(
        r"(secret|token|password)-marker|CS-[A-Za-z-]*secret|access-token-\d+-for-"
    ),
    **SHAPES,
}


def problem(
    line: str, leaks: Mapping[str, re.Pattern[str]], known: Mapping[str, str] | None = None
) -> str | None:
    """What is wrong with one log line, in words that never quote it; None if nothing. `known`:
    values that must never appear, each with what to call it."""
    try:
        data = json.loads(line)
    except ValueError:
        return "not JSON"
    if not isinstance(data, dict):
        return "JSON but not an object"
    if not isinstance(data.get("log"), str):
        return "a JSON object without its `log` kind"
    for value, name in (known or {}).items():
        if value in line:
            return f"holds {name}"
    for name, pattern in leaks.items():
        if pattern.search(line):
            return f"holds {name}"
    return None


class SessionLog(logging.Handler):
    """Checks each line as it comes; keeps what failed (where, and why), a count, and the kinds
    of the lines that passed."""

    def __init__(
        self,
        formatter: logging.Formatter,
        leaks: Mapping[str, re.Pattern[str]],
        known: Mapping[str, str] | None = None,
        loggers: Iterable[str] = ("",),
    ) -> None:
        super().__init__(level=logging.DEBUG)
        self.setFormatter(formatter)
        self.leaks, self.known, self.loggers = leaks, known or {}, tuple(loggers)
        self.checked = 0
        self.kinds: set[str] = set()
        self.failures: dict[str, int] = {}
        self._guard = threading.Lock()

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
            found = problem(line, self.leaks, self.known)
            with self._guard:
                self.checked += 1
                if found is None:
                    self.kinds.add(json.loads(line)["log"])
            if found is not None:
                self._found(f"{source}: {found}")

    def _found(self, what: str) -> None:
        with self._guard:
            self.failures[what] = self.failures.get(what, 0) + 1

    def attach(self) -> None:
        for name in self.loggers:
            logging.getLogger(name).addHandler(self)
        logging.getLogger().setLevel(logging.DEBUG)

    def report(self) -> list[str]:
        return [f"{what} (x{count})" for what, count in sorted(self.failures.items())]


SESSION_LOG = SessionLog(JsonLines(), LEAKS)
