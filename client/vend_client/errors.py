"""What can go wrong for a caller. Every failure this package raises is a `VendClientError`, one
subclass per kind, each carrying what it knows (never a secret, a token or a key) and
`request_id` where the failed call had one. They know nothing of a command line: the
`vend-client` command maps them to its exit statuses (`vend_client.failures`).

    VendClientError
    ├── ConfigurationError   a setting missing or unusable (also a ValueError)
    ├── NoCredentialsError   the default credential chain found none
    ├── ServiceUnreachable   no answer from the service
    │   └── ServiceTimeout   connected and asked, no answer within timeout_s
    ├── VendApiError         the service answered an error (BadResponse: an unreadable answer)
    │   ├── RefusedError     a 4xx other than 429: asking again will not help
    │   └── UpstreamError    429 or a 5xx: the service or what is behind it failed; later
    ├── CloudError           the caller's own STS or KMS call was refused or failed
    │   └── CloudUnreachable STS or KMS never answered
    └── EnvelopeError        the envelope is not one, not for this secret or caller, or altered
"""

from __future__ import annotations

from .wire import envelope as _wire

__all__ = [
    "CloudError",
    "CloudUnreachable",
    "ConfigurationError",
    "EnvelopeError",
    "NoCredentialsError",
    "RefusedError",
    "ServiceTimeout",
    "ServiceUnreachable",
    "UpstreamError",
    "VendApiError",
    "VendClientError",
    "api_error",
]


class VendClientError(Exception):
    """Anything this package raises on purpose. `request_id` names the failed request as its
    answerer did (the service's; STS's or KMS's for a CloudError), None where nothing answered
    or the answer named none."""

    request_id: str | None = None


class ConfigurationError(VendClientError, ValueError):
    """A setting that cannot work: missing (`VEND_URL`), unparseable (`VEND_TIMEOUT`), a URL
    that cannot be asked, or a bearer token a header cannot carry. `setting` names it: the
    environment variable or the parameter. A ValueError too, as these were before."""

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


class NoCredentialsError(VendClientError):
    """No Alibaba Cloud credentials: none were given and the default chain (the
    ALIBABA_CLOUD_* variables, the profile files, an ECS instance's role) found none. RAM proofs
    and the caller's own STS and KMS calls need them; a bearer token does not."""


class ServiceUnreachable(VendClientError):
    """The service never answered: no connection to `url` (shown without a password or query),
    `detail` says why in a few words. `retryable` is False where asking again cannot help (a TLS
    certificate that does not verify) or was already cut short (the answer broke off, a
    timeout)."""

    def __init__(self, url: str, detail: str, *, retryable: bool = True) -> None:
        super().__init__(f"the service at {url} is unreachable: {detail}")
        self.url = url
        self.detail = detail
        self.retryable = retryable


class ServiceTimeout(ServiceUnreachable):
    """Connected and asked, but no answer within `timeout_s`: the service may have spent its
    own deadline, so this is not retried."""

    def __init__(self, url: str, timeout_s: float) -> None:
        super().__init__(url, f"no answer within {timeout_s:g} s", retryable=False)
        self.timeout_s = timeout_s


class VendApiError(VendClientError):
    """The service answered with an error (contract section 7): its `status`, `code`, `message`
    and `request_id` (from the error body, else the answer's `X-Request-Id`). `retry_after` is
    the answer's `Retry-After` in seconds (its seconds form only), None when it sent none: how
    long the service (or a gateway before it) asks to be left alone before a retry. Raised as
    RefusedError or UpstreamError by status; as itself only for an answer that is not the
    contract's at a status that is neither (code `BadResponse`)."""

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


class RefusedError(VendApiError):
    """A 4xx other than 429: unauthenticated (401), denied (403), not found (404), an invalid
    request or a conflict. Asking the same again will not cure it."""


class UpstreamError(VendApiError):
    """429 or a 5xx: the service, or STS, EIAM or KMS behind it, failed or throttled in a way
    its own retries did not cure. Worth trying again later (after `retry_after`, if given)."""


def api_error(
    status: int,
    code: str,
    message: str,
    request_id: str | None,
    *,
    retry_after: float | None = None,
) -> VendApiError:
    """The VendApiError an answer with `status` is."""
    kind: type[VendApiError] = VendApiError
    if status == 429 or status >= 500:
        kind = UpstreamError
    elif 400 <= status < 500:
        kind = RefusedError
    return kind(status, code, message, request_id, retry_after=retry_after)


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


class EnvelopeError(VendClientError, _wire.EnvelopeError):
    """The envelope cannot be opened: not an envelope, sealed for another secret or caller, or
    altered. `request_id` is the service's request that sealed it, as its encryption context
    says (None when it does not). Also the wire module's EnvelopeError, a ValueError."""

    def __init__(self, message: str, *, request_id: str | None = None) -> None:
        super().__init__(message)
        self.request_id = request_id
