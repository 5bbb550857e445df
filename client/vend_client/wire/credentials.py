"""Alibaba Cloud credentials as both sides hold them: given, or found the way the SDKs find them."""

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


class DefaultChain:
    """ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET / _SECURITY_TOKEN as they are at each call, else the
    credentials library's default chain (profiles, instance roles, ...)."""

    def __init__(self) -> None:
        self._chain: Any = None
        self._lock = threading.Lock()

    def current(self) -> Credentials:
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
                # Imported only where the chain is used: it costs start-up time.
                from alibabacloud_credentials.client import Client  # noqa: PLC0415

                self._chain = Client()
        cred = self._chain.get_credential()
        return Credentials(
            cred.get_access_key_id(),
            cred.get_access_key_secret(),
            cred.get_security_token() or None,
        )
