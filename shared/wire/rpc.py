"""How both sides call an Alibaba Cloud RPC API: the official SDK's generic call, which signs
with the SDK's own signer and spares the product modules' import time."""

from __future__ import annotations

from alibabacloud_tea_openapi import models as openapi

STS_VERSION = "2015-04-01"
EIAM_VERSION = "2021-12-01"
KMS_VERSION = "2016-01-20"


def rpc_params(action: str, version: str) -> openapi.Params:
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
