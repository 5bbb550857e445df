"""Real Alibaba Cloud SDK clients pointed at a local endpoint, as the tests use them."""

from __future__ import annotations

from typing import Any

from alibabacloud_eiam20211201.client import Client as EiamClient
from alibabacloud_kms20160120.client import Client as KmsClient
from alibabacloud_sts20150401.client import Client as StsClient
from alibabacloud_tea_openapi import models as openapi

ACCOUNT = "1234567890123456"
REGION = "cn-hangzhou"
INSTANCE = "idaas_demo"

# Demo identities of examples/seed.yaml.
FUNCTION = ("LTAI5tVendFunction0001", "demo-vend-function-secret-0001")
BILLING = ("LTAI5tDemoBilling00001", "demo-billing-secret-0001")
REPORTS = ("LTAI5tDemoReports00001", "demo-reports-secret-0001")
OPERATOR = ("LTAI5tDemoOperator0001", "demo-operator-secret-0001")
ROLE_ARN = f"acs:ram::{ACCOUNT}:role/vend-eiam"


def config(endpoint: str, key: tuple[str, str], token: str | None = None) -> openapi.Config:
    return openapi.Config(
        access_key_id=key[0],
        access_key_secret=key[1],
        security_token=token,
        endpoint=endpoint,
        protocol="http",
        region_id=REGION,
        connect_timeout=2000,
        read_timeout=10000,
    )


def sts(endpoint: str, key: tuple[str, str], token: str | None = None) -> StsClient:
    return StsClient(config(endpoint, key, token))


def eiam(endpoint: str, key: tuple[str, str], token: str | None = None) -> EiamClient:
    return EiamClient(config(endpoint, key, token))


def kms(endpoint: str, key: tuple[str, str], token: str | None = None) -> KmsClient:
    return KmsClient(config(endpoint, key, token))


def secret_arn(app: str, secret: str, instance: str = INSTANCE) -> str:
    return f"acs:eiam:{REGION}:{ACCOUNT}:instance/{instance}/application/{app}/secret/{secret}"


def key_arn(key_id: str) -> str:
    return f"acs:kms:{REGION}:{ACCOUNT}:key/{key_id}"


def allow(action: str | list[str], resource: str | list[str]) -> dict[str, Any]:
    return {
        "Version": "1",
        "Statement": [{"Effect": "Allow", "Action": action, "Resource": resource}],
    }
