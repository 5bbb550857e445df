"""The service's errors (contract section 7): one exception type, raised anywhere in the core and
rendered once by the adapter. Messages are for the caller: never a secret, token or signature."""

from __future__ import annotations

from typing import Any


class VendError(Exception):
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


def internal() -> VendError:
    return VendError(500, "InternalError", "An internal error occurred.")
