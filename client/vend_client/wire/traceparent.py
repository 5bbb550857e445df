"""W3C Trace Context's `traceparent` (version 00), read strictly: the service and the agent name
a request's trace in their log lines only when it carried a valid one."""

from __future__ import annotations

import re

# version-traceid-parentid-flags, lower-case hex only; another version is not read.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}")


def trace_id_of(traceparent: object) -> str | None:
    """The trace id of a `traceparent` value, or None for anything else: a value that is not
    exactly one valid traceparent is ignored, never an error."""
    if not isinstance(traceparent, str):
        return None
    match = _TRACEPARENT.fullmatch(traceparent)
    if match is None:
        return None
    trace_id, parent_id = match.groups()
    if trace_id == "0" * 32 or parent_id == "0" * 16:
        return None
    return trace_id
