"""VEND_ROTATION (shared.lifecycle.settings, through shared.config): the applications rotation
may step, with their lifetime and grace period; defaults, bounds, and a bad value stopping the
service with a message that names the variable and the entry."""

from __future__ import annotations

import json

import pytest
from stack import DEMO_POLICY

from shared.config import ConfigError, Settings
from shared.lifecycle.plan import DAY_MS, MINUTE_MS

BASE = {
    "VEND_REGION": "cn-hangzhou",
    "VEND_ACCOUNT_ID": "1234567890123456",
    "VEND_ROLE_ARN": "acs:ram::1234567890123456:role/vend-eiam",
    "VEND_KMS_KEY_ID": "key-default",
    "VEND_POLICY": str(DEMO_POLICY),
    "VEND_AUDIENCE": "vend-local",
}


def _settings(value: object) -> Settings:
    raw = value if isinstance(value, str) else json.dumps(value)
    return Settings.from_env({**BASE, "VEND_ROTATION": raw})


def _app(**fields: object) -> dict[str, object]:
    return {"instance_id": "idaas_demo", "application_id": "app_billing", **fields}


def test_unset_or_empty_rotates_nothing() -> None:
    assert Settings.from_env(BASE).rotation == {}
    assert _settings("").rotation == {}
    assert _settings("[]").rotation == {}


def test_an_entry_with_defaults_and_one_with_its_own() -> None:
    rotation = _settings(
        [_app(), _app(application_id="app_reports", lifetime_days=2, grace_minutes=360)]
    ).rotation
    default = rotation[("idaas_demo", "app_billing")]
    assert (default.lifetime_days, default.grace_minutes) == (90, 60)
    assert default.policy.lifetime_ms == 90 * DAY_MS
    assert default.policy.grace_ms == 60 * MINUTE_MS
    own = rotation[("idaas_demo", "app_reports")].policy
    assert (own.lifetime_ms, own.grace_ms) == (2 * DAY_MS, 360 * MINUTE_MS)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        pytest.param("{", "not JSON", id="not-json"),
        pytest.param({"instance_id": "i"}, "list", id="not-a-list"),
        pytest.param(
            [_app(), _app()], "entry 1: idaas_demo/app_billing is listed twice", id="twice"
        ),
        pytest.param(
            [_app(grace_minutes=4)], "entry 0: grace_minutes must be", id="grace-under-ttl"
        ),
        pytest.param([_app(grace_minutes=10081)], "grace_minutes", id="grace-over-a-week"),
        pytest.param([_app(grace_minutes=60.5)], "grace_minutes", id="grace-not-whole"),
        pytest.param([_app(lifetime_days=1)], "lifetime_days must be", id="lifetime-a-day"),
        pytest.param([_app(lifetime_days=1096)], "lifetime_days", id="lifetime-over-3y"),
        pytest.param([_app(lifetime_days="30")], "lifetime_days", id="lifetime-a-string"),
        pytest.param(
            [_app(lifetime_days=2, grace_minutes=361)], "at least 8 grace periods", id="ratio"
        ),
        pytest.param([_app(application_id="app/*")], "application_id must be", id="bad-id"),
        pytest.param([_app(secret_id="s")], "secret_id is not a known key", id="unknown-key"),
        pytest.param([{"instance_id": "i"}], "application_id is required", id="missing"),
        pytest.param(["app"], "must be an object", id="not-an-object"),
    ],
)
def test_a_bad_value_stops_the_service_naming_the_variable(value: object, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        _settings(value)
    assert str(info.value).startswith("VEND_ROTATION: ")
    assert says in str(info.value)
