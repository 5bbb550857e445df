"""The rule of "current" (contract section 14), one row per case: the enabled secret with the
latest ExpirationTime, one without an expiration below any with one, ties to the smaller ID."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from shared.lifecycle.current import current_of


@dataclass(frozen=True)
class Row:
    secret_id: str
    status: str | None
    expiration_time: int | None


def _secrets(spec: str) -> list[Row]:
    """`"a:enabled:200 b:disabled:-"`: ID, status (None: none), expiration (ms, or -: none)."""
    rows = []
    for item in spec.split():
        secret_id, status, expires = item.split(":")
        rows.append(
            Row(
                secret_id,
                None if status == "None" else status,
                None if expires == "-" else int(expires),
            )
        )
    return rows


@pytest.mark.parametrize(
    ("secrets", "current"),
    [
        ("", None),
        ("a:enabled:-", "a"),
        ("a:disabled:300", None),
        ("a:enabled:100 b:enabled:200", "b"),
        ("b:enabled:200 a:enabled:100", "b"),
        ("a:enabled:- b:enabled:1", "b"),
        ("b:enabled:1 a:enabled:-", "b"),
        ("a:enabled:100 b:disabled:900", "a"),
        ("a:disabled:100 b:disabled:900", None),
        ("b:enabled:500 a:enabled:500", "a"),
        ("a:enabled:500 b:enabled:500", "a"),
        ("b:enabled:- a:enabled:-", "a"),
        ("sct_10:enabled:- sct_9:enabled:-", "sct_10"),  # the smaller string, not number
        ("a:Enabled:900 b:enabled:1", "b"),  # EIAM's status is "enabled", exactly
        ("a:None:900 b:enabled:1", "b"),
        ("c:enabled:- b:disabled:999 a:enabled:7", "a"),
    ],
)
def test_the_current_secret(secrets: str, current: str | None) -> None:
    rows = _secrets(secrets)
    chosen = current_of(rows)
    assert (chosen.secret_id if chosen else None) == current
    # The order the listing comes in never changes the answer.
    again = current_of(list(reversed(rows)))
    assert (again.secret_id if again else None) == current


def test_the_same_object_comes_back() -> None:
    rows = _secrets("a:enabled:1 b:enabled:2")
    assert current_of(iter(rows)) is rows[1]
