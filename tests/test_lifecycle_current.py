"""The rule of which secret is current (contract section 14), as shared.lifecycle.current has
it: the enabled secret with the latest ExpirationTime, one without an expiration below any with
one, ties to the smaller secret_id."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.lifecycle.current import Secret, current_of, ranked


def _s(secret_id: str, status: str | None = "enabled", exp: int | None = None) -> Secret:
    return Secret(secret_id, status, exp)


@pytest.mark.parametrize(
    ("secrets", "current"),
    [
        pytest.param([], None, id="none"),
        pytest.param([_s("a", "disabled", 9)], None, id="only-disabled"),
        pytest.param([_s("a", None, 9)], None, id="unknown-status-is-not-enabled"),
        pytest.param([_s("a")], "a", id="one-without-expiration"),
        pytest.param([_s("a", exp=5), _s("b", exp=9)], "b", id="latest-expiration"),
        pytest.param([_s("b", exp=9), _s("a", exp=5)], "b", id="order-does-not-matter"),
        pytest.param([_s("a"), _s("b", exp=1)], "b", id="an-expiration-beats-none"),
        pytest.param([_s("b", exp=7), _s("a", exp=7)], "a", id="tie-smaller-id"),
        pytest.param([_s("b"), _s("a")], "a", id="tie-without-expiration"),
        pytest.param([_s("a", exp=5), _s("b", "disabled", 9)], "a", id="disabled-never-current"),
        pytest.param([_s("B", exp=1), _s("a", exp=1)], "B", id="code-point-order"),
        pytest.param([_s("a", exp=0), _s("b", exp=1)], "b", id="later-than-the-epoch"),
    ],
)
def test_the_current_secret(secrets: list[Secret], current: str | None) -> None:
    found = current_of(secrets)
    assert (found.secret_id if found else None) == current


SECRETS = st.lists(
    st.builds(
        Secret,
        st.text("abcXY_-1", min_size=1, max_size=4),
        st.sampled_from(["enabled", "disabled", None]),
        st.one_of(st.none(), st.integers(0, 10)),
    ),
    max_size=5,
    unique_by=lambda s: s.secret_id,
)


@given(SECRETS)
def test_current_is_enabled_and_ranks_first(secrets: list[Secret]) -> None:
    current = current_of(secrets)
    enabled = [s for s in secrets if s.status == "enabled"]
    assert (current is None) == (not enabled)
    if current is None:
        return
    assert current.enabled
    assert ranked(secrets)[0] == current
    for other in enabled:
        if other.expiration_time is not None:
            assert current.expiration_time is not None
            assert current.expiration_time >= other.expiration_time
        if other.expiration_time == current.expiration_time:
            assert current.secret_id <= other.secret_id
    assert current_of(list(reversed(secrets))) == current
