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


GRACE_BOUNDS = "grace_minutes must be a whole number of minutes, 5 to 10080"
LIFETIME_BOUNDS = "lifetime_days must be a whole number of days, 2 to 1095"
ID_BOUNDS = "must be 1 to 64 characters of A-Z a-z 0-9 _ -"
NOT_AN_OBJECT = (
    "entry must be an object of instance_id, application_id, lifetime_days, grace_minutes"
)


@pytest.mark.parametrize(
    ("value", "says"),
    [
        pytest.param("{", "not JSON", id="not-json"),
        pytest.param({"instance_id": "i"}, "must be a JSON list of applications", id="not-a-list"),
        pytest.param(
            [_app(), _app()], "entry 1: idaas_demo/app_billing is listed twice", id="twice"
        ),
        pytest.param([_app(grace_minutes=4)], f"entry 0: {GRACE_BOUNDS}", id="grace-under-ttl"),
        pytest.param(
            [_app(grace_minutes=10081)], f"entry 0: {GRACE_BOUNDS}", id="grace-over-a-week"
        ),
        pytest.param([_app(grace_minutes=60.5)], f"entry 0: {GRACE_BOUNDS}", id="grace-not-whole"),
        pytest.param([_app(lifetime_days=1)], f"entry 0: {LIFETIME_BOUNDS}", id="lifetime-a-day"),
        pytest.param(
            [_app(lifetime_days=1096)], f"entry 0: {LIFETIME_BOUNDS}", id="lifetime-over-3y"
        ),
        pytest.param(
            [_app(lifetime_days="30")], f"entry 0: {LIFETIME_BOUNDS}", id="lifetime-a-string"
        ),
        pytest.param(
            [_app(lifetime_days=2, grace_minutes=361)],
            "entry 0: lifetime_days must be at least 8 grace periods (2 d < 8 x 361 min)",
            id="ratio",
        ),
        pytest.param(
            [_app(application_id="app/*")], f"entry 0: application_id {ID_BOUNDS}", id="bad-id"
        ),
        pytest.param(
            [_app(), _app(instance_id="")], f"entry 1: instance_id {ID_BOUNDS}", id="bad-instance"
        ),
        pytest.param([_app(secret_id="s")], "entry 0: secret_id is not a known key", id="unknown"),
        pytest.param(  # a key's name is shown to 64 characters at most
            [_app(**{"k" * 70: 1})], f"entry 0: {'k' * 64} is not a known key", id="long-key"
        ),
        pytest.param([{"instance_id": "i"}], "entry 0: application_id is required", id="missing"),
        pytest.param(["app"], f"entry 0: {NOT_AN_OBJECT}", id="not-an-object"),
    ],
)
def test_a_bad_value_stops_the_service_naming_the_variable(value: object, says: str) -> None:
    with pytest.raises(ConfigError) as info:
        _settings(value)
    assert str(info.value) == f"VEND_ROTATION: {says}"


def test_at_most_100_000_applications_are_listed() -> None:
    apps = [_app(application_id=f"app_{n}") for n in range(100_000)]
    assert len(_settings(apps).rotation) == 100_000
    with pytest.raises(ConfigError) as info:
        _settings([*apps, _app(application_id="app_one_more")])
    assert str(info.value) == "VEND_ROTATION: lists more than 100000 applications"
