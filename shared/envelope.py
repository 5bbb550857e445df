"""The service's side of the envelope (contract section 4): sealing into the service's model. The
format itself, and opening, are `shared.wire.envelope`, which the caller's package reads too."""

from __future__ import annotations

from collections.abc import Mapping

from shared.models import Envelope
from shared.wire.envelope import (
    EnvelopeError,
    associated_data,
    encryption_context,
    seal_bytes,
)

__all__ = [
    "EnvelopeError",
    "associated_data",
    "encryption_context",
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
