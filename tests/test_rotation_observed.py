"""What rotation notes of an application between runs (shared.lifecycle.observed): since when
the current secret has been current and each disabled one disabled, in the idempotency store
every instance shares. Read back as written, under the application's own key, for 30 days and
four grace periods; a note that cannot be read, or a store that takes no note, restarts the
grace periods with a WARNING (a lost note delays a step, never hastens one); a store that does
not answer a read is the store's 502, and no step is planned on a guess."""

from __future__ import annotations

import json
import logging

import pytest

from shared.errors import UpstreamFailure
from shared.idempotency.memory import MemoryStore
from shared.idempotency.redis_store import RedisStore
from shared.lifecycle.observed import Observations
from shared.lifecycle.plan import MINUTE_MS, Observed

NOWHERE = "redis://127.0.0.1:9/0"  # nothing listens on the discard port
GRACE_MS = 60 * MINUTE_MS
SEEN = Observed(("sct_2", 1_800_000_000_000), {"sct_1": 1_799_999_000_000, "sct_0": 0})


class Clock:
    """The memory store's clock, in seconds, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_note_is_read_back_as_written_for_its_own_application() -> None:
    store = MemoryStore()
    notes = Observations(store)
    notes.save("idaas_a", "app_b", SEEN, GRACE_MS)
    notes.save("idaas_a", "app_c", Observed(), GRACE_MS)
    assert notes.load("idaas_a", "app_b") == SEEN
    assert notes.load("idaas_a", "app_c") == Observed()
    assert notes.load("idaas_a", "app_d") is None
    assert notes.load("idaas_b", "app_b") is None
    # The note every instance reads, whatever its version: one JSON object per application.
    assert json.loads(store.recall("rotation:idaas_a/app_b") or "") == {
        "current": ["sct_2", 1_800_000_000_000],
        "disabled": {"sct_1": 1_799_999_000_000, "sct_0": 0},
    }


@pytest.mark.parametrize("grace_minutes", [5, 60, 7 * 24 * 60])
def test_a_note_is_kept_30_days_and_four_grace_periods(grace_minutes: int) -> None:
    clock = Clock()
    notes = Observations(MemoryStore(clock))
    notes.save("idaas_a", "app_b", SEEN, grace_minutes * MINUTE_MS)
    kept_s = 30 * 24 * 3600 + 4 * grace_minutes * 60
    clock.now += kept_s - 1
    assert notes.load("idaas_a", "app_b") == SEEN
    clock.now += 1
    assert notes.load("idaas_a", "app_b") is None


@pytest.mark.parametrize(
    ("note", "seen"),
    [
        pytest.param('{"current": null, "disabled": {}}', Observed(), id="nothing-observed"),
        pytest.param(
            '{"current": ["sct_1", 0], "disabled": {"sct_0": 0}}',
            Observed(("sct_1", 0), {"sct_0": 0}),
            id="at-the-epoch",
        ),
    ],
)
def test_a_note_of_nothing_or_of_the_epoch_is_read(note: str, seen: Observed) -> None:
    store = MemoryStore()
    store.remember("rotation:idaas_a/app_b", note, 60)
    assert Observations(store).load("idaas_a", "app_b") == seen


@pytest.mark.parametrize(
    "note",
    [
        pytest.param("not json", id="not-json"),
        pytest.param("[]", id="a-list"),
        pytest.param("{}", id="empty"),
        pytest.param('{"current": null}', id="no-disabled"),
        pytest.param('{"current": null, "disabled": []}', id="disabled-a-list"),
        pytest.param('{"current": null, "disabled": {"a": -1}}', id="disabled-before-the-epoch"),
        pytest.param('{"current": null, "disabled": {"a": "5"}}', id="disabled-a-string"),
        pytest.param('{"current": null, "disabled": {"a": true}}', id="disabled-a-boolean"),
        pytest.param('{"current": null, "disabled": {"a": 1.5}}', id="disabled-a-float"),
        pytest.param('{"current": "a", "disabled": {}}', id="current-a-string"),
        pytest.param('{"current": ["a"], "disabled": {}}', id="current-one-item"),
        pytest.param('{"current": ["a", 1, 2], "disabled": {}}', id="current-three-items"),
        pytest.param('{"current": [1, 5], "disabled": {}}', id="current-id-a-number"),
        pytest.param('{"current": ["a", -1], "disabled": {}}', id="current-before-the-epoch"),
        pytest.param('{"current": ["a", false], "disabled": {}}', id="current-a-boolean"),
        pytest.param('{"current": ["a", "5"], "disabled": {}}', id="current-since-a-string"),
    ],
)
def test_a_note_that_cannot_be_read_restarts_the_grace_periods(
    note: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = MemoryStore()
    store.remember("rotation:idaas_a/app_b", note, 60)
    with caplog.at_level(logging.WARNING, logger="vend"):
        assert Observations(store).load("idaas_a", "app_b") is None
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "rotation: the note of idaas_a/app_b cannot be read; its grace periods start again",
        )
    ]


def test_a_store_that_does_not_answer_a_read_is_the_stores_502() -> None:
    notes = Observations(RedisStore(NOWHERE))
    with pytest.raises(UpstreamFailure) as info:
        notes.load("idaas_a", "app_b")
    err = info.value
    assert (err.status, err.code, err.service) == (502, "UpstreamError", "store")
    assert err.message == "the idempotency store is unavailable"
    # The audit's upstream code and calls are the store's: a refused connection, sent twice.
    assert (err.upstream_code, err.attempts) == ("ConnectionError", 2)


def test_a_note_the_store_does_not_take_is_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    notes = Observations(RedisStore(NOWHERE))
    with caplog.at_level(logging.WARNING, logger="vend"):
        notes.save("idaas_a", "app_b", SEEN, GRACE_MS)  # not raised: the run's step is taken
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "rotation: could not note what was observed of idaas_a/app_b; its grace periods "
            "start again at the next run",
        )
    ]
