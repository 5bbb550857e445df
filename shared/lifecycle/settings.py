"""`VEND_ROTATION` (contract sections 10 and 14): the applications that rotation may step, each
with the lifetime of its secrets and its grace period. Read and checked at start; a bad value
stops the service with a message naming the variable and the entry.

    [{"instance_id": "idaas_abc", "application_id": "app_billing",
      "lifetime_days": 90, "grace_minutes": 60}, ...]

- `lifetime_days`: how long each new secret lives (its ExpirationTime is that far after its
  creation). Default 90; at least 2 (EIAM refuses an ExpirationTime under a day from its own
  clock: a day and a request's travel would be refused) and at most 1095 (EIAM's 3 years).
- `grace_minutes`: how long a secret stays enabled after its successor became current, and
  disabled before it is deleted. Default 60; at least 5, the callers' cache lifetime
  (`CachingClient`'s default ttl, 300 s: a caller holding the old secret refreshes within it),
  at most 10080 (a week).
- Together: the lifetime is at least 8 grace periods, so that between one create and the next
  there is room for the disable and the delete (each a grace period after the step before) and
  for the runs' own spacing (shared.lifecycle.plan.Policy).
- An application appears once; IDs as the API's (1 to 64 of A-Z a-z 0-9 _ -); no other key.
Unset or empty: no application is rotated (rotate answers 400 for every one)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from shared.lifecycle.plan import DAY_MS, MINUTE_MS, Policy
from shared.models import Id

DEFAULT_LIFETIME_DAYS = 90
DEFAULT_GRACE_MINUTES = 60
MIN_LIFETIME_DAYS = 2
MAX_LIFETIME_DAYS = 3 * 365
MIN_GRACE_MINUTES = 5  # CachingClient's default ttl
MAX_GRACE_MINUTES = 7 * 24 * 60
GRACES_PER_LIFETIME = 8
MAX_ENTRIES = 100_000


class RotationEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_id: Id
    application_id: Id
    lifetime_days: Annotated[StrictInt, Field(ge=MIN_LIFETIME_DAYS, le=MAX_LIFETIME_DAYS)] = (
        DEFAULT_LIFETIME_DAYS
    )
    grace_minutes: Annotated[StrictInt, Field(ge=MIN_GRACE_MINUTES, le=MAX_GRACE_MINUTES)] = (
        DEFAULT_GRACE_MINUTES
    )

    @property
    def policy(self) -> Policy:
        return Policy(
            lifetime_ms=self.lifetime_days * DAY_MS, grace_ms=self.grace_minutes * MINUTE_MS
        )


Rotations = Mapping[tuple[str, str], RotationEntry]


class RotationSettingsError(ValueError):
    """What is wrong with VEND_ROTATION; the message names the entry, never echoes it whole."""


def parse_rotation(raw: str | None) -> dict[tuple[str, str], RotationEntry]:
    """The applications of VEND_ROTATION by (instance_id, application_id), in its order."""
    if raw is None or not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise RotationSettingsError("not JSON") from None
    if not isinstance(data, list):
        raise RotationSettingsError("must be a JSON list of applications")
    if len(data) > MAX_ENTRIES:
        raise RotationSettingsError(f"lists more than {MAX_ENTRIES} applications")
    entries: dict[tuple[str, str], RotationEntry] = {}
    for index, item in enumerate(data):
        entry = _entry(index, item)
        key = (entry.instance_id, entry.application_id)
        if key in entries:
            raise RotationSettingsError(
                f"entry {index}: {entry.instance_id}/{entry.application_id} is listed twice"
            )
        entries[key] = entry
    return entries


def _entry(index: int, item: object) -> RotationEntry:
    try:
        entry = RotationEntry.model_validate(item)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "entry"
        detail = {
            "extra_forbidden": "is not a known key",
            "missing": "is required",
        }.get(first["type"], _bounds(where))
        raise RotationSettingsError(f"entry {index}: {where[:64]} {detail}") from None
    if entry.lifetime_days * 24 * 60 < GRACES_PER_LIFETIME * entry.grace_minutes:
        raise RotationSettingsError(
            f"entry {index}: lifetime_days must be at least {GRACES_PER_LIFETIME} grace periods "
            f"({entry.lifetime_days} d < {GRACES_PER_LIFETIME} x {entry.grace_minutes} min)"
        )
    return entry


def _bounds(field: str) -> str:
    if field == "lifetime_days":
        return f"must be a whole number of days, {MIN_LIFETIME_DAYS} to {MAX_LIFETIME_DAYS}"
    if field == "grace_minutes":
        return f"must be a whole number of minutes, {MIN_GRACE_MINUTES} to {MAX_GRACE_MINUTES}"
    if field in ("instance_id", "application_id"):
        return "must be 1 to 64 characters of A-Z a-z 0-9 _ -"
    return "must be an object of instance_id, application_id, lifetime_days, grace_minutes"
