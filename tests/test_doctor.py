"""`vend doctor` against `vend local`'s world (the demo seed on the deployed RAM policies, the
environment `vend local` gives the service): every check passes there, and each wrong setting an
operator can make fails its own check, by name, with the upstream's code, and a non-zero exit."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from processes import VEND, free_port
from pytest_httpserver import HTTPServer
from redis_server import RedisServer, redis_binary
from test_config import REQUIRED  # the one list of what must be set

from infra.emulator import EmulatorServer
from infra.local.cli import DEMO_POLICY, main

pytestmark = pytest.mark.contract("11")

ACCOUNT = "1234567890123456"
DATA_KEYS = {"data-key:key-default", "data-key:key-billing", "data-key:key-reports"}
ALL_CHECKS = DATA_KEYS | {
    "config",
    "policy",
    "startup",
    "identity",
    "assume-role",
    "store",
    "rotation-list",
    "rotation-policy",
    "store-password",
}


def _doctor(
    capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, dict[str, dict[str, str]]]:
    code = main(["doctor", "--json", *args])
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is (code == 0)
    return code, {c["name"]: c for c in report["checks"]}


def _failed(checks: dict[str, dict[str, str]]) -> set[str]:
    return {name for name, c in checks.items() if c["status"] != "ok"}


def test_every_check_passes_in_the_local_world(
    local_world: dict[str, str], emulator: EmulatorServer
) -> None:
    """As an operator runs it: a separate process, the plain report, exit 0."""
    done = subprocess.run(
        [*VEND, "doctor", "--instance", "idaas_demo", "--application", "app_billing"],
        env={**os.environ},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "vend doctor: all checks pass"
    names = {line.split()[1] for line in lines[:-1]}
    assert names == ALL_CHECKS | {"eiam-list:idaas_demo/app_billing", "jwks"}
    assert all(line.startswith("ok ") for line in lines[:-1])
    assert "assumed-role/vend-eiam/vend-doctor" in done.stdout
    # Nothing was read or made: no secret obtained or created, no data key handed out.
    assert emulator.emulator.calls("ObtainApplicationClientSecret") == []
    assert emulator.emulator.calls("CreateApplicationClientSecret") == []
    assert local_world["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] not in done.stdout


def _policy_with(tmp_path: Path, key_id: str) -> str:
    policy = json.loads(DEMO_POLICY.read_text())
    policy["Recipients"].append({"Principal": f"acs:ram::{ACCOUNT}:user/ghost", "KeyId": key_id})
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy))
    return str(path)


@pytest.mark.parametrize(
    ("setting", "failed", "code"),
    [
        pytest.param(
            {"VEND_KMS_KEY_ID": "key-missing"},
            {"data-key:key-missing"},
            "Forbidden.KeyNotFound",
            id="wrong-default-key",
        ),
        pytest.param(
            {"VEND_ROLE_ARN": f"acs:ram::{ACCOUNT}:role/vend-nope"},
            {"assume-role", "rotation-list"},
            "EntityNotExist.Role",
            id="wrong-role-arn",
        ),
        pytest.param(
            {"VEND_POLICY": "unknown-recipient-key"},
            {"data-key:key-ghost"},
            "Forbidden.KeyNotFound",
            id="policy-names-an-unknown-key",
        ),
        pytest.param(
            {"VEND_IDEMPOTENCY_URL": "redis://127.0.0.1:{port}/0"},
            {"store"},
            None,
            id="redis-down",
        ),
        pytest.param(
            {"ALIBABA_CLOUD_ACCESS_KEY_SECRET": "not-the-secret"},
            {"identity", "assume-role", "rotation-list"} | DATA_KEYS,
            "SignatureDoesNotMatch",
            id="wrong-function-credentials",
        ),
        pytest.param(
            {"VEND_KMS_ENDPOINT": "http://127.0.0.1:{port}"},
            DATA_KEYS,
            None,
            id="kms-unreachable",
        ),
    ],
)
def test_a_wrong_setting_fails_its_own_check(
    local_world: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    setting: dict[str, str],
    failed: set[str],
    code: str | None,
) -> None:
    port = free_port()  # nothing listens there
    for name, value in setting.items():
        if value == "unknown-recipient-key":
            value = _policy_with(tmp_path, "key-ghost")
        monkeypatch.setenv(name, value.format(port=port))
    status, checks = _doctor(capsys)
    assert status == 1
    # The wrong setting fails the checks that use it, and nothing else.
    assert _failed(checks) == failed
    for name in failed:
        assert checks[name]["status"] == "fail"
        if code is not None:
            assert checks[name]["upstream_code"] == code
            assert checks[name]["request_id"], "the upstream's request id is reported"


# A Redis that may forget what it acknowledged lets a retried create make a second secret
# (README, Reliability): the store check names why; a server that refuses CONFIG is taken at
# its word, one that refuses INFO cannot be judged.
NO_PERSISTENCE = "persistence: neither AOF nor RDB snapshots are on"


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        pytest.param(("--appendonly", "yes"), None, id="aof"),
        pytest.param(("--save", "3600 1"), None, id="rdb-snapshots"),
        pytest.param((), NO_PERSISTENCE, id="neither"),
        pytest.param(("--rename-command", "CONFIG", ""), None, id="config-refused"),
        pytest.param(
            ("--appendonly", "yes", "--maxmemory", "100mb", "--maxmemory-policy", "allkeys-lru"),
            "eviction: maxmemory-policy is allkeys-lru, not noeviction",
            id="evicting",
        ),
        pytest.param(
            ("--maxmemory", "100mb", "--maxmemory-policy", "volatile-lru"),
            f"eviction: maxmemory-policy is volatile-lru, not noeviction; {NO_PERSISTENCE}",
            id="evicting-unpersisted",
        ),
        pytest.param(("--maxmemory-policy", "allkeys-lru"), NO_PERSISTENCE, id="no-maxmemory"),
        pytest.param(("--rename-command", "INFO", ""), "unreadable: ResponseError", id="no-info"),
    ],
)
def test_the_store_check_names_what_could_make_redis_forget(
    local_world: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    settings: tuple[str, ...],
    says: str | None,
) -> None:
    with RedisServer(redis_binary(), *settings) as server:
        monkeypatch.setenv("VEND_IDEMPOTENCY_URL", server.url)
        status, checks = _doctor(capsys)
    where = f"RedisStore(redis://127.0.0.1:{server.port}/0)"
    if says is None:
        assert (status, _failed(checks)) == (0, set()), checks
        assert (
            checks["store"]["detail"]
            == f"{where} stores and reads back, persists, and does not evict"
        )
    else:
        assert (status, _failed(checks)) == (1, {"store"}), checks
        assert checks["store"]["detail"] == f"{where} may forget records: {says}"


def test_a_configuration_that_does_not_load_fails_and_skips_the_rest(
    local_world: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VEND_ROLE_ARN", "vend-eiam")
    status, checks = _doctor(capsys)
    assert status == 1
    assert checks["config"]["status"] == "fail" and "VEND_ROLE_ARN" in checks["config"]["detail"]
    assert {c["status"] for n, c in checks.items() if n != "config"} == {"skip"}


def test_the_listing_check_fails_where_the_vending_role_may_not_list(
    local_world: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, checks = _doctor(capsys, "--instance", "idaas_other", "--application", "app_x")
    assert status == 1
    assert _failed(checks) == {"eiam-list:idaas_other/app_x"}
    assert checks["eiam-list:idaas_other/app_x"]["upstream_code"]


def test_the_rotation_checks_name_each_application_the_schedule_could_not_rotate(
    local_world: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    emulator: EmulatorServer,
) -> None:
    """VEND_ROTATION lists an application of an instance the vending role may not touch, one
    that does not exist, and two it may list, of which the approval policy lets the schedule
    rotate one: each check names exactly the ones it fails for."""
    listing = [
        {"instance_id": instance, "application_id": app}
        for instance, app in (
            ("idaas_demo", "app_billing"),
            ("idaas_demo", "app_reports"),
            ("idaas_other", "app_other"),
            ("idaas_demo", "app_ghost"),
        )
    ]
    monkeypatch.setenv("VEND_ROTATION", json.dumps(listing))
    status, checks = _doctor(capsys)
    assert status == 1
    assert _failed(checks) == {"rotation-list", "rotation-policy"}
    listed = checks["rotation-list"]["detail"]
    assert listed.startswith("the vending role may not list 2 of the 4 application(s)")
    assert "idaas_other/app_other (Forbidden.RAM)" in listed
    assert "idaas_demo/app_ghost (" in listed
    assert "app_billing" not in listed and "app_reports" not in listed
    assert checks["rotation-list"]["request_id"]
    approved = checks["rotation-policy"]["detail"]
    assert "3 of the 4 application(s)" in approved
    assert "idaas_demo/app_reports (Create, Disable, Delete)" in approved
    assert "app_billing" not in approved
    # A listing reads no secret, and the schedule's steps were not taken.
    assert emulator.emulator.calls("ObtainApplicationClientSecret") == []
    assert emulator.emulator.calls("DisableApplicationClientSecret") == []


def test_instance_and_application_go_together(
    local_world: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["doctor", "--application", "app_billing"]) == 2
    assert main(["doctor", "--instance", "i", "--application", "a/*"]) == 2
    assert "--instance and --application" in capsys.readouterr().err


def _jwks() -> dict[str, object]:
    public = ec.generate_private_key(ec.SECP256R1()).public_key()
    key = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    return {"keys": [{**key, "kid": "k1", "alg": "ES256", "use": "sig"}]}


def test_each_jwks_is_fetched_and_one_that_fails_is_named(
    local_world: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    httpserver: HTTPServer,
) -> None:
    httpserver.expect_request("/good").respond_with_json(_jwks())
    httpserver.expect_request("/down").respond_with_data("no", status=503)
    httpserver.expect_request("/rsa-only").respond_with_json(_jwks())
    issuers = [
        {"name": "good", "issuer": "https://good.example", "jwks_url": httpserver.url_for("/good")},
        {"name": "down", "issuer": "https://down.example", "jwks_url": httpserver.url_for("/down")},
        {
            "name": "rsa-only",
            "issuer": "https://rsa.example",
            "jwks_url": httpserver.url_for("/rsa-only"),
            "algorithms": ["RS256"],
        },
    ]
    monkeypatch.setenv("VEND_JWT_ISSUERS", json.dumps(issuers))
    status, checks = _doctor(capsys)
    assert status == 1
    assert _failed(checks) == {"jwks:down", "jwks:rsa-only"}
    assert "503" in checks["jwks:down"]["detail"]
    assert "RS256" in checks["jwks:rsa-only"]["detail"]
    assert checks["jwks:good"]["status"] == "ok"


@pytest.mark.parametrize(
    ("answer", "status", "detail"),
    [
        pytest.param(
            {"Code": "DryRunOperation", "Message": "would succeed", "RequestId": "r-1"},
            400,
            "would be made (DryRunOperation)",
            id="dry-run-as-an-error",
        ),
        pytest.param(
            {"KeyId": "k", "Plaintext": "cGxhaW50ZXh0LXNob3VsZC12YW5pc2g=", "CiphertextBlob": "b"},
            200,
            "thrown away",
            id="dry-run-ignored",
        ),
    ],
)
def test_kms_answers_to_a_dry_run_that_are_not_the_emulators(
    local_world: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    httpserver: HTTPServer,
    answer: dict[str, str],
    status: int,
    detail: str,
) -> None:
    """KMS's answer to DryRun is not documented; either reading counts as a working key, and a
    data key made anyway is never shown."""
    httpserver.expect_request("/").respond_with_json(answer, status=status)
    monkeypatch.setenv("VEND_KMS_ENDPOINT", f"http://127.0.0.1:{httpserver.port}")
    code, checks = _doctor(capsys)
    assert code == 0, checks
    assert detail in checks["data-key:key-default"]["detail"]
    assert "cGxhaW50" not in json.dumps(checks)


def _doctor_process(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """As an operator runs it, with `env` and no other VEND_* (nor FC's account)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "FC_"))}
    return subprocess.run(
        [*VEND, "doctor"], env={**clean, **env}, capture_output=True, text=True, timeout=60
    )


def test_with_nothing_set_one_run_names_every_required_variable() -> None:
    done = _doctor_process({})
    assert done.returncode == 1, done.stdout + done.stderr
    config = next(line for line in done.stdout.splitlines() if line.split()[1:2] == ["config"])
    assert config.startswith("fail ")
    assert set(re.findall(r"VEND_[A-Z0-9_]+", config)) == REQUIRED


def test_two_wrong_values_are_named_in_one_run_without_the_password(
    local_world: dict[str, str],
) -> None:
    marker = "Marker-Pw-7f3a"
    wrong = {
        "VEND_ACCOUNT_ID": "123",
        "VEND_IDEMPOTENCY_URL": f"redis://:{marker}@127.0.0.1:notaport/0",
    }
    done = _doctor_process({**local_world, **wrong})
    assert done.returncode == 1, done.stdout + done.stderr
    config = next(line for line in done.stdout.splitlines() if line.split()[1:2] == ["config"])
    assert set(re.findall(r"VEND_[A-Z0-9_]+", config)) == set(wrong)
    assert marker not in done.stdout + done.stderr
