"""KMS: GenerateDataKey, the service's call for every envelope (callers Decrypt with their own
package), and Decrypt of the one ciphertext the service is configured with (the Redis
password, shared.store_password), at start."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass, field

from alibabacloud_tea_openapi.exceptions import ClientException

from shared.errors import VendError, access_denied, upstream_error
from shared.upstream.deadline import Deadline
from shared.upstream.rpc import KMS_VERSION, Credentials, RpcTransport, Service
from shared.wire.endpoint import Endpoint

DATA_KEY_BYTES = 32  # KeySpec AES_256


@dataclass(frozen=True)
class DataKey:
    key_id: str
    encrypted_data_key: str
    plaintext: bytes = field(repr=False)


class Kms:
    def __init__(self, transport: RpcTransport, endpoint: Endpoint) -> None:
        self._call = Service(transport, endpoint, "KMS", KMS_VERSION, kms_error).call

    def generate_data_key(
        self, creds: Credentials, key_id: str, context: dict[str, str], deadline: Deadline
    ) -> DataKey:
        body = self._call(
            "GenerateDataKey",
            creds,
            {"KeyId": key_id, "KeySpec": "AES_256", "EncryptionContext": json.dumps(context)},
            deadline,
        )
        try:
            plaintext = base64.b64decode(body["Plaintext"], validate=True)
            key_id, blob = body["KeyId"], body["CiphertextBlob"]
        except (KeyError, TypeError, binascii.Error, ValueError):
            raise upstream_error("KMS answered GenerateDataKey without a data key") from None
        # KeySpec AES_256: anything but 32 bytes, or no blob to name it by, cannot seal an envelope.
        if len(plaintext) != DATA_KEY_BYTES or not all(
            isinstance(v, str) and v for v in (key_id, blob)
        ):
            raise upstream_error("KMS answered GenerateDataKey without a usable data key")
        return DataKey(key_id, blob, plaintext)

    def decrypt(
        self, creds: Credentials, blob: str, context: dict[str, str], deadline: Deadline
    ) -> str:
        """The plaintext that KMS Encrypt sealed in `blob` under `context`."""
        body = self._call(
            "Decrypt",
            creds,
            {"CiphertextBlob": blob, "EncryptionContext": json.dumps(context)},
            deadline,
        )
        plaintext = body.get("Plaintext")
        if not isinstance(plaintext, str):
            raise upstream_error("KMS answered Decrypt without a plaintext")
        return plaintext


def kms_error(exc: ClientException) -> VendError:
    if exc.status_code == 403:
        return access_denied("KMS denied the use of the key")
    return upstream_error(f"KMS refused the call: {exc.code}")
