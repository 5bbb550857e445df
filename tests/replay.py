"""Requests signed by the real SDK but captured before they reach the emulator, so that a test
can replay them, as they were or with one byte changed."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import requests
from pytest_httpserver import HTTPServer


@dataclass(frozen=True)
class Captured:
    method: str
    path: str  # with the query string, exactly as sent
    headers: dict[str, str]
    body: bytes

    def with_header(self, name: str, value: str) -> Captured:
        return replace(self, headers={**self.headers, name: value})

    def send(self, base_url: str) -> requests.Response:
        return requests.request(
            self.method, base_url + self.path, headers=self.headers, data=self.body, timeout=10
        )


def capture(httpserver: HTTPServer, call: Callable[[str], Any]) -> Captured:
    """Runs `call(endpoint)` against a recording server and returns the request it sent."""
    httpserver.clear()
    httpserver.expect_request("/").respond_with_json({"RequestId": "captured"})
    # The recorder's answer need not satisfy the SDK: only the request matters.
    with contextlib.suppress(Exception):
        call(f"{httpserver.host}:{httpserver.port}")
    request, _ = httpserver.log[-1]
    query = request.query_string.decode()
    return Captured(
        method=request.method,
        path=request.path + (f"?{query}" if query else ""),
        headers={k.lower(): v for k, v in request.headers.items() if k.lower() != "content-length"},
        body=request.get_data(),
    )
