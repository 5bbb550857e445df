"""Where an Alibaba Cloud API answers: a scheme and a host[:port], as an SDK `Config` takes them
(the service's upstreams, and the STS and KMS a caller opens envelopes with)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    protocol: str  # "https" or "http"
    host: str  # host[:port], what an SDK Config's `endpoint` takes

    @property
    def url(self) -> str:
        return f"{self.protocol}://{self.host}"


def parse_endpoint(value: str) -> Endpoint:
    """`host[:port]` (https) or `http(s)://host[:port]`."""
    if "://" in value:
        scheme, _, host = value.partition("://")
        return Endpoint(scheme, host.rstrip("/"))
    return Endpoint("https", value.rstrip("/"))
