"""The envelope of contract section 4, as pure functions: AES-256-GCM under a data key that KMS
made, with the encryption context as associated data. KMS calls live elsewhere."""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared.models import Envelope

IV_BYTES = 12
KEY_BYTES = 32


class EnvelopeError(ValueError):
    """The envelope cannot be opened: wrong shape, wrong key or context, or tampered."""


def encryption_context(arn: str, principal: str, request_id: str) -> dict[str, str]:
    return {"vend:arn": arn, "vend:principal": principal, "vend:request_id": request_id}


def associated_data(context: Mapping[str, str]) -> bytes:
    return json.dumps(
        dict(context), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


def seal(
    plaintext: bytes,
    data_key: bytes,
    *,
    key_id: str,
    encrypted_data_key: str,
    context: Mapping[str, str],
) -> Envelope:
    if len(data_key) != KEY_BYTES:
        raise ValueError("the data key must be 32 bytes (KMS KeySpec AES_256)")
    iv = os.urandom(IV_BYTES)
    sealed = AESGCM(data_key).encrypt(iv, plaintext, associated_data(context))
    return Envelope(
        key_id=key_id,
        encrypted_data_key=encrypted_data_key,
        iv=base64.b64encode(iv).decode(),
        ciphertext=base64.b64encode(sealed).decode(),
        encryption_context=dict(context),
    )


def open_sealed(envelope: Envelope, data_key: bytes) -> bytes:
    """Decrypts with a data key that KMS has already given back for this envelope."""
    try:
        iv = base64.b64decode(envelope.iv, validate=True)
        sealed = base64.b64decode(envelope.ciphertext, validate=True)
    except (binascii.Error, ValueError):
        raise EnvelopeError("iv or ciphertext is not base64") from None
    if len(iv) != IV_BYTES or len(sealed) < 16:
        raise EnvelopeError("iv or ciphertext has the wrong length")
    if len(data_key) != KEY_BYTES:
        raise EnvelopeError("the data key is not 32 bytes")
    try:
        return AESGCM(data_key).decrypt(iv, sealed, associated_data(envelope.encryption_context))
    except InvalidTag:
        raise EnvelopeError("the envelope does not decrypt: tampered, or another context") from None


def check_context(
    envelope: Envelope, *, expected_arn: str | None, expected_principal: str | None
) -> None:
    """Refuses an envelope sealed for another secret or another caller. KMS would open it anyway
    (the context travels with the envelope), so this check is what binds it to the caller."""
    context = envelope.encryption_context
    if set(context) != {"vend:arn", "vend:principal", "vend:request_id"}:
        raise EnvelopeError("the encryption context does not have the vend:* keys")
    if expected_arn is not None and context["vend:arn"] != expected_arn:
        raise EnvelopeError(f"the envelope is for {context['vend:arn']}, not {expected_arn}")
    if expected_principal is not None and context["vend:principal"] != expected_principal:
        raise EnvelopeError(
            f"the envelope is for {context['vend:principal']}, not {expected_principal}"
        )
