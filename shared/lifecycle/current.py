"""The one rule of which client secret is current (contract section 14), for every caller of it:
`POST /v1/secrets/current`, rotation's planner, and anything that shows the state."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Secret:
    """A client secret as EIAM's listing shows it: no value, no creation time. `status` is
    EIAM's word ("enabled", "disabled"), or None when it gave none that we know."""

    secret_id: str
    status: str | None
    expiration_time: int | None  # ms since the epoch; None: it never expires

    @property
    def enabled(self) -> bool:
        return self.status == "enabled"


def _rank(secret: Secret) -> tuple[bool, int, str]:
    # Smallest first: one with an expiration before one without, the latest expiration first,
    # and on a tie the smaller secret_id. Python compares str by code point, as the contract's
    # "smaller" means it: the same answer on every instance whatever its locale.
    expiration = secret.expiration_time
    return (expiration is None, -(expiration or 0), secret.secret_id)


def current_of(secrets: Iterable[Secret]) -> Secret | None:
    """The current secret: the enabled secret with the latest ExpirationTime; one without an
    expiration ranks below any with one; ties go to the smaller secret_id. None when no secret
    is enabled."""
    enabled = [s for s in secrets if s.enabled]
    return min(enabled, key=_rank) if enabled else None


def ranked(secrets: Iterable[Secret]) -> list[Secret]:
    """The enabled secrets, the current one first, then each in the order it would be current
    if those before it were gone."""
    return sorted((s for s in secrets if s.enabled), key=_rank)
