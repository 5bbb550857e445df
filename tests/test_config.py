"""Configuration from the environment: a bad value stops the start with the variable's name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.config import ConfigError, Settings

ROOT = Path(__file__).resolve().parent.parent
GOOD = {
    "VEND_REGION": "cn-hangzhou",
    "VEND_ACCOUNT_ID": "1234567890123456",
    "VEND_ROLE_ARN": "acs:ram::1234567890123456:role/vend-eiam",
    "VEND_KMS_KEY_ID": "key-default",
    "VEND_POLICY": str(ROOT / "examples" / "policy.json"),
    "VEND_AUDIENCE": "vend-prod",
}


def test_defaults() -> None:
    s = Settings.from_env(GOOD)
    assert (s.sts.url, s.eiam.url, s.kms.url) == (
        "https://sts.cn-hangzhou.aliyuncs.com",
        "https://eiam.cn-hangzhou.aliyuncs.com",
        "https://kms.cn-hangzhou.aliyuncs.com",
    )
    assert s.idempotency_url == "memory://" and s.proof_hosts == () and s.jwt_issuers_json is None


def test_region_and_account_come_from_the_fc_context_when_unset() -> None:
    env = {k: v for k, v in GOOD.items() if k not in ("VEND_REGION", "VEND_ACCOUNT_ID")}
    s = Settings.from_env(env, region="cn-shanghai", account_id="1234567890123456")
    assert (s.region, s.account_id) == ("cn-shanghai", "1234567890123456")
    assert s.sts.host == "sts.cn-shanghai.aliyuncs.com"


def test_a_custom_runtime_takes_the_account_from_fc_account_id() -> None:
    """No FC context in a custom runtime, but FC sets FC_ACCOUNT_ID; VEND_ACCOUNT_ID wins."""
    env = {k: v for k, v in GOOD.items() if k != "VEND_ACCOUNT_ID"}
    assert Settings.from_env({**env, "FC_ACCOUNT_ID": "6543210987654321"}).account_id == (
        "6543210987654321"
    )
    both = {**GOOD, "FC_ACCOUNT_ID": "6543210987654321"}
    assert Settings.from_env(both).account_id == "1234567890123456"
    with pytest.raises(ConfigError, match="VEND_ACCOUNT_ID"):
        Settings.from_env(env)


def test_endpoint_forms() -> None:
    s = Settings.from_env(
        {
            **GOOD,
            "VEND_STS_ENDPOINT": "http://127.0.0.1:9100",
            "VEND_KMS_ENDPOINT": "kms-vpc.cn-hangzhou.aliyuncs.com",
        }
    )
    assert (s.sts.protocol, s.sts.host) == ("http", "127.0.0.1:9100")
    assert (s.kms.protocol, s.kms.host) == ("https", "kms-vpc.cn-hangzhou.aliyuncs.com")


@pytest.mark.parametrize(
    ("value", "rate"),
    [("", None), ("50", (50.0, 50)), ("2.5,10", (2.5, 10)), ("0.5", (0.5, 1))],
)
def test_the_assume_role_rate(value: str, rate: tuple[float, int] | None) -> None:
    assert Settings.from_env({**GOOD, "VEND_ASSUME_ROLE_RATE": value}).assume_role_rate == rate


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("VEND_REGION", "Hangzhou!"),
        ("VEND_ACCOUNT_ID", "123"),
        ("VEND_ROLE_ARN", "acs:ram::1234567890123456:user/x"),
        ("VEND_ROLE_ARN", ""),
        ("VEND_KMS_KEY_ID", "key with space"),
        ("VEND_AUDIENCE", ""),
        ("VEND_POLICY", "/nonexistent/policy.json"),
        ("VEND_POLICY", '{"Version": "1", "Statement": [{"Sid": "x", "Effect": "Maybe"}]}'),
        ("VEND_STS_ENDPOINT", "ftp://sts"),
        ("VEND_EIAM_ENDPOINT", "https://user@eiam.example.com"),
        ("VEND_KMS_ENDPOINT", "https://kms.example.com/path"),
        ("VEND_STS_PROOF_HOSTS", "ok.example.com,bad host"),
        ("VEND_IDEMPOTENCY_URL", "mysql://x"),
        ("VEND_ASSUME_ROLE_RATE", "0"),
        ("VEND_ASSUME_ROLE_RATE", "fast"),
        ("VEND_ASSUME_ROLE_RATE", "20,0"),
        ("VEND_ASSUME_ROLE_RATE", "5000"),
        ("VEND_ASSUME_ROLE_RATE", "-1,5"),
    ],
)
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=f"^{name}: "):
        Settings.from_env({**GOOD, name: value})


def test_vend_serve_refuses_to_start_with_a_bad_policy(tmp_path: Path) -> None:
    bad = tmp_path / "policy.json"
    bad.write_text(
        '{"Version": "1", "Statement": [{"Sid": "typo", "Effect": "Allow", "Principal": "*",'
        ' "Action": "eiam:*", "Resourcee": "*"}]}'
    )
    env = {**GOOD, "VEND_POLICY": str(bad), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "infra.local.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "VEND_POLICY" in done.stderr and "typo" in done.stderr and "Resourcee" in done.stderr


def test_vend_serve_refuses_bad_jwt_issuers() -> None:
    env = {**GOOD, "VEND_JWT_ISSUERS": '[{"name": "x"}]', "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "infra.local.cli", "serve", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "VEND_JWT_ISSUERS" in done.stderr
