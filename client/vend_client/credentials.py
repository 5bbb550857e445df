"""The caller's own credentials: given, or found as the Alibaba Cloud SDKs find them."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    access_key_secret: str
    security_token: str | None = None

    def __repr__(self) -> str:  # never print a secret, even by accident
        return f"Credentials(access_key_id={self.access_key_id!r}, ...)"


class CredentialSource:
    """`fixed` if given; else ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET / _SECURITY_TOKEN as they are at
    each call; else the credentials library's default chain (profiles, instance roles, ...)."""

    def __init__(self, fixed: Credentials | None = None) -> None:
        self._fixed = fixed
        self._chain: Any = None
        self._lock = threading.Lock()

    def current(self) -> Credentials:
        if self._fixed is not None:
            return self._fixed
        # alibabacloud-credentials reads these variables once, when it is imported: read them
        # here, so that setting them later works too.
        key_id = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID")
        secret = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        if key_id and secret:
            return Credentials(
                key_id, secret, os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None
            )
        with self._lock:
            if self._chain is None:
                from alibabacloud_credentials.client import Client  # noqa: PLC0415

                self._chain = Client()
        cred = self._chain.get_credential()
        return Credentials(
            cred.get_access_key_id(),
            cred.get_access_key_secret(),
            cred.get_security_token() or None,
        )
