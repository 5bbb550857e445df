"""The caller's own credentials: given, or found as the Alibaba Cloud SDKs find them."""

from __future__ import annotations

from .errors import NoCredentialsError
from .wire.credentials import Credentials, DefaultChain

__all__ = ["CredentialSource", "Credentials"]


class CredentialSource:
    """`fixed` if given; else the default chain (`wire.credentials.DefaultChain`), whose finding
    nothing is a NoCredentialsError."""

    def __init__(self, fixed: Credentials | None = None) -> None:
        self._fixed = fixed
        self._chain = DefaultChain()

    def current(self) -> Credentials:
        if self._fixed is not None:
            return self._fixed
        try:
            return self._chain.current()
        except Exception as exc:
            # Imported only here: the credentials library costs start-up time.
            from alibabacloud_credentials.exceptions import CredentialException  # noqa: PLC0415

            if not isinstance(exc, CredentialException):
                raise
            # Not chained: the library's message lists each provider's failure, quoting what it
            # read (a profile file's lines among them).
            raise NoCredentialsError(
                "no Alibaba Cloud credentials: none were given, and the default chain (the "
                "ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET variables, ~/.aliyun/config.json, "
                "~/.alibabacloud/credentials.ini, an ECS instance's RAM role) found none"
            ) from None
