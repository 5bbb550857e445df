"""The vending pipeline, shared by the HTTP and event functions: validate, authenticate,
authorize, then scoped STS and EIAM alongside KMS, seal, respond, audit."""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass
from time import perf_counter
from typing import Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from shared import audit, create_once, envelope
from shared import idempotent_create as once
from shared.approval import ApprovalPolicy, Verdict
from shared.arns import (
    EIAM_ACTIONS,
    EIAM_DELETE,
    EIAM_DISABLE,
    EIAM_LIST,
    ROTATION_ACTIONS,
    RUN_DOCTOR,
    RUN_DOCTOR_RESOURCE,
    Action,
    secret_arn,
)
from shared.auth.header import Authenticator
from shared.create_lease import ApplicationLease, Holder, lease_key
from shared.errors import (
    StaleCredentials,
    VendError,
    access_denied,
    bounded,
    internal,
    invalid,
    invalid_expiration,
    not_found,
    upstream_timeout,
)
from shared.idempotency import IdempotencyStore
from shared.lifecycle import rotate as rotation
from shared.lifecycle.current import current_of
from shared.lifecycle.observed import Observations
from shared.lifecycle.plan import Kind, Step
from shared.lifecycle.settings import RotationEntry
from shared.models import (
    CreateRequest,
    CurrentRequest,
    ObtainRequest,
    RotateRequest,
    RotationResponse,
    SecretState,
    VendResponse,
)
from shared.principal import Caller
from shared.upstream.deadline import Deadline
from shared.upstream.eiam import Eiam, SecretInfo
from shared.upstream.identity import FunctionIdentity
from shared.upstream.kms import DataKey, Kms
from shared.upstream.rpc import Credentials
from shared.upstream.sts import ScopedSessions

log = logging.getLogger("vend")
T = TypeVar("T")


class _Report(Protocol):
    """What the deployment checks answer (shared.doctor.Report, which imports this module)."""

    @property
    def ok(self) -> bool: ...


R = TypeVar("R", bound=_Report)


@dataclass(frozen=True)
class RequestMeta:
    request_id: str
    deadline: Deadline
    source_ip: str | None = None


Request = ObtainRequest | CreateRequest | CurrentRequest
_MODELS: dict[Action, type[Request]] = {
    "obtain": ObtainRequest,
    "create": CreateRequest,
    "current": CurrentRequest,
}
# What a caller who is not approved was not allowed to do, in the 403's words.
_WHAT: dict[Action, str] = {
    "obtain": "obtain this secret",
    "create": "create this secret",
    "current": "obtain this application's secrets (its current secret)",
}


def parse_request(action: Action, data: object) -> Request:
    """Validates the body of a request. IDs are checked here, first."""
    return _validated(_MODELS[action], data)


def parse_rotate(data: object) -> RotateRequest:
    """Validates the body of a rotate request, as parse_request does the others'."""
    return _validated(RotateRequest, data)


M = TypeVar("M", bound=BaseModel)


def _validated(model: type[M], data: object) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        if any(e["loc"][:1] == ("expiration_time",) for e in errors):
            raise invalid_expiration(
                "expiration_time must be an integer of milliseconds, 1 day to 3 years from now"
            ) from None
        first = errors[0]
        field = bounded(".".join(str(p) for p in first["loc"]) or "body")
        if first["type"] == "extra_forbidden":
            raise invalid(f"unknown field {field!r}") from None
        if first["type"] == "missing":
            raise invalid(f"{field} is required") from None
        if field == "dry_run":
            raise invalid("dry_run must be true or false") from None
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
        store: IdempotencyStore,
        rotation: Mapping[tuple[str, str], RotationEntry] | None = None,
        now_ms: Callable[[], int] | None = None,
        lapse_now_ms: Callable[[], int] | None = None,
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
        self.store = store
        # VEND_ROTATION, and rotation's clock (ms since the epoch; tests drive their own).
        self.rotation = dict(rotation or {})
        self.now_ms = now_ms or (lambda: int(time.time() * 1000))
        # The clock that idempotency marks and application leases lapse by (ms since the epoch):
        # the wall clock, which every instance shares; tests move theirs instead of waiting.
        self.lapse_now_ms = lapse_now_ms or (lambda: int(time.time() * 1000))
        # KMS runs beside STS and EIAM; threads live as long as the instance.
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="vend-kms")

    def vend(
        self,
        action: Action,
        data: object,
        authorization: str | None,
        meta: RequestMeta,
        idempotency_key: str | None = None,
        retry_of: str | None = None,
    ) -> VendResponse:
        """One request, audited whatever its outcome. `idempotency_key` applies to create;
        `retry_of` is the FC request id of an event (see Authenticator.authenticate)."""
        record = audit.start(meta.request_id)
        record.action = action
        with _audited(record):
            response = self._vend(
                action, data, authorization, meta, record, idempotency_key, retry_of
            )
            record.upstream_request_id = response.upstream_request_id
            return response

    def run_doctor(
        self,
        authorization: str | None,
        meta: RequestMeta,
        checks: Callable[[], R],
        retry_of: str | None = None,
    ) -> R:
        """The deployment checks over events (contract section 6), audited as `doctor`. They
        name the account, the roles and every recipient's key, and each run costs an AssumeRole
        and a data key per key: `checks` runs only for a caller whom the approval policy allows
        `vend:RunDoctor` on `*`, and nothing is asked of an upstream before that (but STS, to
        verify a RAM proof)."""
        record = audit.start(meta.request_id)
        record.action, record.resource = "doctor", RUN_DOCTOR_RESOURCE
        with _audited(record):
            self._admit(
                RUN_DOCTOR,
                RUN_DOCTOR_RESOURCE,
                authorization,
                meta,
                record,
                retry_of,
                what="run the deployment checks",
            )
            report = checks()
            record.outcome = "ok" if report.ok else "DoctorCheckFailed"
            return report

    def rotate(
        self,
        data: object,
        authorization: str | None,
        meta: RequestMeta,
        retry_of: str | None = None,
    ) -> RotationResponse:
        """One rotation step of one application (contract section 14; shared.lifecycle),
        audited as `rotate` with the step in the record."""
        record = audit.start(meta.request_id)
        record.action = "rotate"
        with _audited(record):
            return self._rotate(data, authorization, meta, record, retry_of)

    def rotate_as(
        self, caller: Caller, instance_id: str, application_id: str, meta: RequestMeta
    ) -> RotationResponse:
        """One rotation step taken by the service itself (its schedule: `caller` is
        Caller.service, never a request's), audited as `rotate` like any other. Nothing is
        authenticated, since nothing came from outside; the approval policy decides every step
        exactly as for a caller, so that a policy that grants the schedule nothing stops it."""
        record = audit.start(meta.request_id)
        record.action = "rotate"
        body = {"instance_id": instance_id, "application_id": application_id}
        with _audited(record):
            return self._rotate(body, None, meta, record, None, known=caller)

    def _rotate(
        self,
        data: object,
        authorization: str | None,
        meta: RequestMeta,
        record: audit.AuditRecord,
        retry_of: str | None,
        known: Caller | None = None,
    ) -> RotationResponse:
        request = parse_rotate(data)
        instance, application = request.instance_id, request.application_id
        resource = secret_arn(self.region, self.account_id, instance, application, None)
        record.resource = resource
        # Nothing is asked of EIAM for a caller who may take no step at all.
        caller, _ = self._admit(
            tuple(ROTATION_ACTIONS.values()),
            resource,
            authorization,
            meta,
            record,
            retry_of,
            what="rotate this application's secrets",
            known=known,
        )
        entry = self.rotation.get((instance, application))
        if entry is None:
            raise invalid(f"{instance}/{application} is not listed in VEND_ROTATION")

        def approve(kind: Kind) -> None:
            action = ROTATION_ACTIONS[kind]
            if not self.policy.decide(caller, action, resource, source_ip=meta.source_ip).allowed:
                raise access_denied(
                    f"the approval policy does not allow {caller.name} to call {action} on "
                    f"this application's secrets, which its next step ({kind}) needs: nothing "
                    "was changed"
                )

        return self.rotate_application(
            entry, meta, record, approve=approve, dry_run=request.dry_run
        )

    def rotate_application(
        self,
        entry: RotationEntry,
        meta: RequestMeta,
        record: audit.AuditRecord,
        *,
        approve: Callable[[Kind], None],
        dry_run: bool = False,
    ) -> RotationResponse:
        """One rotation step of one application of VEND_ROTATION, whoever asked: `approve(kind)`
        raises unless the step may be taken, and `record` hears of the step and the upstream
        calls. POST /v1/secrets/rotate calls it for an admitted caller; a scheduled run may call
        it once per application."""
        instance, application = entry.instance_id, entry.application_id
        resource = secret_arn(self.region, self.account_id, instance, application, None)

        def planned(step: Step) -> None:
            record.step = step.kind

        run = rotation.Rotation(
            rotation.Application(instance, application, entry.policy),
            self._eiam_for_rotation(instance, application, resource, meta, record),
            Observations(self.store),
            lambda: ApplicationLease(
                self.store,
                lease_key(instance, application),
                Holder(None, rotation.lease_holder_hash(instance, application)),
                hold_ms=int(2000 * meta.deadline.seconds),
                now_ms=self.lapse_now_ms,
            ),
            now_ms=self.now_ms,
            approve=approve,
            planned=planned,
        )
        outcome = run.run(meta.deadline, dry_run=dry_run)
        current = current_of(outcome.secrets)
        return RotationResponse(
            step=outcome.step.kind,
            reason=outcome.step.reason,
            current_secret_id=current.secret_id if current else None,
            secrets=[SecretState.of(s) for s in outcome.secrets],
            secrets_before=[SecretState.of(s) for s in outcome.before],
            next_step_at=outcome.next_step_at,
        )

    def _eiam_for_rotation(
        self,
        instance: str,
        application: str,
        resource: str,
        meta: RequestMeta,
        record: audit.AuditRecord,
    ) -> rotation.Eiam:
        """Each call under a session scoped to its action: the listing and a create on the
        application's `.../secret/*`, a disable or a delete on the one secret it acts on."""
        deadline = meta.deadline

        def on_secret(action: str, call: Callable[..., object]) -> Callable[[str], object]:
            def act(secret_id: str) -> object:
                arn = secret_arn(self.region, self.account_id, instance, application, secret_id)
                return self._scoped(
                    action,
                    arn,
                    deadline,
                    lambda c: call(c, instance, application, secret_id, deadline),
                    record,
                )

            return act

        def create(expiration_time: int) -> create_once.Eiam:
            # Built, not validated: the time is the rotation's own (now + lifetime, checked by
            # VEND_ROTATION's bounds), and the clock the model checks against may not be it.
            request = CreateRequest.model_construct(
                instance_id=instance, application_id=application, expiration_time=expiration_time
            )
            return self._eiam_for_create(request, resource, meta, record)

        return rotation.Eiam(
            list=lambda: self._scoped(
                EIAM_LIST,
                resource,
                deadline,
                lambda c: self.eiam.list_secrets(c, instance, application, deadline),
                record,
            ),
            create=create,
            disable=on_secret(EIAM_DISABLE, self.eiam.disable),
            delete=on_secret(EIAM_DELETE, self.eiam.delete),
        )

    def _admit(
        self,
        action: str | tuple[str, ...],
        resource: str,
        authorization: str | None,
        meta: RequestMeta,
        record: audit.AuditRecord,
        retry_of: str | None,
        *,
        what: str,
        known: Caller | None = None,
    ) -> tuple[Caller, Verdict]:
        """The caller, authenticated (unless `known`: the service itself) and approved for
        `action` (or for any one of several) on `resource` (`what` says it to a caller who is
        not), and the policy's verdict."""
        caller = known or self._authenticate(authorization, meta, record, retry_of)
        record.principal = caller.name
        for one in (action,) if isinstance(action, str) else action:
            verdict = self.policy.decide(caller, one, resource, source_ip=meta.source_ip)
            if verdict.allowed:
                break
        record.decided(verdict.allowed, verdict.statement)
        if not verdict.allowed:
            raise access_denied(f"the approval policy does not allow {caller.name} to {what}")
        return caller, verdict

    def _authenticate(
        self,
        authorization: str | None,
        meta: RequestMeta,
        record: audit.AuditRecord,
        retry_of: str | None,
    ) -> Caller:
        started = perf_counter()
        try:
            return self.authenticator.authenticate(authorization, meta.deadline, retry_of=retry_of)
        except VendError as err:
            # What fails authentication upstream is STS verifying a RAM proof (sent once); a
            # JWT's JWKS that cannot be fetched is a 401, which blame leaves alone.
            blame(err, "STS", attempts=1)
            raise
        finally:
            record.auth_ms = audit.elapsed_ms(started)

    def _vend(
        self,
        action: Action,
        data: object,
        authorization: str | None,
        meta: RequestMeta,
        record: audit.AuditRecord,
        idempotency_key: str | None,
        retry_of: str | None,
    ) -> VendResponse:
        request = parse_request(action, data)
        secret_id = request.secret_id if isinstance(request, ObtainRequest) else None
        resource = secret_arn(
            self.region, self.account_id, request.instance_id, request.application_id, secret_id
        )
        record.resource = resource
        caller, verdict = self._admit(
            EIAM_ACTIONS[action],
            resource,
            authorization,
            meta,
            record,
            retry_of,
            what=_WHAT[action],
        )
        if isinstance(request, CurrentRequest):
            return self._current(request, resource, caller, verdict, meta, record)
        context = envelope.encryption_context(resource, caller.name, meta.request_id)
        data_key = self._start_data_key(verdict, context, meta, record)
        try:
            if isinstance(request, ObtainRequest):
                info = self._obtain(
                    request.instance_id, request.application_id, request.secret_id, meta, record
                )
                key = _result(data_key, meta.deadline)
                return self._seal(info, key, context, meta.request_id, record)
            if idempotency_key is None:
                # The data key first: a secret made but never delivered would burn one of the
                # application's two slots.
                key = _result(data_key, meta.deadline)
                info = self._create(request, resource, meta, record)
                return self._seal(info, key, context, meta.request_id, record)
            return self._create_once(
                request, resource, caller.name, idempotency_key, data_key, context, meta, record
            )
        finally:
            data_key.cancel()

    def _current(
        self,
        request: CurrentRequest,
        every_secret: str,
        caller: Caller,
        verdict: Verdict,
        meta: RequestMeta,
        record: audit.AuditRecord,
    ) -> VendResponse:
        """The application's current secret (contract section 14): listed under a session
        scoped to List on every secret of the application, chosen by the one rule
        (shared.lifecycle.current), then obtained and sealed as an obtain of that secret is,
        under a session scoped to it alone. The envelope and the audit record name the secret
        chosen, so the caller opens it as that secret's."""
        instance, application, deadline = request.instance_id, request.application_id, meta.deadline
        listed = self._scoped(
            EIAM_LIST,
            every_secret,
            deadline,
            lambda c: self.eiam.list_secrets(c, instance, application, deadline),
            record,
        )
        chosen = current_of(listed)
        if chosen is None:
            raise not_found(
                f"application {application} of instance {instance} has no enabled client secret"
            )
        arn = secret_arn(self.region, self.account_id, instance, application, chosen.secret_id)
        record.resource = arn
        # Approved on every secret already; an explicit Deny of this one holds all the same, as
        # it would for its obtain.
        chosen_verdict = self.policy.decide(
            caller, EIAM_ACTIONS["obtain"], arn, source_ip=meta.source_ip
        )
        if not chosen_verdict.allowed:
            record.decided(False, chosen_verdict.statement)
            raise access_denied(
                f"the approval policy does not allow {caller.name} to obtain "
                f"{chosen.secret_id}, the application's current secret"
            )
        context = envelope.encryption_context(arn, caller.name, meta.request_id)
        data_key = self._start_data_key(verdict, context, meta, record)
        try:
            info = self._obtain(instance, application, chosen.secret_id, meta, record)
            key = _result(data_key, deadline)
            return self._seal(info, key, context, meta.request_id, record)
        finally:
            data_key.cancel()

    def _start_data_key(
        self,
        verdict: Verdict,
        context: dict[str, str],
        meta: RequestMeta,
        record: audit.AuditRecord,
    ) -> Future[DataKey]:
        """The data key for the caller's recipient key, asked of KMS on the pool (beside STS
        and EIAM)."""
        # In a copy of the request's context: a line logged there names the request.
        return self._pool.submit(
            contextvars.copy_context().run,
            self._data_key,
            record,
            self.identity.current(),
            verdict.recipient_key_id or self.default_key_id,
            context,
            meta.deadline,
        )

    def _data_key(
        self,
        record: audit.AuditRecord,
        creds: Credentials,
        key_id: str,
        context: dict[str, str],
        deadline: Deadline,
    ) -> DataKey:
        """KMS GenerateDataKey, on the pool beside STS and EIAM, timed for the audit record."""
        started = perf_counter()
        try:
            return self.kms.generate_data_key(creds, key_id, context, deadline)
        except VendError as err:
            blame(err, "KMS")
            raise
        finally:
            record.kms_ms = audit.elapsed_ms(started)

    def _seal(
        self,
        info: SecretInfo,
        key: DataKey,
        context: dict[str, str],
        request_id: str,
        record: audit.AuditRecord,
    ) -> VendResponse:
        started = perf_counter()
        try:
            return self.seal(info, key, context, request_id)
        finally:
            record.seal_ms = audit.elapsed_ms(started)

    def _scoped(
        self,
        action: str,
        resource: str,
        deadline: Deadline,
        call: Callable[[Credentials], T],
        record: audit.AuditRecord,
    ) -> T:
        """`call` (to EIAM) with the scoped session for (action, resource). If the upstream no
        longer accepts it (a restarted or rotated STS, a revoked session), once more with a
        fresh one: the refusal came before anything was done, so this is safe even for a
        create. The time of each goes to the audit record's sts_ms and eiam_ms."""
        creds = self._session(action, resource, deadline, record)
        try:
            return self._eiam_call(call, creds, record)
        except StaleCredentials as stale:
            log.warning(
                "vend: %s refused a cached STS session (%s); assuming the role again",
                stale.service,
                stale.upstream_code,
            )
            self.sessions.drop(action, resource, creds)
        return self._eiam_call(call, self._session(action, resource, deadline, record), record)

    def _session(
        self, action: str, resource: str, deadline: Deadline, record: audit.AuditRecord
    ) -> Credentials:
        started = perf_counter()
        try:
            return self.sessions.get(action, resource, deadline)
        except VendError as err:
            blame(err, "STS")
            raise
        finally:
            record.sts_ms = audit.elapsed_ms(started, record.sts_ms)

    @staticmethod
    def _eiam_call(
        call: Callable[[Credentials], T], creds: Credentials, record: audit.AuditRecord
    ) -> T:
        started = perf_counter()
        try:
            return call(creds)
        except VendError as err:
            blame(err, "EIAM")
            raise
        finally:
            record.eiam_ms = audit.elapsed_ms(started, record.eiam_ms)

    def _obtain(
        self,
        instance_id: str,
        application_id: str,
        secret_id: str,
        meta: RequestMeta,
        record: audit.AuditRecord,
    ) -> SecretInfo:
        arn = secret_arn(self.region, self.account_id, instance_id, application_id, secret_id)
        return self._scoped(
            EIAM_ACTIONS["obtain"],
            arn,
            meta.deadline,
            lambda creds: self.eiam.obtain(
                creds, instance_id, application_id, secret_id, meta.deadline
            ),
            record,
        )

    def _eiam_for_create(
        self, request: CreateRequest, resource: str, meta: RequestMeta, record: audit.AuditRecord
    ) -> create_once.Eiam:
        instance, application, deadline = request.instance_id, request.application_id, meta.deadline
        # List is authorized on the application's `.../secret/*`, the ARN create is scoped to.
        return create_once.Eiam(
            list_ids=lambda: self._scoped(
                EIAM_LIST,
                resource,
                deadline,
                lambda c: self.eiam.list_secret_ids(c, instance, application, deadline),
                record,
            ),
            create=lambda: self._scoped(
                EIAM_ACTIONS["create"],
                resource,
                deadline,
                lambda c: self.eiam.create(
                    c, instance, application, request.expiration_time, deadline
                ),
                record,
            ),
            obtain=lambda secret_id: self._obtain(instance, application, secret_id, meta, record),
            expiration_time=request.expiration_time,
        )

    def _create(
        self,
        request: CreateRequest,
        resource: str,
        meta: RequestMeta,
        record: audit.AuditRecord,
        key: once.Claim | None = None,
    ) -> SecretInfo:
        """EIAM's create under the application's lease (shared.create_lease). The lease holds
        two deadlines past each create sent: a create that timed out may still land in EIAM,
        and whoever takes the application after it must see it listed."""
        holder = key.holder if key is not None else Holder(None, once.request_hash(request))
        lease = ApplicationLease(
            self.store,
            lease_key(request.instance_id, request.application_id),
            holder,
            # Two whole deadlines, however late in the request the create goes: EIAM may hold
            # a create that long past the moment this request stops waiting for it.
            hold_ms=int(2000 * meta.deadline.seconds),
            now_ms=self.lapse_now_ms,
        )
        return create_once.create_at_most_once(
            self._eiam_for_create(request, resource, meta, record),
            once.Journal(lease, key),
            meta.deadline,
        )

    def _create_once(
        self,
        request: CreateRequest,
        resource: str,
        principal: str,
        idempotency_key: str,
        data_key: Future[DataKey],
        context: dict[str, str],
        meta: RequestMeta,
        record: audit.AuditRecord,
    ) -> VendResponse:
        """Create under an idempotency key (contract section 8; see shared.idempotent_create).
        The key's claim lapses with this request's deadline: a claim whose write timed out and
        landed late holds the key no longer than that."""
        held, done = once.claim(
            self.store,
            once.store_key(principal, idempotency_key),
            once.request_hash(request),
            hold_ms=meta.deadline.remaining_ms(),
            now_ms=self.lapse_now_ms,
        )
        if held is None:
            assert done is not None
            info = self._obtain(request.instance_id, request.application_id, done, meta, record)
            key = _result(data_key, meta.deadline)
            return self._seal(info, key, context, meta.request_id, record)
        try:
            key = _result(data_key, meta.deadline)
        except VendError:
            held.release()
            raise
        info = self._create(request, resource, meta, record, held)
        return self._seal(info, key, context, meta.request_id, record)

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


@contextmanager
def _audited(record: audit.AuditRecord) -> Iterator[None]:
    """Emits `record` whatever happens inside, with the outcome of a VendError (and the
    upstream's WARNING line when one failed); anything else is a bug, an InternalError."""
    try:
        yield
    except VendError as err:
        record.failed(err)
        audit.warn_upstream(record, err)
        raise
    except Exception:
        log.exception("vend: unexpected error in request %s", record.request_id)
        record.outcome = "InternalError"
        raise internal() from None
    finally:
        audit.emit(record)


def _result(future: Future[DataKey], deadline: Deadline) -> DataKey:
    try:
        return future.result(timeout=deadline.remaining() + 0.5)
    except FutureTimeout:
        raise blame(
            upstream_timeout("the request's deadline ran out waiting for KMS"), "KMS"
        ) from None


def blame(err: VendError, service: str, *, attempts: int | None = None) -> VendError:
    """`err`, naming `service` as the upstream that decided it, unless it names one already: an
    upstream's answer that could not be used (no client secret in it, not an object) is raised
    where the stage, not the answer, knows which upstream it was."""
    if err.service is None and err.status in audit.FAILURE_STATUSES:
        err.service = service
        err.attempts = attempts
    return err
