"""One JSON audit record per request on the `vend.audit` logger (contract section 9). The record
has fixed fields only, so nothing secret can reach it by accident."""

from __future__ import annotations

import json
import logging
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Literal

logger = logging.getLogger("vend.audit")


@dataclass
class AuditRecord:
    request_id: str
    action: str | None = None
    resource: str | None = None
    principal: str | None = None
    decision: Literal["allow", "deny", "none"] = "none"
    outcome: str = "ok"
    upstream_request_id: str | None = None
    started: float = 0.0

    def to_json(self) -> str:
        data = asdict(self)
        del data["started"]
        data["ts"] = (
            datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        )
        data["duration_ms"] = round((time.monotonic() - self.started) * 1000, 1)
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)


def start(request_id: str) -> AuditRecord:
    return AuditRecord(request_id=request_id, started=time.monotonic())


def emit(record: AuditRecord) -> None:
    logger.info(record.to_json())


def refused(request_id: str, outcome: str, action: str | None = None) -> None:
    """The record of a request refused before the pipeline saw it (bad route, body or event)."""
    record = start(request_id)
    record.action = action
    record.outcome = outcome
    emit(record)


def configure(stream: object = None) -> None:
    """Sends audit records to stdout (FC ships stdout to Log Service), one JSON per line."""
    if any(getattr(h, "_vend_audit", False) for h in logger.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stdout)  # type: ignore[arg-type]
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._vend_audit = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
