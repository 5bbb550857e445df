"""What a request says about itself that the service may believe: its request id and the caller's
address (contract section 7), and, inside FC, the function's own credentials. A platform's
header counts only where the platform sets it, and only once checked; anything else a caller
sends is the caller's, and never becomes the id that reaches an encryption context, a response
header or a log line, nor the address a policy's `acs:SourceIp` condition decides on, nor the
keys that sign the function's own calls.

Where FC's facts come from is in infra/ASSUMPTIONS.md (F25 to F28, F34)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, MutableMapping
from ipaddress import ip_address

from shared.wire.credentials import Credentials

# Contract section 7: a platform's request id is 1 to 64 characters of [A-Za-z0-9_.:-].
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}", re.ASCII)
# FC's system variables of every instance, custom runtime included (ASSUMPTIONS F16). FC
# reserves the FC_ prefix, so a function's own configuration cannot set them.
_FC_INSTANCE_VARIABLES = ("FC_FUNCTION_NAME", "FC_INSTANCE_ID")
# FC's copy of the function role's temporary keys, on every request to a custom runtime
# (ASSUMPTIONS F34), lower-cased as request headers are here.
CREDENTIAL_HEADERS = ("x-fc-access-key-id", "x-fc-access-key-secret", "x-fc-security-token")
# Longer than any textual IPv6 address (45 characters with an embedded IPv4): the address
# parser never sees a caller's megabyte.
_MAX_ADDRESS_CHARS = 64


def new_request_id() -> str:
    """The service's own request id."""
    return str(uuid.uuid4())


def checked_request_id(value: object) -> str | None:
    """A platform's request id if it has the contract's shape, else None."""
    if isinstance(value, str) and _REQUEST_ID.fullmatch(value) is not None:
        return value
    return None


def request_id_or_new(value: object) -> str:
    """A platform's request id if it has the contract's shape, else the service's own."""
    return checked_request_id(value) or new_request_id()


def inside_fc(environ: Mapping[str, str]) -> bool:
    """Whether this process runs in an FC instance, which sets these variables in every one."""
    return all(environ.get(name) for name in _FC_INSTANCE_VARIABLES)


def ip_or_none(value: object) -> str | None:
    """`value` as a normalized IP address, or None when it is not one."""
    if not isinstance(value, str) or len(value) > _MAX_ADDRESS_CHARS:
        return None
    try:
        return str(ip_address(value.strip()))
    except ValueError:
        return None


def last_forwarded_hop(header: str | None) -> str | None:
    """The last address of an X-Forwarded-For: the one the proxy in front of this server
    appended, the only one it vouches for. Every earlier one is whatever the caller sent."""
    if not header:
        return None
    return ip_or_none(header.rsplit(",", 1)[-1])


def take_platform_credentials(
    headers: MutableMapping[str, str], *, in_fc: bool
) -> Credentials | None:
    """Removes FC's credential headers from `headers`, so that nothing after this sees, logs or
    echoes them, and returns them as credentials where FC set them: inside FC (which refuses a
    caller's `x-fc-` header, ASSUMPTIONS F26) with at least a key id and a secret. Outside FC
    they are a caller's, and never sign anything: None."""
    key_id, secret, token = (headers.pop(name, "").strip() for name in CREDENTIAL_HEADERS)
    if not in_fc or not key_id or not secret:
        return None
    return Credentials(key_id, secret, token or None)
