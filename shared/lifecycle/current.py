"""Which of an application's client secrets is current (contract section 14): the one rule, in
one place, for `POST /v1/secrets/current` and for rotation alike.

The current secret is the enabled secret with the latest `ExpirationTime`; a secret without one
ranks below any with one; ties go to the smaller `secret_id`. EIAM's listing has no creation
time, so the expiration is what orders secrets: rotation gives each new secret a later one."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

__all__ = ["ENABLED", "Listed", "current_of"]

ENABLED = "enabled"


class Listed(Protocol):
    """What the rule reads of a secret (a row of ListApplicationClientSecrets)."""

    @property
    def secret_id(self) -> str: ...

    @property
    def status(self) -> str | None: ...

    @property
    def expiration_time(self) -> int | None: ...


S = TypeVar("S", bound=Listed)


def current_of(secrets: Iterable[S]) -> S | None:
    """The current secret among `secrets`, or None when none is enabled."""
    return min((s for s in secrets if s.status == ENABLED), key=_rank, default=None)


def _rank(secret: Listed) -> tuple[bool, int, str]:
    """Smallest first: an expiration before none, the latest expiration before an earlier one,
    then the smaller ID."""
    expires = secret.expiration_time
    return (expires is None, -(expires or 0), secret.secret_id)
