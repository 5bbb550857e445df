"""The form of a RAM proof (contract section 3), as the caller builds it and the service checks
it: an unsent STS GetCallerIdentity request, signed with the audience header in it."""

from __future__ import annotations

import ipaddress
import re

AUDIENCE_HEADER = "x-acs-vend-audience"
STS_ACTION = "GetCallerIdentity"
STS_VERSION = "2015-04-01"
DEFAULT_STS_HOST = "sts.aliyuncs.com"
SIGNATURE_ALGORITHM = "ACS3-HMAC-SHA256"
MAX_PROOF_BYTES = 16 * 1024
HEADER_VALUE = re.compile(r"(?:[\x21-\x7e][\x20-\x7e]*)?")  # visible ASCII, no leading space

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOSTNAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_HOST_PORT = re.compile(r"(?P<host>\[[0-9a-f:.]+\]|[^:\[\]]+)(?::(?P<port>[0-9]{1,5}))?")
_USER_ARN = re.compile(r"acs:ram::(?P<account>[0-9]{1,32}):user/[A-Za-z0-9._@-]{1,64}")
_ASSUMED_ROLE_ARN = re.compile(
    r"acs:ram::(?P<account>[0-9]{1,32}):assumed-role/(?P<role>[A-Za-z0-9._-]{1,64})"
    r"/[A-Za-z0-9._@-]{1,64}"
)


def principal_arn(arn: str, account_id: str) -> str | None:
    """The principal of an STS identity ARN of account `account_id`: a user as it is, an assumed
    role `.../assumed-role/{Role}/{session}` as `...:role/{Role}`; None for any other form (the
    root account included) or another account."""
    match = _USER_ARN.fullmatch(arn)
    if match is not None:
        return arn if match["account"] == account_id else None
    match = _ASSUMED_ROLE_ARN.fullmatch(arn)
    if match is None or match["account"] != account_id:
        return None
    return f"acs:ram::{account_id}:role/{match['role']}"


def host_port(value: str) -> str:
    """`host[:port]`, lower-cased; ValueError says what is wrong."""
    text = value.lower()
    match = _HOST_PORT.fullmatch(text)
    if match is None:
        raise ValueError("expected host[:port]")
    host, port = match["host"], match["port"]
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise ValueError("not an IPv6 address in brackets") from None
    elif len(host) > 253 or not _HOSTNAME.fullmatch(host):
        raise ValueError("not a valid host name")
    elif host.replace(".", "").isdigit():
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError("not a valid IPv4 address") from None
    if port is not None and (port.startswith("0") or not 1 <= int(port) <= 65535):
        raise ValueError("the port must be 1 to 65535")
    return text
