"""Alibaba Cloud's RPC error shape, raised anywhere in the emulator and rendered once."""

from __future__ import annotations

from dataclasses import dataclass


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


# -- which codes may be answered, and why ----------------------------------------------------

# action -> {error code: HTTP status}: the codes an action's handler answers itself. Each service
# module (sts, eiam, kms) has one as ERRORS, checked by tests/test_emulator_fidelity.py against
# the vendored API metadata (infra/api-metadata/) and against the `ApiError`s in this package.
ActionErrors = dict[str, dict[str, int]]


@dataclass(frozen=True)
class GatewayCode:
    """A code answered before (or around) any action: by Alibaba Cloud's API gateway in the
    cloud, by app.py, signature.py, iam.py or call.py here."""

    status: int | None  # None: the status the injected fault names
    raised_by: str
    # Whether an action's handler may reach it (a missing required parameter, RAM refusing the
    # call): the test then lets every action answer it without listing it in ERRORS.
    in_handlers: bool
    source: str


# Alibaba Cloud's documentation of these codes (no single official page lists them all):
_CLIENT_ERRORS = "https://help.aliyun.com/document_detail/51132.html"  # client error codes
_COMMON_ERRORS = "https://help.aliyun.com/document_detail/435312.html"  # + server errors
_OPENAPI_ERRORS = "https://help.aliyun.com/en/document_detail/434846.html"  # OpenAPI gateway
_GATEWAY_QA = "https://developer.aliyun.com/ask/278265"  # community copy of the gateway table
_V3_SIGNATURE = (
    "https://www.alibabacloud.com/help/en/sdk/product-overview/v3-request-structure-and-signature"
)

GATEWAY_CODES: dict[str, GatewayCode] = {
    "MissingParameter": GatewayCode(
        400,
        "app.py (no x-acs-version / x-acs-action header); call.py Call.required (a required "
        "parameter is absent)",
        True,
        f"{_CLIENT_ERRORS} (MissingParameter, 400); the gateway names the parameter in the code, "
        f"Missing{{ParameterName}}: {_OPENAPI_ERRORS} (DEVIATIONS.md)",
    ),
    "InvalidParameter": GatewayCode(
        400,
        "app.py (Content-Length is not a number)",
        False,
        f"{_CLIENT_ERRORS} (InvalidParameter, 400)",
    ),
    "InvalidVersion": GatewayCode(
        400,
        "app.py (x-acs-version of no emulated product)",
        False,
        "unverified: no Alibaba Cloud page found; the documented gateway code is NoSuchVersion "
        f"(400) in {_COMMON_ERRORS} (DEVIATIONS.md)",
    ),
    "InvalidAction.NotFound": GatewayCode(
        404,
        "app.py (x-acs-action the product does not serve here, e.g. KMS DescribeKey)",
        False,
        f"unverified: {_OPENAPI_ERRORS} documents InvalidApi.NotFound (404) (DEVIATIONS.md)",
    ),
    "RequestEntityTooLarge": GatewayCode(
        413,
        "app.py (request body over 1 MiB)",
        False,
        "unverified: the status 413 is KMS's for an oversized body "
        "(https://www.alibabacloud.com/help/en/kms/key-management-service/support/decrypt), "
        "the code is the emulator's",
    ),
    "MissingAuthorization": GatewayCode(
        400,
        "signature.py (no Authorization header)",
        False,
        f"unverified: the emulator's; the header is required by {_V3_SIGNATURE}",
    ),
    "IncompleteSignature": GatewayCode(
        400,
        "signature.py (Authorization is not ACS3-HMAC-SHA256 or leaves a header unsigned)",
        False,
        f"{_CLIENT_ERRORS} (IncompleteSignature, 400)",
    ),
    "SignatureDoesNotMatch": GatewayCode(
        400,
        "signature.py (wrong signature or x-acs-content-sha256)",
        False,
        f"{_GATEWAY_QA} (400); {_COMMON_ERRORS} lists it with 403",
    ),
    "InvalidAccessKeyId.NotFound": GatewayCode(
        404,
        "iam.py (unknown AccessKey ID)",
        False,
        f"{_CLIENT_ERRORS} (404); the KMS metadata lists it (404) for Encrypt, "
        "GenerateDataKeyWithoutPlaintext and DescribeKey",
    ),
    "MissingSecurityToken": GatewayCode(
        400,
        "iam.py (an STS AccessKey ID without x-acs-security-token)",
        False,
        "unverified status: the code is seen from the real gateway in "
        "https://github.com/kubevela/terraform-controller/issues/191",
    ),
    "InvalidSecurityToken.MismatchWithAccessKey": GatewayCode(
        400,
        "iam.py (token of another session, or a token with a permanent key)",
        False,
        "unverified status: the code is the gateway's as SDK error tables name it; no "
        "Alibaba Cloud page found",
    ),
    "InvalidSecurityToken.Expired": GatewayCode(
        400,
        "iam.py (the STS session has expired)",
        False,
        "unverified status: the code is the gateway's as SDK error tables name it; no "
        "Alibaba Cloud page found",
    ),
    "InvalidTimeStamp.Format": GatewayCode(
        400, "iam.py (x-acs-date not ISO 8601)", False, f"{_OPENAPI_ERRORS} (400)"
    ),
    "InvalidTimeStamp.Expired": GatewayCode(
        400,
        "iam.py (x-acs-date more than 15 minutes off)",
        False,
        f"{_OPENAPI_ERRORS} (400); the 15 minutes: {_V3_SIGNATURE}",
    ),
    "SignatureNonceUsed": GatewayCode(
        400,
        "iam.py (x-acs-signature-nonce seen before)",
        False,
        f"{_GATEWAY_QA} (400)",
    ),
    "Forbidden.RAM": GatewayCode(
        403,
        "iam.py Account.authorize (RAM denies the action on the resource; EIAM and KMS)",
        True,
        f"{_CLIENT_ERRORS} (Forbidden.RAM, 403)",
    ),
    "InternalError": GatewayCode(
        500,
        "app.py (an unhandled exception); or an injected fault",
        False,
        f"{_COMMON_ERRORS} (500); the STS metadata lists it (500) for both actions",
    ),
    "ServiceUnavailable": GatewayCode(
        None,
        "app.py _apply (the default code of an injected fault)",
        False,
        f"{_COMMON_ERRORS} (503)",
    ),
    "Throttling": GatewayCode(
        None, "injected faults only (seed or /_emulator/faults)", False, f"{_CLIENT_ERRORS} (400)"
    ),
    "Throttling.User": GatewayCode(
        None, "injected faults only (seed or /_emulator/faults)", False, f"{_GATEWAY_QA} (400)"
    ),
}
