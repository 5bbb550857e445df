"""The function's own credentials. On FC's python3.9/3.10 runtimes they arrive in
`context.credentials` with every invocation; on python3.12 (and anywhere else) they come from
the credentials library's default chain, which reads ALIBABA_CLOUD_* environment variables."""

from __future__ import annotations

from shared.wire.credentials import Credentials, DefaultChain


class FunctionIdentity:
    def __init__(self, fixed: Credentials | None = None) -> None:
        self._fixed = fixed
        self._from_context: Credentials | None = None
        self._chain = DefaultChain()

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
        return self._chain.current()
