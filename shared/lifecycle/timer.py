"""What the rotation schedule's function (functions/rotation.py) is invoked with, read before
anything else:

- FC's timer event, `{"triggerTime": "2023-12-26T07:49:00Z", "triggerName": "...", "payload":
  "..."}` (infra/ASSUMPTIONS.md F30): a run over every application of VEND_ROTATION. Nothing in
  it is acted on but its presence: the list is the function's own configuration;
- one batch of a run that fanned out, which the function queued for itself:
  `{"action": "rotate_batch", "run_id", "applications": [{"instance_id", "application_id"}]}`.

Anything else is refused (returned, never raised: FC would retry it)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from shared.errors import VendError, invalid
from shared.lifecycle.schedule import Target
from shared.models import Id, parse_json_object

MAX_BATCH = 500  # far above shared.lifecycle.schedule.BATCH_SIZE: a bound, not a setting
RunId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]


@dataclass(frozen=True)
class TimerEvent:
    """FC's timer fired: a run over VEND_ROTATION's list (nothing of the event is used)."""


@dataclass(frozen=True)
class BatchEvent:
    run_id: str
    targets: tuple[Target, ...]


class _Application(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_id: Id
    application_id: Id


class _Batch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    action: str
    run_id: RunId
    applications: Annotated[list[_Application], Field(min_length=1, max_length=MAX_BATCH)]


def parse_schedule_event(raw: bytes | str | dict[str, Any]) -> TimerEvent | BatchEvent:
    data = raw if isinstance(raw, dict) else parse_json_object(raw, "event")
    if data.get("action") == "rotate_batch":
        try:
            batch = _Batch.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "event"
            raise invalid(f"a rotate_batch event: {where[:80]} is not valid") from None
        targets = tuple(Target(a.instance_id, a.application_id) for a in batch.applications)
        return BatchEvent(batch.run_id, targets)
    name = data.get("triggerName")
    if "action" not in data and isinstance(name, str) and "triggerTime" in data:
        return TimerEvent()
    raise _not_ours()


def batch_payload(run_id: str, targets: list[Target]) -> bytes:
    return json.dumps(
        {
            "action": "rotate_batch",
            "run_id": run_id,
            "applications": [
                {"instance_id": t.instance_id, "application_id": t.application_id} for t in targets
            ],
        },
        separators=(",", ":"),
    ).encode()


def _not_ours() -> VendError:
    return invalid("not a timer event, nor a rotate_batch event of this function")
