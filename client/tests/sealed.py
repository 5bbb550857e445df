"""A vend response as the service answers it, sealed for real with the envelope format of
`vend_client.wire`: what the client tests' stand-in services answer with."""

from __future__ import annotations

from typing import Any

from vend_client.wire.envelope import encryption_context, seal_bytes


def vend_response(
    *,
    secret: str,
    arn: str,
    principal: str,
    data_key: bytes,
    ids: tuple[str, str, str] = ("idaas_x", "app_y", "sct_z"),
) -> dict[str, Any]:
    """`secret` sealed under `data_key` for (`arn`, `principal`); `ids` are the response's own
    instance, application and secret IDs (a test may make them disagree with `arn`)."""
    instance, application, secret_id = ids
    context = encryption_context(arn, principal, "req-1")
    iv, ciphertext = seal_bytes(secret.encode(), data_key, context)
    return {
        "request_id": "req-1",
        "upstream_request_id": "up-1",
        "instance_id": instance,
        "application_id": application,
        "client_id": application,
        "secret_id": secret_id,
        "status": "enabled",
        "expiration_time": None,
        "last_used_time": None,
        "envelope": {
            "format": "vend-envelope/1",
            "alg": "AES-256-GCM",
            "key_id": "key-billing",
            "encrypted_data_key": "blob-1",
            "iv": iv,
            "ciphertext": ciphertext,
            "encryption_context": context,
        },
    }
