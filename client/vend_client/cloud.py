"""The caller's calls to Alibaba Cloud (STS GetCallerIdentity, KMS Decrypt): the official SDK's
generic RPC call, signed by its own signer, tried again on throttling, a 5xx or a lost
connection (every call here only reads), a few times within the caller's timeout."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from alibabacloud_tea_openapi import models as openapi
from alibabacloud_tea_openapi.client import Client as OpenApiClient
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from darabonba.exceptions import UnretryableException
from darabonba.runtime import RuntimeOptions

from .credentials import Credentials
from .errors import CloudError, CloudUnreachable
from .wire.endpoint import Endpoint
from .wire.rpc import KMS_VERSION, STS_VERSION, rpc_params

__all__ = ["KMS_VERSION", "STS_VERSION", "Cloud"]

ATTEMPTS = 3


class Cloud:
    def __init__(self, region: str, timeout_s: float) -> None:
        self._region = region
        self._timeout_s = timeout_s
        self._clients: dict[tuple[Endpoint, Credentials], Any] = {}
        self._lock = threading.Lock()

    def _client(self, endpoint: Endpoint, creds: Credentials) -> Any:
        with self._lock:
            client = self._clients.get((endpoint, creds))
            if client is None:
                if len(self._clients) >= 16:  # STS credentials come and go
                    self._clients.clear()
                client = self._clients[endpoint, creds] = OpenApiClient(
                    openapi.Config(
                        access_key_id=creds.access_key_id,
                        access_key_secret=creds.access_key_secret,
                        security_token=creds.security_token,
                        endpoint=endpoint.host,
                        protocol=endpoint.protocol,
                        region_id=self._region,
                    )
                )
            return client

    def call(
        self,
        endpoint: Endpoint,
        creds: Credentials,
        service: str,
        version: str,
        action: str,
        query: dict[str, str],
    ) -> dict[str, Any]:
        params = rpc_params(action, version)
        end = time.monotonic() + self._timeout_s
        failure: CloudError | None = None
        for attempt in range(ATTEMPTS):
            left_ms = int((end - time.monotonic()) * 1000)
            if left_ms < 50:
                break
            runtime = RuntimeOptions(connect_timeout=min(1000, left_ms), read_timeout=left_ms)
            try:
                result = self._client(endpoint, creds).call_api(
                    params, openapi.OpenApiRequest(query=query), runtime
                )
            except (ClientException, ServerException, ThrottlingException) as exc:
                # ThrottlingException (an answer with x-acs-retry-after) is no ClientException.
                throttled = isinstance(exc, ThrottlingException) or (
                    isinstance(exc, ClientException)
                    and (exc.status_code == 429 or "throttl" in str(exc.code or "").lower())
                )
                refused = isinstance(exc, ClientException) and not throttled
                what = "throttled" if throttled else "refused" if refused else "failed"
                failure = CloudError(
                    service,
                    f"{action} {what}",
                    status=exc.status_code,
                    code=str(exc.code) if exc.code else None,
                    request_id=exc.request_id,
                )
                if refused:
                    raise failure from None
            except UnretryableException as exc:
                failure = self._unreachable(service, endpoint, action, exc)
            else:
                answer = result.get("body") if isinstance(result, dict) else None
                if not isinstance(answer, dict):
                    raise CloudError(service, f"{action} answered something other than an object")
                return answer
            time.sleep(min(1.0, 0.1 * 2**attempt) * random.random())  # noqa: S311 - jitter
        if failure is None:  # no time was left for a first attempt
            failure = CloudUnreachable(
                service,
                endpoint.url,
                timed_out=True,
                detail=f"no answer to {action} within {self._timeout_s:g} s",
            )
        raise failure

    def _unreachable(
        self, service: str, endpoint: Endpoint, action: str, exc: UnretryableException
    ) -> CloudUnreachable:
        """What a call that got no answer met, in a few words (no headers, no body)."""
        text = str(getattr(exc, "inner_exception", None) or exc).lower()
        if "timed out" in text or "timeout" in text:
            return CloudUnreachable(
                service,
                endpoint.url,
                timed_out=True,
                detail=f"no answer to {action} within {self._timeout_s:g} s",
            )
        if "refused" in text:
            why = "connection refused"
        elif any(m in text for m in ("name or service", "nodename", "getaddrinfo", "resolution")):
            why = "unknown host"
        else:
            why = "connection failed"
        return CloudUnreachable(service, endpoint.url, timed_out=False, detail=f"{why} ({action})")
