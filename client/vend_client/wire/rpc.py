"""The versions of the RPC APIs both sides call, and the SDK's generic-call parameters of one
action (the caller's package calls through the SDK's `call_api`; the service sends the SDK's
signed request itself, `shared.upstream.transport`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alibabacloud_tea_openapi import models as openapi

STS_VERSION = "2015-04-01"
EIAM_VERSION = "2021-12-01"
KMS_VERSION = "2016-01-20"


def rpc_params(action: str, version: str) -> openapi.Params:
    # Imported here: the models module pulls in the credentials library (about 50 ms), which
    # the service's cold start does not otherwise need.
    from alibabacloud_tea_openapi import models as openapi  # noqa: PLC0415

    return openapi.Params(
        action=action,
        version=version,
        protocol="HTTPS",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
