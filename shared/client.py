"""The caller's side, shipped in the package: ask the service for a secret with a RAM proof (or a
bearer token), and open the envelope with the caller's own KMS permission."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import requests
from fc2.fc_exceptions import FcError

from shared import envelope as env
from shared.auth.ram_proof import build_proof, principal_arn
from shared.models import Envelope, VendResponse
from shared.upstream.deadline import Deadline
from shared.upstream.endpoint import Endpoint
from shared.upstream.identity import FunctionIdentity
from shared.upstream.kms import Kms
from shared.upstream.rpc import STS_VERSION, ClientPool, Credentials


class VendApiError(Exception):
    """The service answered with an error (contract section 7)."""

    def __init__(self, status: int, code: str, message: str, request_id: str | None) -> None:
        super().__init__(f"{status} {code}: {message} (request {request_id})")
        self.status = status
        self.code = code
        self.message = message
        self.request_id = request_id


def endpoint(value: str) -> Endpoint:
    """`host[:port]` (https) or `http(s)://host[:port]`."""
    if "://" in value:
        scheme, _, host = value.partition("://")
        return Endpoint(scheme, host.rstrip("/"))
    return Endpoint("https", value.rstrip("/"))


def expected_arn_for(
    context_arn: str, instance_id: str, application_id: str, secret_id: str | None
) -> str:
    """The context ARN if it names exactly these IDs (region and account are the service's)."""
    tail = f"instance/{instance_id}/application/{application_id}/secret/{secret_id or '*'}"
    if not re.fullmatch(r"acs:eiam:[a-z0-9-]+:[0-9]{16}:" + re.escape(tail), context_arn):
        raise env.EnvelopeError(f"the envelope is for {context_arn}, not for {tail}")
    return context_arn


@dataclass
class VendClient:
    url: str
    audience: str | None = None
    token: str | None = None
    credentials: Credentials | None = None  # None: the credentials library's default chain
    sts: Endpoint = field(default_factory=lambda: Endpoint("https", "sts.aliyuncs.com"))
    kms: Endpoint | None = None
    region: str = "cn-hangzhou"
    timeout_s: float = 15.0

    def __post_init__(self) -> None:
        self._identity = FunctionIdentity(self.credentials)
        self._pool = ClientPool(self.region)
        self._http = requests.Session()

    # -- asking ----------------------------------------------------------------------------

    def authorization(self) -> str:
        if self.token:
            return f"Bearer {self.token}"
        if not self.audience:
            raise ValueError("a RAM proof needs the service's audience")
        creds = self._identity.current()
        proof = build_proof(
            audience=self.audience,
            sts_endpoint=self.sts.host,
            protocol=self.sts.protocol,
            access_key_id=creds.access_key_id,
            access_key_secret=creds.access_key_secret,
            security_token=creds.security_token,
        )
        return f"RAM {proof}"

    def _post(
        self, path: str, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> VendResponse:
        reply = self._http.post(
            self.url.rstrip("/") + path,
            json=body,
            headers={"Authorization": self.authorization(), **(headers or {})},
            timeout=self.timeout_s,
        )
        try:
            data = reply.json()
        except ValueError:
            raise VendApiError(
                reply.status_code, "BadResponse", "the answer is not JSON", None
            ) from None
        return _response(reply.status_code, data)

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
        body = _create_body(instance_id, application_id, expiration_time, None)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._post("/v1/secrets/create", body, headers)

    # -- opening ---------------------------------------------------------------------------

    def whoami(self) -> str:
        """This caller's principal as the service names it (assumed roles become the role)."""
        body = self._pool.get(self.sts, self._identity.current()).call(
            "GetCallerIdentity", STS_VERSION, {}, Deadline(self.timeout_s), service="STS"
        )
        principal = principal_arn(str(body.get("Arn", "")), str(body.get("AccountId", "")))
        if principal is None:
            raise ValueError("STS reported an identity that is neither a RAM user nor a role")
        return principal

    def open_envelope(
        self, envelope: Envelope, *, expected_arn: str, expected_principal: str | None
    ) -> str:
        if self.kms is None:
            raise ValueError("opening an envelope needs the KMS endpoint")
        return open_envelope(
            envelope,
            kms=Kms(self._pool, self.kms),
            credentials=self._identity.current(),
            expected_arn=expected_arn,
            expected_principal=expected_principal,
            deadline=Deadline(self.timeout_s),
        )

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


def open_envelope(
    envelope: Envelope,
    *,
    kms: Kms,
    credentials: Credentials,
    expected_arn: str,
    expected_principal: str | None,
    deadline: Deadline,
) -> str:
    """Checks the context, asks KMS for the data key (with the caller's own permission), and
    decrypts. Raises EnvelopeError for an envelope that is not for this caller or secret."""
    env.check_context(envelope, expected_arn=expected_arn, expected_principal=expected_principal)
    data_key = kms.decrypt(
        credentials, envelope.encrypted_data_key, dict(envelope.encryption_context), deadline
    )
    return env.open_sealed(envelope, data_key).decode("utf-8")


@dataclass
class EventsClient:
    """Another function's way in: invoke `vend-events` with the fc2 SDK (sync or async), with
    the same authorization as over HTTP, and open the answer with `VendClient.open`.

        fc = fc2.Client(endpoint=..., accessKeyID=..., accessKeySecret=..., securityToken=...)
        events = EventsClient(VendClient(url="", audience="vend-prod", ...), fc, service="vend")
        response = events.obtain("idaas_x", "app_y", "sct_z")
    """

    vend: VendClient
    fc: Any  # an fc2.Client
    service: str = "vend"
    function: str = "vend-events"

    def _event(self, action: str, body: dict[str, Any]) -> bytes:
        event = {"action": action, **body, "authorization": self.vend.authorization()}
        return json.dumps(event).encode()

    def _sync(self, payload: bytes) -> VendResponse:
        try:
            reply = self.fc.invoke_function(
                self.service,
                self.function,
                payload=payload,
                headers={"x-fc-invocation-type": "Sync"},
            )
        except FcError as exc:
            raise _unhandled(exc) from None
        data = json.loads(reply.data)
        # An error is {"error": ..., "status": N}; a vend response's own "status" is the secret's.
        failed = isinstance(data, dict) and "error" in data
        return _response(int(data.get("status", 500)) if failed else 200, data)

    def obtain(self, instance_id: str, application_id: str, secret_id: str) -> VendResponse:
        return self._sync(
            self._event(
                "obtain",
                {
                    "instance_id": instance_id,
                    "application_id": application_id,
                    "secret_id": secret_id,
                },
            )
        )

    def create(
        self,
        instance_id: str,
        application_id: str,
        expiration_time: int | None = None,
        idempotency_key: str | None = None,
    ) -> VendResponse:
        return self._sync(
            self._event(
                "create",
                _create_body(instance_id, application_id, expiration_time, idempotency_key),
            )
        )

    def create_async(
        self,
        instance_id: str,
        application_id: str,
        expiration_time: int | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Queues a create; FC retries it if it fails. Returns FC's request id, which is also the
        idempotency key when none is given: a later `create(..., idempotency_key=<it>)` returns
        the same secret."""
        reply = self.fc.invoke_function(
            self.service,
            self.function,
            payload=self._event(
                "create",
                _create_body(instance_id, application_id, expiration_time, idempotency_key),
            ),
            headers={"x-fc-invocation-type": "Async"},
        )
        return str(reply.headers.get("x-fc-request-id") or reply.headers.get("X-Fc-Request-Id"))


def _response(status: int, data: object) -> VendResponse:
    """The vend response in an answer, or the VendApiError its error body describes."""
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        err = data["error"]
        raise VendApiError(
            status, str(err.get("code")), str(err.get("message")), err.get("request_id")
        )
    if status != 200:
        raise VendApiError(status, "BadResponse", "an error without an error body", None)
    return VendResponse.model_validate(data)


def _create_body(
    instance_id: str, application_id: str, expiration_time: int | None, idempotency_key: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {"instance_id": instance_id, "application_id": application_id}
    if expiration_time is not None:
        body["expiration_time"] = expiration_time
    if idempotency_key is not None:
        body["idempotency_key"] = idempotency_key
    return body


def _unhandled(exc: Exception) -> VendApiError:
    """The function raised (a retryable 502/503/504): FC reports it as an unhandled error."""
    text = str(getattr(exc, "message", "") or exc)
    match = re.search(r"(50[234]) ([A-Za-z.]+): ([^\"]*)", text)
    if match:
        return VendApiError(int(match[1]), match[2], match[3].strip(), None)
    return VendApiError(502, "UpstreamError", "the function failed", None)
