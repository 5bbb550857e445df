"""The Redis password of the idempotency store, which a deployment gives only as a KMS
ciphertext (VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT): FC shows a function's environment variables in
clear to whoever may read its configuration, and Serverless Devs prints them. The service
decrypts it once, at start, with the function's own credentials; its role may Decrypt with the
store-password key only (infra/policies/fc-function.json)."""

from __future__ import annotations

from shared.errors import VendError
from shared.upstream.deadline import Deadline
from shared.upstream.identity import FunctionIdentity
from shared.upstream.kms import Kms

# What the operator encrypts under (README, Deploy): a ciphertext of anything else, under the
# same key, does not decrypt here.
ENCRYPTION_CONTEXT = {"vend": "idempotency-password"}
DECRYPT_TIMEOUT_S = 5.0


class StorePasswordError(Exception):
    """The ciphertext could not be turned into the password; the message says why, never with
    the ciphertext or any credential in it."""


def decrypt_store_password(
    kms: Kms, identity: FunctionIdentity, blob: str, *, timeout_s: float = DECRYPT_TIMEOUT_S
) -> str:
    try:
        creds = identity.current()
    except Exception as exc:  # the credential chain's many ways to find nothing
        raise StorePasswordError(
            f"no credentials for the function to decrypt it with ({type(exc).__name__})"
        ) from None
    try:
        return kms.decrypt(creds, blob, ENCRYPTION_CONTEXT, Deadline(timeout_s))
    except VendError as exc:
        said = exc.upstream_code or exc.code
        raise StorePasswordError(f"KMS Decrypt failed ({said}): {exc.message}") from None
