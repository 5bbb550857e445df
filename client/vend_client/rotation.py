"""What `POST /v1/secrets/rotate` answers (contract section 14): the step taken (with dry_run,
the one that would be), why, and the application's secrets after it; and how `vend rotate` shows
it. Plain dataclasses, as the vend response is: no secret is in it, only IDs and times."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from .errors import api_error

STEPS = ("create", "disable", "delete", "none")


@dataclass(frozen=True)
class SecretState:
    secret_id: str
    status: str | None  # enabled, disabled, or None: a status the service does not know
    expiration_time: int | None  # ms since the epoch; None: never expires


@dataclass(frozen=True)
class RotationState:
    request_id: str | None  # the answer's X-Request-Id
    step: str  # create, disable, delete or none
    reason: str
    current_secret_id: str | None
    secrets: tuple[SecretState, ...]
    next_step_at: int | None  # ms since the epoch; None: not without an operator
    secrets_before: tuple[SecretState, ...] = ()  # what the step was planned on

    @classmethod
    def from_dict(cls, data: Any, *, request_id: str | None = None) -> RotationState:
        """Raises VendApiError (`BadResponse`) for a body that is not a rotation's answer."""
        try:
            if not isinstance(data, dict) or data.get("step") not in STEPS:
                raise ValueError
            raw = data.get("secrets")
            if not isinstance(raw, list) or not isinstance(data.get("reason"), str):
                raise ValueError
            secrets = tuple(_secret(item) for item in raw)
            before = data.get("secrets_before", [])
            if not isinstance(before, list):
                raise ValueError
            return cls(
                request_id=request_id,
                step=data["step"],
                reason=data["reason"],
                current_secret_id=_optional(data.get("current_secret_id"), str),
                secrets=secrets,
                next_step_at=_optional(data.get("next_step_at"), int),
                secrets_before=tuple(_secret(item) for item in before),
            )
        except ValueError:
            raise api_error(
                200, "BadResponse", "the answer is not a rotation's", request_id
            ) from None

    def to_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "secrets": [asdict(s) for s in self.secrets],
            "secrets_before": [asdict(s) for s in self.secrets_before],
        }


def _secret(item: Any) -> SecretState:
    if not isinstance(item, dict) or not isinstance(item.get("secret_id"), str):
        raise ValueError
    return SecretState(
        item["secret_id"],
        _optional(item.get("status"), str),
        _optional(item.get("expiration_time"), int),
    )


def _optional(value: Any, kind: type) -> Any:
    if value is None or (isinstance(value, kind) and not isinstance(value, bool)):
        return value
    raise ValueError


def describe(state: RotationState, *, instance_id: str, application_id: str, now_ms: int) -> str:
    """The state as `vend rotate` prints it: each secret (the current one marked), then the
    step and when it is due. Times in UTC, with how far from `now_ms` they are."""
    lines = [f"application {instance_id}/{application_id}"]
    width = max((len(s.secret_id) for s in state.secrets), default=0)
    for secret in state.secrets:
        mark = "  current" if secret.secret_id == state.current_secret_id else ""
        lines.append(
            f"  {secret.secret_id:<{width}}  {secret.status or 'unknown':8s}  expires "
            f"{at(secret.expiration_time, now_ms)}{mark}"
        )
    if not state.secrets:
        lines.append("  (no secret)")
    return "\n".join(lines)


def describe_step(state: RotationState, *, now_ms: int, taken: bool) -> str:
    if state.step != "none":
        verb = "step taken" if taken else "next step"
        due = "" if taken else ", due now"
        return f"{verb}: {state.step}{due}\n  why: {state.reason}"
    when = (
        f"the next may come due {at(state.next_step_at, now_ms)}"
        if state.next_step_at is not None
        else "none will come due without an operator"
    )
    return f"{'step taken' if taken else 'next step'}: none; {when}\n  why: {state.reason}"


def at(ms: int | None, now_ms: int) -> str:
    """`2027-01-04T10:00:00Z (in 3 d 4 h)`, `... (5 min ago)`, or `never`."""
    if ms is None:
        return "never"
    moment = datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{moment} ({_span(ms - now_ms)})"


def _span(delta_ms: int) -> str:
    seconds = abs(delta_ms) // 1000
    if seconds < 60:
        return "now"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    parts = [f"{days} d"] if days else []
    if hours and len(parts) < 2:
        parts.append(f"{hours} h")
    if minutes and not days and len(parts) < 2:
        parts.append(f"{minutes} min")
    text = " ".join(parts)
    return f"in {text}" if delta_ms > 0 else f"{text} ago"
