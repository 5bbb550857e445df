"""SDK clients, one per endpoint and credential, and the one place their calls are retried.

EIAM and KMS go through the SDK's generic RPC call (`Client.call_api`), its supported way to call
any RPC API, which spares the cold start their product modules (EIAM's alone imports in about
half a second); STS goes through its product client, which costs about 1 ms more."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from alibabacloud_tea_openapi import models as openapi
from alibabacloud_tea_openapi.client import Client as OpenApiClient
from alibabacloud_tea_openapi.exceptions import ClientException
from darabonba.runtime import RuntimeOptions

from shared.errors import MaybeActed, StaleCredentials, VendError, upstream_error
from shared.upstream import retry
from shared.upstream.deadline import Deadline
from shared.wire.credentials import Credentials
from shared.wire.endpoint import Endpoint
from shared.wire.rpc import EIAM_VERSION, KMS_VERSION, STS_VERSION, rpc_params

CONNECT_TIMEOUT_MS = 1000
T = TypeVar("T")


class RpcClient:
    """One endpoint, one credential; safe to share across threads and invocations."""

    def __init__(
        self,
        endpoint: Endpoint,
        credentials: Credentials,
        region: str,
        client_class: type[OpenApiClient] = OpenApiClient,
    ) -> None:
        # Product clients (STS's) are tea-openapi clients too, so one wrapper serves both.
        self.client: Any = client_class(
            openapi.Config(
                access_key_id=credentials.access_key_id,
                access_key_secret=credentials.access_key_secret,
                security_token=credentials.security_token,
                endpoint=endpoint.host,
                protocol=endpoint.protocol,
                region_id=region,
                connect_timeout=CONNECT_TIMEOUT_MS,
                read_timeout=5000,
            )
        )

    def call(
        self,
        action: str,
        version: str,
        query: dict[str, Any],
        deadline: Deadline,
        *,
        service: str,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        """The response body; retried per `shared.upstream.retry`, within `deadline` (not on a
        5xx when the call is not `idempotent`)."""
        params = rpc_params(action, version)

        def attempt(read_timeout_ms: int) -> object:
            runtime = RuntimeOptions(
                connect_timeout=min(CONNECT_TIMEOUT_MS, read_timeout_ms),
                read_timeout=read_timeout_ms,
            )
            request = openapi.OpenApiRequest(
                query={k: v for k, v in query.items() if v is not None}
            )
            result: dict[str, Any] = self.client.call_api(params, request, runtime)
            return result["body"]

        body = retry.call(attempt, deadline, service=service, retry_server_errors=idempotent)
        # Every answer of these APIs is a JSON object; anything else (null, a list) is a broken
        # upstream, not a bug of ours.
        if not isinstance(body, dict):
            message = f"{service} answered {action} with something other than an object"
            if not idempotent:  # it answered 200: it may well have acted
                raise MaybeActed(502, "UpstreamError", message, service=service, settled=True)
            raise upstream_error(message)
        return body

    def invoke(
        self, call: Callable[[Any, RuntimeOptions], T], deadline: Deadline, *, service: str
    ) -> T:
        """`call(sdk_client, runtime)` (a product client's `..._with_options`), retried per
        `shared.upstream.retry` within `deadline`."""

        def attempt(read_timeout_ms: int) -> T:
            runtime = RuntimeOptions(
                connect_timeout=min(CONNECT_TIMEOUT_MS, read_timeout_ms),
                read_timeout=read_timeout_ms,
            )
            return call(self.client, runtime)

        return retry.call(attempt, deadline, service=service)


class ClientPool:
    """Clients by (endpoint, credential), kept across invocations; bounded, since scoped STS
    credentials come and go."""

    def __init__(self, region: str, max_clients: int = 128) -> None:
        self._region = region
        self._max = max_clients
        self._clients: OrderedDict[tuple[Endpoint, Credentials, type], RpcClient] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        endpoint: Endpoint,
        credentials: Credentials,
        client_class: type[OpenApiClient] = OpenApiClient,
    ) -> RpcClient:
        key = (endpoint, credentials, client_class)
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
        client = RpcClient(endpoint, credentials, self._region, client_class)
        with self._lock:
            self._clients[key] = client
            while len(self._clients) > self._max:
                self._clients.popitem(last=False)
        return client


@dataclass(frozen=True)
class Service:
    """One upstream API (EIAM or KMS) at one endpoint: its calls, with the service's own mapping
    of refusals (4xx) to the contract's errors."""

    pool: ClientPool
    endpoint: Endpoint
    name: str
    version: str
    refusal: Callable[[ClientException], VendError]

    def call(
        self,
        action: str,
        creds: Credentials,
        query: dict[str, Any],
        deadline: Deadline,
        *,
        idempotent: bool = True,
    ) -> dict[str, Any]:
        try:
            return self.pool.get(self.endpoint, creds).call(
                action, self.version, query, deadline, service=self.name, idempotent=idempotent
            )
        except ClientException as exc:
            if rejects_credentials(exc, creds):
                raise StaleCredentials(
                    502,
                    "UpstreamError",
                    f"{self.name} did not accept the scoped credentials: {exc.code}",
                    service=self.name,
                    upstream_code=str(exc.code),
                    upstream_status=exc.status_code,
                    upstream_request_id=exc.request_id,
                ) from None
            raise self.refusal(exc) from None


# What an Alibaba Cloud gateway answers when the access key or its security token is unknown,
# invalid or expired: the request was refused before the product saw it, so nothing was done.
_REJECTED_KEY_CODES = frozenset(
    {
        "InvalidAccessKeyId",
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "MissingSecurityToken",
    }
)


def rejects_credentials(exc: ClientException, creds: Credentials) -> bool:
    """True when the upstream refused the credentials themselves, not the request. A
    SignatureDoesNotMatch counts only for an STS key, whose secret may have been forgotten by a
    restarted or rotated STS; for a permanent key it means a wrong secret, a configuration
    error that a new session cannot cure."""
    code = str(exc.code or "")
    if code in _REJECTED_KEY_CODES or code.startswith("InvalidSecurityToken"):
        return True
    return code == "SignatureDoesNotMatch" and creds.security_token is not None


__all__ = [
    "EIAM_VERSION",
    "KMS_VERSION",
    "STS_VERSION",
    "ClientPool",
    "Credentials",
    "RpcClient",
    "Service",
    "rejects_credentials",
]
