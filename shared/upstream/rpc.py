"""The service's upstream calls (STS, EIAM, KMS), each retried per `shared.upstream.retry`, over
`shared.upstream.transport`: the SDK's request and signer, pooled sending of our own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alibabacloud_tea_openapi.exceptions import ClientException

from shared.errors import MaybeActed, StaleCredentials, VendError, upstream_error
from shared.upstream import retry
from shared.upstream.deadline import Deadline
from shared.upstream.transport import RpcTransport
from shared.wire.credentials import Credentials
from shared.wire.endpoint import Endpoint
from shared.wire.rpc import EIAM_VERSION, KMS_VERSION, STS_VERSION

CONNECT_TIMEOUT_MS = 1000


def call(
    transport: RpcTransport,
    endpoint: Endpoint,
    creds: Credentials,
    action: str,
    version: str,
    query: dict[str, Any],
    deadline: Deadline,
    *,
    service: str,
    idempotent: bool = True,
) -> dict[str, Any]:
    """The response body of one RPC action; retried per `shared.upstream.retry`, within
    `deadline` (not on a 5xx when the call is not `idempotent`)."""
    sent = {k: str(v) for k, v in query.items() if v is not None}

    def attempt(timeout_ms: int) -> object:
        return transport.call(
            endpoint,
            creds,
            action,
            version,
            sent,
            connect_timeout_ms=CONNECT_TIMEOUT_MS,
            timeout_ms=timeout_ms,
        )

    body = retry.call(attempt, deadline, service=service, retry_server_errors=idempotent)
    # Every answer of these APIs is a JSON object; anything else (null, a list) is a broken
    # upstream, not a bug of ours.
    if not isinstance(body, dict):
        message = f"{service} answered {action} with something other than an object"
        if not idempotent:  # it answered 200: it may well have acted
            raise MaybeActed(502, "UpstreamError", message, service=service, settled=True)
        raise upstream_error(message)
    return body


@dataclass(frozen=True)
class Service:
    """One upstream API (EIAM or KMS) at one endpoint: its calls, with the service's own mapping
    of refusals (4xx) to the contract's errors, each naming the upstream for the audit."""

    transport: RpcTransport
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
            return call(
                self.transport,
                self.endpoint,
                creds,
                action,
                self.version,
                query,
                deadline,
                service=self.name,
                idempotent=idempotent,
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
            raise retry.refused(self.refusal(exc), exc, self.name) from None


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
    "Credentials",
    "RpcTransport",
    "Service",
    "call",
    "rejects_credentials",
]
