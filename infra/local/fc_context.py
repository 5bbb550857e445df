"""The context object FC hands a handler, as the local servers build it (FC 3.0's python3.12
shape: no `credentials`; the function's keys are in the environment)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass
class FunctionInfo:
    name: str
    handler: str
    memory: int = 512
    timeout: int = 15


@dataclass
class LocalContext:
    """The parts of FC's context the handlers read (python3.12 shape: no credentials)."""

    request_id: str
    function: FunctionInfo
    region: str | None = None
    account_id: str | None = None
    credentials: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
