"""KMS through the real KMS client: real envelope cryptography, the encryption context enforced
on Decrypt, tamper evidence, aliases and RAM on the key ARN."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import sdk_clients as sdk
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_tea_openapi.exceptions import ClientException

from infra.emulator import EmulatorServer, Seed

CONTEXT = {
    "vend:arn": "acs:eiam:cn-hangzhou:1:instance/i/application/a/secret/s",
    "vend:principal": "acs:ram::1:user/billing",
    "note": "a b/c*~ü",
}


def _generate(
    endpoint: str, key_id: str = "key-billing", key: tuple[str, str] = sdk.FUNCTION, **kw: object
) -> kms_models.GenerateDataKeyResponseBody:
    request = kms_models.GenerateDataKeyRequest(key_id=key_id, **kw)
    return sdk.kms(endpoint, key).generate_data_key(request).body


def _decrypt(
    endpoint: str, blob: str, context: dict[str, str] | None, key: tuple[str, str] = sdk.BILLING
) -> kms_models.DecryptResponseBody:
    request = kms_models.DecryptRequest(ciphertext_blob=blob, encryption_context=context)
    return sdk.kms(endpoint, key).decrypt(request).body


def _client_error(call: object) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()  # type: ignore[operator]
    return info.value


def test_data_key_round_trips_with_its_context(emulator: EmulatorServer) -> None:
    made = _generate(emulator.endpoint, encryption_context=CONTEXT)
    assert (made.key_id, made.key_version_id) == ("key-billing", made.key_version_id)
    assert len(base64.b64decode(made.plaintext)) == 32
    opened = _decrypt(emulator.endpoint, made.ciphertext_blob, CONTEXT)
    assert opened.plaintext == made.plaintext and opened.key_id == "key-billing"
    assert opened.key_version_id == made.key_version_id


def test_every_data_key_is_fresh(emulator: EmulatorServer) -> None:
    a, b = _generate(emulator.endpoint), _generate(emulator.endpoint)
    assert a.plaintext != b.plaintext and a.ciphertext_blob != b.ciphertext_blob


@pytest.mark.parametrize(
    "context",
    [
        pytest.param({**CONTEXT, "vend:principal": "acs:ram::1:user/reports"}, id="changed-value"),
        pytest.param({k: v for k, v in CONTEXT.items() if k != "note"}, id="key-removed"),
        pytest.param({**CONTEXT, "extra": "x"}, id="key-added"),
        pytest.param(None, id="missing"),
    ],
)
def test_decrypt_with_another_context_fails(
    emulator: EmulatorServer, context: dict[str, str] | None
) -> None:
    made = _generate(emulator.endpoint, encryption_context=CONTEXT)
    err = _client_error(lambda: _decrypt(emulator.endpoint, made.ciphertext_blob, context))
    assert (err.status_code, err.code) == (400, "InvalidParameter")


def test_context_is_not_stored_in_the_blob(emulator: EmulatorServer) -> None:
    made = _generate(emulator.endpoint, encryption_context=CONTEXT)
    raw = base64.b64decode(made.ciphertext_blob)
    assert b"vend:arn" not in raw and b"user/billing" not in raw


def test_tampered_blob_fails(emulator: EmulatorServer) -> None:
    made = _generate(emulator.endpoint, encryption_context=CONTEXT)
    raw = bytearray(base64.b64decode(made.ciphertext_blob))
    raw[-1] ^= 1
    err = _client_error(
        lambda: _decrypt(emulator.endpoint, base64.b64encode(bytes(raw)).decode(), CONTEXT)
    )
    assert (err.status_code, err.code) == (400, "InvalidParameter")
    err = _client_error(lambda: _decrypt(emulator.endpoint, "bm90IGEgYmxvYg==", CONTEXT))
    assert err.status_code == 400


@pytest.mark.parametrize(
    ("fields", "size"),
    [
        pytest.param({}, 32, id="default"),
        pytest.param({"key_spec": "AES_128"}, 16, id="aes-128"),
        pytest.param({"number_of_bytes": 7}, 7, id="number-of-bytes"),
    ],
)
def test_data_key_sizes(emulator: EmulatorServer, fields: dict[str, object], size: int) -> None:
    assert len(base64.b64decode(_generate(emulator.endpoint, **fields).plaintext)) == size


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"key_spec": "RSA_2048"}, id="key-spec"),
        pytest.param({"number_of_bytes": 1025}, id="too-many-bytes"),
        pytest.param({"number_of_bytes": 0}, id="zero-bytes"),
    ],
)
def test_bad_data_key_parameters(emulator: EmulatorServer, fields: dict[str, object]) -> None:
    err = _client_error(lambda: _generate(emulator.endpoint, **fields))
    assert (err.status_code, err.code) == (400, "InvalidParameter")


@pytest.mark.parametrize(
    "ref",
    [
        "key-billing",
        "alias/vend-billing",
        sdk.key_arn("key-billing"),
        f"acs:kms:{sdk.REGION}:{sdk.ACCOUNT}:alias/vend-billing",
    ],
)
def test_key_references(emulator: EmulatorServer, ref: str) -> None:
    assert _generate(emulator.endpoint, ref).key_id == "key-billing"


def test_unknown_key_is_not_found(emulator: EmulatorServer) -> None:
    err = _client_error(lambda: _generate(emulator.endpoint, "alias/nope"))
    assert (err.status_code, err.code) == (404, "Forbidden.KeyNotFound")


def test_caller_cannot_decrypt_with_another_callers_key(emulator: EmulatorServer) -> None:
    made = _generate(emulator.endpoint, "key-reports", encryption_context=CONTEXT)
    err = _client_error(
        lambda: _decrypt(emulator.endpoint, made.ciphertext_blob, CONTEXT, sdk.BILLING)
    )
    assert (err.status_code, err.code) == (403, "Forbidden.RAM")
    assert (
        _decrypt(emulator.endpoint, made.ciphertext_blob, CONTEXT, sdk.REPORTS).plaintext
        == made.plaintext
    )


def test_generate_data_key_needs_permission(emulator: EmulatorServer) -> None:
    err = _client_error(lambda: _generate(emulator.endpoint, key=sdk.BILLING))
    assert (err.status_code, err.code) == (403, "Forbidden.RAM")


CRYPTO = ("LTAI5tDemoCrypto000001", "demo-crypto-secret")


@pytest.fixture
def crypto_server(demo_seed: Seed) -> Iterator[EmulatorServer]:
    """The demo world plus a user who may Encrypt, Decrypt and make blobs-only data keys."""
    data = demo_seed.model_dump(mode="json")
    actions = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKeyWithoutPlaintext"]
    data["users"].append(
        {
            "name": "crypto",
            "access_key_id": CRYPTO[0],
            "access_key_secret": CRYPTO[1],
            "policies": [sdk.allow(actions, sdk.key_arn("key-default"))],
        }
    )
    with EmulatorServer(Seed.model_validate(data)) as server:
        yield server


def test_encrypt_and_decrypt_text(crypto_server: EmulatorServer) -> None:
    request = kms_models.EncryptRequest(
        key_id="alias/vend-default", plaintext="hello ü", encryption_context=CONTEXT
    )
    made = sdk.kms(crypto_server.endpoint, CRYPTO).encrypt(request).body
    assert made.key_id == "key-default" and "hello" not in made.ciphertext_blob
    assert (
        _decrypt(crypto_server.endpoint, made.ciphertext_blob, CONTEXT, CRYPTO).plaintext
        == "hello ü"
    )
    # Encrypt is its own permission: the function may make data keys, not encrypt.
    err = _client_error(lambda: sdk.kms(crypto_server.endpoint, sdk.FUNCTION).encrypt(request))
    assert (err.status_code, err.code) == (403, "Forbidden.RAM")


def test_generate_data_key_without_plaintext(crypto_server: EmulatorServer) -> None:
    request = kms_models.GenerateDataKeyWithoutPlaintextRequest(
        key_id="key-default", encryption_context=CONTEXT
    )
    made = sdk.kms(crypto_server.endpoint, CRYPTO).generate_data_key_without_plaintext(request).body
    assert made.key_id == "key-default" and made.ciphertext_blob
    assert (
        len(
            base64.b64decode(
                _decrypt(crypto_server.endpoint, made.ciphertext_blob, CONTEXT, CRYPTO).plaintext
            )
        )
        == 32
    )
    # Its own RAM action: the function is allowed GenerateDataKey only.
    err = _client_error(
        lambda: sdk.kms(crypto_server.endpoint, sdk.FUNCTION).generate_data_key_without_plaintext(
            request
        )
    )
    assert err.code == "Forbidden.RAM"


def test_context_sent_as_a_string_is_refused(emulator: EmulatorServer) -> None:
    # The SDK sends a pre-encoded string as EncryptionContext=null: refuse it loudly.
    err = _client_error(lambda: _generate(emulator.endpoint, encryption_context='{"a":"b"}'))
    assert (err.status_code, err.code) == (400, "InvalidParameter")


def test_keys_survive_a_restart_with_a_state_file(demo_seed: Seed, tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    with EmulatorServer(demo_seed, state_path=state) as first:
        made = _generate(first.endpoint, encryption_context=CONTEXT)
    with EmulatorServer(demo_seed, state_path=state) as second:
        assert _decrypt(second.endpoint, made.ciphertext_blob, CONTEXT).plaintext == made.plaintext


# -- DryRun (vend doctor): every check of a real call, nothing made ------------------------------


def test_a_dry_run_checks_the_key_and_makes_nothing(emulator: EmulatorServer) -> None:
    dry = _generate(emulator.endpoint, dry_run="true", encryption_context=CONTEXT)
    assert dry.key_id == "key-billing" and dry.key_version_id
    assert dry.plaintext is None and dry.ciphertext_blob is None
    made = _generate(emulator.endpoint, dry_run="false")
    assert made.plaintext and made.ciphertext_blob


@pytest.mark.parametrize(
    ("kw", "key", "status", "code"),
    [
        pytest.param(
            {"key_id": "key-missing"}, sdk.FUNCTION, 404, "Forbidden.KeyNotFound", id="no-key"
        ),
        pytest.param({}, sdk.BILLING, 403, "Forbidden.RAM", id="not-allowed"),
        pytest.param({"key_spec": "AES_512"}, sdk.FUNCTION, 400, "InvalidParameter", id="bad-spec"),
        pytest.param({"dry_run": "maybe"}, sdk.FUNCTION, 400, "InvalidParameter", id="bad-flag"),
    ],
)
def test_a_dry_run_fails_where_the_call_would(
    emulator: EmulatorServer, kw: dict[str, str], key: tuple[str, str], status: int, code: str
) -> None:
    err = _client_error(lambda: _generate(emulator.endpoint, key=key, **{"dry_run": "true", **kw}))
    assert (err.status_code, err.code) == (status, code)
