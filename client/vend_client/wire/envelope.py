"""The envelope of contract section 4: AES-256-GCM under a data key KMS made, with the encryption
context as associated data. The service seals with it, the caller opens with it."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT = "vend-envelope/1"
ALG = "AES-256-GCM"
IV_BYTES = 12
KEY_BYTES = 32
TAG_BYTES = 16
CONTEXT_KEYS = frozenset({"vend:arn", "vend:principal", "vend:request_id"})


class EnvelopeError(ValueError):
    """The envelope cannot be opened: wrong shape, wrong key or context, or tampered."""


def encryption_context(arn: str, principal: str, request_id: str) -> dict[str, str]:
    return {"vend:arn": arn, "vend:principal": principal, "vend:request_id": request_id}


def associated_data(context: Mapping[str, str]) -> bytes:
    return json.dumps(
        dict(context), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def seal_bytes(plaintext: bytes, data_key: bytes, context: Mapping[str, str]) -> tuple[str, str]:
    """(iv, ciphertext), base64: the plaintext sealed under the data key and the context."""
    if len(data_key) != KEY_BYTES:
        raise ValueError("the data key must be 32 bytes (KMS KeySpec AES_256)")
    iv = os.urandom(IV_BYTES)
    sealed = AESGCM(data_key).encrypt(iv, plaintext, associated_data(context))
    return base64.b64encode(iv).decode(), base64.b64encode(sealed).decode()


def open_bytes(iv: str, ciphertext: str, context: Mapping[str, str], data_key: bytes) -> bytes:
    """Decrypts with a data key that KMS has already given back for this envelope."""
    try:
        raw_iv = base64.b64decode(iv, validate=True)
        sealed = base64.b64decode(ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError("iv or ciphertext is not base64") from None
    if len(raw_iv) != IV_BYTES or len(sealed) < TAG_BYTES:
        raise EnvelopeError("iv or ciphertext has the wrong length")
    if len(data_key) != KEY_BYTES:
        raise EnvelopeError("the data key is not 32 bytes")
    try:
        return AESGCM(data_key).decrypt(raw_iv, sealed, associated_data(context))
    except InvalidTag:
        raise EnvelopeError("the envelope does not decrypt: tampered, or another context") from None


def check_context(
    context: Mapping[str, str], *, expected_arn: str | None, expected_principal: str | None
) -> None:
    """Refuses an envelope sealed for another secret or another caller. KMS would open it anyway
    (the context travels with the envelope), so this check is what binds it to the caller."""
    if set(context) != CONTEXT_KEYS:
        raise EnvelopeError("the encryption context does not have the vend:* keys")
    if expected_arn is not None and context["vend:arn"] != expected_arn:
        raise EnvelopeError(f"the envelope is for {context['vend:arn']}, not {expected_arn}")
    if expected_principal is not None and context["vend:principal"] != expected_principal:
        raise EnvelopeError(
            f"the envelope is for {context['vend:principal']}, not {expected_principal}"
        )
