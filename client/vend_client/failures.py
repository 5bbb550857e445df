"""What went wrong, in the caller's terms: the Failure (one line, an exit status) that each
expected exception of the caller's commands means. Nothing heavy is imported until a failure is
explained."""

from __future__ import annotations

import argparse
import os
from typing import Any

from .exit_status import ExitStatus, Failure

_AUTH_CODES = (
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "IncompleteSignature",
    "InvalidSecurityToken",
    "MissingSecurityToken",
    "InvalidTimeStamp",
    "SignatureNonceUsed",
)


def explain(exc: BaseException, args: argparse.Namespace) -> Failure | None:
    """The Failure an expected exception (a VendClientError) means; None for anything else (a
    bug)."""
    from .errors import (  # noqa: PLC0415
        CloudError,
        CloudUnreachable,
        ConfigurationError,
        NoCredentialsError,
        ServiceTimeout,
        ServiceUnreachable,
        VendApiError,
    )

    # The wire's, which the client's subclasses: `vend decrypt` checks an ARN with it directly.
    from .wire.envelope import EnvelopeError  # noqa: PLC0415

    url = getattr(args, "url", None)  # resolved before anything is asked
    if isinstance(exc, NoCredentialsError):
        return Failure(ExitStatus.NO_CREDENTIALS, no_credentials())
    if isinstance(exc, ServiceTimeout):
        return Failure(
            ExitStatus.UNREACHABLE,
            f"the service at {url} did not answer within {args.timeout:g} s (--timeout)",
        )
    if isinstance(exc, ServiceUnreachable):
        return Failure(
            ExitStatus.UNREACHABLE,
            f"cannot reach the service at {url}: {exc.detail} (--url or VEND_URL)",
        )
    if isinstance(exc, ConfigurationError):
        flag = {"url": " (--url)", "token": " (--token)"}.get(exc.setting or "", "")
        return Failure(ExitStatus.USAGE, f"{exc}{flag}")
    if isinstance(exc, VendApiError):
        return _api_failure(exc)
    if isinstance(exc, CloudUnreachable):
        flag = f"--{exc.service.lower()}-endpoint"
        hint = " (--timeout)" if exc.timed_out else f" ({flag} or VEND_{exc.service}_ENDPOINT)"
        return Failure(
            ExitStatus.UNREACHABLE, f"{exc.service} unreachable at {exc.url}: {exc.detail}{hint}"
        )
    if isinstance(exc, CloudError):
        return _cloud_failure(exc)
    if isinstance(exc, EnvelopeError):
        return Failure(ExitStatus.ENVELOPE, f"cannot open the envelope: {exc}")
    if isinstance(exc, ValueError):  # an answer the client cannot use
        return Failure(ExitStatus.UNEXPECTED, str(exc))
    return None


def no_credentials() -> str:
    """Where the default chain looked (alibabacloud-credentials 1.0.12), in one line."""
    home = os.environ.get("HOME") or os.path.expanduser("~")
    places = ["$ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET"]
    if os.environ.get("ALIBABA_CLOUD_CLI_PROFILE_DISABLED", "").lower() != "true":
        places.append(os.path.join(home, ".aliyun", "config.json"))
    places.append(
        os.environ.get("ALIBABA_CLOUD_CREDENTIALS_FILE")
        or os.path.join(home, ".alibabacloud", "credentials.ini")
    )
    if os.environ.get("ALIBABA_CLOUD_ECS_METADATA_DISABLED", "").lower() != "true":
        places.append(
            "the ECS instance metadata (off ECS, ALIBABA_CLOUD_ECS_METADATA_DISABLED=true skips "
            "its lookups)"
        )
    if os.environ.get("ALIBABA_CLOUD_CREDENTIALS_URI"):
        places.append("$ALIBABA_CLOUD_CREDENTIALS_URI")
    looked = ", ".join(places[:-1]) + f" and {places[-1]}"
    return (
        f"no Alibaba Cloud credentials: looked in {looked}; set ALIBABA_CLOUD_ACCESS_KEY_ID and "
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET (or pass --token)"
    )


def _api_failure(exc: Any) -> Failure:
    """The service's error answer (contract section 7): its words and its request id."""
    said = f"{exc.status} {exc.code}: {exc.message} (request {exc.request_id})"
    status = exc.status
    if status == 401:
        hint = "; check your credentials and --audience/VEND_AUDIENCE (or --token)"
        return Failure(ExitStatus.AUTH_REFUSED, f"authentication refused: {said}{hint}")
    if status == 403:
        return Failure(ExitStatus.DENIED, said)
    if status == 404:
        return Failure(ExitStatus.NOT_FOUND, said)
    if status == 429 or status >= 500:
        after = getattr(exc, "retry_after", None)  # the answer's Retry-After, when it had one
        when = f"in {after:g} s" if after else "later"
        return Failure(ExitStatus.UPSTREAM, f"{said}; try again {when}")
    return Failure(ExitStatus.REJECTED, said)


def _cloud_failure(exc: Any) -> Failure:
    """The caller's own STS or KMS call failed: its code and ITS request id."""
    service, code, status = exc.service, exc.code or "", exc.status
    request = exc.request_id and f"{service} request {exc.request_id}"
    ids = ", ".join(p for p in (code, request) if p)
    ids = f" ({ids})" if ids else ""
    if code.startswith(_AUTH_CODES):
        return Failure(ExitStatus.AUTH_REFUSED, f"{service} refused your credentials{ids}")
    if service == "KMS" and code == "InvalidParameter":
        return Failure(
            ExitStatus.ENVELOPE,
            "KMS refused to decrypt the envelope's data key: its encryption context does not "
            f"match the one it was sealed with, or the data key was altered{ids}",
        )
    if service == "KMS" and (code == "Forbidden.KeyNotFound" or status == 404):
        return Failure(
            ExitStatus.NOT_FOUND,
            f"KMS does not know the envelope's key (another region or account?){ids}",
        )
    if status == 403 or code.startswith("Forbidden"):
        if service == "KMS":
            return Failure(
                ExitStatus.DENIED,
                f"the data key is not yours to decrypt: KMS denied Decrypt with its key{ids}",
            )
        return Failure(ExitStatus.DENIED, f"{service} denied the call{ids}")
    if status is None or status == 429 or status >= 500 or "throttl" in code.lower():
        return Failure(ExitStatus.UPSTREAM, f"{service} {exc.message}{ids}; try again later")
    return Failure(ExitStatus.REJECTED, f"{service} {exc.message}{ids}")
