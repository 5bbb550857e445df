"""The service's errors (contract section 7): one exception type, raised anywhere in the core and
rendered once by the adapter. Messages are for the caller: never a secret, token or signature."""

from __future__ import annotations

from typing import Any


class VendError(Exception):
    # The upstream whose answer (or silence) decided this error, when one did: its name as the
    # messages say it ("STS", "EIAM", "KMS", "store"), its own code and HTTP status, its request
    # id, and how many calls were made to it for the call that failed (None: not counted). For
    # the audit record (contract section 9); UpstreamFailure always sets them, and a refusal
    # that an upstream decided (EIAM's 404, KMS's 403) carries them too.
    service: str | None = None
    upstream_code: str | None = None
    upstream_status: int | None = None
    upstream_request_id: str | None = None
    attempts: int | None = None

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "request_id": request_id}}


def invalid(message: str) -> VendError:
    return VendError(400, "InvalidParameter", message)


def invalid_expiration(message: str) -> VendError:
    return VendError(400, "InvalidParameter.ExpirationTime", message)


def malformed(message: str) -> VendError:
    return VendError(400, "MalformedRequest", message)


def unauthenticated(message: str) -> VendError:
    return VendError(401, "Unauthenticated", message, {"WWW-Authenticate": "Bearer, RAM"})


def access_denied(message: str) -> VendError:
    return VendError(403, "AccessDenied", message)


def not_found(message: str) -> VendError:
    return VendError(404, "NotFound", message)


def upstream_error(message: str) -> VendError:
    return VendError(502, "UpstreamError", message)


def upstream_timeout(message: str) -> VendError:
    return VendError(504, "UpstreamTimeout", message)


def throttled(message: str) -> VendError:
    return VendError(429, "Throttled", message)


def reused() -> VendError:
    return VendError(
        422, "IdempotencyKeyReused", "this Idempotency-Key was used for another request"
    )


def in_progress() -> VendError:
    return VendError(
        409, "IdempotencyInProgress", "a request with this Idempotency-Key is still being served"
    )


def internal() -> VendError:
    return VendError(500, "InternalError", "An internal error occurred.")


class UpstreamFailure(VendError):
    """An upstream (STS, EIAM, KMS) failed for good: a 429, 502 or 504 to the caller, carrying
    which upstream, its own code, status and request id when it answered, and how many attempts
    were made."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        service: str,
        upstream_code: str | None = None,
        upstream_status: int | None = None,
        upstream_request_id: str | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(status, code, message)
        self.service = service
        self.upstream_code = upstream_code
        self.upstream_status = upstream_status
        self.upstream_request_id = upstream_request_id
        self.attempts = attempts

    def facts(self) -> dict[str, Any]:
        """What is known of the upstream's failure, to carry over to a restated error."""
        return {
            "service": self.service,
            "upstream_code": self.upstream_code,
            "upstream_status": self.upstream_status,
            "upstream_request_id": self.upstream_request_id,
            "attempts": self.attempts,
        }


class MaybeActed(UpstreamFailure):
    """A call that is not idempotent (EIAM's create) failed in a way that does not tell whether
    the upstream acted: a 5xx, throttling, a timeout or a connection lost after the request was
    sent, or an answer that could not be read. It must not be sent again blindly.

    `settled` says the upstream answered (a 5xx, a 429, an unreadable 200), so whatever it did is
    done and a listing shows it; after a timeout or a lost connection the request may still be
    at work there, and a listing that shows nothing new proves nothing yet."""

    def __init__(self, *args: Any, settled: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settled = settled


class StaleCredentials(UpstreamFailure):
    """The upstream does not accept the (scoped STS) credentials: unknown, invalid or expired.
    Nothing was done; the session that signed the call must be dropped."""


def decided_by(
    err: VendError,
    service: str,
    *,
    code: object = None,
    status: object = None,
    request_id: object = None,
    attempts: int | None = None,
) -> VendError:
    """`err`, naming the upstream whose answer decided it (for the audit record)."""
    err.service = service
    err.upstream_code = str(code) if code else None
    err.upstream_status = status if isinstance(status, int) else None
    err.upstream_request_id = str(request_id) if request_id else None
    err.attempts = attempts
    return err


def bounded(text: str, limit: int = 64) -> str:
    """Caller-supplied text as an error message may echo it: at most `limit` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def store_down(exc: Exception) -> VendError:
    """The idempotency store did not answer (a StoreUnavailable, which carries its code and
    attempts): nothing that depends on it is done."""
    return UpstreamFailure(
        502,
        "UpstreamError",
        "the idempotency store is unavailable",
        service="store",
        upstream_code=getattr(exc, "code", None),
        attempts=getattr(exc, "attempts", 1),
    )
