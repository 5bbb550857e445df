"""Idempotent create, over both stores (the process's memory, and a real redis-server): the same
key and request give the same secret, and no failure, retry or race makes a second one."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
import sdk_clients as sdk
from alibabacloud_eiam20211201 import models as eiam_models
from processes import free_port
from redis_server import PersistentRedis, RedisServer, redis_binary
from rotation_world import wait_until
from stack import DEMO_POLICY, LapseClock, Stack, plant_a_dead_create, running_stack

from infra.emulator import Seed
from shared import idempotent_create as once
from shared.create_lease import ApplicationLease, Holder, Prior, lease_key
from shared.create_once import MIN_SEND_S, Eiam, create_at_most_once
from shared.errors import MaybeActed, VendError
from shared.idempotency import DEFAULT_TTL_S, IdempotencyRecord, StoreUnavailable, open_store
from shared.idempotency.memory import MemoryStore, process_memory_store
from shared.models import CreateRequest
from shared.upstream.deadline import Deadline
from shared.upstream.eiam import SecretInfo
from vend_client import VendApiError

pytestmark = pytest.mark.contract("8")

pytest_plugins = ["redis_server"]

BILLING_ARN = f"acs:ram::{sdk.ACCOUNT}:user/billing"


@pytest.fixture(params=["memory", "redis"])
def store_url(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    url: str = request.getfixturevalue("redis_url")
    # A fresh world, as running_stack gives the memory store: no lease or key of an earlier test
    # (one left on app_empty would hold the next test's creates, or keep its planted lease out).
    with redis.Redis.from_url(url) as admin:
        admin.flushdb()
    return url


@pytest.fixture
def stack(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, store_url: str, tmp_path: Path
) -> Iterator[Stack]:
    # The demo policy, plus "reports" may create in app_empty too (for the scoping test).
    policy = json.loads(DEMO_POLICY.read_text())
    policy["Statement"].append(
        {
            "Sid": "reports-creates-in-app-empty",
            "Effect": "Allow",
            "Principal": {"RAM": [f"acs:ram::{sdk.ACCOUNT}:user/reports"]},
            "Action": "eiam:CreateApplicationClientSecret",
            "Resource": sdk.secret_arn("app_empty", "*"),
        }
    )
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    env = {"VEND_IDEMPOTENCY_URL": store_url, "VEND_POLICY": str(path)}
    with running_stack(  # deadline 1.6 s; the marks and leases lapse by a clock the test moves
        monkeypatch, demo_seed, env=env, timeout_s=2, lapse_clock=LapseClock()
    ) as running:
        yield running


def _lapse(stack: Stack, seconds: float) -> None:
    """Time passes for the service's marks and leases (not for what EIAM holds)."""
    assert stack.lapse_clock is not None
    stack.lapse_clock.advance(seconds)


def _key() -> str:
    return f"test-{uuid.uuid4().hex}"


# EIAM makes the secret, holds the answer half a second (a test acts meanwhile), then loses it.
LOST_AFTER_HALF_A_SECOND: dict[str, object] = {
    "action": "CreateApplicationClientSecret",
    "phase": "after",
    "latency_ms": 500,
    "status": 503,
    "code": "ServiceUnavailable",
    "times": 1,
}


def _faults(stack: Stack, *faults: dict[str, object]) -> None:
    requests.put(
        f"{stack.emulator.url}/_emulator/faults", json=list(faults), timeout=5
    ).raise_for_status()


def _open(stack: Stack, response: object, key: tuple[str, str] = sdk.BILLING) -> str:
    return stack.client(key).open(
        response,
        instance_id="idaas_demo",
        application_id="app_empty",  # type: ignore[arg-type]
        secret_id=None,
    )


def test_same_key_same_secret_fresh_envelope(stack: Stack) -> None:
    key = _key()
    first = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    second = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert first.secret_id == second.secret_id
    assert stack.secret_ids("app_empty") == [first.secret_id]
    assert first.envelope.encrypted_data_key != second.envelope.encrypted_data_key
    assert _open(stack, first) == _open(stack, second)
    assert len(stack.calls("CreateApplicationClientSecret")) == 1


def test_a_retry_does_not_hit_the_quota(stack: Stack) -> None:
    key = _key()
    made = stack.client().create("idaas_demo", "app_billing", idempotency_key=key)  # the 2nd slot
    again = stack.client().create("idaas_demo", "app_billing", idempotency_key=key)
    assert again.secret_id == made.secret_id
    with pytest.raises(VendApiError) as info:
        stack.client().create("idaas_demo", "app_billing", idempotency_key=_key())
    assert info.value.code == "QuotaExceeded"


@pytest.mark.parametrize(
    "other",
    [
        {"application_id": "app_billing"},
        {"expiration_time": int(time.time() * 1000) + 2 * 86_400_000},
    ],
    ids=["other-application", "other-expiration"],
)
def test_same_key_other_request_is_422(stack: Stack, other: dict[str, object]) -> None:
    key = _key()
    stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    body = {"instance_id": "idaas_demo", "application_id": "app_empty", **other}
    reply = requests.post(
        stack.api.url + "/v1/secrets/create",
        json=body,
        timeout=10,
        headers={"Authorization": stack.client().authorization(), "Idempotency-Key": key},
    )
    assert (reply.status_code, reply.json()["error"]["code"]) == (422, "IdempotencyKeyReused")


def test_keys_are_scoped_per_principal(stack: Stack) -> None:
    key = _key()
    mine = stack.client(sdk.BILLING).create("idaas_demo", "app_empty", idempotency_key=key)
    theirs = stack.client(sdk.REPORTS).create("idaas_demo", "app_empty", idempotency_key=key)
    assert mine.secret_id != theirs.secret_id
    assert _open(stack, theirs, sdk.REPORTS) != _open(stack, mine)


def test_concurrent_duplicates_never_make_a_second_secret(stack: Stack) -> None:
    _faults(stack, {"action": "CreateApplicationClientSecret", "latency_ms": 300})
    key, results = _key(), []
    auths = [stack.client().authorization() for _ in range(4)]  # proofs are single-use

    def create(auth: str) -> None:
        reply = requests.post(
            stack.api.url + "/v1/secrets/create",
            timeout=10,
            json={"instance_id": "idaas_demo", "application_id": "app_empty"},
            headers={"Authorization": auth, "Idempotency-Key": key},
        )
        results.append((reply.status_code, reply.json()))

    threads = [threading.Thread(target=create, args=(a,)) for a in auths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stack.secret_ids("app_empty")) == 1
    made = stack.secret_ids("app_empty")[0]
    for status, body in results:
        assert (status, body.get("secret_id")) == (200, made) or (
            status,
            body["error"]["code"],
        ) == (409, "IdempotencyInProgress")
    assert any(status == 200 for status, _ in results)


def test_kms_failing_first_creates_nothing_and_the_retry_creates_once(stack: Stack) -> None:
    _faults(
        stack,
        {"action": "GenerateDataKey", "status": 503, "code": "ServiceUnavailable", "times": 4},
    )
    key = _key()
    with pytest.raises(VendApiError) as info:
        stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert info.value.code == "UpstreamError"
    assert stack.secret_ids("app_empty") == []
    made = stack.client().create(
        "idaas_demo", "app_empty", idempotency_key=key
    )  # released: at once
    assert stack.secret_ids("app_empty") == [made.secret_id]


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 503, "code": "ServiceUnavailable"},
        {"status": 429, "code": "Throttling"},
        {"latency_ms": 2500},
    ],
    ids=["answer-lost-5xx", "throttled-after-creating", "timeout-after-creating"],
)
def test_eiam_created_but_the_answer_was_lost(stack: Stack, fault: dict[str, object]) -> None:
    """The create is sent once; listing finds the secret it made, which is the answer."""
    _faults(
        stack, {"action": "CreateApplicationClientSecret", "phase": "after", "times": 1, **fault}
    )
    key = _key()
    first = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert stack.secret_ids("app_empty") == [first.secret_id]
    again = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert again.secret_id == first.secret_id
    # Counted as they arrive (the slow one has not answered yet): one create, ever.
    assert len(stack.emulator.emulator.params("CreateApplicationClientSecret")) == 1


def test_a_create_still_in_flight_when_the_deadline_came_is_adopted_later(stack: Stack) -> None:
    """EIAM holds the create past the deadline and makes the secret after it: the request cannot
    know (504, nothing sent again); the key stays in progress, and the retry after the mark
    lapses finds the secret by listing."""
    _faults(stack, {"action": "CreateApplicationClientSecret", "latency_ms": 2500, "times": 1})
    key = _key()
    with pytest.raises(VendApiError) as info:
        stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert (info.value.status, info.value.code) == (504, "UpstreamTimeout")
    assert info.value.message.endswith(
        "; a secret may have been created, and EIAM may still be creating it (secrets before: none)"
    )
    with pytest.raises(VendApiError) as busy:
        stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert (busy.value.status, busy.value.code) == (409, "IdempotencyInProgress")
    # EIAM did create it, late (2.5 s after it was sent); then the mark lapses, two deadlines
    # after the create was sent.
    assert wait_until(lambda: len(stack.secret_ids("app_empty")) == 1, seconds=5)
    (made,) = stack.secret_ids("app_empty")
    _lapse(stack, 3.3)
    recovered = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert recovered.secret_id == made
    assert stack.secret_ids("app_empty") == [made]
    assert len(stack.emulator.emulator.params("CreateApplicationClientSecret")) == 1


def _operator_made(stack: Stack) -> Any:
    """A secret made straight through EIAM: here, the one the dead attempt made."""
    return (
        sdk.eiam(stack.emulator.endpoint, sdk.OPERATOR)
        .create_application_client_secret(
            eiam_models.CreateApplicationClientSecretRequest(
                instance_id="idaas_demo", application_id="app_empty"
            )
        )
        .body.application_client_secret
    )


def test_killed_between_the_eiam_answer_and_the_store_write(stack: Stack, store_url: str) -> None:
    """A dead attempt's secret, never recorded, is what its key's retry answers with."""
    key = _key()
    plant_a_dead_create(store_url, BILLING_ARN, key, stack.secret_ids("app_empty"))
    orphan = _operator_made(stack)
    recovered = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert recovered.secret_id == orphan.secret_id
    assert _open(stack, recovered) == orphan.client_secret
    assert stack.secret_ids("app_empty") == [orphan.secret_id]
    # And from now on the key answers with it at once.
    again = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert again.secret_id == orphan.secret_id


def test_a_retry_that_fails_before_settling_a_dead_attempt_hands_it_on(
    stack: Stack, store_url: str
) -> None:
    """The retry takes the dead attempt's lease, then fails before it can settle it (the
    listing refused, past its retries): what the dead attempt listed is handed on with the
    lease, not dropped, so the next retry still adopts its secret instead of making another."""
    key = _key()
    plant_a_dead_create(store_url, BILLING_ARN, key, stack.secret_ids("app_empty"))
    orphan = _operator_made(stack)
    _faults(
        stack,
        {"action": "ListApplicationClientSecrets", "status": 503, "code": "ServiceUnavailable"},
    )
    with pytest.raises(VendApiError) as failed:
        stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert failed.value.status == 502
    _faults(stack)
    # Handed on as it was, lapsed: another key's create takes it at once, records the orphan
    # for the dead attempt's key, and makes its own.
    other = stack.client().create("idaas_demo", "app_empty", idempotency_key=_key())
    recovered = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert recovered.secret_id == orphan.secret_id
    assert sorted(stack.secret_ids("app_empty")) == sorted([orphan.secret_id, other.secret_id])


@pytest.mark.parametrize("died", ["claimed", "holding", "sent"])
def test_an_attempt_that_died_before_creating_is_taken_over(
    stack: Stack, store_url: str, died: str
) -> None:
    """The key's attempt died having claimed the key (`claimed`), or holding the application
    too before it listed (`holding`), or after it sent a create that made nothing (`sent`):
    once that lapsed, the key's retry creates one secret."""
    key = _key()
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    store, now_ms = open_store(store_url), int(time.time() * 1000)
    if died == "sent":
        plant_a_dead_create(store_url, BILLING_ARN, key, stack.secret_ids("app_empty"))
    else:
        store.put_if_absent(
            once.store_key(BILLING_ARN, key),
            IdempotencyRecord(
                status="in_progress",
                request_hash=once.request_hash(request),
                token="dead-early",
                lapse_at_ms=now_ms - 1,
                created_at_ms=now_ms - 5000,
            ),
        )
    if died == "holding":
        store.put_if_absent(
            lease_key("idaas_demo", "app_empty"),
            IdempotencyRecord(
                status="lease",
                request_hash=once.request_hash(request),
                token="dead-early-lease",
                lapse_at_ms=now_ms - 1,
                holder=once.store_key(BILLING_ARN, key),
                created_at_ms=now_ms - 5000,
            ),
        )
    made = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert stack.secret_ids("app_empty") == [made.secret_id]
    assert len(stack.calls("CreateApplicationClientSecret")) == 1


@pytest.mark.parametrize(("now", "lapsed"), [(1_000_000 - 1, False), (1_000_000, True)])
def test_a_lease_has_lapsed_from_its_lapse_instant_on(now: int, lapsed: bool) -> None:
    """What a dead attempt of the same key left is settled once its lease lapsed, to the
    millisecond (before, its create may still land: the retry is told to wait)."""
    store = MemoryStore()
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    holder = Holder("p:key", once.request_hash(request))
    key = lease_key("idaas_demo", "app_empty")
    store.put_if_absent(key, _lease_held_by(holder, "dead-attempt-lease", 1_000_000, ("sec-1",)))
    lease = ApplicationLease(store, key, holder, hold_ms=3200, now_ms=lambda: now)
    prior = lease.acquire(Deadline(1.6))
    assert prior == Prior(before=("sec-1",), holder=holder, mine=True, lapsed=lapsed)


def test_a_recovery_that_fails_keeps_what_the_lost_attempt_knew(stack: Stack) -> None:
    """Issue 9, reproduction 1: EIAM creates and the answer is lost (503 after acting); reading
    the adopted secret fails (Obtain 503, enough to outlast the retries), once and again on the
    caller's retry; faults clear; the next retry gets that same secret, never a second one."""
    _faults(
        stack,
        {
            "action": "CreateApplicationClientSecret",
            "phase": "after",
            "times": 1,
            "status": 503,
            "code": "ServiceUnavailable",
        },
        {"action": "ObtainApplicationClientSecret", "status": 503, "code": "ServiceUnavailable"},
    )
    key = _key()
    with pytest.raises(VendApiError) as info:
        stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert info.value.code == "UpstreamError"
    (made,) = stack.secret_ids("app_empty")
    assert made in info.value.message  # the error names the secret it made
    assert info.value.message.endswith(f"(the new secret {made} was created; obtain it by its ID)")
    audited = _audited(stack, info.value.request_id or "")
    obtains = stack.emulator.emulator.calls("ObtainApplicationClientSecret")
    assert {k: audited.get(k) for k in ("upstream", "upstream_code", "upstream_status")} == {
        "upstream": "eiam",
        "upstream_code": "ServiceUnavailable",
        "upstream_status": 503,
    }
    assert audited["attempts"] == len(obtains) > 1
    assert isinstance(audited["upstream_request_id"], str) and audited["upstream_request_id"]
    with pytest.raises(VendApiError):  # the retry: the record knows the secret, Obtain fails
        stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    _lapse(stack, 3.3)  # past any lapse: the record of a created secret does not lapse
    with pytest.raises(VendApiError):
        stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    _faults(stack)
    recovered = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert recovered.secret_id == made
    assert stack.secret_ids("app_empty") == [made]
    assert len(stack.emulator.emulator.params("CreateApplicationClientSecret")) == 1


# -- issue 17: creates that cannot be confused ----------------------------------------------------


def _operator_delete(stack: Stack, secret_id: str) -> None:
    stack.operator_eiam().delete_application_client_secret(
        eiam_models.DeleteApplicationClientSecretRequest(
            instance_id="idaas_demo", application_id="app_empty", secret_id=secret_id
        )
    )


def _audited(stack: Stack, request_id: str) -> dict[str, object]:
    (record,) = [
        r
        for r in (json.loads(m.getMessage()) for m in stack.audit.records)
        if r["request_id"] == request_id
    ]
    return record


def test_a_create_refused_by_the_quota_leaves_nothing_another_caller_made_to_adopt(
    stack: Stack,
) -> None:
    """Issue 17, reproduction 1, as written: reports may create in app_empty but not obtain
    there. Its keyed create is refused by the quota; the owner deletes a secret and billing
    creates one; reports's retry of its old key must not come back with billing's secret."""
    first, second = stack.operator_create("app_empty"), stack.operator_create("app_empty")
    key = _key()
    with pytest.raises(VendApiError) as refused:
        stack.client(sdk.REPORTS).create("idaas_demo", "app_empty", idempotency_key=key)
    assert (refused.value.status, refused.value.code) == (409, "QuotaExceeded")
    _operator_delete(stack, first)
    billings = stack.client().create("idaas_demo", "app_empty", idempotency_key=_key())
    with pytest.raises(VendApiError) as again:
        stack.client(sdk.REPORTS).create("idaas_demo", "app_empty", idempotency_key=key)
    assert (again.value.status, again.value.code) == (409, "QuotaExceeded")
    assert billings.secret_id not in again.value.message
    assert sorted(stack.secret_ids("app_empty")) == sorted([second, billings.secret_id])
    audited = _audited(stack, again.value.request_id or "")
    assert (audited["principal"], audited["outcome"]) == (
        f"acs:ram::{sdk.ACCOUNT}:user/reports",
        "QuotaExceeded",
    )
    # And once there is room, the old key makes a secret of its own, not billing's.
    _operator_delete(stack, second)
    own = stack.client(sdk.REPORTS).create("idaas_demo", "app_empty", idempotency_key=key)
    assert own.secret_id not in (first, second, billings.secret_id)


def test_a_create_whose_answer_was_reset_never_adopts_what_another_caller_made(
    stack: Stack,
) -> None:
    """Issue 17, reproduction 1's other path: reports's create is refused before EIAM acts (a
    503 answered in place of the action), then billing creates; reports's retry makes its own."""
    _faults(
        stack,
        {"action": "CreateApplicationClientSecret", "status": 503, "code": "ServiceUnavailable"},
    )
    key = _key()
    with pytest.raises(VendApiError):
        stack.client(sdk.REPORTS).create("idaas_demo", "app_empty", idempotency_key=key)
    _faults(stack)
    billings = stack.client().create("idaas_demo", "app_empty", idempotency_key=_key())
    own = stack.client(sdk.REPORTS).create("idaas_demo", "app_empty", idempotency_key=key)
    assert own.secret_id != billings.secret_id
    assert sorted(stack.secret_ids("app_empty")) == sorted([billings.secret_id, own.secret_id])


def _settle(stack: Stack, caller: tuple[str, str], key: str, until: float) -> str | None:
    """Retries a keyed create until it answers 200 (its secret) or 409 QuotaExceeded (None)."""
    while True:
        try:
            return (
                stack.client(caller)
                .create("idaas_demo", "app_empty", idempotency_key=key)
                .secret_id
            )
        except VendApiError as err:
            if err.code == "QuotaExceeded":
                return None
            if time.monotonic() > until:
                raise
            time.sleep(0.1)


@pytest.mark.parametrize("lost", ["reset", "timeout"])
def test_two_keyed_creates_at_once_with_the_first_answer_lost_both_settle(
    stack: Stack, lost: str
) -> None:
    """Issue 17, reproduction 2: two callers' keyed creates on one application at once, the
    first one's answer lost (its connection reset after EIAM acted, or held past the deadline).
    Within two deadlines after the fault clears both keys settle, each with its own secret or
    a clean 409, and every secret the application holds is one that a key answers with."""
    fault: dict[str, object] = (
        {"phase": "after", "reset": True, "latency_ms": 300}
        if lost == "reset"
        else {"latency_ms": 2000}
    )
    _faults(stack, {"action": "CreateApplicationClientSecret", "times": 1, **fault})
    keys = {"billing": (sdk.BILLING, _key()), "reports": (sdk.REPORTS, _key())}
    first: dict[str, object] = {}

    def send(name: str) -> None:
        caller, key = keys[name]
        try:
            first[name] = stack.client(caller).create(
                "idaas_demo", "app_empty", idempotency_key=key
            )
        except VendApiError as err:
            first[name] = err

    one = threading.Thread(target=send, args=("billing",))
    one.start()
    time.sleep(0.1)  # billing's create is in EIAM's hands when reports's arrives
    two = threading.Thread(target=send, args=("reports",))
    two.start()
    one.join()
    two.join()
    cleared = time.monotonic()
    until = cleared + 2 * 1.6 + 1.0  # two deadlines, and a second for the calls themselves
    settled = {name: _settle(stack, caller, key, until) for name, (caller, key) in keys.items()}
    held = sorted(s for s in settled.values() if s is not None)
    assert held, settled
    assert sorted(stack.secret_ids("app_empty")) == held  # no secret that no key holds
    assert len(set(held)) == len(held)
    # Settled for good: each key answers the same again.
    for name, (caller, key) in keys.items():
        assert _settle(stack, caller, key, time.monotonic()) == settled[name]


def test_a_refused_create_leaves_no_record_behind(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed
) -> None:
    """Refused creates do not live in the store for a day (the memory store grew by 1.6 KiB a
    refused key): neither the key's record nor the application's lease stays."""
    env = {"VEND_IDEMPOTENCY_URL": "memory://"}
    with running_stack(monkeypatch, demo_seed, env=env, timeout_s=2) as stack:
        store = process_memory_store()
        stack.operator_create("app_empty")
        stack.operator_create("app_empty")
        before = len(store)
        for _ in range(20):
            with pytest.raises(VendApiError) as refused:
                stack.client().create("idaas_demo", "app_empty", idempotency_key=_key())
            assert refused.value.code == "QuotaExceeded"
        assert len(store) == before


def test_a_claim_holds_its_key_for_one_deadline_at_most() -> None:
    """Issue 17, item 8: a claim whose write timed out may land late; it must hold the key no
    longer than the request's own deadline."""
    store = MemoryStore()
    now = 1_000_000
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    held, _ = once.claim(store, "k", once.request_hash(request), hold_ms=1600, now_ms=lambda: now)
    assert held is not None
    record = store.get("k")
    assert record is not None
    assert record.lapse_at_ms <= now + 1600
    with pytest.raises(VendError):
        once.claim(store, "k", once.request_hash(request), hold_ms=1600, now_ms=lambda: now + 1599)
    again, _ = once.claim(
        store, "k", once.request_hash(request), hold_ms=1600, now_ms=lambda: now + 1600
    )
    assert again is not None
    # Without a clock of its own, by the wall clock.
    walled, _ = once.claim(store, "k2", once.request_hash(request), hold_ms=1600)
    assert walled is not None
    assert abs(walled.record.lapse_at_ms - (time.time() * 1000 + 1600)) < 60_000


def test_a_requests_hash_is_the_same_in_every_version() -> None:
    """Records outlive a deploy: a retry that an instance of the next version serves must find
    the hash the first attempt stored, so the hash is of one canonical form, pinned here."""
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    canonical = (
        '{"action":"create","application_id":"app_empty","expiration_time":null,'
        '"instance_id":"idaas_demo"}'
    )
    assert once.request_hash(request) == hashlib.sha256(canonical.encode()).hexdigest()


def _wall_ms() -> int:
    return int(time.time() * 1000)


OTHER = Holder("p:other", "0" * 64)  # another key's request


def _lease_held_by(
    holder: Holder, token: str, lapse_at_ms: int, before: tuple[str, ...] | None = None
) -> IdempotencyRecord:
    """The application's lease as an attempt of `holder` took it (at 997,400 ms), with what
    it listed before the create it sent, if it sent one."""
    return IdempotencyRecord(
        status="lease",
        request_hash=holder.request_hash,
        token=token,
        lapse_at_ms=lapse_at_ms,
        created_at_ms=997_400,
        holder=holder.key,
        before_secret_ids=before,
    )


def _lapsed_claim(request: CreateRequest) -> IdempotencyRecord:
    """The key's record of an attempt whose claim lapsed at 1,000,000 ms (after its 1.6 s)."""
    return IdempotencyRecord(
        status="in_progress",
        request_hash=once.request_hash(request),
        token="dead",
        lapse_at_ms=1_000_000,
        created_at_ms=1_000_000 - 1600,
    )


@pytest.mark.parametrize("taken_over", [False, True])
@pytest.mark.parametrize("hold_ms", [1002, 2000])
def test_the_store_keeps_a_claim_a_minute_past_its_lapse_and_no_longer(
    hold_ms: int, taken_over: bool
) -> None:
    """The claim's record outlives its lapse (whole seconds, rounded up) by a minute, so a
    duplicate never finds the key free while the attempt may be at work; then it is gone, so
    records of attempts that died do not pile up for a day. So too when it takes over from
    an attempt whose claim lapsed."""
    clock = [5_000.0]
    store = MemoryStore(lambda: clock[0])
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    if taken_over:
        store.put_if_absent("k", _lapsed_claim(request))
    once.claim(store, "k", once.request_hash(request), hold_ms=hold_ms, now_ms=lambda: 1_000_000)
    clock[0] += 61.9  # 2 s (the lapse, rounded up) and a minute, less a tenth
    assert store.get("k") is not None
    clock[0] += 0.1
    assert store.get("k") is None


# -- a dead attempt's create, settled by whoever takes the application next ----------------------


NO_CLAIM = "no idempotency key can claim"


@pytest.mark.parametrize("key_record", ["kept", "expired", "recorded"])
def test_a_dead_attempts_secret_is_recorded_for_its_key_by_the_next_create(
    stack: Stack, store_url: str, key_record: str
) -> None:
    """Another key's create takes the dead attempt's lapsed lease: the one secret that appeared
    is the dead attempt's, recorded under its key (whether its in-progress record is still
    there, expired, or already names that secret), and the other key makes a secret of its
    own; the dead key's retry is answered with the orphan, creating nothing."""
    dead_key = _key()
    plant_a_dead_create(store_url, BILLING_ARN, dead_key, stack.secret_ids("app_empty"))
    store, store_key = open_store(store_url), once.store_key(BILLING_ARN, dead_key)
    if key_record != "kept":
        store.delete_if_token(store_key, "dead-attempt")
    orphan = _operator_made(stack)
    if key_record == "recorded":
        store.put_if_absent(store_key, _created(orphan.secret_id))
    other = stack.client().create("idaas_demo", "app_empty", idempotency_key=_key())
    assert other.secret_id != orphan.secret_id
    assert NO_CLAIM not in stack.logs.text()
    retried = stack.client().create("idaas_demo", "app_empty", idempotency_key=dead_key)
    assert retried.secret_id == orphan.secret_id
    assert _open(stack, retried) == orphan.client_secret
    assert sorted(stack.secret_ids("app_empty")) == sorted([orphan.secret_id, other.secret_id])
    assert len(stack.calls("CreateApplicationClientSecret")) == 2  # the operator's, the other's


class _Beside:
    """A memory store as the store interface sees it, for a test to act in another instance's
    place at one call: each call goes to `store` unless a subclass steps in."""

    store: MemoryStore

    def get(self, key: str) -> IdempotencyRecord | None:
        return self.store.get(key)

    def put_if_absent(
        self, key: str, record: IdempotencyRecord, ttl_s: int = DEFAULT_TTL_S
    ) -> IdempotencyRecord | None:
        return self.store.put_if_absent(key, record, ttl_s)

    def replace_if_token(
        self, key: str, expected_token: str, record: IdempotencyRecord, ttl_s: int = DEFAULT_TTL_S
    ) -> bool:
        return self.store.replace_if_token(key, expected_token, record, ttl_s)

    def delete_if_token(self, key: str, expected_token: str) -> bool:
        return self.store.delete_if_token(key, expected_token)

    def remember(self, key: str, value: str, ttl_s: int) -> None:
        self.store.remember(key, value, ttl_s)

    def recall(self, key: str) -> str | None:
        return self.store.recall(key)


class _RacedOnRead(_Beside):
    """The memory store, where the key's retries (on other instances) claim `key` right after
    each of its first `races` reads, each taking over from the one before: between
    `record_for`'s read and its write."""

    def __init__(self, store: MemoryStore, key: str, request_hash: str, races: int) -> None:
        self.store, self.key, self.request_hash, self.races = store, key, request_hash, races

    def get(self, key: str) -> IdempotencyRecord | None:
        found = self.store.get(key)
        if key == self.key and self.races > 0:
            self.races -= 1
            now = int(time.time() * 1000)
            retry = IdempotencyRecord(
                status="in_progress",
                request_hash=self.request_hash,
                token=f"retry-{self.races}",
                lapse_at_ms=now + 1600,
                created_at_ms=now,
            )
            if found is None:
                assert self.store.put_if_absent(key, retry, 60) is None
            else:
                assert self.store.replace_if_token(key, found.token, retry, 60)
        return found


@pytest.mark.parametrize("races", [1, 2, 3])
def test_a_dead_attempts_secret_is_recorded_even_when_its_keys_retry_claims_the_key_meanwhile(
    races: int,
) -> None:
    """The dead attempt's key record is gone when the next create settles its lease; the key's
    retry claims the key before that create records the secret: the secret is recorded all
    the same (in place of the retry's claim), so that the retry answers with it instead of
    making a second secret. Three tries, each lost to another retry, and it gives up."""
    store = MemoryStore()
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    holder = Holder("p:dead-key", once.request_hash(request))
    racing = _RacedOnRead(store, "p:dead-key", holder.request_hash, races)
    recorded = once.record_for(racing, holder, "sec-orphan")
    held = store.get("p:dead-key")
    assert held is not None
    if races < 3:
        assert recorded is True
        assert (held.status, held.secret_id) == ("created", "sec-orphan")
        assert not held.token.startswith("retry")  # the retries' attempts can change nothing
    else:
        assert recorded is False
        assert (held.status, held.token) == ("in_progress", "retry-0")


def _fake_time() -> tuple[list[float], Callable[[], int], Callable[[float], None]]:
    """A clock in seconds from 0 (1,000,000 ms on the lapse clock) that only sleeping moves."""
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    return clock, lambda: 1_000_000 + int(clock[0] * 1000), sleep


_POLLS = (0.02, 0.05, 0.1, 0.2)  # then 0.2 s a wait


@pytest.mark.parametrize(
    ("deadline_s", "other_s", "waits", "retry_after"),
    [
        (1.6, 2.5, 6, "2"),  # 0.83 s left: under 0.8, half the deadline, after another wait
        (2.5, 2.5, 9, "2"),  # 1.13 s left: under 1 s after another wait
        (0.4, 2.5, 1, "3"),  # 0.2 left after a wait is not under half the deadline: one wait
        (1.6, 1.77, 6, "1"),  # the other's hold lapses 1 s after: in 1 s
        (1.6, 1.771, 6, "2"),  # 1.001 s after: in 2 s
        (1.6, 100.0, 6, "60"),  # 99.23 s after: at most a minute
    ],
)
def test_an_attempt_waits_for_a_held_application_while_enough_is_left_to_answer(
    deadline_s: float, other_s: float, waits: int, retry_after: str
) -> None:
    """Another attempt took the application, for its deadline (`other_s`): this one polls (20,
    50, 100, then 200 ms) while more than half its own deadline (at most 1 s) would be left
    after another wait, then gives up with a 504 whose Retry-After is when the other's hold
    lapses, in whole seconds up to a minute."""
    clock, now_ms, sleep = _fake_time()
    key = lease_key("idaas_demo", "app_empty")
    store = MemoryStore()
    other = ApplicationLease(store, key, OTHER, 3200, now_ms=now_ms)
    assert other.acquire(Deadline(other_s, clock=lambda: clock[0])) is None
    lease = ApplicationLease(
        store, key, Holder("p:key", "1" * 64), 3200, now_ms=now_ms, sleep=sleep
    )
    with pytest.raises(VendError) as gave_up:
        lease.acquire(Deadline(deadline_s, clock=lambda: clock[0]))
    assert (gave_up.value.status, gave_up.value.code, gave_up.value.message) == (
        504,
        "UpstreamTimeout",
        "another create on this application is in progress; the request's deadline ran out "
        "waiting for it",
    )
    assert clock[0] == pytest.approx(sum((*_POLLS, *[0.2] * 9)[:waits]))
    assert gave_up.value.headers["Retry-After"] == retry_after


def test_a_lease_is_anyones_from_the_instant_it_lapses() -> None:
    """Another attempt took the application for 1 s; at that very instant this one takes it
    over at once, and the lease is this attempt's: its holder, its request, its deadline."""
    clock, now_ms, sleep = _fake_time()
    key = lease_key("idaas_demo", "app_empty")
    store = MemoryStore()
    other = ApplicationLease(store, key, OTHER, 3200, now_ms=now_ms)
    assert other.acquire(Deadline(1.0, clock=lambda: clock[0])) is None
    clock[0] = 1.0
    lease = ApplicationLease(
        store, key, Holder("p:key", "1" * 64), 3200, now_ms=now_ms, sleep=sleep
    )
    assert lease.acquire(Deadline(1.6, clock=lambda: clock[0])) is None
    assert clock[0] == 1.0  # not a wait
    held = store.get(key)
    assert held is not None
    assert (held.holder, held.request_hash, held.lapse_at_ms) == ("p:key", "1" * 64, 1_002_600)


def test_an_unkeyed_attempt_settles_another_unkeyed_requests_dead_create() -> None:
    """A create without a key (or a rotation) finds the lapsed lease of another request's
    create, also without a key, that never learnt its outcome: not the same request (no 422),
    so it takes the lease, with what that create listed before, to settle it."""
    clock, now_ms, sleep = _fake_time()
    key = lease_key("idaas_demo", "app_empty")
    store = MemoryStore()
    store.put_if_absent(key, _lease_held_by(Holder(None, "0" * 64), "dead", 999_000, ("sec-1",)))
    lease = ApplicationLease(store, key, Holder(None, "1" * 64), 3200, now_ms=now_ms, sleep=sleep)
    prior = lease.acquire(Deadline(1.6, clock=lambda: clock[0]))
    assert prior == Prior(before=("sec-1",), holder=Holder(None, "0" * 64), mine=False, lapsed=True)


def test_a_retry_takes_its_earlier_attempts_lease_keeping_its_lapse_not_its_token() -> None:
    """The key's earlier attempt holds the application with a create whose outcome it never
    learnt, and its hold has not lapsed: the key's retry takes the lease over to look, keeping
    that lapse (EIAM may still land the create) and what was listed, under a token of its own,
    so that the earlier attempt, should it still run, can no longer give the lease back."""
    clock, now_ms, sleep = _fake_time()
    key = lease_key("idaas_demo", "app_empty")
    store = MemoryStore()
    holder = Holder("p:key", "1" * 64)
    store.put_if_absent(key, _lease_held_by(holder, "earlier-attempt", 1_003_000, ("sec-1",)))
    lease = ApplicationLease(store, key, holder, 3200, now_ms=now_ms, sleep=sleep)
    prior = lease.acquire(Deadline(1.6, clock=lambda: clock[0]))
    assert prior == Prior(before=("sec-1",), holder=holder, mine=True, lapsed=False)
    held = store.get(key)
    assert held is not None
    assert (held.lapse_at_ms, held.before_secret_ids) == (1_003_000, ("sec-1",))
    assert store.delete_if_token(key, "earlier-attempt") is False


class _AlwaysRaced(_Beside):
    """The memory store, where another attempt wins every compare-and-set of this one."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.tries = 0

    def replace_if_token(
        self, key: str, expected_token: str, record: IdempotencyRecord, ttl_s: int = DEFAULT_TTL_S
    ) -> bool:
        self.tries += 1
        assert self.tries < 100, "spinning on a compare-and-set it keeps losing"
        return False


def test_an_attempt_that_keeps_losing_the_take_over_gives_up_with_its_deadline() -> None:
    """The application's lease lapsed, and other attempts win each take-over of it: this one
    waits between tries as it waits for a held lease, and gives up in time to answer (504),
    not spinning on the store until the function is killed."""
    clock = [0.0]
    key = lease_key("idaas_demo", "app_empty")
    store = _AlwaysRaced(MemoryStore())
    assert store.store.put_if_absent(key, _lease_held_by(OTHER, "other-attempt", 999_000)) is None
    lease = ApplicationLease(
        store,
        key,
        Holder("p:key", "1" * 64),
        3200,
        now_ms=lambda: 1_000_000 + int(clock[0] * 1000),
        sleep=lambda s: clock.__setitem__(0, clock[0] + s),
    )
    with pytest.raises(VendError) as failed:
        lease.acquire(Deadline(1.6, clock=lambda: clock[0]))
    assert (failed.value.status, failed.value.code) == (504, "UpstreamTimeout")
    assert failed.value.headers["Retry-After"] == "1"  # it has lapsed: try again at once
    assert 1 < store.tries < 10  # a try per wait: 20, 50, 100, 200 ms, until 1 s is left


def test_a_create_sent_holds_the_application_for_the_hold_from_the_send() -> None:
    """EIAM may still be making the secret after the attempt stopped waiting: from each send,
    the application stays held for `hold_ms` (two deadlines), past the attempt's own lapse,
    with what was listed before."""
    store = MemoryStore()
    clock = [1_000_000]
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    key = lease_key("idaas_demo", "app_empty")
    lease = ApplicationLease(
        store, key, Holder("p:key", once.request_hash(request)), 3200, now_ms=lambda: clock[0]
    )
    assert lease.acquire(Deadline(1.6)) is None
    clock[0] += 500
    lease.note_before(("sec-1",))
    held = store.get(key)
    assert held is not None
    assert (held.lapse_at_ms, held.before_secret_ids) == (1_000_000 + 500 + 3200, ("sec-1",))


def test_a_retry_that_adopts_its_own_lost_create_frees_the_application_at_once() -> None:
    """The key's earlier attempt lost its create's answer and kept the application; its retry
    finds the secret it made before that hold lapsed and adopts it: the application is free
    for the next create at once, not held until the lapse."""
    store = MemoryStore()
    now = 1_000_000
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    holder = Holder("p:key", once.request_hash(request))
    key = lease_key("idaas_demo", "app_empty")
    store.put_if_absent(key, _lease_held_by(holder, "earlier-attempt", now + 3000, ("sec-1",)))
    journal = once.Journal(ApplicationLease(store, key, holder, 3200, now_ms=lambda: now), None)
    prior = journal.acquire(Deadline(1.6))
    assert prior == Prior(before=("sec-1",), holder=holder, mine=True, lapsed=False)
    journal.note_created("sec-2")  # what the listing found new
    assert store.get(key) is None


@pytest.mark.parametrize("unsettled", [False, True])
def test_a_lease_whose_store_is_down_says_so_and_lapses(
    caplog: pytest.LogCaptureFixture, unsettled: bool
) -> None:
    """The store goes down while an attempt holds the application: giving it back (or handing
    it on, with a dead attempt's create still to settle) fails, and the log says so."""
    server = PersistentRedis(redis_binary())
    try:
        server.start()
        store = open_store(server.url)
        request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
        holder = Holder("p:key", once.request_hash(request))
        key = lease_key("idaas_demo", "app_empty")
        if unsettled:
            plant_a_dead_create(server.url, "acs:ram::1:user/other", "k", ["sec-1"])
        lease = ApplicationLease(store, key, holder, 3200, now_ms=_wall_ms)
        assert (lease.acquire(Deadline(1.6)) is not None) is unsettled
        server.kill()
        lease.release()
    finally:
        server.stop()
    said = [r.getMessage() for r in caplog.records if r.name == "vend"]
    assert said == [
        "create: could not hand on the application's lease; it lapses"
        if unsettled
        else "create: could not release the application's lease; it lapses by itself"
    ]


def _claimed_now() -> IdempotencyRecord:
    """The key's record as this attempt claimed it just now, for its 1.6 s."""
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    now = _wall_ms()
    return IdempotencyRecord(
        status="in_progress",
        request_hash=once.request_hash(request),
        token="mine",
        lapse_at_ms=now + 1600,
        created_at_ms=now,
    )


def test_a_claim_that_cannot_reach_its_store_names_the_failure() -> None:
    """Claiming the key, or reading it again, with the store down: 502, and the audit names
    the store's failure (its code, and how many times the command was sent)."""
    mine = _claimed_now()
    store = open_store(f"redis://127.0.0.1:{free_port()}/0")
    held = once.Claim(store, "p:key", mine)
    for failing in (held.current, lambda: once.claim(store, "p:key", mine.request_hash, 1600)):
        with pytest.raises(VendError) as down:
            failing()
        assert (down.value.status, down.value.upstream_code, down.value.attempts) == (
            502,
            "ConnectionError",
            2,  # a refused connection is sent once more
        )


class _GoesDownBeforeTheTakeOver(_Beside):
    """The memory store, which times out on the first conditional replace (as a Redis that
    stopped answering between two commands would)."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def replace_if_token(
        self, key: str, expected_token: str, record: IdempotencyRecord, ttl_s: int = DEFAULT_TTL_S
    ) -> bool:
        raise StoreUnavailable("idempotency store down", code="TimeoutError", attempts=1)


def test_a_claim_whose_store_goes_down_before_it_takes_over_names_the_failure() -> None:
    store = MemoryStore()
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    lapsed = _lapsed_claim(request)
    store.put_if_absent("k", lapsed)
    failing = _GoesDownBeforeTheTakeOver(store)
    with pytest.raises(VendError) as down:
        once.claim(failing, "k", lapsed.request_hash, 1600, now_ms=lambda: 1_000_001)
    assert (down.value.status, down.value.upstream_code, down.value.attempts) == (
        502,
        "TimeoutError",
        1,
    )
    assert store.get("k") == lapsed


def test_a_lease_that_cannot_reach_its_store_names_the_failure() -> None:
    """Taking the application with the store down, or with the store going down before the
    take-over of a lapsed lease: 502, and the audit names the store's failure."""
    holder = Holder("p:key", "1" * 64)
    key = lease_key("idaas_demo", "app_empty")
    down = open_store(f"redis://127.0.0.1:{free_port()}/0")
    with pytest.raises(VendError) as refused:
        ApplicationLease(down, key, holder, 3200, now_ms=_wall_ms).acquire(Deadline(1.6))
    assert (refused.value.status, refused.value.upstream_code, refused.value.attempts) == (
        502,
        "ConnectionError",
        2,
    )
    store = MemoryStore()
    store.put_if_absent(key, _lease_held_by(OTHER, "other-attempt", 999_000))
    going = ApplicationLease(
        _GoesDownBeforeTheTakeOver(store), key, holder, 3200, now_ms=lambda: 1_000_000
    )
    with pytest.raises(VendError) as refused:
        going.acquire(Deadline(1.6))
    assert (refused.value.status, refused.value.upstream_code, refused.value.attempts) == (
        502,
        "TimeoutError",
        1,
    )


def test_the_store_keeps_a_lease_that_noted_nothing_a_minute_past_the_deadline() -> None:
    """An attempt that took the application and died before it noted a create: its lease is
    gone a minute after the deadline (whole seconds, rounded down), not kept for a day."""
    clock = [5_000.0]
    store = MemoryStore(lambda: clock[0])
    key = lease_key("idaas_demo", "app_empty")
    lease = ApplicationLease(store, key, Holder("p:key", "1" * 64), 3200, now_ms=lambda: 1_000_000)
    assert lease.acquire(Deadline(2.0, clock=lambda: 0.0)) is None
    clock[0] += 61.9  # 2 s and a minute, less a tenth
    assert store.get(key) is not None
    clock[0] += 0.1
    assert store.get(key) is None


def test_a_claim_whose_store_is_down_says_so_and_lapses(caplog: pytest.LogCaptureFixture) -> None:
    """The store goes down after the key was claimed: recording the secret made, or freeing the
    key, fails; the log says which key (the claim lapses by itself)."""
    mine = _claimed_now()
    held = once.Claim(open_store(f"redis://127.0.0.1:{free_port()}/0"), "p:key", mine)
    assert held.note_created("sec-new") is False
    held.release()
    assert [r.getMessage() for r in caplog.records if r.name == "vend"] == [
        "idempotency: could not record the created secret (key p:key)",
        "idempotency: could not release key p:key; it lapses by itself",
    ]


def test_a_dead_attempts_secret_is_not_recorded_while_the_store_is_down(
    caplog: pytest.LogCaptureFixture,
) -> None:
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    holder = Holder("p:dead-key", once.request_hash(request))
    down = open_store(f"redis://127.0.0.1:{free_port()}/0")
    assert once.record_for(down, holder, "sec-orphan") is False
    said = [r.getMessage() for r in caplog.records if r.name == "vend"]
    assert said == ["idempotency: could not record secret sec-orphan for its key"]


def _created(secret_id: str, request: CreateRequest | None = None) -> IdempotencyRecord:
    now = int(time.time() * 1000)
    return IdempotencyRecord(
        status="created",
        request_hash=once.request_hash(
            request or CreateRequest(instance_id="idaas_demo", application_id="app_empty")
        ),
        token="recorded",
        lapse_at_ms=now,
        created_at_ms=now,
        secret_id=secret_id,
    )


def test_a_dead_attempts_key_that_names_another_secret_keeps_it(
    stack: Stack, store_url: str
) -> None:
    """The dead attempt's key already names another secret: the orphan is recorded for no one
    (and the log says so), and the key keeps answering with the secret it names."""
    first = stack.operator_create("app_empty")
    dead_key = _key()
    plant_a_dead_create(store_url, BILLING_ARN, dead_key, stack.secret_ids("app_empty"))
    store, store_key = open_store(store_url), once.store_key(BILLING_ARN, dead_key)
    store.delete_if_token(store_key, "dead-attempt")
    store.put_if_absent(store_key, _created(first))
    orphan = _operator_made(stack)
    with pytest.raises(VendApiError) as full:  # first and the orphan: the quota of two is met
        stack.client().create("idaas_demo", "app_empty", idempotency_key=_key())
    assert full.value.code == "QuotaExceeded"
    assert f"secret {orphan.secret_id} was made by a create" in stack.logs.text()
    assert NO_CLAIM in stack.logs.text()
    again = stack.client().create("idaas_demo", "app_empty", idempotency_key=dead_key)
    assert again.secret_id == first


def test_a_dead_attempts_key_that_now_serves_another_request_is_not_given_its_secret(
    stack: Stack, store_url: str
) -> None:
    """The dead attempt's key was since used for another request (its record names another
    hash): the orphan is recorded for no one, and the key keeps answering for that request."""
    dead_key = _key()
    plant_a_dead_create(store_url, BILLING_ARN, dead_key, stack.secret_ids("app_empty"))
    store = open_store(store_url)
    store_key = once.store_key(BILLING_ARN, dead_key)
    store.delete_if_token(store_key, "dead-attempt")
    other_request = CreateRequest(instance_id="idaas_demo", application_id="app_billing")
    elsewhere = _created("sec-elsewhere", other_request)
    store.put_if_absent(store_key, elsewhere)
    orphan = _operator_made(stack)
    stack.client().create("idaas_demo", "app_empty", idempotency_key=_key())
    assert store.get(store_key) == elsewhere
    assert NO_CLAIM in stack.logs.text()
    with pytest.raises(VendApiError) as reused:
        stack.client().create("idaas_demo", "app_empty", idempotency_key=dead_key)
    assert reused.value.code == "IdempotencyKeyReused"
    assert orphan.secret_id in stack.secret_ids("app_empty")


def test_two_secrets_that_appeared_under_a_dead_attempts_lease_go_to_no_key(
    stack: Stack, store_url: str
) -> None:
    """Two secrets appeared while a dead attempt held the application: at most one is its own,
    and which cannot be told. Neither is recorded for its key (the log names both), and its
    retry answers with neither."""
    dead_key = _key()
    plant_a_dead_create(store_url, BILLING_ARN, dead_key, stack.secret_ids("app_empty"))
    made = [_operator_made(stack).secret_id for _ in range(2)]  # the quota of two is met
    other_key = _key()
    with pytest.raises(VendApiError) as full:
        stack.client().create("idaas_demo", "app_empty", idempotency_key=other_key)
    assert full.value.code == "QuotaExceeded"
    assert (
        f"create: 2 secrets appeared on one application while a create held it ({made[0]}, "
        f"{made[1]}): some were made outside this service, so none is adopted"
    ) in stack.logs.text()
    assert NO_CLAIM not in stack.logs.text()
    # That refused create gave the application back: nothing of its is left to settle, so a
    # secret made outside the service since is no one's (its retry is refused, not given it).
    _operator_delete(stack, made[0])
    outside = _operator_made(stack).secret_id
    with pytest.raises(VendApiError) as again:
        stack.client().create("idaas_demo", "app_empty", idempotency_key=other_key)
    assert again.value.code == "QuotaExceeded"
    with pytest.raises(VendApiError) as retried:
        stack.client().create("idaas_demo", "app_empty", idempotency_key=dead_key)
    assert retried.value.code == "QuotaExceeded"
    assert sorted(stack.secret_ids("app_empty")) == sorted([made[1], outside])


def test_a_lost_create_whose_listing_then_fails_names_the_secrets_from_before(
    stack: Stack,
) -> None:
    """EIAM acts and its answer is lost; the listing that would tell then fails too: nothing is
    proven, so the error says a secret may have been made, why it cannot be told, and which
    secrets the application held before."""
    first = stack.operator_create("app_empty")
    _faults(stack, LOST_AFTER_HALF_A_SECOND)
    failed: list[VendApiError] = []

    def create() -> None:
        with pytest.raises(VendApiError) as info:
            stack.client().create("idaas_demo", "app_empty", idempotency_key=_key())
        failed.append(info.value)

    sender = threading.Thread(target=create)
    sender.start()
    assert wait_until(
        lambda: len(stack.emulator.emulator.params("CreateApplicationClientSecret")) == 2,
        seconds=5,
    )  # the operator's, then ours, held in EIAM: the listings after it fail
    _faults(
        stack,
        {"action": "ListApplicationClientSecrets", "status": 503, "code": "ServiceUnavailable"},
    )
    sender.join()
    (err,) = failed
    assert err.message.endswith(
        "; a secret may have been created, and listing the application's secrets to find out "
        f"failed (secrets before: {first})"
    )


def test_an_adopted_secret_whose_obtain_is_throttled_is_named_with_its_retry_after(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed
) -> None:
    """A create's answer is lost, and the listing after it shows the one secret it made. Two
    new STS sessions fit (to list, to create); the third, to obtain that secret, is over the
    rate: the answer names the secret that was made and keeps STS's Retry-After."""
    env = {"VEND_ASSUME_ROLE_RATE": "0.01,2"}
    with running_stack(monkeypatch, demo_seed, env=env) as running:
        before = running.secret_ids("app_empty")
        _faults(
            running,
            {
                "action": "CreateApplicationClientSecret",
                "phase": "after",
                "status": 503,
                "code": "ServiceUnavailable",
                "times": 1,
            },
        )
        resp = requests.post(
            f"{running.api.url}/v1/secrets/create",
            json={"instance_id": "idaas_demo", "application_id": "app_empty"},
            headers={
                "Authorization": running.client(sdk.BILLING).authorization(),
                "Idempotency-Key": "rate-obtain-1",
            },
            timeout=30,
        )
        made = [s for s in running.secret_ids("app_empty") if s not in before]
    assert len(made) == 1
    assert resp.status_code == 429, resp.text
    error = resp.json()["error"]
    assert error["code"] == "Throttled"
    assert error["message"].endswith(f"(the new secret {made[0]} was created; obtain it by its ID)")
    assert int(resp.headers["Retry-After"]) >= 1


def test_a_lost_create_after_which_two_secrets_appeared_returns_neither(stack: Stack) -> None:
    """The service's create is answered 503 after EIAM made its secret, and meanwhile the
    operator made another: which one is the service's cannot be told, so the answer is 502
    UpstreamError naming both, the audit blames EIAM, and no third secret is made."""
    _faults(stack, LOST_AFTER_HALF_A_SECOND)
    answers: list[requests.Response] = []

    def create() -> None:
        answers.append(
            requests.post(
                f"{stack.api.url}/v1/secrets/create",
                json={"instance_id": "idaas_demo", "application_id": "app_empty"},
                headers={
                    "Authorization": stack.client().authorization(),
                    "Idempotency-Key": _key(),
                },
                timeout=30,
            )
        )

    sender = threading.Thread(target=create)
    sender.start()
    assert wait_until(
        lambda: len(stack.emulator.emulator.params("CreateApplicationClientSecret")) == 1,
        seconds=5,
    )  # ours, held in EIAM
    outside = stack.operator_create("app_empty")
    sender.join()
    (resp,) = answers
    assert resp.status_code == 502, resp.text
    error = resp.json()["error"]
    assert error["code"] == "UpstreamError"
    made = stack.secret_ids("app_empty")
    assert len(made) == 2 and outside in made
    assert error["message"].endswith(
        f"2 secrets appeared since it was sent ({', '.join(made)}): which one it made cannot be "
        "told, so none is returned and none is created again; see ListApplicationClientSecrets"
    )
    record = _audited(stack, resp.headers["X-Request-Id"])
    assert (record["outcome"], record["upstream"]) == ("UpstreamError", "eiam")


def _post_create(stack: Stack, key: str, **body: object) -> requests.Response:
    return requests.post(
        f"{stack.api.url}/v1/secrets/create",
        json={"instance_id": "idaas_demo", "application_id": "app_empty", **body},
        headers={"Authorization": stack.client().authorization(), "Idempotency-Key": key},
        timeout=30,
    )


def test_a_lost_create_with_an_expiration_adopts_the_secret_it_made(stack: Stack) -> None:
    """The create asked for an expiration time and its answer was lost: the secret that
    appeared carries that time, so it is this create's, and is returned."""
    expires = int(time.time() * 1000) + 30 * 86_400_000
    _faults(
        stack,
        {
            "action": "CreateApplicationClientSecret",
            "phase": "after",
            "status": 503,
            "code": "ServiceUnavailable",
            "times": 1,
        },
    )
    resp = _post_create(stack, _key(), expiration_time=expires)
    assert resp.status_code == 200, resp.text
    assert resp.json()["expiration_time"] == expires
    assert stack.secret_ids("app_empty") == [resp.json()["secret_id"]]


def test_a_dead_create_that_asked_no_expiration_adopts_the_secret_whatever_its_time(
    stack: Stack, store_url: str
) -> None:
    """A dead attempt that asked for no expiration time: the one secret that appeared since is
    its create's, whatever expiration EIAM gave it (only a time it asked for tells a secret
    apart)."""
    key = _key()
    plant_a_dead_create(store_url, BILLING_ARN, key, stack.secret_ids("app_empty"))
    expires = int(time.time() * 1000) + 30 * 86_400_000
    orphan = (
        stack.operator_eiam()
        .create_application_client_secret(
            eiam_models.CreateApplicationClientSecretRequest(
                instance_id="idaas_demo", application_id="app_empty", expiration_time=expires
            )
        )
        .body.application_client_secret
    )
    recovered = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert recovered.secret_id == orphan.secret_id.strip()
    assert recovered.expiration_time == expires
    assert stack.secret_ids("app_empty") == [recovered.secret_id]


def test_a_dead_create_that_asked_an_expiration_does_not_adopt_a_secret_without_it(
    stack: Stack, store_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A dead attempt asked for an expiration time; the one secret that appeared since has
    none: it was made outside this service, so the key's retry does not return it (502, and
    a WARNING names it), and it is not the key's for ever after."""
    key = _key()
    expires = int(time.time() * 1000) + 30 * 86_400_000
    plant_a_dead_create(
        store_url, BILLING_ARN, key, stack.secret_ids("app_empty"), expiration_time=expires
    )
    outside = stack.operator_create("app_empty")
    with caplog.at_level(logging.WARNING, logger="vend"):
        resp = _post_create(stack, key, expiration_time=expires)
    assert resp.status_code == 502, resp.text
    error = resp.json()["error"]
    assert error["code"] == "UpstreamError"
    assert error["message"] == (
        f"a create's answer was lost and the secret that appeared since ({outside}) carries "
        "another expiration time: it was made outside this service, so it is not returned; "
        "retry to create one"
    )
    warned = [r for r in caplog.records if f"secret {outside} appeared" in r.getMessage()]
    assert warned and {r.levelno for r in warned} == {logging.WARNING}
    assert warned[0].getMessage() == (
        f"create: secret {outside} appeared on the application while this create held it, "
        "with another expiration time: made outside this service, not adopted"
    )
    record = _audited(stack, resp.headers["X-Request-Id"])
    assert (record["outcome"], record["upstream"]) == ("UpstreamError", "eiam")
    assert stack.secret_ids("app_empty") == [outside]


class _SettledWhileWaiting(_Beside):
    """The memory store, where another instance settles `key`'s lost create (records
    `secret_id` for it, as `record_for` does) at the moment this attempt first asks for the
    application's lease: after this attempt claimed its key, before it holds the application."""

    def __init__(self, store: MemoryStore, lease: str, key: str, secret_id: str) -> None:
        self.store, self.lease, self.key, self.secret_id = store, lease, key, secret_id
        self.settled = False

    def put_if_absent(
        self, key: str, record: IdempotencyRecord, ttl_s: int = DEFAULT_TTL_S
    ) -> IdempotencyRecord | None:
        if key == self.lease and not self.settled:
            self.settled = True
            claimed = self.store.get(self.key)
            assert claimed is not None and claimed.status == "in_progress"
            done = claimed.model_copy(update={"status": "created", "secret_id": self.secret_id})
            assert self.store.replace_if_token(self.key, claimed.token, done, ttl_s)
        return self.store.put_if_absent(key, record, ttl_s)


def test_a_key_settled_while_its_attempt_waited_for_the_application_is_not_created_again() -> None:
    """This attempt claimed its key; before it held the application, another instance found the
    key's earlier lost create and recorded its secret under the key. The attempt answers with
    that secret and sends no create: one key, one secret."""
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    lease = lease_key("idaas_demo", "app_empty")
    store = _SettledWhileWaiting(MemoryStore(), lease, "p:key", "sec-settled")
    key, done = once.claim(store, "p:key", once.request_hash(request), 3200)
    assert key is not None and done is None
    journal = once.Journal(ApplicationLease(store, lease, key.holder, 3200, now_ms=_wall_ms), key)
    upstream = _StandInEiam(listed=("sec-settled",))
    got = create_at_most_once(upstream.bound(), journal, Deadline(1.6))
    assert store.settled
    assert got.secret_id == "sec-settled"
    assert upstream.sent == ["obtain sec-settled"]


@dataclass
class _StandInEiam:
    """EIAM for the create's own logic: what it lists, and each call it was sent."""

    listed: tuple[str, ...] = ()
    sent: list[str] = field(default_factory=list)
    lost: MaybeActed | None = None  # what every create raises, if anything
    clock: list[float] = field(default_factory=lambda: [0.0])  # a create takes `create_s` of it
    create_s: float = 0.0

    def info(self, secret_id: str) -> SecretInfo:
        return SecretInfo(
            upstream_request_id=None,
            instance_id="idaas_demo",
            application_id="app_empty",
            client_id="app_empty",
            secret_id=secret_id,
            status="enabled",
            expiration_time=None,
            last_used_time=None,
            client_secret="CS-not-a-real-one",
        )

    def bound(self) -> Eiam:
        def list_ids() -> tuple[str, ...]:
            self.sent.append("list")
            return self.listed

        def create() -> SecretInfo:
            self.sent.append("create")
            self.clock[0] += self.create_s
            if self.lost is not None:
                raise self.lost
            return self.info("sec-new")

        def obtain(secret_id: str) -> SecretInfo:
            self.sent.append(f"obtain {secret_id}")
            return self.info(secret_id)

        return Eiam(list_ids=list_ids, create=create, obtain=obtain)


def test_the_first_send_goes_however_little_of_the_deadline_is_left() -> None:
    """Only a create sent again after a lost answer needs time left for what follows; the first
    is sent whatever remains (its call keeps to the deadline itself)."""
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    store = MemoryStore()
    key, _ = once.claim(store, "p:key", once.request_hash(request), 3200)
    assert key is not None
    lease = ApplicationLease(
        store, lease_key("idaas_demo", "app_empty"), key.holder, 3200, now_ms=_wall_ms
    )
    upstream = _StandInEiam()
    deadline = Deadline(MIN_SEND_S / 2)
    got = create_at_most_once(upstream.bound(), once.Journal(lease, key), deadline)
    assert got.secret_id == "sec-new"
    assert upstream.sent == ["list", "create"]


def _journal(store: MemoryStore) -> once.Journal:
    request = CreateRequest(instance_id="idaas_demo", application_id="app_empty")
    key, _ = once.claim(store, "p:key", once.request_hash(request), 3200)
    assert key is not None
    lease = ApplicationLease(
        store, lease_key("idaas_demo", "app_empty"), key.holder, 3200, now_ms=_wall_ms
    )
    return once.Journal(lease, key)


def test_a_create_answered_with_an_error_is_not_sent_again_without_time_for_it() -> None:
    """EIAM answered the create with a 503 (it may have acted) and the listing shows nothing
    new; too little of the deadline is left to send it again: nothing was made, and the error
    says so."""
    upstream = _StandInEiam(
        lost=MaybeActed(502, "UpstreamError", "EIAM failed", service="EIAM", settled=True),
        create_s=0.15,
    )
    deadline = Deadline(0.3, clock=lambda: upstream.clock[0])
    with pytest.raises(VendError) as failed:
        create_at_most_once(upstream.bound(), _journal(MemoryStore()), deadline)
    assert (failed.value.status, failed.value.code) == (502, "UpstreamError")
    assert failed.value.message == "EIAM failed; no secret was created"
    assert failed.value.service == "EIAM"  # the audit record names the upstream
    assert upstream.sent == ["list", "create", "list"]


def test_a_create_without_an_answer_names_the_secrets_from_before() -> None:
    """The create timed out (EIAM may still be making the secret) and the listing after it
    shows nothing new yet: the error says so, naming what the application held before."""
    upstream = _StandInEiam(
        listed=("sec-old",),
        lost=MaybeActed(504, "UpstreamTimeout", "EIAM timed out", service="EIAM", settled=False),
    )
    with pytest.raises(VendError) as failed:
        create_at_most_once(upstream.bound(), _journal(MemoryStore()), Deadline(1.6))
    assert failed.value.message == (
        "EIAM timed out; a secret may have been created, and EIAM may still be creating it "
        "(secrets before: sec-old)"
    )
    assert upstream.sent == ["list", "create", "list"]


def test_an_attempt_that_lost_the_application_while_listing_sends_no_create() -> None:
    """While this attempt listed, its hold on the application lapsed and another attempt took
    it over: it sends no create (the other may be sending its own), and says why."""
    store = MemoryStore()
    upstream = _StandInEiam()
    bound = upstream.bound()
    application = lease_key("idaas_demo", "app_empty")

    def list_and_lose_the_application() -> tuple[str, ...]:
        held = store.get(application)
        assert held is not None
        taken = held.model_copy(update={"token": "another-attempt"})
        assert store.replace_if_token(application, held.token, taken)
        return bound.list_ids()

    eiam = replace(bound, list_ids=list_and_lose_the_application)
    with pytest.raises(VendError) as failed:
        create_at_most_once(eiam, _journal(store), Deadline(1.6))
    assert (failed.value.status, failed.value.code, failed.value.message) == (
        504,
        "UpstreamTimeout",
        "this request's hold on the application lapsed before its create was sent",
    )
    assert upstream.sent == ["list"]


def test_a_keyed_create_on_a_full_redis_is_a_store_error_and_creates_nothing(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed
) -> None:
    """The store is a Redis at maxmemory under `noeviction`, which refuses every write: the
    keyed create is refused as the store's failure (502, the audit names the store and OOM),
    nothing is sent to EIAM, and it is not a bug (500)."""
    settings = ("--maxmemory", "1", "--maxmemory-policy", "noeviction")
    with RedisServer(redis_binary(), *settings) as server:
        env = {"VEND_IDEMPOTENCY_URL": server.url}
        with running_stack(monkeypatch, demo_seed, env=env) as running:
            before = running.secret_ids("app_empty")
            resp = _post_create(running, "full-store-1")
            assert running.calls("CreateApplicationClientSecret") == []
            assert running.secret_ids("app_empty") == before
            record = _audited(running, resp.headers["X-Request-Id"])
    assert resp.status_code == 502, resp.text
    error = resp.json()["error"]
    assert (error["code"], error["message"]) == (
        "UpstreamError",
        "the idempotency store is unavailable",
    )
    assert (record["upstream"], record["upstream_code"]) == ("store", "OOM")
