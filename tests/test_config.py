"""Configuration from the environment: a bad configuration stops the start with one message that
names every wrong or missing variable, and why, and shows no secret."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from test_s_yaml import service_modules, vend_names_in

from functions import events, http
from shared.config import VARIABLES, ConfigError, Settings

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


@pytest.mark.contract("10")
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


# -- every wrong setting in one run (issue 20, item 4) -------------------------------------------

REQUIRED = {
    "VEND_REGION",
    "VEND_ACCOUNT_ID",
    "VEND_ROLE_ARN",
    "VEND_KMS_KEY_ID",
    "VEND_POLICY",
    "VEND_AUDIENCE",
}
# Two wrong values at once, and a Redis URL whose password must never be shown.
MARKER = "Marker-Pw-7f3a"
TWO_WRONG = {
    "VEND_ACCOUNT_ID": "123",
    "VEND_IDEMPOTENCY_URL": f"redis://:{MARKER}@127.0.0.1:notaport/0",
}
PATH_ONLY = {"PATH": "/usr/bin:/bin"}


def _names(message: str) -> set[str]:
    return set(re.findall(r"VEND_[A-Z0-9_]+", message))


def test_every_required_variable_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({})
    assert set(caught.value.variables) == REQUIRED
    assert _names(str(caught.value)) == REQUIRED
    assert all("missing" in p.why for p in caught.value.problems)


def test_two_wrong_values_are_both_named_and_no_password_is_shown() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**GOOD, **TWO_WRONG, "VEND_STS_ENDPOINT": f"https://u:{MARKER}@sts"})
    assert set(caught.value.variables) == {*TWO_WRONG, "VEND_STS_ENDPOINT"}
    assert MARKER not in str(caught.value)


def test_each_problem_says_why() -> None:
    env = {
        **GOOD,
        "VEND_REGION": "Hangzhou!",
        "VEND_ASSUME_ROLE_RATE": "fast",
        "VEND_JWT_ISSUERS": "[{",
        "VEND_ROTATION": "[1]",
    }
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    why = {p.variable: p.why for p in caught.value.problems}
    assert set(why) == {"VEND_REGION", "VEND_ASSUME_ROLE_RATE", "VEND_JWT_ISSUERS", "VEND_ROTATION"}
    assert "region" in why["VEND_REGION"]
    assert "not a number" in why["VEND_ASSUME_ROLE_RATE"]
    assert "not valid JSON" in why["VEND_JWT_ISSUERS"]


def _serve(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "infra.local.cli", "serve", "--port", "0"],
        env={**env, **PATH_ONLY},
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )


def test_vend_serve_names_both_wrong_values_and_no_password() -> None:
    done = _serve({**GOOD, **TWO_WRONG})
    assert done.returncode == 2, done.stderr
    assert _names(done.stderr) == set(TWO_WRONG)
    assert MARKER not in done.stdout + done.stderr


@pytest.mark.contract("10")
def test_vend_serve_with_nothing_set_names_every_required_variable() -> None:
    done = _serve({})
    assert done.returncode == 2, done.stderr
    assert _names(done.stderr) == REQUIRED


@pytest.mark.parametrize("initializer", [http.initializer, events.initializer])
def test_the_fc_initializer_fails_naming_both_and_no_password(
    monkeypatch: pytest.MonkeyPatch,
    fresh_instance: None,
    initializer: Callable[[Any], None],
) -> None:
    for name in os.environ:
        if name.startswith("VEND_"):
            monkeypatch.delenv(name)
    for name, value in {**GOOD, **TWO_WRONG}.items():
        monkeypatch.setenv(name, value)
    context = SimpleNamespace(region="cn-hangzhou", account_id=None, credentials=None)
    with pytest.raises(ConfigError) as caught:
        initializer(context)
    assert _names(str(caught.value)) == set(TWO_WRONG)
    assert MARKER not in str(caught.value)


# -- the README's table is the model's ---------------------------------------------------------


def readme_table_variables(text: str) -> list[str]:
    """The VEND_* names in the first column of the table of README.md's `## Configuration`."""
    section = text.split("\n## Configuration\n", 1)[1].split("\n## ", 1)[0]
    names: list[str] = []
    for line in section.splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 2:
            names += re.findall(r"`(VEND_[A-Z0-9_]+)`", cells[1])
    return names


def test_the_readme_configuration_table_lists_exactly_the_model() -> None:
    listed = readme_table_variables((ROOT / "README.md").read_text(encoding="utf-8"))
    model = {v.name for v in VARIABLES}
    assert len(listed) == len(set(listed)), f"listed twice: {listed}"
    assert not model - set(listed), f"not in README's table: {sorted(model - set(listed))}"
    assert not set(listed) - model, f"in README's table, not read: {sorted(set(listed) - model)}"


def test_the_table_reader_sees_each_row() -> None:
    text = (
        "# x\n\n## Configuration\n\n| variable | meaning |\n| --- | --- |\n"
        "| `VEND_A`, `VEND_B` | a `VEND_C` in the meaning |\n\nsee `VEND_D`\n\n## Next\n"
        "| `VEND_E` | x |\n"
    )
    assert readme_table_variables(text) == ["VEND_A", "VEND_B"]


def test_the_model_holds_every_variable_the_service_reads() -> None:
    """What the code reads is the model: no VEND_* read beside it (test_s_yaml's scan)."""
    read = vend_names_in(list(service_modules().values()))
    assert read == {v.name for v in VARIABLES}
