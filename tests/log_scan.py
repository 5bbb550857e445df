"""Every log line of the test session, checked as it is written: each is one JSON object with
its `log` kind, and none holds a demo-world secret, an access key secret, a token or a proof.

Lines come from two places: every record logged in this process (`SESSION_LOG`, a handler on
the root logger and on the loggers that do not propagate), formatted as the service writes it
(shared.logs.JsonLines); and what the servers the tests start as processes wrote to their log
(`SESSION_LOG.output`, called by tests/processes.py when such a process ends). conftest.py
fails the session at its end if any line failed, naming where the line came from and what is
wrong with it, never the line. The checker itself is the caller package's tests' own
(client/tests/client_log_scan.py): one notion of a leak for both."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from infra.emulator import load_seed
from shared.logs import JsonLines

ROOT = Path(__file__).resolve().parent.parent
DEMO_SEED = ROOT / "examples" / "seed.yaml"
# The loggers whose records do not reach the root logger (shared.audit.configure).
UNPROPAGATED = ("vend.audit", "vend.upstream", "vend.rotation")

sys.path.insert(0, str(ROOT / "client" / "tests"))
from client_log_scan import SHAPES, SessionLog  # noqa: E402

LEAKS = {
    # Standalone, as a created secret stands in JSON or text; not a run inside a base64 blob.
    "a created client secret": re.compile(
        r"(?<![A-Za-z0-9+/%=])CS[A-Za-z0-9]{40}(?![A-Za-z0-9+/%=])"
    ),
    "an ACS3 signature": re.compile(r"Signature=[0-9a-f]{64}"),
    "a private key": re.compile(r"PRIVATE KEY"),
    **SHAPES,
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


SESSION_LOG = SessionLog(JsonLines(), LEAKS, _seeded_secrets(), ("", *UNPROPAGATED))
__all__ = ["DEMO_SEED", "LEAKS", "SESSION_LOG"]
