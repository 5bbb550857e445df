"""A world to rotate in: the demo world, plus applications to rotate and a policy that lets the
demo caller `billing` rotate them, and the service over real HTTP (functions.custom_runtime's
WSGI app on waitress) built from the environment with rotation's clock reading the emulator's,
so that a test moves the whole world's time through the emulator's admin API.

Applications (instance idaas_demo), each seeded with one enabled secret that never expires:
- app_billing (the demo's, sct_billing_1) and ROTATED (app_rot_0 ...): billing may take every
  step;
- app_partial: billing may create (and obtain), but neither disable nor delete;
- app_reports: reports may obtain only, no step at all.
All of them are in VEND_ROTATION (lifetime LIFETIME_DAYS, grace GRACE_MINUTES) but app_empty."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
import sdk_clients as sdk
from alibabacloud_eiam20211201 import models as eiam_models
from stack import DEMO_POLICY, DEMO_SEED, Records

from functions.custom_runtime import ApiApp
from functions.wsgi_server import WsgiServer
from infra.emulator import EmulatorServer, Seed, parse_seed
from infra.local.cli import local_environment
from shared import composition_root
from shared.idempotency.memory import process_memory_store
from shared.lifecycle.current import Secret, current_of
from shared.vend import Vendor
from vend_client import Credentials, VendClient
from vend_client import parse_endpoint as endpoint

INSTANCE = sdk.INSTANCE
LIFETIME_DAYS = 30
GRACE_MINUTES = 60
GRACE_S = GRACE_MINUTES * 60
RENEW_S = LIFETIME_DAYS * 86400 // 4  # max(lifetime / 4, 3 grace)
ROTATED = tuple(f"app_rot_{i}" for i in range(6))
PARTIAL = "app_partial"
LISTED = ("app_billing", PARTIAL, "app_reports", *ROTATED)
DISABLE = "DisableApplicationClientSecret"
DELETE = "DeleteApplicationClientSecret"
CREATE = "CreateApplicationClientSecret"
LIST = "ListApplicationClientSecrets"
OBTAIN = "ObtainApplicationClientSecret"
TOKEN_PATH = "/api/v2/iauths_system/oauth2/token"


def rotation_seed(demo_seed: Seed) -> Seed:
    """The demo world (with the deployed RAM policies) plus app_partial and ROTATED, each with
    one secret that never expires, and the vending role allowed to disable and delete secrets
    in the instance, as rotation's deployment grants it."""
    data = demo_seed.model_dump(mode="json")
    (instance,) = [i for i in data["eiam_instances"] if i["instance_id"] == INSTANCE]
    for app in (PARTIAL, *ROTATED):
        instance["applications"].append(
            {
                "application_id": app,
                "secrets": [
                    {"secret_id": f"sct_{app}_seed", "client_secret": f"CSseed{app}0000000000"}
                ],
            }
        )
    (role,) = [r for r in data["roles"] if r["name"] == "vend-eiam"]
    role["policies"].append(
        sdk.allow(
            [f"eiam:{DISABLE}", f"eiam:{DELETE}"],
            f"acs:eiam:{sdk.REGION}:{sdk.ACCOUNT}:instance/{INSTANCE}/application/*",
        )
    )
    return parse_seed(data)


def rotation_policy(path: Path) -> Path:
    """The demo policy, plus: billing may take every step on app_billing and ROTATED, and
    create (only) on app_partial."""
    policy = json.loads(DEMO_POLICY.read_text())
    billing = f"acs:ram::{sdk.ACCOUNT}:user/billing"
    policy["Statement"] += [
        {
            "Sid": "billing-rotates",
            "Effect": "Allow",
            "Principal": {"RAM": [billing]},
            "Action": [f"eiam:{a}" for a in (OBTAIN, CREATE, DISABLE, DELETE)],
            "Resource": [sdk.secret_arn(app, "*") for app in ("app_billing", *ROTATED)],
        },
        {
            "Sid": "billing-creates-only",
            "Effect": "Allow",
            "Principal": {"RAM": [billing]},
            "Action": [f"eiam:{OBTAIN}", f"eiam:{CREATE}"],
            "Resource": sdk.secret_arn(PARTIAL, "*"),
        },
    ]
    path.write_text(json.dumps(policy))
    return path


def rotation_setting(apps: tuple[str, ...] = LISTED) -> str:
    return json.dumps(
        [
            {
                "instance_id": INSTANCE,
                "application_id": app,
                "lifetime_days": LIFETIME_DAYS,
                "grace_minutes": GRACE_MINUTES,
            }
            for app in apps
        ]
    )


@dataclass
class RotationWorld:
    emulator: EmulatorServer
    api: WsgiServer
    audit: Records
    service: list[Vendor]  # the one the API serves with; restart() replaces it
    lapse_by_emulator: bool = False  # idempotency marks and leases lapse by the emulator's clock

    def restart(self) -> None:
        """A new instance of the service, as after a crash or a cold start: nothing cached (no
        STS session, no SDK client); the store and EIAM are as they were."""
        self.service[0] = build_service(self.emulator, self.lapse_by_emulator)

    @property
    def eiam(self) -> Any:
        return self.emulator.emulator.eiam

    def client(self, key: tuple[str, str] = sdk.BILLING) -> VendClient:
        return VendClient(
            url=self.api.url,
            audience="vend-local",
            credentials=Credentials(*key),
            sts_endpoint=endpoint(self.emulator.url),
            kms_endpoint=endpoint(self.emulator.url),
        )

    def rotate(
        self,
        app: str,
        *,
        dry_run: bool | None = None,
        key: tuple[str, str] = sdk.BILLING,
        timeout: float = 30,
    ) -> requests.Response:
        body: dict[str, Any] = {"instance_id": INSTANCE, "application_id": app}
        if dry_run is not None:
            body["dry_run"] = dry_run
        return requests.post(
            f"{self.api.url}/v1/secrets/rotate",
            data=json.dumps(body),
            headers={"Authorization": self.client(key).authorization()},
            timeout=timeout,
        )

    def now_ms(self) -> int:
        return int(self.emulator.emulator.clock.now_ms())

    def advance(self, seconds: float) -> None:
        """Time passes for the whole world (emulator and service), through the admin API."""
        done = requests.put(
            f"{self.emulator.url}/_emulator/clock", json={"advance_s": seconds}, timeout=10
        )
        assert done.status_code == 200, done.text

    def secrets(self, app: str) -> list[Secret]:
        """What EIAM holds, read in process (faults never touch it)."""
        with self.eiam.lock:
            held = self.eiam.state[INSTANCE][app].secrets.values()
            return sorted(
                (Secret(s.secret_id, s.status, s.expiration_time) for s in held),
                key=lambda s: s.secret_id,
            )

    def client_secret(self, app: str, secret_id: str) -> str:
        with self.eiam.lock:
            return str(self.eiam.state[INSTANCE][app].secrets[secret_id].client_secret)

    def token(self, app: str, secret_id: str) -> requests.Response:
        """An M2M access token from the instance's token endpoint, got with that secret."""
        with self.eiam.lock:
            client_id = self.eiam.state[INSTANCE][app].client_id
        return requests.post(
            f"{self.emulator.url}/{INSTANCE}{TOKEN_PATH}",
            data={"grant_type": "client_credentials"},
            auth=(client_id, self.client_secret(app, secret_id)),
            timeout=10,
        )

    def operator(self, action: str, app: str, secret_id: str) -> None:
        """Disable or Delete, as the operator, straight through the EIAM SDK."""
        request = getattr(eiam_models, f"{action}ApplicationClientSecretRequest")(
            instance_id=INSTANCE, application_id=app, secret_id=secret_id
        )
        client = sdk.eiam(self.emulator.endpoint, sdk.OPERATOR)
        getattr(client, f"{action.lower()}_application_client_secret")(request)

    def operator_create(self, app: str, expiration_time: int | None = None) -> str:
        request = eiam_models.CreateApplicationClientSecretRequest(
            instance_id=INSTANCE, application_id=app, expiration_time=expiration_time
        )
        client = sdk.eiam(self.emulator.endpoint, sdk.OPERATOR)
        made = client.create_application_client_secret(request).body.application_client_secret
        return str(made.secret_id).strip()

    def empty(self, app: str) -> None:
        for secret in self.secrets(app):
            self.operator("Delete", app, secret.secret_id)

    def faults(self, *faults: dict[str, Any]) -> None:
        requests.put(
            f"{self.emulator.url}/_emulator/faults", json=list(faults), timeout=5
        ).raise_for_status()

    def current(self, app: str) -> Secret | None:
        return current_of(self.secrets(app))

    def calls(self, action: str) -> int:
        return len(self.emulator.emulator.calls(action))

    def audit_of(self, request_id: str) -> list[dict[str, Any]]:
        records = [json.loads(r.getMessage()) for r in self.audit.records]
        return [r for r in records if r.get("request_id") == request_id]


@contextmanager
def rotation_world(
    monkeypatch: pytest.MonkeyPatch,
    seed: Seed,
    policy: Path,
    *,
    env: dict[str, str] | None = None,
    timeout_s: int = 15,
    lapse_by_emulator: bool = False,
) -> Iterator[RotationWorld]:
    """The emulator, and the service built from the environment with rotation's clock reading
    the emulator's (and with `lapse_by_emulator`, the clock its leases lapse by), over HTTP. A
    fresh memory store: no note of an earlier test."""
    with EmulatorServer(seed) as emulator:
        settings = {
            **local_environment(emulator.url, DEMO_SEED, policy),
            "VEND_ROTATION": rotation_setting(),
            **(env or {}),
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        process_memory_store().clear()
        service = [build_service(emulator, lapse_by_emulator)]
        audit = Records()
        audit_logger = logging.getLogger("vend.audit")
        audit_logger.addHandler(audit)
        try:
            with WsgiServer(ApiApp(lambda: service[0], timeout_s=timeout_s)) as api:
                yield RotationWorld(emulator, api, audit, service, lapse_by_emulator)
        finally:
            audit_logger.removeHandler(audit)


def build_service(emulator: EmulatorServer, lapse_by_emulator: bool = False) -> Vendor:
    """The service from the environment, rotation's clock reading the emulator's."""
    now_ms = emulator.emulator.clock.now_ms
    return composition_root.from_environment(
        now_ms=now_ms, lapse_now_ms=now_ms if lapse_by_emulator else None
    )


def wait_until(predicate: Any, seconds: float = 10) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False
