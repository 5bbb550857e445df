"""What the two fault matrices (tests/test_fault_matrix.py, tests/test_rotation_matrix.py) share:
the faults each cell injects, and the check of the first answer every cell makes (its file of
expected rows is tests/matrix_file.py)."""

from __future__ import annotations

import time
from typing import Any

import requests

LATE_MS = 2000  # past the deadline, and well before a keyed mark lapses (two deadlines)

# Every kind of fault the emulator injects, before and after the action acts.
FAULTS: dict[str, dict[str, Any]] = {
    "late": {"latency_ms": LATE_MS},
    "500": {"status": 500, "code": "InternalError"},
    "503": {"status": 503, "code": "ServiceUnavailable"},
    "429-retry-after": {"status": 429, "code": "Throttling", "retry_after_s": 1},
    "html-502": {"status": 502, "body": "html"},
    "malformed-200": {"malformed": True},
    "not-json-200": {"malformed": "not-json"},
    "reset": {"reset": True},
    "500-after": {"status": 500, "code": "InternalError", "phase": "after"},
    "503-after": {"status": 503, "code": "ServiceUnavailable", "phase": "after"},
    "429-after": {"status": 429, "code": "Throttling", "phase": "after"},
    "html-502-after": {"status": 502, "body": "html", "phase": "after"},
    "malformed-200-after": {"malformed": True, "phase": "after"},
    "reset-after": {"reset": True, "phase": "after"},
}


def answered(resp: requests.Response, started: float, deadline_s: float) -> tuple[str, str]:
    """The answer's request ID and code ("ok" for a 200), once checked: within the deadline
    plus 1 s, no 500 and no 404 (everything asked for exists), and an error in the contract's
    shape with no trace of the code."""
    elapsed = time.monotonic() - started
    assert elapsed <= deadline_s + 1, f"answered after {elapsed:.2f} s"
    assert resp.status_code not in (404, 500), resp.text
    request_id = resp.headers["X-Request-Id"]
    if resp.status_code == 200:
        return request_id, "ok"
    body = resp.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "request_id"}
    assert body["error"]["request_id"] == request_id
    assert "Traceback" not in resp.text and 'File "' not in resp.text
    return request_id, str(body["error"]["code"])
