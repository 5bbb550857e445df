"""What rotation observed of an application and EIAM's listing cannot say (since when the current
secret has been current, since when each disabled one has been disabled), kept as a note in the
idempotency store under `rotation:{instance_id}/{application_id}`, shared by every instance.

A note that is missing (never written, expired, the store restarted empty) or unreadable counts
as nothing observed: the planner then counts from now (shared.lifecycle.plan.observe), so losing
notes delays a disable or a delete by a grace period, and never hastens one. Writes are best
effort for the same reason: a note not written is a note lost."""

from __future__ import annotations

import json
import logging
from typing import Any

from shared.errors import store_down
from shared.idempotency import IdempotencyStore, StoreUnavailable
from shared.lifecycle.plan import Observed

log = logging.getLogger("vend")

# Rewritten by every run that is not a dry run; kept well past any grace period between runs.
NOTE_TTL_S = 30 * 24 * 3600


def note_key(instance_id: str, application_id: str) -> str:
    """IDs are 1-64 of [A-Za-z0-9_-] (validated first): one application, no other note's key."""
    return f"rotation:{instance_id}/{application_id}"


class Observations:
    def __init__(self, store: IdempotencyStore) -> None:
        self.store = store

    def load(self, instance_id: str, application_id: str) -> Observed | None:
        """The note, or None if there is none or it cannot be read. A store that does not
        answer is an UpstreamFailure (502, upstream `store`)."""
        try:
            raw = self.store.recall(note_key(instance_id, application_id))
        except StoreUnavailable as exc:
            raise store_down(exc) from None
        if raw is None:
            return None
        observed = _parse(raw)
        if observed is None:
            log.warning(
                "rotation: the note of %s/%s cannot be read; its grace periods start again",
                instance_id,
                application_id,
            )
        return observed

    def save(
        self, instance_id: str, application_id: str, observed: Observed, grace_ms: int
    ) -> None:
        note = {
            "current": list(observed.current) if observed.current else None,
            "disabled": dict(observed.disabled),
        }
        ttl_s = NOTE_TTL_S + 4 * grace_ms // 1000
        try:
            self.store.remember(
                note_key(instance_id, application_id),
                json.dumps(note, separators=(",", ":"), sort_keys=True),
                ttl_s,
            )
        except StoreUnavailable:
            log.warning(
                "rotation: could not note what was observed of %s/%s; its grace periods start "
                "again at the next run",
                instance_id,
                application_id,
            )


def _parse(raw: str) -> Observed | None:
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    current, disabled = data.get("current"), data.get("disabled")
    if current is not None and not (
        isinstance(current, list)
        and len(current) == 2
        and isinstance(current[0], str)
        and _is_ms(current[1])
    ):
        return None
    if not isinstance(disabled, dict) or not all(
        isinstance(k, str) and _is_ms(v) for k, v in disabled.items()
    ):
        return None
    return Observed((current[0], current[1]) if current else None, dict(disabled))


def _is_ms(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
