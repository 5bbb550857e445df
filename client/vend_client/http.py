"""`VendClient`: ask the service over HTTP, with a RAM proof or a bearer JWT, and open what it
answers with the caller's own KMS permission."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests

from .cloud import KMS_VERSION, STS_VERSION, Cloud
from .credentials import Credentials, CredentialSource
from .errors import CloudError, VendApiError
from .proof import build_proof
from .response import Envelope, VendResponse
from .wire.arns import expected_arn_for
from .wire.endpoint import Endpoint
from .wire.envelope import check_context, open_bytes
from .wire.proof import principal_arn

# RFC 6750 section 2.1: what a bearer token may be. Anything else (a newline from a token file,
# a quote, a space) would make requests refuse the header with the whole value in its message.
_B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


@dataclass
class VendClient:
    url: str
    audience: str | None = None
    token: str | None = None
    credentials: Credentials | None = None  # None: the default chain (in FC, the function's role)
    sts: Endpoint = field(default_factory=lambda: Endpoint("https", "sts.aliyuncs.com"))
    kms: Endpoint | None = None
    region: str = "cn-hangzhou"
    timeout_s: float = 15.0

    def __post_init__(self) -> None:
        if self.token:
            bearer_token(self.token)  # refused here, before anything is asked
        self._source = CredentialSource(self.credentials)
        self._cloud = Cloud(self.region, self.timeout_s)
        self._http = requests.Session()

    def __repr__(self) -> str:
        # Never the token (nor a password or query in the URL): a repr ends up in logs,
        # tracebacks and crash reports.
        how = "bearer token" if self.token else "RAM proof"
        return (
            f"{type(self).__name__}(url={shown_url(self.url)!r}, audience={self.audience!r}, "
            f"auth={how!r}, credentials={self.credentials!r}, sts={self.sts!r}, kms={self.kms!r}, "
            f"region={self.region!r}, timeout_s={self.timeout_s!r})"
        )

    # -- asking ----------------------------------------------------------------------------

    def authorization(self) -> str:
        """The `Authorization` value of one request: a RAM proof is single-use."""
        if self.token:
            return f"Bearer {bearer_token(self.token)}"
        if not self.audience:
            raise ValueError("a RAM proof needs the service's audience")
        creds = self._source.current()
        proof = build_proof(
            audience=self.audience,
            sts_endpoint=self.sts.host,
            protocol=self.sts.protocol,
            access_key_id=creds.access_key_id,
            access_key_secret=creds.access_key_secret,
            security_token=creds.security_token,
        )
        return f"RAM {proof}"

    def obtain(self, instance_id: str, application_id: str, secret_id: str) -> VendResponse:
        return self._post(
            "/v1/secrets/obtain",
            {"instance_id": instance_id, "application_id": application_id, "secret_id": secret_id},
        )

    def create(
        self,
        instance_id: str,
        application_id: str,
        expiration_time: int | None = None,
        idempotency_key: str | None = None,
    ) -> VendResponse:
        body = create_body(instance_id, application_id, expiration_time, None)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._post("/v1/secrets/create", body, headers)

    def _post(
        self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> VendResponse:
        reply = self._http.post(
            self.url.rstrip("/") + path,
            json=body,
            headers={"Authorization": self.authorization(), **(headers or {})},
            timeout=self.timeout_s,
        )
        retry_after = retry_after_of(reply.headers.get("Retry-After"))
        try:
            data = reply.json()
        except ValueError:
            raise VendApiError(
                reply.status_code,
                "BadResponse",
                "the answer is not JSON",
                None,
                retry_after=retry_after,
            ) from None
        return response_of(reply.status_code, data, retry_after=retry_after)

    # -- opening ---------------------------------------------------------------------------

    def whoami(self) -> str:
        """This caller's principal as the service names it (assumed roles become the role)."""
        body = self._cloud.call(
            self.sts, self._source.current(), "STS", STS_VERSION, "GetCallerIdentity", {}
        )
        principal = principal_arn(str(body.get("Arn", "")), str(body.get("AccountId", "")))
        if principal is None:
            raise ValueError("STS reported an identity that is neither a RAM user nor a role")
        return principal

    def open_envelope(
        self, envelope: Envelope, *, expected_arn: str, expected_principal: str | None
    ) -> str:
        """Checks the context, asks KMS for the data key (with the caller's own permission), and
        decrypts. EnvelopeError for an envelope that is not for this caller or secret;
        CloudError when KMS refuses."""
        if self.kms is None:
            raise ValueError("opening an envelope needs the KMS endpoint")
        context = envelope.encryption_context
        check_context(context, expected_arn=expected_arn, expected_principal=expected_principal)
        body = self._cloud.call(
            self.kms,
            self._source.current(),
            "KMS",
            KMS_VERSION,
            "Decrypt",
            {
                "CiphertextBlob": envelope.encrypted_data_key,
                "EncryptionContext": json.dumps(context),
            },
        )
        try:
            data_key = base64.b64decode(body["Plaintext"], validate=True)
        except (KeyError, TypeError, binascii.Error, ValueError):
            raise CloudError("KMS", "Decrypt answered without a plaintext") from None
        return open_bytes(envelope.iv, envelope.ciphertext, context, data_key).decode("utf-8")

    def open(
        self,
        response: VendResponse,
        *,
        instance_id: str,
        application_id: str,
        secret_id: str | None,
        expected_principal: str | None = None,
    ) -> str:
        """Opens a vend response after checking that it is for the secret asked for
        (`secret_id` None: a create, sealed for `.../secret/*`) and for this caller (when it
        authenticates with RAM and no principal is given, it asks STS who it is)."""
        context_arn = response.envelope.encryption_context.get("vend:arn", "")
        expected = expected_arn_for(context_arn, instance_id, application_id, secret_id)
        if expected_principal is None and not self.token:
            expected_principal = self.whoami()
        return self.open_envelope(
            response.envelope, expected_arn=expected, expected_principal=expected_principal
        )


def bearer_token(token: str) -> str:
    """`token` without surrounding whitespace; ValueError, never naming it, for one that a
    header cannot carry as a bearer token."""
    value = token.strip()
    if not _B64TOKEN.fullmatch(value):
        raise ValueError(
            "the bearer token has a character a token cannot have (RFC 6750: letters, digits and"
            " -._~+/, then =): a quote, a space or a line break inside it?"
        )
    return value


def shown_url(url: str) -> str:
    """`url` as a repr may show it: without a password in it, or its query and fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # not a URL that parses: nothing of it is shown
        return "<not a URL>"
    user = "***@" if parts.username is not None or parts.password is not None else ""
    netloc = f"{user}[{host}]{port}" if ":" in host else f"{user}{host}{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "***" if parts.query else "", ""))


def response_of(status: int, data: object, *, retry_after: float | None = None) -> VendResponse:
    """The vend response in an answer, or the VendApiError its error body describes (with the
    answer's Retry-After, when it had one)."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        raise VendApiError(
            status,
            str(err.get("code")),
            str(err.get("message")),
            err.get("request_id"),
            retry_after=retry_after,
        )
    if status != 200:
        raise VendApiError(
            status, "BadResponse", "an error without an error body", None, retry_after=retry_after
        )
    return VendResponse.from_dict(data)


def retry_after_of(value: str | None) -> float | None:
    """A `Retry-After` header's delay in seconds (RFC 9110 10.2.3), in its delay-seconds form;
    None when absent or an HTTP-date: a date needs the two clocks to agree, and a caller that
    cannot read it still backs off on its own."""
    if value is None or not re.fullmatch(r"[0-9]{1,9}", value.strip()):
        return None
    return float(int(value.strip()))


def create_body(
    instance_id: str, application_id: str, expiration_time: int | None, idempotency_key: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"instance_id": instance_id, "application_id": application_id}
    if expiration_time is not None:
        body["expiration_time"] = expiration_time
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    return body
