"""Alibaba Cloud's RPC error shape, raised anywhere in the emulator and rendered once."""

from __future__ import annotations


class ApiError(Exception):
    """An error answer: HTTP status, Alibaba error code and a message free of secrets."""

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def missing(name: str) -> ApiError:
    return ApiError(
        400, "MissingParameter", f"The input parameter {name!r} that is mandatory is not supplied."
    )


def invalid(name: str, why: str) -> ApiError:
    return ApiError(400, "InvalidParameter", f"The parameter {name!r} is invalid: {why}")
