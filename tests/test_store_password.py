"""The Redis password given as a KMS ciphertext (VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT), as a
deployment gives it: the operator seals it once with KMS Encrypt under the store-password key,
and the service decrypts it at start with the function's own credentials (the demo world's
function user, on the deployed RAM policy) and reaches a redis-server that requires it. A URL
that holds the password fails `vend doctor`'s `store-password` check; a ciphertext that does not
decrypt stops the start, naming the variable; the password is printed nowhere."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import sdk_clients as sdk
from alibabacloud_kms20160120 import models as kms_models
from processes import VEND
from redis_server import RedisServer, redis_binary

from functions import events, http
from infra.emulator import EmulatorServer
from infra.local.cli import main
from shared import composition_root
from shared.store_password import ENCRYPTION_CONTEXT
from vend_client.exit_status import ExitStatus

MARKER = "MARKER-PW-7f3a"
STORE_KEY = "key-store-password"


@pytest.fixture(scope="module")
def locked_redis() -> Iterator[str]:
    """`redis://127.0.0.1:PORT/0` of a redis-server of its own that requires MARKER, and
    persists (the doctor's `store` check asks for that too)."""
    with RedisServer(redis_binary()) as server:
        admin = redis.Redis.from_url(server.url)
        admin.config_set("appendonly", "yes")
        admin.config_set("requirepass", MARKER)
        admin.close()
        yield server.url


def vend_seal(
    emulator: EmulatorServer, stdin: str, key: tuple[str, str] = sdk.OPERATOR
) -> subprocess.CompletedProcess[str]:
    """`vend seal-store-password` as the operator runs it: the password on standard input,
    their own credentials, KMS at the emulator."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_"))},
        "ALIBABA_CLOUD_ACCESS_KEY_ID": key[0],
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": key[1],
        "VEND_KMS_ENDPOINT": emulator.url,
    }
    return subprocess.run(
        [*VEND, "seal-store-password", "--key-id", STORE_KEY],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_operator_seals_the_password_from_standard_input(emulator: EmulatorServer) -> None:
    done = vend_seal(emulator, MARKER + "\n")
    assert done.returncode == 0, done.stderr
    (blob,) = done.stdout.split()
    assert MARKER not in done.stdout + done.stderr
    # it opens under the service's context, and only under it
    opened = sdk.kms(emulator.url, sdk.FUNCTION).decrypt(
        kms_models.DecryptRequest(ciphertext_blob=blob, encryption_context=ENCRYPTION_CONTEXT)
    )
    assert opened.body.plaintext == MARKER


def test_sealing_needs_a_password_and_the_right_to_encrypt(emulator: EmulatorServer) -> None:
    assert vend_seal(emulator, "").returncode == ExitStatus.USAGE
    refused = vend_seal(emulator, MARKER + "\n", key=sdk.FUNCTION)
    assert refused.returncode == ExitStatus.DENIED, refused.stderr
    assert MARKER not in refused.stdout + refused.stderr


def seal(emulator: EmulatorServer, plaintext: str, context: dict[str, str]) -> str:
    """What the operator's KMS Encrypt gives, under any context (the SDK, as `aliyun kms
    Encrypt` calls it)."""
    client = sdk.kms(emulator.url, sdk.OPERATOR)
    request = kms_models.EncryptRequest(
        key_id=STORE_KEY, plaintext=plaintext, encryption_context=context
    )
    blob = client.encrypt(request).body.ciphertext_blob
    assert isinstance(blob, str)
    return blob


def doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, dict[str, str]], str]:
    code = main(["doctor", "--json"])
    out = capsys.readouterr()
    report = json.loads(out.out)
    return code, {c["name"]: c for c in report["checks"]}, out.out + out.err


def test_the_service_decrypts_the_password_and_reaches_redis_with_it(
    local_world: dict[str, str],
    emulator: EmulatorServer,
    locked_redis: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    sealed = vend_seal(emulator, MARKER + "\n").stdout.strip()
    monkeypatch.setenv("VEND_IDEMPOTENCY_URL", locked_redis)
    monkeypatch.setenv("VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT", sealed)
    code, checks, printed = doctor(capsys)
    assert code == 0, printed
    assert checks["startup"]["status"] == "ok"
    assert checks["store"]["status"] == "ok", checks["store"]
    assert checks["store-password"]["status"] == "ok"
    # decrypted by the function's identity, not by the operator who sealed it
    assert emulator.emulator.calls("Decrypt") == [
        ("Decrypt", f"acs:ram::{sdk.ACCOUNT}:user/vend-function", "OK")
    ]
    assert MARKER not in printed


def test_without_the_password_the_locked_redis_refuses_the_store(
    local_world: dict[str, str],
    locked_redis: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The check above passes because of the password, not in spite of it."""
    monkeypatch.setenv("VEND_IDEMPOTENCY_URL", locked_redis)
    code, checks, _ = doctor(capsys)
    assert code != 0
    assert checks["store"]["status"] == "fail"


def test_a_ciphertext_that_does_not_decrypt_stops_the_start_by_name(
    local_world: dict[str, str],
    emulator: EmulatorServer,
    locked_redis: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Sealed for another purpose under the same key: KMS refuses it under this context."""
    monkeypatch.setenv("VEND_IDEMPOTENCY_URL", locked_redis)
    monkeypatch.setenv(
        "VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT", seal(emulator, MARKER, {"vend": "other"})
    )
    code, checks, printed = doctor(capsys)
    assert code != 0
    assert checks["startup"]["status"] == "fail"
    assert "VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT: KMS Decrypt failed" in checks["startup"]["detail"]
    assert MARKER not in printed


def test_a_password_in_the_url_fails_the_doctor_and_is_not_shown(
    local_world: dict[str, str],
    locked_redis: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The service still starts with it (a laptop's Redis), and the store answers; deployed,
    it would be a plain FC environment variable, so the doctor refuses it."""
    monkeypatch.setenv("VEND_IDEMPOTENCY_URL", locked_redis.replace("//", f"//:{MARKER}@"))
    code, checks, printed = doctor(capsys)
    assert code != 0
    assert checks["store"]["status"] == "ok"
    failed = checks["store-password"]
    assert failed["status"] == "fail"
    assert "VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT" in failed["detail"]
    assert MARKER not in printed


def test_the_password_given_twice_is_a_configuration_error(
    local_world: dict[str, str],
    emulator: EmulatorServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("VEND_IDEMPOTENCY_URL", f"redis://:{MARKER}@127.0.0.1:6379/0")
    monkeypatch.setenv(
        "VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT", seal(emulator, MARKER, ENCRYPTION_CONTEXT)
    )
    code, checks, printed = doctor(capsys)
    assert code != 0
    assert checks["config"]["status"] == "fail"
    assert "the password is given twice" in checks["config"]["detail"]
    assert MARKER not in printed


@pytest.mark.parametrize("initializer", [http.initializer, events.initializer])
def test_the_fc_initializer_decrypts_with_the_credentials_of_fcs_context(
    local_world: dict[str, str],
    emulator: EmulatorServer,
    locked_redis: str,
    monkeypatch: pytest.MonkeyPatch,
    fresh_instance: None,
    initializer: Callable[[Any], None],
) -> None:
    """FC's python3.10 hands the function's credentials in the context: the initializer decrypts
    with those, not with whatever ALIBABA_CLOUD_* the environment holds (here the operator's,
    who may seal but not open), and the instance's store then answers."""
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", sdk.OPERATOR[0])
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", sdk.OPERATOR[1])
    monkeypatch.setenv("VEND_IDEMPOTENCY_URL", locked_redis)
    monkeypatch.setenv(
        "VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT", seal(emulator, MARKER, ENCRYPTION_CONTEXT)
    )
    key_id, secret = sdk.FUNCTION
    credentials = SimpleNamespace(
        access_key_id=key_id, access_key_secret=secret, security_token=None
    )
    context = SimpleNamespace(region=sdk.REGION, account_id=sdk.ACCOUNT, credentials=credentials)
    initializer(context)
    store = composition_root.instance_vendor(context).store
    store.remember("vend-test:locked", "ok", 10)
    assert store.recall("vend-test:locked") == "ok"
    assert emulator.emulator.calls("Decrypt") == [
        ("Decrypt", f"acs:ram::{sdk.ACCOUNT}:user/vend-function", "OK")
    ]
