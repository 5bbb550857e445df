"""The service's side of the envelope (contract section 4): the format itself is
`shared.wire.envelope`, which the caller's package reads too; this adds the service's model."""

from __future__ import annotations

from collections.abc import Mapping

from shared.models import Envelope
from shared.wire.envelope import (
    IV_BYTES,
    KEY_BYTES,
    EnvelopeError,
    associated_data,
    encryption_context,
    open_bytes,
    seal_bytes,
)
from shared.wire.envelope import check_context as _check_context

__all__ = [
    "IV_BYTES",
    "KEY_BYTES",
    "EnvelopeError",
    "associated_data",
    "check_context",
    "encryption_context",
    "open_sealed",
    "seal",
]


def seal(
    plaintext: bytes,
    data_key: bytes,
    *,
    key_id: str,
    encrypted_data_key: str,
    context: Mapping[str, str],
) -> Envelope:
    iv, ciphertext = seal_bytes(plaintext, data_key, context)
    return Envelope(
        key_id=key_id,
        encrypted_data_key=encrypted_data_key,
        iv=iv,
        ciphertext=ciphertext,
        encryption_context=dict(context),
    )


def open_sealed(envelope: Envelope, data_key: bytes) -> bytes:
    """Decrypts with a data key that KMS has already given back for this envelope."""
    return open_bytes(envelope.iv, envelope.ciphertext, envelope.encryption_context, data_key)


def check_context(
    envelope: Envelope, *, expected_arn: str | None, expected_principal: str | None
) -> None:
    _check_context(
        envelope.encryption_context,
        expected_arn=expected_arn,
        expected_principal=expected_principal,
    )
