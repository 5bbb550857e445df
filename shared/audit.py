"""One JSON audit record per request on the `vend.audit` logger (contract section 9), one JSON
WARNING line on `vend.upstream` for a request that an upstream failed, and on `vend.rotation` a
line per batch of a scheduled rotation run, and a WARNING line per application it could not
step. All have fixed fields only, so nothing secret can reach them by accident.

Every record has `log` ("audit"), `ts`, `request_id`, `principal`, `action`, `resource`,
`decision`, `outcome`, `upstream_request_id` and `duration_ms`. The rest are present only when
they apply, never null for "did not happen":
- `statement`: the approval policy's statement that decided (its Sid, else `Statement[i]`):
  the Allow that admitted the caller, or the explicit Deny that refused it; absent for a
  default deny (no statement matched) and before a decision.
- `trace_id`: the trace id of the request's W3C `traceparent` (HTTP header or event field), when
  it carried a valid one (shared.logs).
- `step`: a rotation's step (`create`, `disable`, `delete` or `none`), the one taken or, when
  the request failed, the one it was taking; a dry run's is the one it would take.
- `auth_ms`, `sts_ms`, `eiam_ms`, `kms_ms`, `seal_ms`: milliseconds spent in each stage the
  request reached (STS and EIAM summed over their calls: a create lists, creates and may
  obtain); a stage not reached, or still running when the request ended (KMS beside an EIAM
  that failed first), is absent.
- `upstream`, `upstream_code`, `upstream_status`, `attempts`: when an upstream's answer (or its
  silence) decided the outcome: `sts`, `eiam`, `kms` or `store`, its own code and HTTP status
  (null when it gave none: a timeout, a reset, Redis), and how many calls were made to it for
  the call that failed (null when not counted). A refusal that is the caller's business (EIAM's
  404, KMS's 403) names its upstream too, but only a failure (429, 502, 503, 504) logs the
  WARNING line.

Both lines are pure ASCII: every character outside it, the Unicode line separators (U+0085,
U+2028, U+2029) among them, is a JSON escape, and control characters are escaped by JSON
itself, so no value can split a line for a reader that splits on more than `\n`."""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Literal

from shared import logs
from shared.errors import VendError

logger = logging.getLogger("vend.audit")
upstream_logger = logging.getLogger("vend.upstream")
rotation_logger = logging.getLogger("vend.rotation")

# UpstreamFailure.service (as messages name it) -> the audit record's `upstream`.
UPSTREAMS = {"STS": "sts", "EIAM": "eiam", "KMS": "kms", "store": "store"}
# The outcomes an upstream is to blame for: each logs one WARNING line.
FAILURE_STATUSES = frozenset({429, 502, 503, 504})


@dataclass
class AuditRecord:
    request_id: str
    action: str | None = None
    resource: str | None = None
    principal: str | None = None
    decision: Literal["allow", "deny", "none"] = "none"
    statement: str | None = None  # the approval policy's deciding statement, if one decided
    outcome: str = "ok"
    upstream_request_id: str | None = None
    started: float = 0.0  # perf_counter() at the start
    # When an upstream decided the outcome (see the module's docstring).
    upstream: str | None = None
    upstream_code: str | None = None
    upstream_status: int | None = None
    attempts: int | None = None
    # Milliseconds per stage reached; None: not reached.
    auth_ms: float | None = None
    sts_ms: float | None = None
    eiam_ms: float | None = None
    kms_ms: float | None = None
    seal_ms: float | None = None
    step: str | None = None  # rotation only
    trace_id: str | None = None

    def decided(self, allowed: bool, statement: str | None) -> None:
        """The approval policy's decision, and the statement that made it (None: default deny)."""
        self.decision = "allow" if allowed else "deny"
        self.statement = statement

    def failed(self, err: VendError) -> None:
        """The outcome `err`, and the upstream that decided it, if one did."""
        self.outcome = err.code
        if err.service is None:
            return
        self.upstream = UPSTREAMS.get(err.service, err.service.lower())
        self.upstream_code = err.upstream_code
        self.upstream_status = err.upstream_status
        self.attempts = err.attempts
        if err.upstream_request_id is not None:
            self.upstream_request_id = err.upstream_request_id

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "log": "audit",
            "ts": _now(),
            "request_id": self.request_id,
            "principal": self.principal,
            "action": self.action,
            "resource": self.resource,
            "decision": self.decision,
            "outcome": self.outcome,
            "upstream_request_id": self.upstream_request_id,
            "duration_ms": round((perf_counter() - self.started) * 1000, 1),
        }
        if self.statement is not None:
            data["statement"] = self.statement
        if self.trace_id is not None:
            data["trace_id"] = self.trace_id
        if self.upstream is not None:
            data["upstream"] = self.upstream
            data["upstream_code"] = self.upstream_code
            data["upstream_status"] = self.upstream_status
            data["attempts"] = self.attempts
        if self.step is not None:
            data["step"] = self.step
        for name in STAGES:
            value = getattr(self, name)
            if value is not None:
                data[name] = round(value, 1)
        return data

    def to_json(self) -> str:
        return _line(self.to_dict())


STAGES = ("auth_ms", "sts_ms", "eiam_ms", "kms_ms", "seal_ms")


def elapsed_ms(started: float, so_far: float | None = None) -> float:
    """Milliseconds since `started` (a perf_counter()), added to `so_far`."""
    ms = (perf_counter() - started) * 1000
    return ms if so_far is None else so_far + ms


_line = logs.line
_now = logs.now
# Marks a record whose message is a whole JSON line already (shared.logs.JsonLines).
_AS_IS = {"json_line": True}


def start(request_id: str) -> AuditRecord:
    """The record of a request; its trace is the one the request's context carries."""
    return AuditRecord(
        request_id=request_id, started=perf_counter(), trace_id=_trace_of(request_id)
    )


def _trace_of(request_id: str) -> str | None:
    ids = logs.current()
    return ids.trace_id if ids.request_id == request_id else None


def emit(record: AuditRecord) -> None:
    logger.info(record.to_json(), extra=_AS_IS)


def warn_upstream(record: AuditRecord, err: VendError) -> None:
    """The one WARNING line of a request that an upstream failed: which request, which upstream,
    its code and status, the calls made, and the error the caller got. Nothing else."""
    if record.upstream is None or err.status not in FAILURE_STATUSES:
        return
    line = {
        "log": "upstream",
        "ts": _now(),
        "level": "WARNING",
        "request_id": record.request_id,
        "action": record.action,
        "upstream": record.upstream,
        "upstream_code": record.upstream_code,
        "upstream_status": record.upstream_status,
        "attempts": record.attempts,
        "upstream_request_id": record.upstream_request_id,
        "outcome": err.code,
        "message": err.message,
    }
    if record.trace_id is not None:
        line["trace_id"] = record.trace_id
    upstream_logger.warning(_line(line), extra=_AS_IS)


def warn_rotation(run_id: str, request_id: str | None, application: str, err: VendError) -> None:
    """The WARNING line of one application that a scheduled rotation run could not step (its
    audit record, under `request_id`, has the rest): which run, which application (or which
    batch, for one that could not be queued: no request), the error."""
    line = {
        "log": "rotation",
        "ts": _now(),
        "level": "WARNING",
        "run_id": run_id,
        "request_id": request_id,
        "application": application,
        "status": err.status,
        "outcome": err.code,
        "message": err.message,
    }
    rotation_logger.warning(_line(line), extra=_AS_IS)


def rotation_summary(counts: dict[str, Any], *, warn: bool) -> None:
    """One line per batch of a scheduled run: how many applications took which step, failed or
    were not reached; a WARNING when any failed or was not reached."""
    line = {"log": "rotation", "ts": _now(), "level": "WARNING" if warn else "INFO", **counts}
    rotation_logger.log(logging.WARNING if warn else logging.INFO, _line(line), extra=_AS_IS)


def refused(request_id: str, outcome: str, action: str | None = None) -> None:
    """The record of a request refused before the pipeline saw it (bad route, body or event)."""
    record = start(request_id)
    record.action = action
    record.outcome = outcome
    emit(record)


def configure(stream: object = None) -> None:
    """Sends audit records and upstream warnings to stdout (FC ships stdout to Log Service), one
    JSON per line, as they are: not through a root logger that is not ours (FC's runtime sets
    one whose format would put text before the JSON). Nothing to do where the process's log is
    ours already (shared.logs.install): they reach its handler."""
    if logs.is_installed():
        return
    for target in (logger, upstream_logger, rotation_logger):
        if logs.has_ours(target):
            continue
        target.addHandler(logs.handler_for(stream or sys.stdout))  # type: ignore[arg-type]
        target.setLevel(logging.INFO)
        target.propagate = False
