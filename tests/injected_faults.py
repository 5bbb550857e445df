"""How the emulator answers each kind of injected fault the state machines draw: one table, so a
kind means the same failure in every machine. Latency is not here: each machine sets its own."""

from __future__ import annotations

KINDS: dict[str, dict[str, object]] = {
    "503": {"status": 503, "code": "ServiceUnavailable"},
    "429": {"status": 429, "code": "Throttling"},
    "reset": {"reset": True},
    "html": {"status": 502, "body": "html"},  # a gateway's page instead of the API's JSON
    "malformed": {"malformed": True},
}
