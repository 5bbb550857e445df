"""The whole service on localhost, as `vend local` runs it: the emulator, and the FC HTTP
handler behind the local FC bridge, configured through the environment."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import fc2
import pytest
import sdk_clients as sdk
from alibabacloud_eiam20211201 import models as eiam_models
from alibabacloud_eiam20211201.client import Client as EiamClient

from functions import events, http
from functions.wsgi_server import WsgiServer
from infra.emulator import EmulatorServer, Seed
from infra.local.cli import local_environment
from infra.local.fc_bridge import LocalFc
from shared import composition_root
from shared import idempotent_create as once
from shared.create_lease import lease_key
from shared.idempotency import IdempotencyRecord, open_store
from shared.idempotency.memory import process_memory_store
from shared.models import CreateRequest
from vend_client import Credentials, EventsClient, VendClient
from vend_client import parse_endpoint as endpoint

ROOT = Path(__file__).resolve().parent.parent
DEMO_POLICY = ROOT / "examples" / "policy.json"
DEMO_SEED = ROOT / "examples" / "seed.yaml"


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)


class LapseClock:
    """The clock the service's idempotency marks and application leases lapse by: the wall
    clock, moved on by `advance`, so that a test lets a mark lapse without waiting for it. (What
    the upstreams hold, they hold on the wall clock: a test still waits for a held create to
    land before it moves this one past the create's lapse.)"""

    def __init__(self) -> None:
        self.advanced_ms = 0

    def now_ms(self) -> int:
        return int(time.time() * 1000) + self.advanced_ms

    def advance(self, seconds: float) -> None:
        self.advanced_ms += int(seconds * 1000)


@dataclass
class Stack:
    emulator: EmulatorServer
    api: WsgiServer
    app: LocalFc
    audit: Records
    logs: Records
    lapse_clock: LapseClock | None = None

    def cold_start(self) -> None:
        """A new instance of the function, as after a cold start: every cached session and
        client new; built from the environment now, its lapses on this stack's clock."""
        composition_root.reset_instance()
        if self.lapse_clock is not None:
            now_ms = self.lapse_clock.now_ms
            composition_root.set_instance(composition_root.from_environment(lapse_now_ms=now_ms))

    def client(self, key: tuple[str, str] = sdk.BILLING, **kw: object) -> VendClient:
        fields: dict[str, object] = {
            "url": self.api.url,
            "audience": "vend-local",
            "credentials": Credentials(*key),
            "sts_endpoint": endpoint(self.emulator.url),
            "kms_endpoint": endpoint(self.emulator.url),
        }
        fields.update(kw)
        return VendClient(**fields)  # type: ignore[arg-type]

    def caller_environment(
        self, key: tuple[str, str] = sdk.BILLING, **extra: str
    ) -> dict[str, str]:
        """A caller's process environment as the README has a user set it for this stack (the
        test's own VEND_* and ALIBABA_CLOUD_* left out), plus `extra`."""
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_"))
        }
        return {
            **base,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": key[0],
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": key[1],
            "VEND_URL": self.api.url,
            "VEND_AUDIENCE": "vend-local",
            "VEND_STS_ENDPOINT": self.emulator.url,
            "VEND_KMS_ENDPOINT": self.emulator.url,
            **extra,
        }

    def fc(self, key: tuple[str, str] = sdk.BILLING, token: str | None = None) -> fc2.Client:
        """An unchanged fc2 client, pointed at the local FC invoke API."""
        return fc2.Client(
            endpoint=self.api.url,
            accessKeyID=key[0],
            accessKeySecret=key[1],
            securityToken=token or "",
        )

    def events(self, key: tuple[str, str] = sdk.BILLING, **kw: object) -> EventsClient:
        return EventsClient(self.client(key, **kw), self.fc(key), service="vend")

    def secret_ids(self, app: str) -> list[str]:
        """What EIAM holds for an application, asked as the operator, straight from the SDK."""
        request = eiam_models.ListApplicationClientSecretsRequest(
            instance_id=sdk.INSTANCE, application_id=app
        )
        body = self.operator_eiam().list_application_client_secrets(request).body
        return [s.secret_id for s in body.application_client_secrets]

    def operator_create(self, app: str) -> str:
        """A secret created by the operator, straight through the SDK: not by this service."""
        request = eiam_models.CreateApplicationClientSecretRequest(
            instance_id=sdk.INSTANCE, application_id=app
        )
        body = self.operator_eiam().create_application_client_secret(request).body
        return str(body.application_client_secret.secret_id).strip()

    def operator_eiam(self) -> EiamClient:
        """The EIAM SDK client of the demo world's operator, who may do anything in EIAM."""
        return sdk.eiam(self.emulator.endpoint, sdk.OPERATOR)

    def invoke_idle(self, seconds: float) -> bool:
        """Waits until no async invocation is pending (or retrying)."""
        invoke = self.app.invoke
        assert invoke is not None
        return invoke.wait_idle(seconds)

    def calls(self, action: str) -> list[tuple[str, str, str]]:
        return self.emulator.emulator.calls(action)


@contextmanager
def running_stack(
    monkeypatch: pytest.MonkeyPatch,
    seed: Seed,
    *,
    timeout_s: int = 15,
    env: dict[str, str] | None = None,
    lapse_clock: LapseClock | None = None,
) -> Iterator[Stack]:
    """`lapse_clock`: the service's marks and leases lapse by it (by the wall clock without)."""
    with EmulatorServer(seed) as emulator:
        for name, value in {
            **local_environment(emulator.url, DEMO_SEED, DEMO_POLICY),
            **(env or {}),
        }.items():
            monkeypatch.setenv(name, value)
        composition_root.reset_instance()  # a fresh instance, as after a cold start
        process_memory_store().clear()  # and a fresh world: no lease or key of an earlier test
        audit, logs = Records(), Records()
        audit_logger = logging.getLogger("vend.audit")
        root = logging.getLogger()
        root.addHandler(logs)
        old_level = root.level
        root.setLevel(logging.DEBUG)
        audit_logger.addHandler(audit)
        app = LocalFc(
            http.handler,
            region=None,
            account_id=None,
            timeout_s=timeout_s,
            events_handler=events.handler,
            keys=emulator.emulator.account.key_secret,
        )
        try:
            with WsgiServer(app) as api:
                stack = Stack(emulator, api, app, audit, logs, lapse_clock)
                if lapse_clock is not None:
                    stack.cold_start()
                yield stack
        finally:
            composition_root.reset_instance()  # none of this stack's outlives it
            audit_logger.removeHandler(audit)
            root.removeHandler(logs)
            root.setLevel(old_level)


def plant_a_dead_create(
    store_url: str,
    principal: str,
    key: str,
    before: list[str],
    expiration_time: int | None = None,
) -> None:
    """The state a process leaves when it dies right after EIAM created: its key's in-progress
    record, and the application's lease naming that key with the secrets from before, both
    past their lapse: as `principal` sent a create of app_empty under `key` (asking for
    `expiration_time`, if given)."""
    request = CreateRequest(
        instance_id="idaas_demo", application_id="app_empty", expiration_time=expiration_time
    )
    store = open_store(store_url)
    now_ms = int(time.time() * 1000)
    planted = store.put_if_absent(
        once.store_key(principal, key),
        IdempotencyRecord(
            status="in_progress",
            request_hash=once.request_hash(request),
            token="dead-attempt",
            lapse_at_ms=now_ms - 1,
            created_at_ms=now_ms - 5000,
        ),
    )
    assert planted is None, "the key already had a record"
    planted = store.put_if_absent(
        lease_key("idaas_demo", "app_empty"),
        IdempotencyRecord(
            status="lease",
            request_hash=once.request_hash(request),
            token="dead-attempt-lease",
            lapse_at_ms=now_ms - 1,
            before_secret_ids=tuple(before),
            holder=once.store_key(principal, key),
            created_at_ms=now_ms - 5000,
        ),
    )
    assert planted is None, "the application already had a lease (left by an earlier test?)"
