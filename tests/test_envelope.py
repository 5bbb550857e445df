"""The envelope format of contract section 4, as pure functions."""

from __future__ import annotations

import base64
import json
import os
import re

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import ValidationError

from shared.envelope import EnvelopeError, associated_data, encryption_context, seal
from shared.models import Envelope
from shared.wire.envelope import check_context, open_bytes


def open_sealed(env: Envelope, key: bytes) -> bytes:
    """Opening, as the caller's package does it (the service only seals)."""
    return open_bytes(env.iv, env.ciphertext, env.encryption_context, key)


ARN = "acs:eiam:cn-hangzhou:1234567890123456:instance/i/application/a/secret/s"
CONTEXT = encryption_context(ARN, "acs:ram::1234567890123456:user/billing", "req-1")


def _sealed(key: bytes, plaintext: bytes = b"s3cret-\xc3\xbc") -> Envelope:
    return seal(plaintext, key, key_id="key-billing", encrypted_data_key="blob==", context=CONTEXT)


def test_seal_has_the_contract_fields_and_opens() -> None:
    key = os.urandom(32)
    env = _sealed(key)
    assert (env.format, env.alg, env.key_id, env.encrypted_data_key) == (
        "vend-envelope/1",
        "AES-256-GCM",
        "key-billing",
        "blob==",
    )
    assert len(base64.b64decode(env.iv)) == 12
    assert len(base64.b64decode(env.ciphertext)) == len(b"s3cret-\xc3\xbc") + 16
    assert env.encryption_context == {
        "vend:arn": ARN,
        "vend:principal": CONTEXT["vend:principal"],
        "vend:request_id": "req-1",
    }
    assert open_sealed(env, key) == b"s3cret-\xc3\xbc"


@pytest.mark.parametrize(
    "context",
    [
        pytest.param(CONTEXT, id="ram-caller"),
        # A JWT caller's `sub` may be any printable text: its principal goes in as UTF-8, unescaped.
        pytest.param(
            encryption_context(ARN, "jwt:b\u00edll-\u00fc@idaas", "req-1"), id="jwt-caller"
        ),
    ],
)
def test_interoperates_with_a_plain_aes_gcm_implementation(context: dict[str, str]) -> None:
    """A caller in another language needs only AES-GCM and the documented associated data
    (contract section 4): the context's JSON, keys sorted, no spaces, non-ASCII as UTF-8."""
    key = os.urandom(32)
    env = seal(b"s3cret-\xc3\xbc", key, key_id="k", encrypted_data_key="blob==", context=context)
    aad = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    assert associated_data(context) == aad
    plain = AESGCM(key).decrypt(base64.b64decode(env.iv), base64.b64decode(env.ciphertext), aad)
    assert plain == b"s3cret-\xc3\xbc"


def test_every_seal_uses_a_fresh_iv() -> None:
    key = os.urandom(32)
    assert _sealed(key).iv != _sealed(key).iv


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda e: e.model_copy(
                update={"encryption_context": {**CONTEXT, "vend:request_id": "req-2"}}
            ),
            id="context",
        ),
        pytest.param(
            lambda e: e.model_copy(
                update={
                    "ciphertext": base64.b64encode(
                        bytes([base64.b64decode(e.ciphertext)[0] ^ 1])
                        + base64.b64decode(e.ciphertext)[1:]
                    ).decode()
                }
            ),
            id="ciphertext",
        ),
        pytest.param(
            lambda e: e.model_copy(update={"iv": base64.b64encode(b"\0" * 12).decode()}), id="iv"
        ),
        pytest.param(lambda e: e.model_copy(update={"iv": "not base64!"}), id="iv-not-base64"),
        pytest.param(
            lambda e: e.model_copy(update={"iv": base64.b64encode(b"\0" * 8).decode()}),
            id="iv-short",
        ),
    ],
)
def test_tampering_is_detected(change: object) -> None:
    key = os.urandom(32)
    with pytest.raises(EnvelopeError):
        open_sealed(change(_sealed(key)), key)  # type: ignore[operator]


def test_another_key_does_not_open_it() -> None:
    with pytest.raises(EnvelopeError):
        open_sealed(_sealed(os.urandom(32)), os.urandom(32))


def test_only_256_bit_data_keys() -> None:
    words = "the data key must be 32 bytes (KMS KeySpec AES_256)"
    with pytest.raises(ValueError, match=f"^{re.escape(words)}$"):
        _sealed(os.urandom(16))


@pytest.mark.parametrize(
    ("arn", "principal", "ok"),
    [
        (ARN, CONTEXT["vend:principal"], True),
        (None, None, True),
        (ARN.replace("secret/s", "secret/t"), None, False),
        (None, "acs:ram::1234567890123456:user/reports", False),
    ],
)
def test_check_context(arn: str | None, principal: str | None, ok: bool) -> None:
    env = _sealed(os.urandom(32))
    if ok:
        check_context(env.encryption_context, expected_arn=arn, expected_principal=principal)
    else:
        with pytest.raises(EnvelopeError):
            check_context(env.encryption_context, expected_arn=arn, expected_principal=principal)


def test_check_context_refuses_foreign_keys() -> None:
    env = _sealed(os.urandom(32)).model_copy(update={"encryption_context": {**CONTEXT, "x": "y"}})
    with pytest.raises(EnvelopeError):
        check_context(env.encryption_context, expected_arn=None, expected_principal=None)


def test_envelope_model_refuses_unknown_fields_and_formats() -> None:
    data = _sealed(os.urandom(32)).model_dump()
    with pytest.raises(ValidationError, match="extra"):
        Envelope.model_validate({**data, "extra": 1})
    with pytest.raises(ValidationError, match="format"):
        Envelope.model_validate({**data, "format": "vend-envelope/2"})


def _refusal_of(iv: str, ciphertext: str, key: bytes, context: dict[str, str] = CONTEXT) -> str:
    with pytest.raises(EnvelopeError) as refused:
        open_bytes(iv, ciphertext, context, key)
    return str(refused.value)


def test_a_malformed_envelope_is_refused_in_words() -> None:
    """Found by `make mutate`: each way an envelope cannot be opened is named, and base64 is read
    strictly (a character outside its alphabet is not skipped)."""
    key = os.urandom(32)
    env = _sealed(key)
    not_base64 = "iv or ciphertext is not base64"
    wrong_length = "iv or ciphertext has the wrong length"
    assert _refusal_of("*" + env.iv, env.ciphertext, key) == not_base64
    assert _refusal_of(env.iv, "*" + env.ciphertext, key) == not_base64
    longer_iv = base64.b64encode(base64.b64decode(env.iv) + b"\0" * 4).decode()
    assert _refusal_of(longer_iv, env.ciphertext, key) == wrong_length
    tag_only = base64.b64encode(base64.b64decode(env.ciphertext)[-16:]).decode()
    assert _refusal_of(env.iv, tag_only, key) == (
        "the envelope does not decrypt: tampered, or another context"
    )
    shorter = base64.b64encode(base64.b64decode(env.ciphertext)[-15:]).decode()
    assert _refusal_of(env.iv, shorter, key) == wrong_length
    assert _refusal_of(env.iv, env.ciphertext, key[:16]) == "the data key is not 32 bytes"


def test_a_context_for_someone_else_is_refused_in_words() -> None:
    other = encryption_context(ARN + "x", "acs:ram::1234567890123456:user/other", "req-1")
    with pytest.raises(EnvelopeError) as refused:
        check_context(other, expected_arn=ARN, expected_principal=None)
    assert str(refused.value) == f"the envelope is for {ARN}x, not {ARN}"
    with pytest.raises(EnvelopeError) as refused:
        check_context(other, expected_arn=None, expected_principal="acs:ram::1:user/billing")
    assert str(refused.value) == (
        "the envelope is for acs:ram::1234567890123456:user/other, not acs:ram::1:user/billing"
    )
    with pytest.raises(EnvelopeError) as refused:
        check_context({"vend:arn": ARN}, expected_arn=None, expected_principal=None)
    assert str(refused.value) == "the encryption context does not have the vend:* keys"
