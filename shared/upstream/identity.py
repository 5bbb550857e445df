"""The function's own credentials. On FC's python3.9/3.10 runtimes they arrive in
`context.credentials` with every invocation; on python3.12 (and anywhere else) they come from
the credentials library's default chain, which reads ALIBABA_CLOUD_* environment variables."""

from __future__ import annotations

import os
import threading
from typing import Any

from shared.upstream.rpc import Credentials


class FunctionIdentity:
    def __init__(self, fixed: Credentials | None = None) -> None:
        self._fixed = fixed
        self._from_context: Credentials | None = None
        self._chain: Any = None
        self._lock = threading.Lock()

    def update_from_context(self, context: object) -> None:
        creds = getattr(context, "credentials", None)
        key_id = getattr(creds, "access_key_id", None) or getattr(creds, "accessKeyId", None)
        if creds is None or not key_id:
            return
        secret = getattr(creds, "access_key_secret", None) or getattr(
            creds, "accessKeySecret", None
        )
        token = getattr(creds, "security_token", None) or getattr(creds, "securityToken", None)
        self._from_context = Credentials(str(key_id), str(secret), token or None)

    def current(self) -> Credentials:
        if self._fixed is not None:
            return self._fixed
        if self._from_context is not None:
            return self._from_context
        # The credentials library reads ALIBABA_CLOUD_* once, when it is first imported (and
        # tea-openapi imports it), so variables set after that are invisible to its chain.
        # They are read here, at call time; the rest of the chain is the library's.
        key_id = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
        secret = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        if key_id and secret:
            return Credentials(
                key_id, secret, os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None
            )
        with self._lock:
            if self._chain is None:
                # Imported only where the chain is used: it costs cold-start time.
                from alibabacloud_credentials.client import Client as CredentialClient  # noqa: PLC0415

                self._chain = CredentialClient()
        cred = self._chain.get_credential()
        return Credentials(
            cred.get_access_key_id(),
            cred.get_access_key_secret(),
            cred.get_security_token() or None,
        )
