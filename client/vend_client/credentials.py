"""The caller's own credentials: given, or found as the Alibaba Cloud SDKs find them."""

from __future__ import annotations

from .wire.credentials import Credentials, DefaultChain

__all__ = ["CredentialSource", "Credentials"]


class CredentialSource:
    """`fixed` if given; else the default chain (`wire.credentials.DefaultChain`)."""

    def __init__(self, fixed: Credentials | None = None) -> None:
        self._fixed = fixed
        self._chain = DefaultChain()

    def current(self) -> Credentials:
        return self._fixed if self._fixed is not None else self._chain.current()
