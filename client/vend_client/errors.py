"""What can go wrong for a caller, each kind carrying what it knows (never a secret)."""

from __future__ import annotations

from .wire.envelope import EnvelopeError

__all__ = ["CloudError", "CloudUnreachable", "EnvelopeError", "VendApiError", "VendClientError"]


class VendClientError(Exception):
    """Anything this package raises on purpose (EnvelopeError, a ValueError, aside)."""


class VendApiError(VendClientError):
    """The service answered with an error (contract section 7). `retry_after` is the answer's
    `Retry-After` in seconds (its seconds form only), None when it sent none: how long the
    service (or a gateway before it) asks to be left alone before a retry."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        request_id: str | None,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message} (request {request_id})")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id
        self.retry_after = retry_after


class CloudError(VendClientError):
    """STS or KMS refused or failed the caller's own call (opening an envelope, naming itself):
    `status` and `code` are the upstream's, None when it never answered."""

    def __init__(
        self,
        service: str,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        where = ", ".join(p for p in (code, request_id and f"request {request_id}") if p)
        super().__init__(f"{service}: {message}" + (f" ({where})" if where else ""))
        self.service = service
        self.message = message
        self.status = status
        self.code = code
        self.request_id = request_id


class CloudUnreachable(CloudError):
    """STS or KMS never answered the caller's own call: no connection to `url` (refused, unknown
    host), or no answer within the caller's timeout (`timed_out`)."""

    def __init__(self, service: str, url: str, *, timed_out: bool, detail: str) -> None:
        super().__init__(service, f"unreachable at {url}: {detail}")
        self.url = url
        self.timed_out = timed_out
        self.detail = detail
