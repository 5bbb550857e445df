"""KMS 2016-01-20 with real cryptography: a master key per KMS key, AES-256-GCM blobs that name
their key, and the encryption context bound as associated data but never stored in the blob."""

from __future__ import annotations

import base64
import binascii
import json
import os
import struct
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import ids
from .call import Call, Handler
from .errors import ActionErrors, ApiError, invalid
from .iam import Account
from .seed import KmsKey

VERSION = "2016-01-20"
MAX_CONTEXT_CHARS = 8192
_BLOB_MAGIC = b"EKB1"
_NONCE_BYTES = 12

_KEY_ERRORS = {"Forbidden.KeyNotFound": 404, "InvalidParameter": 400}
# The codes each action answers itself, with their HTTP status, beyond the gateway's
# (errors.GATEWAY_CODES): listed for that action in infra/api-metadata/kms-2016-01-20.json,
# except those in UNLISTED (DEVIATIONS.md says why); tests/test_emulator_fidelity.py checks that
# this table, the metadata and the `ApiError`s this module can reach agree. Key states
# (Rejected.Disabled, Rejected.PendingDeletion, 409) are not emulated: every key is enabled.
ERRORS: ActionErrors = {
    "GenerateDataKey": dict(_KEY_ERRORS),
    "GenerateDataKeyWithoutPlaintext": dict(_KEY_ERRORS),
    "Encrypt": dict(_KEY_ERRORS),
    "Decrypt": {"Forbidden.KeyNotFound": 404, "InvalidParameter": 400},
}
UNLISTED: dict[str, frozenset[str]] = {
    # A bad NumberOfBytes, KeySpec or EncryptionContext.
    "GenerateDataKey": frozenset({"InvalidParameter"}),
    # A blob that is not one, or that does not open with this EncryptionContext.
    "Decrypt": frozenset({"InvalidParameter"}),
}


@dataclass
class KeyRecord:
    key_id: str
    aliases: tuple[str, ...]
    version_id: str
    material: bytes  # 32 bytes; never leaves the emulator except in its --state file


def keys_from_seed(keys: tuple[KmsKey, ...]) -> dict[str, KeyRecord]:
    return {
        k.key_id: KeyRecord(k.key_id, k.aliases, ids.key_version_id(), AESGCM.generate_key(256))
        for k in keys
    }


def keys_to_json(keys: dict[str, KeyRecord]) -> dict[str, Any]:
    return {
        k.key_id: {
            "aliases": list(k.aliases),
            "version_id": k.version_id,
            "material": base64.b64encode(k.material).decode(),
        }
        for k in keys.values()
    }


def keys_from_json(data: dict[str, Any]) -> dict[str, KeyRecord]:
    return {
        key_id: KeyRecord(
            key_id, tuple(v["aliases"]), v["version_id"], base64.b64decode(v["material"])
        )
        for key_id, v in data.items()
    }


def _aad(key_id: str, context: dict[str, str]) -> bytes:
    canonical = json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return key_id.encode() + b"\0" + canonical.encode()


class Kms:
    def __init__(self, account: Account, keys: dict[str, KeyRecord]) -> None:
        self.account = account
        self.keys = keys
        self.aliases = {alias: k for k in keys.values() for alias in k.aliases}
        self.actions: dict[str, Handler] = {
            "GenerateDataKey": self.generate_data_key,
            "GenerateDataKeyWithoutPlaintext": self.generate_data_key_without_plaintext,
            "Encrypt": self.encrypt,
            "Decrypt": self.decrypt,
        }

    def arn(self, key_id: str) -> str:
        seed = self.account.seed
        return f"acs:kms:{seed.region}:{seed.account_id}:key/{key_id}"

    def _resolve(self, ref: str) -> KeyRecord:
        """A key by id, alias, key ARN or alias ARN."""
        seed = self.account.seed
        prefix = f"acs:kms:{seed.region}:{seed.account_id}:"
        name = ref[len(prefix) :] if ref.startswith(prefix) else ref
        if name.startswith("key/"):
            name = name[4:]
        key = self.aliases.get(name) if name.startswith("alias/") else self.keys.get(name)
        if key is None:
            # An unknown alias too: KMS itself answers Forbidden.AliasNotFound (DEVIATIONS.md).
            raise ApiError(404, "Forbidden.KeyNotFound", f"The specified key {ref!r} is not found.")
        return key

    def _authorized_key(self, call: Call, ref: str) -> KeyRecord:
        key = self._resolve(ref)
        self.account.authorize(
            call.identity, f"kms:{call.action}", self.arn(key.key_id), call.conditions
        )
        return key

    # -- crypto ------------------------------------------------------------------------------

    def _seal(self, key: KeyRecord, plaintext: bytes, context: dict[str, str]) -> str:
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(key.material).encrypt(nonce, plaintext, _aad(key.key_id, context))
        header = _BLOB_MAGIC + struct.pack(">B", len(key.key_id)) + key.key_id.encode()
        return base64.b64encode(header + key.version_id.encode() + nonce + sealed).decode()

    def _open(self, blob: str) -> tuple[KeyRecord, bytes, bytes]:
        """Splits a blob into its key, nonce and sealed bytes (without authenticating it yet)."""
        try:
            raw = base64.b64decode(blob, validate=True)
        except (binascii.Error, ValueError):
            raise invalid("CiphertextBlob", "not base64") from None
        if not raw.startswith(_BLOB_MAGIC) or len(raw) < len(_BLOB_MAGIC) + 1:
            raise invalid("CiphertextBlob", "not a ciphertext this KMS produced")
        pos = len(_BLOB_MAGIC)
        (length,) = struct.unpack(">B", raw[pos : pos + 1])
        key_id = raw[pos + 1 : pos + 1 + length].decode("ascii", "replace")
        pos += 1 + length + 36  # the key version id is a 36-character UUID
        if len(raw) < pos + _NONCE_BYTES + 16:
            raise invalid("CiphertextBlob", "truncated")
        key = self.keys.get(key_id)
        if key is None:
            raise ApiError(404, "Forbidden.KeyNotFound", "The key of this ciphertext is not found.")
        return key, raw[pos : pos + _NONCE_BYTES], raw[pos + _NONCE_BYTES :]

    # -- actions -----------------------------------------------------------------------------

    def generate_data_key(self, call: Call) -> dict[str, Any]:
        return self._generate(call)

    def generate_data_key_without_plaintext(self, call: Call) -> dict[str, Any]:
        body = self._generate(call)
        del body["Plaintext"]
        return body

    def _generate(self, call: Call) -> dict[str, Any]:
        size = _data_key_size(call)
        context = _context(call)
        key = self._authorized_key(call, call.required("KeyId"))
        if _dry_run(call):
            # Every check a real call makes has passed (parameters, key, permission); nothing
            # is made. KMS's own answer to a DryRun is not documented: DEVIATIONS.md.
            return {"KeyId": key.key_id, "KeyVersionId": key.version_id}
        # As in KMS, the data key's plaintext is handed out base64-encoded, and Decrypt of its
        # blob gives back that same base64 text.
        plaintext = base64.b64encode(os.urandom(size)).decode()
        return {
            "KeyId": key.key_id,
            "KeyVersionId": key.version_id,
            "CiphertextBlob": self._seal(key, plaintext.encode(), context),
            "Plaintext": plaintext,
        }

    def encrypt(self, call: Call) -> dict[str, Any]:
        plaintext = call.required("Plaintext")
        if len(plaintext.encode()) > 6144:
            raise invalid("Plaintext", "longer than 6 KiB")
        context = _context(call)
        key = self._authorized_key(call, call.required("KeyId"))
        return {
            "KeyId": key.key_id,
            "KeyVersionId": key.version_id,
            "CiphertextBlob": self._seal(key, plaintext.encode(), context),
        }

    def decrypt(self, call: Call) -> dict[str, Any]:
        context = _context(call)
        key, nonce, sealed = self._open(call.required("CiphertextBlob"))
        self.account.authorize(call.identity, "kms:Decrypt", self.arn(key.key_id), call.conditions)
        try:
            plaintext = AESGCM(key.material).decrypt(nonce, sealed, _aad(key.key_id, context))
        except InvalidTag:
            raise invalid(
                "CiphertextBlob",
                "it does not decrypt: the blob is damaged or the EncryptionContext differs",
            ) from None
        return {
            "KeyId": key.key_id,
            "KeyVersionId": key.version_id,
            "Plaintext": plaintext.decode("utf-8"),
        }


def _dry_run(call: Call) -> bool:
    flag = call.optional("DryRun")
    if flag is None or flag.lower() == "false":
        return False
    if flag.lower() == "true":
        return True
    raise invalid("DryRun", "must be true or false")


def _data_key_size(call: Call) -> int:
    count = call.optional_int("NumberOfBytes")
    if count is not None:
        if not 1 <= count <= 1024:
            raise invalid("NumberOfBytes", "must be 1 to 1024")
        return count
    spec = call.optional("KeySpec") or "AES_256"
    sizes = {"AES_256": 32, "AES_128": 16}
    if spec not in sizes:
        raise invalid("KeySpec", "must be AES_256 or AES_128")
    return sizes[spec]


def _context(call: Call) -> dict[str, str]:
    text = call.optional("EncryptionContext")
    if text is None:
        return {}
    if len(text) > MAX_CONTEXT_CHARS:
        raise invalid("EncryptionContext", "longer than 8192 characters")
    try:
        value = json.loads(text)
    except ValueError:
        raise invalid("EncryptionContext", "not JSON") from None
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise invalid("EncryptionContext", "must be a JSON object of strings")
    return value
