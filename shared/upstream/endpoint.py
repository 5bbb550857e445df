"""Where an upstream answers: a scheme and a host[:port], as an SDK `Config` takes them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    protocol: str  # "https" or "http"
    host: str  # host[:port], what an SDK Config's `endpoint` takes

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.host}"
