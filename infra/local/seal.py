"""`vend seal-store-password`: the operator's one step before a deployment with a Redis password.
It reads the password from standard input (an argument would show in `ps` and the shell's
history), seals it with KMS Encrypt under the store-password key and the context the service
decrypts with (shared.store_password), and prints the CiphertextBlob, which is what
DEPLOY_VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT holds. The caller's own credentials, from the
default chain, must be allowed kms:Encrypt on that key."""

from __future__ import annotations

import json
from typing import TextIO

from alibabacloud_tea_openapi.exceptions import ClientException

from shared.errors import UpstreamFailure
from shared.store_password import ENCRYPTION_CONTEXT
from shared.upstream import rpc
from shared.upstream.deadline import Deadline
from shared.upstream.rpc import KMS_VERSION, RpcTransport
from shared.wire.credentials import Credentials
from shared.wire.endpoint import Endpoint
from vend_client.exit_status import ExitStatus, Failure

COMMAND = "vend seal-store-password"
TIMEOUT_S = 10.0


def read_password(stdin: TextIO) -> str:
    """The first line, without its line end: what `printf '%s' "$PW" |` or a typed line gives."""
    password = stdin.readline().rstrip("\r\n")
    if not password:
        raise Failure(ExitStatus.USAGE, f"{COMMAND}: no password on standard input")
    return password


def seal(password: str, key_id: str, kms: Endpoint, creds: Credentials) -> str:
    try:
        body = rpc.call(
            RpcTransport(),
            kms,
            creds,
            "Encrypt",
            KMS_VERSION,
            {
                "KeyId": key_id,
                "Plaintext": password,
                "EncryptionContext": json.dumps(ENCRYPTION_CONTEXT),
            },
            Deadline(TIMEOUT_S),
            service="KMS",
        )
    except ClientException as exc:
        status = {403: ExitStatus.DENIED, 404: ExitStatus.NOT_FOUND}.get(
            exc.status_code or 0, ExitStatus.REJECTED
        )
        raise Failure(status, f"{COMMAND}: KMS refused Encrypt: {exc.code}") from None
    except UpstreamFailure as exc:
        raise Failure(ExitStatus.UPSTREAM, f"{COMMAND}: KMS Encrypt: {exc.message}") from None
    blob = body.get("CiphertextBlob")
    if not isinstance(blob, str) or not blob:
        raise Failure(ExitStatus.UPSTREAM, f"{COMMAND}: KMS answered Encrypt without a blob")
    return blob
