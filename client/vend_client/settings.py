"""The caller's settings, in one place: the parameters both clients take, the `VEND_*` variable
that sets each (read by `VendClient.from_env`, `CachingClient.from_env` and the `vend-client`
command alike, so they cannot drift), and their defaults. Imports nothing heavy: `vend --help`
shows the defaults."""

from __future__ import annotations

import math
import os
from collections.abc import Collection, Mapping
from types import MappingProxyType
from typing import Any

__all__ = [
    "DEFAULT_REGION",
    "DEFAULT_STS",
    "DEFAULT_TIMEOUT_S",
    "VARIABLES",
    "default_kms",
    "from_environment",
    "seconds",
]

# Parameter name -> the variable that sets it.
VARIABLES: Mapping[str, str] = MappingProxyType(
    {
        "url": "VEND_URL",
        "audience": "VEND_AUDIENCE",
        "region": "VEND_REGION",
        "sts_endpoint": "VEND_STS_ENDPOINT",
        "kms_endpoint": "VEND_KMS_ENDPOINT",
        "timeout_s": "VEND_TIMEOUT",
    }
)
DEFAULT_REGION = "cn-hangzhou"
DEFAULT_STS = "sts.aliyuncs.com"  # the global endpoint answers GetCallerIdentity from anywhere
DEFAULT_TIMEOUT_S = 15.0


def default_kms(region: str) -> str:
    """KMS's public endpoint in `region`."""
    return f"kms.{region}.aliyuncs.com"


def from_environment(
    environ: Mapping[str, str] | None = None, *, given: Collection[str] = ()
) -> dict[str, Any]:
    """Each setting a `VEND_*` variable gives, by parameter name (an empty variable is unset):
    text, but `timeout_s` in seconds. ConfigurationError, naming `VEND_TIMEOUT`, for a timeout
    that is not a number of seconds above 0. The settings named in `given` are not read: what
    the caller gives wins, whatever its variable holds."""
    env = os.environ if environ is None else environ
    found: dict[str, Any] = {}
    for name, variable in VARIABLES.items():
        value = None if name in given else env.get(variable)
        if value:
            found[name] = seconds(value, variable) if name == "timeout_s" else value
    return found


def seconds(value: object, setting: str) -> float:
    """`value` (a number, or its text) as seconds above 0; ConfigurationError naming `setting`
    otherwise."""
    from .errors import ConfigurationError  # noqa: PLC0415 - its module imports the AEAD

    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{setting}={value!r} is not a number of seconds", setting=setting
        ) from None
    if isinstance(value, bool) or not (math.isfinite(number) and number > 0):
        raise ConfigurationError(
            f"{setting}={value!r} must be a number of seconds more than 0", setting=setting
        )
    return number
