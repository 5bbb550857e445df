"""`VendClient`: ask the service over HTTP, with a RAM proof or a bearer JWT, and open what it
answers with the caller's own KMS permission."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import requests

from . import settings
from .cloud import KMS_VERSION, STS_VERSION, Cloud
from .credentials import Credentials, CredentialSource
from .errors import (
    CloudError,
    ConfigurationError,
    EnvelopeError,
    RefusedError,
    ServiceTimeout,
    ServiceUnreachable,
    api_error,
)
from .proof import build_proof
from .response import Envelope, VendResponse, request_id_of
from .rotation import RotationState
from .wire import envelope as wire_envelope
from .wire.arns import check_ids, expected_arn_for
from .wire.endpoint import Endpoint, parse_endpoint
from .wire.proof import principal_arn

# RFC 6750 section 2.1: what a bearer token may be. Anything else (a newline from a token file,
# a quote, a space) would make requests refuse the header with the whole value in its message.
_B64TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
T = TypeVar("T")


class VendClient:
    """Asks the service and opens what it answers.

    `url` is the service's. Authentication: a bearer JWT `token` (a string, or a callable asked
    for one at each request, so an expiring token can be renewed: a 401 to a request made with a
    callable's token is asked once more with a fresh one), else a RAM proof for `audience`,
    signed with `credentials` (None: the default chain; in FC, the function's role). The caller's
    own calls go to STS at `sts_endpoint` (default `sts.aliyuncs.com`) and KMS at `kms_endpoint`
    (default `kms.{region}.aliyuncs.com`), each `host[:port]`, a URL, or an Endpoint.
    `timeout_s` bounds each call. Every failure is a VendClientError (vend_client.errors).
    """

    def __init__(
        self,
        url: str,
        audience: str | None = None,
        token: str | Callable[[], str] | None = None,
        credentials: Credentials | None = None,
        sts_endpoint: str | Endpoint | None = None,
        kms_endpoint: str | Endpoint | None = None,
        region: str = settings.DEFAULT_REGION,
        timeout_s: float = settings.DEFAULT_TIMEOUT_S,
    ) -> None:
        if isinstance(token, str) and token:
            bearer_token(token)  # refused here, before anything is asked
        self.url = url
        self.audience = audience
        self.token = token
        self.credentials = credentials
        self.region = region
        self.sts_endpoint = _endpoint(sts_endpoint or settings.DEFAULT_STS, "sts_endpoint")
        self.kms_endpoint = _endpoint(kms_endpoint or settings.default_kms(region), "kms_endpoint")
        self.timeout_s = settings.seconds(timeout_s, "timeout_s")
        self._source = CredentialSource(credentials)
        self._cloud = Cloud(region, self.timeout_s)
        self._http = requests.Session()

    @classmethod
    def from_env(cls, **overrides: Any) -> VendClient:
        """A client configured as the `vend-client` command is: `VEND_URL`, `VEND_AUDIENCE`,
        `VEND_STS_ENDPOINT`, `VEND_KMS_ENDPOINT`, `VEND_REGION`, `VEND_TIMEOUT` (seconds), and
        the default credential chain; each keyword given here (any parameter of the
        constructor) wins over its variable. ConfigurationError, naming the variable, when
        `VEND_URL` is missing, `VEND_TIMEOUT` is not a number of seconds, or neither a token
        nor `VEND_AUDIENCE` says how to authenticate."""
        return cls(**from_env_settings(overrides))

    def __repr__(self) -> str:
        # Never the token (nor a password or query in the URL): a repr ends up in logs,
        # tracebacks and crash reports. A callable token is not called, nor shown.
        how = "RAM proof"
        if callable(self.token):
            how = "bearer token (callable)"
        elif self.token:
            how = "bearer token"
        return (
            f"{type(self).__name__}(url={shown_url(self.url)!r}, audience={self.audience!r}, "
            f"auth={how!r}, credentials={self.credentials!r}, "
            f"sts_endpoint={self.sts_endpoint!r}, kms_endpoint={self.kms_endpoint!r}, "
            f"region={self.region!r}, timeout_s={self.timeout_s!r})"
        )

    # -- asking ----------------------------------------------------------------------------

    @property
    def bearer(self) -> bool:
        """Whether this client authenticates with a bearer token (else a RAM proof)."""
        return callable(self.token) or bool(self.token)

    def authorization(self) -> str:
        """The `Authorization` value of one request: a RAM proof is single-use, and a callable
        token is asked for a token each time."""
        if callable(self.token):
            token = self.token()
            if not isinstance(token, str):
                raise ConfigurationError(
                    f"the token callable returned a {type(token).__name__}, not a str",
                    setting="token",
                )
            return f"Bearer {bearer_token(token)}"
        if self.token:
            return f"Bearer {bearer_token(self.token)}"
        if not self.audience:
            raise ConfigurationError(
                "a RAM proof needs the service's audience (audience=, VEND_AUDIENCE), or give "
                "a bearer token=",
                setting="audience",
            )
        creds = self._source.current()
        proof = build_proof(
            audience=self.audience,
            sts_endpoint=self.sts_endpoint.host,
            protocol=self.sts_endpoint.protocol,
            access_key_id=creds.access_key_id,
            access_key_secret=creds.access_key_secret,
            security_token=creds.security_token,
        )
        return f"RAM {proof}"

    def obtain(self, instance_id: str, application_id: str, secret_id: str) -> VendResponse:
        return self._post(
            "/v1/secrets/obtain",
            {"instance_id": instance_id, "application_id": application_id, "secret_id": secret_id},
            parse=response_of,
        )

    def current(self, instance_id: str, application_id: str) -> VendResponse:
        """The application's current secret (contract section 14: the enabled one with the
        latest expiration), sealed for the secret it names: open it with `open_current`."""
        return self._post(
            "/v1/secrets/current",
            {"instance_id": instance_id, "application_id": application_id},
            parse=response_of,
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
        return self._post("/v1/secrets/create", body, headers, parse=response_of)

    def rotate(self, instance_id: str, application_id: str, dry_run: bool = False) -> RotationState:
        """One rotation step of the application (contract section 14), if one is due and this
        caller is approved for it; with `dry_run`, the step that would be taken, and nothing
        changed. The answer holds no secret: the application's secrets' IDs, statuses and
        expiration times after the step, and when the next may come due."""
        return self._post(
            "/v1/secrets/rotate",
            {"instance_id": instance_id, "application_id": application_id, "dry_run": dry_run},
            parse=rotation_of,
        )

    def _post(
        self,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        parse: Callable[..., T],
    ) -> T:
        try:
            return self._post_once(path, body, headers, parse)
        except RefusedError as exc:
            # A callable's token may have expired since it was given: one fresh one is tried.
            # A fixed token would only be refused again.
            if exc.status != 401 or not callable(self.token):
                raise
        return self._post_once(path, body, headers, parse)

    def _post_once(
        self,
        path: str,
        body: dict[str, Any],
        headers: dict[str, str] | None,
        parse: Callable[..., T],
    ) -> T:
        authorization = self.authorization()
        try:
            reply = self._http.post(
                self.url.rstrip("/") + path,
                json=body,
                headers={"Authorization": authorization, **(headers or {})},
                timeout=self.timeout_s,
            )
        except requests.exceptions.RequestException as exc:
            raise unreachable(exc, self.url, self.timeout_s) from None
        retry_after = retry_after_of(reply.headers.get("Retry-After"))
        header_id = request_id_of(reply.headers.get("X-Request-Id"))
        try:
            data = reply.json()
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
            raise api_error(
                reply.status_code,
                "BadResponse",
                "the answer is not JSON",
                header_id,
                retry_after=retry_after,
            ) from None
        return parse(reply.status_code, data, retry_after=retry_after, request_id=header_id)

    # -- opening ---------------------------------------------------------------------------

    def whoami(self) -> str:
        """This caller's principal as the service names it (assumed roles become the role)."""
        body = self._cloud.call(
            self.sts_endpoint,
            self._source.current(),
            "STS",
            STS_VERSION,
            "GetCallerIdentity",
            {},
        )
        principal = principal_arn(str(body.get("Arn", "")), str(body.get("AccountId", "")))
        if principal is None:
            raise ConfigurationError(
                "STS says these credentials are neither a RAM user's nor a role's (an account's "
                "own keys?): use a RAM user's or a role's",
                setting="credentials",
            )
        return principal

    def open_envelope(
        self, envelope: Envelope, *, expected_arn: str, expected_principal: str | None
    ) -> str:
        """Checks the context, asks KMS for the data key (with the caller's own permission), and
        decrypts. EnvelopeError for an envelope that is not for this caller or secret, or
        altered; CloudError when KMS refuses."""
        context = envelope.encryption_context
        sealed_by = request_id_of(context.get("vend:request_id"))
        try:
            wire_envelope.check_context(
                context, expected_arn=expected_arn, expected_principal=expected_principal
            )
        except wire_envelope.EnvelopeError as exc:
            raise EnvelopeError(str(exc), request_id=sealed_by) from None
        body = self._cloud.call(
            self.kms_endpoint,
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
        try:
            opened = wire_envelope.open_bytes(envelope.iv, envelope.ciphertext, context, data_key)
            return opened.decode("utf-8")
        except wire_envelope.EnvelopeError as exc:
            raise EnvelopeError(str(exc), request_id=sealed_by) from None
        except UnicodeDecodeError:
            raise EnvelopeError("the opened secret is not UTF-8", request_id=sealed_by) from None

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
        context = response.envelope.encryption_context
        try:
            expected = expected_arn_for(
                context.get("vend:arn", ""), instance_id, application_id, secret_id
            )
        except wire_envelope.EnvelopeError as exc:
            sealed_by = request_id_of(context.get("vend:request_id"))
            raise EnvelopeError(str(exc), request_id=sealed_by) from None
        if expected_principal is None and not self.bearer:
            expected_principal = self.whoami()
        return self.open_envelope(
            response.envelope, expected_arn=expected, expected_principal=expected_principal
        )

    def open_current(
        self,
        response: VendResponse,
        *,
        instance_id: str,
        application_id: str,
        expected_principal: str | None = None,
    ) -> str:
        """Opens the answer of `current`, which is sealed for the one secret it names
        (`response.secret_id`): as `open` with that secret's ID, so an envelope for any other
        ARN (another application's, or `.../secret/*`) is an EnvelopeError."""
        try:
            check_ids(response.secret_id)
        except ValueError:
            sealed_by = request_id_of(response.envelope.encryption_context.get("vend:request_id"))
            raise EnvelopeError(
                "the answer names no secret it could be for (a secret ID is 1 to 64 of "
                "[A-Za-z0-9_-])",
                request_id=sealed_by,
            ) from None
        return self.open(
            response,
            instance_id=instance_id,
            application_id=application_id,
            secret_id=response.secret_id,
            expected_principal=expected_principal,
        )


def bearer_token(token: str) -> str:
    """`token` without surrounding whitespace; ConfigurationError (a ValueError), never naming
    it, for one that a header cannot carry as a bearer token."""
    value = token.strip()
    if not value:
        raise ConfigurationError("the bearer token is empty", setting="token")
    if not _B64TOKEN.fullmatch(value):
        raise ConfigurationError(
            "the bearer token has a character a token cannot have (RFC 6750: letters, digits and"
            " -._~+/, then =): a quote, a space or a line break inside it?",
            setting="token",
        )
    return value


def from_env_settings(overrides: dict[str, Any]) -> dict[str, Any]:
    """The constructor's keywords from the `VEND_*` variables, `overrides` winning."""
    found = {**settings.from_environment(given=overrides), **overrides}
    if not found.get("url"):
        variable = settings.VARIABLES["url"]
        raise ConfigurationError(
            f"{variable} is not set: the service's URL (https://...), or pass url=",
            setting=variable,
        )
    if not found.get("token") and not found.get("audience"):
        variable = settings.VARIABLES["audience"]
        raise ConfigurationError(
            f"{variable} is not set: the audience a RAM proof names (or pass audience=, or a "
            "bearer token=)",
            setting=variable,
        )
    return found


def unreachable(
    exc: requests.exceptions.RequestException, url: str, timeout_s: float
) -> ServiceUnreachable | ConfigurationError:
    """What a request that got no answer met, in a few words (never a header or a body).
    Connection errors are worth a retry; a read timeout, a TLS failure, or an answer that broke
    off are not."""
    shown = shown_url(url)
    if isinstance(exc, (requests.exceptions.InvalidURL, requests.exceptions.InvalidSchema)):
        return ConfigurationError(
            f"the service's URL {shown!r} cannot be asked ({type(exc).__name__})", setting="url"
        )
    if isinstance(exc, requests.exceptions.MissingSchema):
        return ConfigurationError(
            f"the service's URL {shown!r} has no http:// or https://", setting="url"
        )
    if isinstance(exc, requests.exceptions.Timeout) and not isinstance(
        exc, requests.exceptions.ConnectionError
    ):
        return ServiceTimeout(shown, timeout_s)
    text = str(exc).lower()
    if isinstance(exc, requests.exceptions.SSLError):
        reason = re.search(r"\[ssl: ([a-z0-9_]+)\]", text)
        why = f"TLS failed ({reason[1]})" if reason else "TLS failed"
        return ServiceUnreachable(shown, why, retryable=False)
    if isinstance(exc, requests.exceptions.ConnectionError):
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            why = f"no connection within {timeout_s:g} s"
        elif "refused" in text:
            why = "connection refused"
        elif any(m in text for m in ("name or service", "nodename", "getaddrinfo", "resolution")):
            why = "unknown host"
        elif "reset" in text or "aborted" in text:
            why = "connection lost"
        else:
            why = "connection failed"
        return ServiceUnreachable(shown, why)
    return ServiceUnreachable(
        shown, f"the answer broke off ({type(exc).__name__})", retryable=False
    )


def _endpoint(value: str | Endpoint, setting: str) -> Endpoint:
    if isinstance(value, Endpoint):
        return value
    if not isinstance(value, str):
        raise ConfigurationError(f"{setting} is not a host or URL: {value!r}", setting=setting)
    return parse_endpoint(value)


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


def response_of(
    status: int,
    data: object,
    *,
    retry_after: float | None = None,
    request_id: str | None = None,
) -> VendResponse:
    """The vend response in an answer, or the VendApiError its error body describes (with the
    answer's Retry-After, when it had one). `request_id` (the answer's `X-Request-Id`) names the
    request when its body does not."""
    refused(status, data, retry_after, request_id)
    return VendResponse.from_dict(data, request_id=request_id)


def rotation_of(
    status: int,
    data: object,
    *,
    retry_after: float | None = None,
    request_id: str | None = None,
) -> RotationState:
    """A rotation's answer, or the VendApiError its error body describes, as `response_of`."""
    refused(status, data, retry_after, request_id)
    return RotationState.from_dict(data, request_id=request_id)


def refused(status: int, data: object, retry_after: float | None, request_id: str | None) -> None:
    """Raises the VendApiError an answer that is not a 200 with a body describes."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        raise api_error(
            status,
            str(err.get("code")),
            str(err.get("message")),
            request_id_of(err.get("request_id")) or request_id,
            retry_after=retry_after,
        )
    if status != 200:
        raise api_error(
            status,
            "BadResponse",
            "an error without an error body",
            request_id,
            retry_after=retry_after,
        )


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
