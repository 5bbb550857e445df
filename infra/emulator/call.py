"""One authenticated API call, as the action handlers see it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ApiError, invalid, missing
from .iam import Identity


@dataclass(frozen=True)
class Call:
    action: str
    params: Mapping[str, str]
    identity: Identity
    conditions: Mapping[str, str]  # acs:SourceIp, acs:CurrentTime, acs:SecureTransport

    def required(self, name: str) -> str:
        value = self.params.get(name)
        if value is None or value == "":
            raise missing(name)
        return value

    def optional(self, name: str) -> str | None:
        value = self.params.get(name)
        return None if value in (None, "") else value

    def required_id(self, name: str) -> str:
        value = self.required(name)
        if not _ID.fullmatch(value):
            raise invalid(name, "1 to 64 of A-Z a-z 0-9 _ -")
        return value

    def optional_int(self, name: str) -> int | None:
        value = self.optional(name)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            raise invalid(name, "not an integer") from None


_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")

Handler = Callable[[Call], dict[str, Any]]


def not_found(code: str, what: str) -> ApiError:
    return ApiError(404, code, f"The specified {what} does not exist.")
