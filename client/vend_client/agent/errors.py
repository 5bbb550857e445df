"""What the agent answers when it cannot give what was asked: the error an exception means, in
the contract's shape (section 7), with the service's own status, code and request id kept when
the service is the one that refused."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from ..errors import ServiceUnreachable, VendApiError
from ..exit_status import ExitStatus
from ..failures import explain
from .tokens import TokenEndpointError

__all__ = ["Refusal", "refusal_of"]

MAX_MESSAGE_CHARS = 300

# What each of the caller commands' failure kinds (failures.explain) is to an HTTP caller: the
# agent's own upstreams (STS, KMS, its credentials) failed it, or it is set up wrong.
_BY_EXIT: dict[ExitStatus, tuple[int, str]] = {
    ExitStatus.UNREACHABLE: (503, "Unreachable"),
    ExitStatus.NO_CREDENTIALS: (503, "NoCredentials"),
    ExitStatus.DENIED: (403, "AccessDenied"),
    ExitStatus.AUTH_REFUSED: (502, "CredentialsRefused"),
    ExitStatus.NOT_FOUND: (502, "KeyNotFound"),
    ExitStatus.ENVELOPE: (502, "EnvelopeError"),
    ExitStatus.UPSTREAM: (502, "UpstreamError"),
    ExitStatus.REJECTED: (502, "UpstreamError"),
    ExitStatus.USAGE: (500, "Misconfigured"),
    ExitStatus.UNEXPECTED: (502, "UpstreamError"),
}


@dataclass(frozen=True)
class Refusal:
    """One error answer: `request_id` is the service's, when the service refused."""

    status: int
    code: str
    message: str
    request_id: str | None = None
    retry_after: int | None = None

    def body(self) -> dict[str, object]:
        error: dict[str, object] = {"code": self.code, "message": self.message}
        if self.request_id is not None:
            error["request_id"] = self.request_id
        return {"error": error}


def refusal_of(exc: BaseException, *, url: str, timeout_s: float) -> Refusal | None:
    """The answer an expected failure means; None for anything else (a bug). `url` and
    `timeout_s` are the service's, for the words of an unreachable service."""
    if isinstance(exc, VendApiError):
        return _from_service(exc)
    if isinstance(exc, TokenEndpointError):
        code = "TokenEndpointUnreachable" if exc.status is None else "TokenRefused"
        return Refusal(502, code, _bounded(exc.message))
    known = explain(exc, argparse.Namespace(url=url, timeout=timeout_s))
    if known is None:
        return None
    if isinstance(exc, ServiceUnreachable):  # a timeout too
        return Refusal(503, "ServiceUnreachable", _bounded(str(known)))
    status, code = _BY_EXIT.get(known.status, (502, "UpstreamError"))
    return Refusal(status, code, _bounded(str(known)))


def _from_service(exc: VendApiError) -> Refusal:
    """The service's own status and words; what is not an error status (a broken answer, a
    redirect) is a bad gateway."""
    status = exc.status if 400 <= exc.status <= 599 else 502
    message = exc.message
    if exc.status == 401:
        # Not the caller's agent token: the agent's own credentials, which the caller cannot fix.
        message = f"the service refused the agent's credentials: {message}"
    retry_after = int(exc.retry_after) if exc.retry_after is not None else None
    return Refusal(
        status,
        _bounded(exc.code, 64),
        _bounded(message),
        _bounded(exc.request_id, 64) if exc.request_id else None,
        retry_after,
    )


def _bounded(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """One line of at most `limit` characters: what another party said is never unbounded."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
