"""The idempotency store (contract section 8): one behavioural suite, run against the memory
store and against a real redis-server; then the record, `open_store`, and an unreachable Redis."""

from __future__ import annotations

import hashlib
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from processes import free_port
from pydantic import ValidationError
from redis_server import PersistentRedis, RedisServer, redis_binary

from shared.idempotency import (
    DEFAULT_TTL_S,
    IdempotencyRecord,
    IdempotencyStore,
    StoreUnavailable,
    open_store,
)
from shared.idempotency.memory import MemoryStore, process_memory_store
from shared.idempotency.redis_store import KEY_PREFIX, NOTE_PREFIX, RedisStore

pytest_plugins = ["redis_server"]  # the fixture `redis_url`: the session's own redis-server


HASH = hashlib.sha256(b"create idaas_demo app_demo").hexdigest()
OTHER_HASH = hashlib.sha256(b"create idaas_demo app_other").hexdigest()
NOW_MS = 1_767_225_600_000


def rec(token: str = "tok-1", **fields: Any) -> IdempotencyRecord:
    values: dict[str, Any] = {
        "status": "in_progress",
        "request_hash": HASH,
        "token": token,
        "lapse_at_ms": NOW_MS + 30_000,
        "created_at_ms": NOW_MS,
    }
    values.update(fields)
    return IdempotencyRecord(**values)


def created(token: str = "tok-1", secret_id: str = "sec_new", **fields: Any) -> IdempotencyRecord:
    return rec(token, status="created", secret_id=secret_id, **fields)


class FakeClock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def admin(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest, clock: FakeClock) -> Iterator[IdempotencyStore]:
    """A fresh, empty store of each backend."""
    if request.param == "memory":
        yield MemoryStore(clock)
        return
    admin: redis.Redis = request.getfixturevalue("admin")
    admin.flushdb()
    redis_store = RedisStore(request.getfixturevalue("redis_url"))
    yield redis_store
    redis_store.close()


Elapse = Callable[[str, float], None]


@pytest.fixture
def elapse(store: IdempotencyStore, clock: FakeClock, request: pytest.FixtureRequest) -> Elapse:
    """`elapse(key, seconds)`: let that much of the record's lifetime pass. Memory: the clock
    moves. Redis: the key's TTL, which must be set, is shortened by as much (gone at zero)."""
    if isinstance(store, MemoryStore):

        def advance(key: str, seconds: float) -> None:
            clock.now += seconds

        return advance
    admin: redis.Redis = request.getfixturevalue("admin")

    def shorten(key: str, seconds: float) -> None:
        pttl = admin.pttl(KEY_PREFIX + key)
        if pttl == -2:
            return  # absent stays absent
        assert pttl > 0, f"{key} has no TTL"
        left = pttl - int(seconds * 1000)
        if left > 0:
            admin.pexpire(KEY_PREFIX + key, left)
        else:
            admin.delete(KEY_PREFIX + key)

    return shorten


def race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """`work(i)` in n threads released at once, with a tiny switch interval to provoke races."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work(i)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    finally:
        sys.setswitchinterval(interval)
    assert not any(t.is_alive() for t in threads)
    return results


# --- put_if_absent and get ---------------------------------------------------------------


def test_put_if_absent_stores_when_absent(store: IdempotencyStore) -> None:
    assert store.get("k") is None
    assert store.put_if_absent("k", rec()) is None
    assert store.get("k") == rec()


def test_put_if_absent_returns_the_existing_record_and_keeps_it(store: IdempotencyStore) -> None:
    first = rec("tok-1")
    assert store.put_if_absent("k", first) is None
    existing = store.put_if_absent("k", rec("tok-2", request_hash=OTHER_HASH))
    assert existing == first
    assert store.get("k") == first


def test_put_of_the_stored_record_again_counts_as_stored(store: IdempotencyStore) -> None:
    # a put retried after a lost answer finds its own record: stored, not a conflict
    assert store.put_if_absent("k", rec("tok-1")) is None
    assert store.put_if_absent("k", rec("tok-1")) is None
    assert store.put_if_absent("k", rec("tok-1", lapse_at_ms=NOW_MS + 1)) == rec("tok-1")


def test_keys_are_separate(store: IdempotencyStore) -> None:
    assert store.put_if_absent("principal-a:key-1", rec("a")) is None
    assert store.get("principal-b:key-1") is None
    assert store.put_if_absent("principal-b:key-1", rec("b")) is None
    assert store.get("principal-a:key-1") == rec("a")
    assert store.get("principal-b:key-1") == rec("b")


# --- replace_if_token -----------------------------------------------------------------------


def test_replace_with_the_owners_token(store: IdempotencyStore) -> None:
    store.put_if_absent("k", rec("tok-1"))
    assert store.replace_if_token("k", "tok-1", created("tok-1")) is True
    assert store.get("k") == created("tok-1")
    # ownership can move to another token (an attempt taking over a lapsed mark)
    assert store.replace_if_token("k", "tok-1", rec("tok-2")) is True
    assert store.get("k") == rec("tok-2")


def test_replace_with_another_token_changes_nothing(store: IdempotencyStore) -> None:
    store.put_if_absent("k", rec("tok-1"))
    assert store.replace_if_token("k", "tok-2", created("tok-2")) is False
    assert store.replace_if_token("k", "", created("tok-2")) is False
    assert store.get("k") == rec("tok-1")


def test_replace_of_an_absent_record_creates_nothing(store: IdempotencyStore) -> None:
    assert store.replace_if_token("k", "tok-1", created("tok-1")) is False
    assert store.get("k") is None


def test_replace_retried_after_success_is_true(store: IdempotencyStore) -> None:
    store.put_if_absent("k", rec("tok-1"))
    assert store.replace_if_token("k", "tok-1", rec("tok-2")) is True
    assert store.replace_if_token("k", "tok-1", rec("tok-2")) is True  # the same replacement
    assert store.replace_if_token("k", "tok-1", rec("tok-3")) is False  # not the same: refused
    assert store.get("k") == rec("tok-2")


# --- delete_if_token ------------------------------------------------------------------------


def test_delete_with_the_owners_token(store: IdempotencyStore) -> None:
    store.put_if_absent("k", rec("tok-1"))
    assert store.delete_if_token("k", "tok-1") is True
    assert store.get("k") is None
    assert store.delete_if_token("k", "tok-1") is False
    assert store.put_if_absent("k", rec("tok-2")) is None  # the key is free again


def test_delete_with_another_token_keeps_the_record(store: IdempotencyStore) -> None:
    store.put_if_absent("k", rec("tok-1"))
    assert store.delete_if_token("k", "tok-2") is False
    assert store.get("k") == rec("tok-1")
    assert store.delete_if_token("absent", "tok-1") is False


# --- lifetime -------------------------------------------------------------------------------


def test_a_record_is_absent_once_its_lifetime_is_over(
    store: IdempotencyStore, elapse: Elapse
) -> None:
    assert store.put_if_absent("k", rec("tok-1"), ttl_s=100) is None
    elapse("k", 99)
    assert store.get("k") == rec("tok-1")
    elapse("k", 1.5)
    assert store.get("k") is None
    assert store.replace_if_token("k", "tok-1", created("tok-1")) is False
    assert store.delete_if_token("k", "tok-1") is False
    assert store.put_if_absent("k", rec("tok-2"), ttl_s=100) is None
    assert store.get("k") == rec("tok-2")


def test_the_default_lifetime_is_24_hours(store: IdempotencyStore, elapse: Elapse) -> None:
    assert DEFAULT_TTL_S == 24 * 3600
    store.put_if_absent("k", rec())
    elapse("k", DEFAULT_TTL_S - 1)
    assert store.get("k") == rec()
    elapse("k", 1.5)
    assert store.get("k") is None


def test_replace_restarts_the_lifetime(store: IdempotencyStore, elapse: Elapse) -> None:
    store.put_if_absent("k", rec("tok-1"), ttl_s=100)
    elapse("k", 90)
    assert store.replace_if_token("k", "tok-1", created("tok-1"), ttl_s=100)
    elapse("k", 99)
    assert store.get("k") == created("tok-1")
    elapse("k", 1.5)
    assert store.get("k") is None


def test_failed_put_and_replace_leave_the_lifetime_alone(
    store: IdempotencyStore, elapse: Elapse
) -> None:
    store.put_if_absent("k", rec("tok-1"), ttl_s=100)
    elapse("k", 90)
    assert store.put_if_absent("k", rec("tok-2"), ttl_s=100) == rec("tok-1")
    assert store.put_if_absent("k", rec("tok-1"), ttl_s=100) is None  # own record: not rewritten
    assert store.replace_if_token("k", "tok-2", rec("tok-2"), ttl_s=100) is False
    elapse("k", 9)
    assert store.get("k") == rec("tok-1")
    elapse("k", 1.5)
    assert store.get("k") is None


@pytest.mark.parametrize("ttl_s", [0, -1, 1.5, True])
def test_a_lifetime_under_one_second_or_not_whole_is_refused(
    store: IdempotencyStore, ttl_s: Any
) -> None:
    with pytest.raises(ValueError, match="ttl_s"):
        store.put_if_absent("k", rec(), ttl_s=ttl_s)
    assert store.get("k") is None
    store.put_if_absent("k", rec())
    with pytest.raises(ValueError, match="ttl_s"):
        store.replace_if_token("k", "tok-1", created(), ttl_s=ttl_s)
    assert store.get("k") == rec()


# --- concurrency ----------------------------------------------------------------------------


ROUNDS = 40  # keys raced in turn, for more chances to catch a race


def test_racing_puts_store_exactly_one(store: IdempotencyStore) -> None:
    results = race(
        16, lambda i: [store.put_if_absent(f"k{j}", rec(f"tok-{i}")) for j in range(ROUNDS)]
    )
    for j in range(ROUNDS):
        got = [results[i][j] for i in range(16)]
        winners = [i for i, r in enumerate(got) if r is None]
        assert len(winners) == 1, (j, got)
        winner = rec(f"tok-{winners[0]}")
        assert all(r == winner for r in got if r is not None)
        assert store.get(f"k{j}") == winner


def test_racing_replaces_with_one_token_succeed_exactly_once(store: IdempotencyStore) -> None:
    for j in range(ROUNDS):
        store.put_if_absent(f"k{j}", rec("tok-0"))
    results = race(
        16,
        lambda i: [
            store.replace_if_token(f"k{j}", "tok-0", rec(f"tok-{i + 1}")) for j in range(ROUNDS)
        ],
    )
    for j in range(ROUNDS):
        got = [results[i][j] for i in range(16)]
        assert got.count(True) == 1, (j, got)
        assert store.get(f"k{j}") == rec(f"tok-{got.index(True) + 1}")


def test_racing_deletes_succeed_exactly_once(store: IdempotencyStore) -> None:
    for j in range(ROUNDS):
        store.put_if_absent(f"k{j}", rec("tok-0"))
    results = race(16, lambda i: [store.delete_if_token(f"k{j}", "tok-0") for j in range(ROUNDS)])
    for j in range(ROUNDS):
        got = [results[i][j] for i in range(16)]
        assert got.count(True) == 1, (j, got)
        assert store.get(f"k{j}") is None


# --- records round-trip -----------------------------------------------------------------------

ROUND_TRIP = [
    rec("tok-a"),
    rec("tok-b", before_secret_ids=()),
    rec("tok-c", before_secret_ids=("sec_1", "sec_2", 'sec_ü"\\')),
    created("tok-d", secret_id="sec_9", before_secret_ids=("sec_1",), lapse_at_ms=0),
    created("tok-e", secret_id="sec_9", before_secret_ids=None, created_at_ms=2**53 + 1),
]


@pytest.mark.parametrize("record", ROUND_TRIP, ids=lambda r: r.token)
def test_records_round_trip_exactly(store: IdempotencyStore, record: IdempotencyRecord) -> None:
    assert store.put_if_absent("k", record) is None
    got = store.get("k")
    assert got == record
    assert got is not None and got.model_dump() == record.model_dump()
    assert type(got.before_secret_ids) is type(record.before_secret_ids)
    assert store.put_if_absent("k", rec("other")) == record
    assert store.replace_if_token("k", record.token, record.model_copy(update={"token": "t2"}))
    assert store.get("k") == record.model_copy(update={"token": "t2"})


# --- the Redis layout -------------------------------------------------------------------------


def test_redis_keeps_the_record_json_under_the_prefix(redis_url: str, admin: redis.Redis) -> None:
    admin.flushdb()
    store = RedisStore(redis_url)
    try:
        store.put_if_absent("p:k", created("tok-1"), ttl_s=1234)
        assert admin.keys("*") == [KEY_PREFIX + "p:k"]
        assert admin.get(KEY_PREFIX + "p:k") == created("tok-1").to_json()
        assert 1230 <= admin.ttl(KEY_PREFIX + "p:k") <= 1234
        store.replace_if_token("p:k", "tok-1", created("tok-2"), ttl_s=4321)
        assert 4317 <= admin.ttl(KEY_PREFIX + "p:k") <= 4321
    finally:
        store.close()


def test_redis_value_that_is_no_record(redis_url: str, admin: redis.Redis) -> None:
    admin.flushdb()
    store = RedisStore(redis_url)
    try:
        for junk in ("not json", "[1, 2]", '{"token": 7}'):
            admin.set(KEY_PREFIX + "k", junk)
            assert store.replace_if_token("k", "7", rec()) is False
            assert store.delete_if_token("k", "7") is False
            assert admin.get(KEY_PREFIX + "k") == junk
            with pytest.raises(ValueError, match="validation error"):
                store.get("k")
    finally:
        store.close()


def test_a_ping_waits_its_timeout_once_and_sends_nothing_again() -> None:
    """`/v1/ready`'s PING: a Redis that does not answer within the timeout is down for this
    probe, even if it answers a moment later (nothing is sent again)."""
    server = PersistentRedis(redis_binary())
    store = RedisStore(server.url)
    try:
        server.start()
        assert store.ping(0.5) is True
        resumed = server.freeze(0.8)  # answers again after the timeout, before a second one
        assert store.ping(0.5) is False
        resumed.join()
        assert store.ping(0.5) is True
    finally:
        store.close()
        server.stop()


def test_any_maxmemory_under_an_evicting_policy_is_a_risk() -> None:
    """Even one byte: at maxmemory Redis evicts under any policy but noeviction."""
    settings = ("--maxmemory", "1", "--maxmemory-policy", "allkeys-lru")
    with RedisServer(redis_binary(), *settings) as server:
        store = RedisStore(server.url)
        try:
            risks = store.risks(1.0, persistence=False)
        finally:
            store.close()
    assert risks[0] == "eviction: maxmemory-policy is allkeys-lru, not noeviction"


def test_a_redis_that_does_not_answer_the_risk_check_in_time_cannot_be_judged() -> None:
    """`vend doctor` asks for the risks first thing: its probe waits `timeout_s`, no longer."""
    server = PersistentRedis(redis_binary())
    store = RedisStore(server.url)
    try:
        server.start()
        resumed = server.freeze(2)
        assert store.risks(0.2) == ["unreadable: TimeoutError"]
        resumed.join()
        assert store.risks(0.2) == []  # it persists (AOF) and does not evict
    finally:
        store.close()
        server.stop()


# --- the record -------------------------------------------------------------------------------


def test_record_json_is_compact_and_complete() -> None:
    record = rec(before_secret_ids=("a", "b"))
    text = record.to_json()
    assert ", " not in text and ": " not in text
    assert text.startswith('{"status":"in_progress","request_hash":"')
    assert '"before_secret_ids":["a","b"],"secret_id":null' in text
    assert IdempotencyRecord.from_json(text) == record
    assert IdempotencyRecord.from_json(text.encode()) == record


@pytest.mark.parametrize(
    "change",
    [
        {"extra": 1},
        {"status": "done"},
        {"request_hash": "abc"},
        {"request_hash": HASH.upper()},
        {"token": ""},
        {"lapse_at_ms": -1},
        {"lapse_at_ms": "1"},
        {"created_at_ms": 1.5},
        {"before_secret_ids": "sec_1"},
        {"secret_id": "sec_1"},  # in progress, yet a secret
        {"status": "created"},  # created, yet no secret
    ],
    ids=str,
)
def test_record_refuses_what_it_cannot_be(change: dict[str, Any]) -> None:
    values = rec().model_dump() | change
    with pytest.raises(ValidationError):
        IdempotencyRecord(**values)
    with pytest.raises(ValidationError):
        IdempotencyRecord.from_json(json.dumps(values))


def test_record_is_frozen() -> None:
    with pytest.raises(ValidationError):
        rec().token = "other"  # type: ignore[misc]


# --- the memory store's own bounds -------------------------------------------------------------


def test_a_full_memory_store_refuses_a_new_key_and_never_drops_a_record(clock: FakeClock) -> None:
    """Full, it refuses a new key as Redis under `noeviction` refuses a write, and keeps what
    it holds; a key it holds may still be replaced; a record whose lifetime is over (to the
    instant) makes room."""
    store = MemoryStore(clock, max_records=2)
    store.put_if_absent("a", rec("a"), ttl_s=10)
    store.put_if_absent("b", rec("b"), ttl_s=20)
    with pytest.raises(StoreUnavailable) as full:
        store.put_if_absent("c", rec("c"), ttl_s=10)
    assert (str(full.value), full.value.code, full.value.attempts) == (
        "idempotency store memory:// is full (2 records)",
        "StoreFull",
        1,  # the audit's `attempts`: a refused write is not sent again
    )
    assert (store.get("a"), store.get("b"), store.get("c"), len(store)) == (
        rec("a"),
        rec("b"),
        None,
        2,
    )
    assert store.replace_if_token("a", "a", created("a"), ttl_s=10)
    clock.now += 10  # a's lifetime is over at this very instant
    assert len(store) == 1
    assert store.put_if_absent("c", rec("c")) is None
    assert (store.get("a"), store.get("c")) == (None, rec("c"))


def test_the_memory_store_counts_only_live_records(clock: FakeClock) -> None:
    store = MemoryStore(clock)
    store.put_if_absent("a", rec("a"), ttl_s=10)
    store.put_if_absent("b", rec("b"), ttl_s=11)
    assert len(store) == 2
    clock.now += 10
    assert (len(store), store.get("a"), store.get("b")) == (1, None, rec("b"))


def test_the_memory_store_keeps_working_past_its_periodic_sweep(clock: FakeClock) -> None:
    """Every 1024 writes it drops expired records; what is live stays, however many writes."""
    store = MemoryStore(clock)
    store.put_if_absent("old", rec("old"), ttl_s=1)
    store.put_if_absent("kept", rec("kept"), ttl_s=100)
    clock.now += 1
    for i in range(1100):
        store.put_if_absent(f"k{i}", rec(f"k{i}"), ttl_s=50)
    assert (store.get("old"), store.get("kept"), len(store)) == (None, rec("kept"), 1101)


def test_the_memory_store_always_answers_a_ping() -> None:
    assert MemoryStore().ping(0.1) is True


def test_a_memory_note_is_recalled_until_its_lifetime_is_over(clock: FakeClock) -> None:
    store = MemoryStore(clock)
    store.remember("proof", "acs:ram::1:user/billing", ttl_s=10)
    assert (store.recall("proof"), store.recall("other")) == ("acs:ram::1:user/billing", None)
    clock.now += 10
    assert store.recall("proof") is None
    with pytest.raises(ValueError, match="at least 1"):
        store.remember("proof", "x", ttl_s=0)


def test_a_redis_note_is_recalled_until_its_lifetime_is_over(
    redis_url: str, admin: redis.Redis
) -> None:
    """What a RAM proof proved, as every instance reads it: under its own prefix, apart from
    the records, with the lifetime asked for."""
    admin.flushdb()
    store = RedisStore(redis_url)
    try:
        store.remember("proof", "acs:ram::1:user/billing", ttl_s=10)
        assert (store.recall("proof"), store.recall("other")) == ("acs:ram::1:user/billing", None)
        assert admin.keys("*") == [NOTE_PREFIX + "proof"]
        assert 8 <= admin.ttl(NOTE_PREFIX + "proof") <= 10
        assert store.get("proof") is None  # a note is no record
        with pytest.raises(ValueError, match="at least 1"):
            store.remember("proof", "x", ttl_s=0)
    finally:
        store.close()


def test_many_memory_notes_are_kept_while_they_live(clock: FakeClock) -> None:
    """Past 10,000 notes the expired ones are dropped; the live ones are still recalled."""
    store = MemoryStore(clock)
    for i in range(10_001):
        store.remember(f"n{i}", f"v{i}", ttl_s=1 if i % 2 else 100)
    clock.now += 1
    store.remember("last", "v", ttl_s=100)
    assert (store.recall("n0"), store.recall("n1"), store.recall("last")) == ("v0", None, "v")


# --- open_store -------------------------------------------------------------------------------


def test_memory_url_opens_the_process_memory_store() -> None:
    first = open_store("memory://")
    assert first is open_store("memory://") is process_memory_store()
    assert isinstance(first, MemoryStore)
    assert isinstance(first, IdempotencyStore)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://localhost",
        "redis://:s3cretpw@r-bp1.redis.rds.aliyuncs.com:6379/3",
        "redis://user:s3cretpw@[::1]:6380/1",
        "rediss://:s3cretpw@r-bp1.redis.rds.aliyuncs.com:6380/0",
        "redis://host:6379?db=2",
    ],
)
def test_redis_urls_open_a_redis_store_without_connecting(url: str) -> None:
    store = open_store(url)
    try:
        assert isinstance(store, RedisStore)
        assert isinstance(store, IdempotencyStore)
        assert "s3cretpw" not in repr(store)
        assert repr(store).startswith("RedisStore(redis")
    finally:
        store.close()  # type: ignore[attr-defined]


_NOT_A_STORE = (
    "idempotency store URL must be memory:// or redis://host:port/db (rediss:// for TLS); got "
)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("mysql://u:s3cretpw@db:3306/x", _NOT_A_STORE + "scheme 'mysql'"),
        ("mysql://db/x?then=redis://h", _NOT_A_STORE + "scheme 'mysql'"),  # the first scheme
        ("", _NOT_A_STORE + "no scheme"),
        ("garbage", _NOT_A_STORE + "no scheme"),
        ("memory:", _NOT_A_STORE + "no scheme"),
        ("memory:///", _NOT_A_STORE + "scheme 'memory'"),
        ("unix:///run/redis.sock", _NOT_A_STORE + "scheme 'unix'"),
        ("REDIS://h:1/0", _NOT_A_STORE + "scheme 'REDIS'"),
        ("redis://", "idempotency store URL: no host (redis://host:port/db)"),
        ("redis://:s3cretpw@h:notaport/0", "idempotency store URL: the port is not a number"),
        (
            "redis://:s3cretpw@h:6379/zero",
            "idempotency store URL: the database is not a number (redis://host:port/db)",
        ),
    ],
)
def test_other_urls_are_refused(url: str, said: str) -> None:
    with pytest.raises(ValueError, match=r"^idempotency store URL") as caught:
        open_store(url)
    assert str(caught.value) == said  # never the URL itself: it may hold a password


# --- Redis out of reach -----------------------------------------------------------------------


def _assert_unavailable_fast(url: str, where: str) -> None:
    store = open_store(url)
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: store.get("k"),
        "put_if_absent": lambda: store.put_if_absent("k", rec()),
        "replace_if_token": lambda: store.replace_if_token("k", "tok-1", rec()),
        "delete_if_token": lambda: store.delete_if_token("k", "tok-1"),
        "remember": lambda: store.remember("k", "v", 10),
        "recall": lambda: store.recall("k"),
    }
    try:
        for name, call in calls.items():
            started = time.monotonic()
            with pytest.raises(StoreUnavailable) as caught:
                call()
            assert time.monotonic() - started < 3
            error: BaseException | None = caught.value
            # The log names the store and what it was asked (never its password).
            assert f"idempotency store redis://{where} unavailable ({name}): " in str(error)
            # What Redis's client said, and the audit's code and calls: a refused connection is
            # sent once more.
            host_port = where.removesuffix("/0")
            assert str(error).endswith(
                f"ConnectionError: Error 111 connecting to {host_port}. Connection refused."
            )
            assert (caught.value.code, caught.value.attempts) == ("ConnectionError", 2)
            while error is not None:  # nor in anything chained to it
                assert "s3cretpw" not in str(error) and "s3cretpw" not in repr(error)
                error = error.__cause__ or error.__context__
    finally:
        store.close()  # type: ignore[attr-defined]


def test_redis_at_a_closed_port_is_unavailable_fast() -> None:
    port = free_port()  # bound, then closed: nothing listens
    _assert_unavailable_fast(f"redis://:s3cretpw@127.0.0.1:{port}/0", f"127.0.0.1:{port}/0")


def test_redis_that_never_answers_is_unavailable_after_the_timeout() -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        # A store that waited with no timeout at all is reset after 10 s: a failure, not a hang.
        closer = threading.Timer(10, silent.close)
        closer.start()
        started = time.monotonic()
        store = open_store(f"redis://:s3cretpw@127.0.0.1:{port}/0")
        try:
            with pytest.raises(StoreUnavailable, match="Timeout") as caught:
                store.get("k")
        finally:
            closer.cancel()
            store.close()  # type: ignore[attr-defined]
        assert 0.9 < time.monotonic() - started < 3
        assert "s3cretpw" not in str(caught.value)
        # A timeout is not sent again: the audit counts one call.
        assert (caught.value.code, caught.value.attempts) == ("TimeoutError", 1)


def test_a_dropped_connection_is_opened_once_more_as_the_audit_counts() -> None:
    """A Redis that drops each connection as it comes: the store opens one more (the client's
    one retry of a connection error) and then gives up, and the audit's `attempts` says how
    many it opened: two, not one nor four."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        server.settimeout(0.1)
        opened = 0
        done = threading.Event()

        def drop_each() -> None:
            nonlocal opened
            while not done.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                opened += 1  # counted before the close the client waits for
                conn.close()

        dropper = threading.Thread(target=drop_each, daemon=True)
        dropper.start()
        store = open_store(f"redis://127.0.0.1:{server.getsockname()[1]}/0")
        try:
            with pytest.raises(StoreUnavailable) as caught:
                store.get("k")
        finally:
            store.close()  # type: ignore[attr-defined]
            done.set()
            dropper.join()
    assert (caught.value.code, caught.value.attempts, opened) == ("ConnectionError", 2, 2)


def test_a_redis_that_accepts_no_connection_is_unavailable_after_the_connect_timeout() -> None:
    """A Redis whose accept queue is full (the kernel drops the handshake): connecting gives
    up after the store's timeout (a second), not redis-py's five nor the system's minutes, and
    is not sent again; readiness's PING gives up after its own, shorter one."""
    with socket.socket() as server, socket.socket() as first:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        first.connect(server.getsockname())  # fills the queue of one; nothing accepts it
        store = RedisStore(f"redis://127.0.0.1:{server.getsockname()[1]}/0")
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailable, match="Timeout connecting") as caught:
                store.get("k")
            waited = time.monotonic() - started
            started = time.monotonic()
            assert store.ping(0.2) is False
            pinged = time.monotonic() - started
        finally:
            store.close()
    assert 0.9 < waited < 3 and pinged < 0.9
    assert (caught.value.code, caught.value.attempts) == ("TimeoutError", 1)


@pytest.mark.parametrize("given_apart", [False, True], ids=["in-the-url", "given-apart"])
def test_a_password_that_is_a_word_of_the_error_is_still_never_shown(given_apart: bool) -> None:
    """Whatever the password, no error shows it: not even one that is a word of what Redis's
    client says, in the URL or given apart from it (the store password from KMS)."""
    port = free_port()  # nothing listens: "... Connection refused."
    if given_apart:
        store = RedisStore(f"redis://127.0.0.1:{port}/0", password="refused")
    else:
        store = RedisStore(f"redis://:refused@127.0.0.1:{port}/0")
    try:
        with pytest.raises(StoreUnavailable) as caught:
            store.get("k")
    finally:
        store.close()
    assert str(caught.value).endswith(f"connecting to 127.0.0.1:{port}. Connection ***.")


def test_a_redis_at_maxmemory_under_noeviction_is_a_full_store() -> None:
    """Redis refuses the write with OOM: the store says it is full (a 503 to the caller, and
    nothing created), in its own words, with OOM as the audit's code."""
    settings = ("--maxmemory", "1", "--maxmemory-policy", "noeviction")
    with RedisServer(redis_binary(), *settings) as server:
        store = RedisStore(server.url)
        try:
            with pytest.raises(StoreUnavailable) as full:
                store.put_if_absent("a", rec("a"), ttl_s=10)
        finally:
            store.close()
    assert full.value.code == "OOM"
    assert str(full.value).endswith(" is full (put_if_absent): OOM")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://127.0.0.1", "RedisStore(redis://127.0.0.1:6379/0)"),
        ("redis://127.0.0.1:6380/2", "RedisStore(redis://127.0.0.1:6380/2)"),
        ("redis://127.0.0.1:6380/?db=3", "RedisStore(redis://127.0.0.1:6380/3)"),
        ("redis://:secret@[::1]:7000//4//", "RedisStore(redis://[::1]:7000/4)"),
        ("rediss://user:pw@redis.internal/5", "RedisStore(rediss://redis.internal:6379/5)"),
    ],
)
def test_a_redis_store_is_shown_by_its_url_without_credentials(url: str, shown: str) -> None:
    """Its repr, and every error of the store, show the URL as Redis reads it: the default port
    6379, the database from the path or `db=`, never a user or password."""
    store = RedisStore(url)
    try:
        assert repr(store) == shown
    finally:
        store.close()


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("redis://127.0.0.1:port/0", "idempotency store URL: the port is not a number"),
        ("redis:///0", "idempotency store URL: no host (redis://host:port/db)"),
        (
            "redis://127.0.0.1/zero",
            "idempotency store URL: the database is not a number (redis://host:port/db)",
        ),
        (  # only slashes are taken off the path
            "redis://127.0.0.1/4X",
            "idempotency store URL: the database is not a number (redis://host:port/db)",
        ),
    ],
)
def test_a_redis_url_redis_cannot_use_is_refused_in_words(url: str, said: str) -> None:
    with pytest.raises(ValueError, match="idempotency store URL") as refused:
        RedisStore(url)
    assert str(refused.value) == said
