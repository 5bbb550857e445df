"""The vending pipeline, shared by the HTTP and event functions: validate, authenticate,
authorize, then scoped STS and EIAM alongside KMS, seal, respond, audit."""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from pydantic import ValidationError

from shared import audit, envelope
from shared.approval import ApprovalPolicy
from shared.arns import EIAM_ACTIONS, Action, secret_arn
from shared.auth.header import Authenticator
from shared.errors import (
    VendError,
    access_denied,
    internal,
    invalid,
    invalid_expiration,
    upstream_timeout,
)
from shared.models import CreateRequest, ObtainRequest, VendResponse
from shared.upstream.deadline import Deadline
from shared.upstream.eiam import Eiam, SecretInfo
from shared.upstream.identity import FunctionIdentity
from shared.upstream.kms import DataKey, Kms
from shared.upstream.sts import ScopedSessions

log = logging.getLogger("vend")


@dataclass(frozen=True)
class RequestMeta:
    request_id: str
    deadline: Deadline
    source_ip: str | None = None


def parse_request(action: Action, data: object) -> ObtainRequest | CreateRequest:
    """Validates the body of an obtain or create request. IDs are checked here, first."""
    model = ObtainRequest if action == "obtain" else CreateRequest
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["loc"][:1] == ("expiration_time",) for e in errors):
            raise invalid_expiration(
                "expiration_time must be an integer of milliseconds, 1 day to 3 years from now"
            ) from None
        first = errors[0]
        field = ".".join(str(p) for p in first["loc"]) or "body"
        if first["type"] == "extra_forbidden":
            raise invalid(f"unknown field {field!r}") from None
        if first["type"] == "missing":
            raise invalid(f"{field} is required") from None
        raise invalid(f"{field}: must be 1 to 64 characters of A-Z a-z 0-9 _ -") from None


class Vendor:
    def __init__(
        self,
        *,
        region: str,
        account_id: str,
        default_key_id: str,
        policy: ApprovalPolicy,
        authenticator: Authenticator,
        identity: FunctionIdentity,
        sessions: ScopedSessions,
        eiam: Eiam,
        kms: Kms,
    ) -> None:
        self.region = region
        self.account_id = account_id
        self.default_key_id = default_key_id
        self.policy = policy
        self.authenticator = authenticator
        self.identity = identity
        self.sessions = sessions
        self.eiam = eiam
        self.kms = kms
        # KMS runs beside STS and EIAM; threads live as long as the instance.
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="vend-kms")

    def vend(
        self, action: Action, data: object, authorization: str | None, meta: RequestMeta
    ) -> VendResponse:
        record = audit.start(meta.request_id)
        record.action = action
        try:
            response = self._vend(action, data, authorization, meta, record)
            record.upstream_request_id = response.upstream_request_id
            return response
        except VendError as err:
            record.outcome = err.code
            raise
        except Exception:
            log.exception("vend: unexpected error in request %s", meta.request_id)
            record.outcome = "InternalError"
            raise internal() from None
        finally:
            audit.emit(record)

    def _vend(
        self,
        action: Action,
        data: object,
        authorization: str | None,
        meta: RequestMeta,
        record: audit.AuditRecord,
    ) -> VendResponse:
        request = parse_request(action, data)
        secret_id = request.secret_id if isinstance(request, ObtainRequest) else None
        resource = secret_arn(
            self.region, self.account_id, request.instance_id, request.application_id, secret_id
        )
        record.resource = resource
        caller = self.authenticator.authenticate(authorization, meta.deadline)
        record.principal = caller.name
        eiam_action = EIAM_ACTIONS[action]
        verdict = self.policy.decide(caller, eiam_action, resource, source_ip=meta.source_ip)
        record.decision = "allow" if verdict.allowed else "deny"
        if not verdict.allowed:
            raise access_denied(
                f"the approval policy does not allow {caller.name} to {action} this secret"
            )
        context = envelope.encryption_context(resource, caller.name, meta.request_id)
        key_id = verdict.recipient_key_id or self.default_key_id
        data_key = self._pool.submit(
            self.kms.generate_data_key, self.identity.current(), key_id, context, meta.deadline
        )
        try:
            creds = self.sessions.get(eiam_action, resource, meta.deadline)
            if isinstance(request, ObtainRequest):
                info = self.eiam.obtain(
                    creds,
                    request.instance_id,
                    request.application_id,
                    request.secret_id,
                    meta.deadline,
                )
                key = _result(data_key, meta.deadline)
            else:
                # Create only once the data key is in hand: a secret made but never delivered
                # would burn one of the application's two slots.
                key = _result(data_key, meta.deadline)
                info = self.eiam.create(
                    creds,
                    request.instance_id,
                    request.application_id,
                    request.expiration_time,
                    meta.deadline,
                )
        finally:
            data_key.cancel()
        return self.seal(info, key, context, meta.request_id)

    @staticmethod
    def seal(
        info: SecretInfo, key: DataKey, context: dict[str, str], request_id: str
    ) -> VendResponse:
        sealed = envelope.seal(
            info.client_secret.encode("utf-8"),
            key.plaintext,
            key_id=key.key_id,
            encrypted_data_key=key.encrypted_data_key,
            context=context,
        )
        return VendResponse(
            request_id=request_id,
            upstream_request_id=info.upstream_request_id,
            instance_id=info.instance_id,
            application_id=info.application_id,
            client_id=info.client_id,
            secret_id=info.secret_id,
            status=info.status if info.status in ("enabled", "disabled") else None,  # type: ignore[arg-type]
            expiration_time=info.expiration_time,
            last_used_time=info.last_used_time,
            envelope=sealed,
        )


def _result(future: Future[DataKey], deadline: Deadline) -> DataKey:
    try:
        return future.result(timeout=deadline.remaining() + 0.5)
    except FutureTimeout:
        raise upstream_timeout("the request's deadline ran out waiting for KMS") from None
