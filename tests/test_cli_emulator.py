"""`vend emulator` as a user runs it: a separate process, reached by the real SDK."""

from __future__ import annotations

import subprocess
from pathlib import Path

import sdk_clients as sdk
from log_scan import DEMO_SEED
from processes import VEND, Server


def test_vend_emulator_serves_the_seeded_world(tmp_path: Path) -> None:
    server = Server([*VEND, "emulator", "--seed", str(DEMO_SEED), "--port", "0"], "emulator")
    try:
        url = server.wait_for(r"STS, EIAM and KMS at http://(127\.0\.0\.1:[0-9]+) ").group(1)
        body = sdk.sts(url, sdk.BILLING).get_caller_identity().body
        assert body.arn == f"acs:ram::{sdk.ACCOUNT}:user/billing"
    finally:
        out, log = server.stop()
    assert f"http://{url}" in out
    assert "demo-billing-secret" not in out + log


def test_vend_emulator_refuses_a_bad_seed_naming_the_problem(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text('account_id: "1234567890123456"\nusers:\n  - name: x\n    acces_key_id: typo\n')
    done = subprocess.run(
        [*VEND, "emulator", "--seed", str(seed)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "acces_key_id" in done.stderr


def test_vend_emulator_refuses_a_bad_policy_in_the_seed(tmp_path: Path) -> None:
    seed = tmp_path / "seed.json"
    seed.write_text(
        '{"account_id": "1234567890123456", "users": [{"name": "x", "access_key_id": "LTAIabcdefgh",'
        ' "access_key_secret": "secretsecret", "policies": [{"Version": "1", "Statement":'
        ' [{"Sid": "s1", "Effect": "Allow", "Action": "kms:Decrypt", "Resources": "*"}]}]}]}'
    )
    done = subprocess.run(
        [*VEND, "emulator", "--seed", str(seed)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 2
    assert "user x policy 0" in done.stderr and "Resources" in done.stderr
