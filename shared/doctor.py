"""`vend doctor`: does this deployment's configuration work against the real services? It reads
the same `VEND_*` environment as the service and asks each upstream what a request would ask,
without reading or creating a secret: the function's own identity (STS GetCallerIdentity), the
vending role (AssumeRole with a session policy that allows nothing), a dry-run data key with
every KMS key the policy can pick, the idempotency store, each issuer's JWKS, that the vending
role may list the secrets of every application of VEND_ROTATION (`rotation-list`, naming those
it may not) and that the approval policy lets the schedule take their steps (`rotation-policy`),
and optionally (`application`) that the vending role may list one application's secrets.

Every check runs even when another fails, so one run names every wrong setting; each reports
the upstream's own code and request id, which is what a support ticket needs. Nothing a check
prints is secret: ARNs, key IDs, codes and request ids only."""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from alibabacloud_tea_openapi.exceptions import ClientException

from shared.arns import EIAM_LIST, secret_arn, session_policy
from shared.config import ConfigError, Settings
from shared.errors import UpstreamFailure, bounded
from shared.idempotency.store import Forgetful, StoreUnavailable
from shared.upstream import rpc
from shared.upstream.deadline import Deadline
from shared.upstream.identity import FunctionIdentity
from shared.upstream.rpc import (
    EIAM_VERSION,
    KMS_VERSION,
    STS_VERSION,
    Credentials,
    RpcTransport,
)
from shared.wire.endpoint import Endpoint

if TYPE_CHECKING:
    from shared.vend import Vendor

Status = Literal["ok", "fail", "skip"]
CHECK_TIMEOUT_S = 5.0
# The session the `assume-role` check asks for may do nothing at all: the check proves that the
# role can be assumed, not what it may do (that is `eiam-list`'s, on one application).
NOTHING_ALLOWED = json.dumps(
    {"Version": "1", "Statement": [{"Effect": "Deny", "Action": ["*"], "Resource": ["*"]}]},
    separators=(",", ":"),
)
DOCTOR_CONTEXT = {"vend:purpose": "doctor"}


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    upstream_code: str | None = None
    request_id: str | None = None
    ms: int = 0

    def line(self, width: int = 0) -> str:
        extra = ", ".join(
            part
            for part in (
                self.upstream_code and f"code {self.upstream_code}",
                self.request_id and f"request {self.request_id}",
            )
            if part
        )
        text = f"{self.status:<4}  {self.name:<{width}}  {self.detail}"
        return f"{text} ({extra})" if extra else text


@dataclass(frozen=True)
class Report:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(c.status == "ok" for c in self.checks)

    def lines(self) -> list[str]:
        width = max((len(c.name) for c in self.checks), default=0)
        return [c.line(width) for c in self.checks]

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checks": [asdict(c) for c in self.checks]}


class _Failed(Exception):
    """A check's failure, with what the upstream said."""

    def __init__(self, detail: str, code: str | None = None, request_id: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.request_id = request_id


@dataclass(frozen=True)
class _Ok:
    detail: str
    request_id: str | None = None


def _run(name: str, check: Callable[[], _Ok]) -> Check:
    started = time.monotonic()

    def done(status: Status, detail: str, code: str | None, rid: str | None) -> Check:
        ms = round((time.monotonic() - started) * 1000)
        return Check(name, status, detail, code, rid, ms)

    try:
        ok = check()
    except _Failed as failed:
        return done("fail", failed.detail, failed.code, failed.request_id)
    except Exception as exc:  # a check must report, whatever breaks; the type says what
        return done("fail", f"{type(exc).__name__}: {bounded(str(exc), 200)}", None, None)
    return done("ok", ok.detail, None, ok.request_id)


class _Upstreams:
    """Raw calls, so a failure keeps the upstream's own code and request id."""

    def __init__(self, settings: Settings, identity: FunctionIdentity) -> None:
        self.settings = settings
        self.identity = identity
        self.transport = RpcTransport()

    def call(
        self,
        endpoint: Endpoint,
        creds: Credentials,
        service: str,
        version: str,
        action: str,
        query: dict[str, Any],
    ) -> dict[str, Any]:
        try:
            return rpc.call(
                self.transport,
                endpoint,
                creds,
                action,
                version,
                query,
                Deadline(CHECK_TIMEOUT_S),
                service=service,
            )
        except ClientException as exc:
            data = exc.data if isinstance(exc.data, dict) else {}
            said = str(data.get("Message") or data.get("message") or exc.code)
            raise _Failed(
                f"{service} refused {action} ({exc.status_code}): {bounded(said, 160)}",
                str(exc.code) if exc.code else None,
                exc.request_id,
            ) from None
        except UpstreamFailure as exc:
            raise _Failed(
                f"{service} {action}: {exc.message}", exc.upstream_code, exc.upstream_request_id
            ) from None

    def own(self) -> Credentials:
        try:
            return self.identity.current()
        except Exception as exc:  # the credential chain's many ways to find nothing
            raise _Failed(f"no credentials for the function: {bounded(str(exc), 160)}") from None

    def caller_identity(self, creds: Credentials) -> tuple[str, str | None]:
        body = self.call(self.settings.sts, creds, "STS", STS_VERSION, "GetCallerIdentity", {})
        return str(body.get("Arn") or "?"), body.get("RequestId")

    def assume(self, policy: str) -> tuple[Credentials, str | None]:
        body = self.call(
            self.settings.sts,
            self.own(),
            "STS",
            STS_VERSION,
            "AssumeRole",
            {
                "RoleArn": self.settings.role_arn,
                "RoleSessionName": "vend-doctor",
                "DurationSeconds": "900",
                "Policy": policy,
            },
        )
        raw = body.get("Credentials") or {}
        try:
            creds = Credentials(raw["AccessKeyId"], raw["AccessKeySecret"], raw["SecurityToken"])
        except (KeyError, TypeError):
            raise _Failed("STS answered AssumeRole without credentials") from None
        return creds, body.get("RequestId")


def _role_name(arn: str) -> str:
    return arn.rpartition(":role/")[2]


def _identity_check(up: _Upstreams) -> _Ok:
    arn, rid = up.caller_identity(up.own())
    return _Ok(f"calls are signed as {arn}", rid)


def _assume_check(up: _Upstreams) -> _Ok:
    creds, rid = up.assume(NOTHING_ALLOWED)
    arn, _ = up.caller_identity(creds)
    expected = f":assumed-role/{_role_name(up.settings.role_arn)}/".lower()
    if expected not in arn.lower():
        raise _Failed(f"STS gave a session of {arn}, not of {up.settings.role_arn}", None, rid)
    return _Ok(f"assumed {up.settings.role_arn}, session {arn}", rid)


def _data_key_check(up: _Upstreams, key_id: str, whose: str) -> _Ok:
    query = {
        "KeyId": key_id,
        "KeySpec": "AES_256",
        "EncryptionContext": json.dumps(DOCTOR_CONTEXT),
        "DryRun": "true",
    }
    try:
        body = up.call(up.settings.kms, up.own(), "KMS", KMS_VERSION, "GenerateDataKey", query)
    except _Failed as failed:
        # What KMS answers to a dry run is not documented; "it would have worked" may come as
        # an error named for it (infra/api-metadata/DEVIATIONS.md).
        if failed.code and failed.code.startswith("DryRun"):
            return _Ok(f"{whose}: KMS says a data key would be made ({failed.code})")
        raise
    rid = body.get("RequestId")
    if body.pop("Plaintext", None) is not None:
        # KMS ignored DryRun and made a key: it is dropped here, never used or shown.
        return _Ok(f"{whose}: a data key was made (DryRun not honoured) and thrown away", rid)
    return _Ok(f"{whose}: a data key can be made with {body.get('KeyId') or key_id}", rid)


def _store_check(vendor: Vendor, url: str) -> _Ok:
    note = f"vend-doctor:{uuid.uuid4().hex}"
    try:
        vendor.store.remember(note, "ok", 10)
        back = vendor.store.recall(note)
    except StoreUnavailable as exc:
        raise _Failed(str(exc)) from None
    if back != "ok":
        raise _Failed(f"{vendor.store!r} did not give back what it was given")
    if url == "memory://":
        return _Ok("memory:// answers (this process only: use redis:// when deployed)")
    risks = vendor.store.risks(2.0) if isinstance(vendor.store, Forgetful) else []
    if risks:
        # Each can let a retried create make a second secret (README, Reliability).
        raise _Failed(f"{vendor.store!r} may forget records: " + "; ".join(risks))
    return _Ok(f"{vendor.store!r} stores and reads back, persists, and does not evict")


def _list_check(up: _Upstreams, instance_id: str, application_id: str) -> _Ok:
    arn = secret_arn(up.settings.region, up.settings.account_id, instance_id, application_id, None)
    creds, _ = up.assume(session_policy(EIAM_LIST, arn))
    body = up.call(
        up.settings.eiam,
        creds,
        "EIAM",
        EIAM_VERSION,
        "ListApplicationClientSecrets",
        {"InstanceId": instance_id, "ApplicationId": application_id},
    )
    items = body.get("ApplicationClientSecrets")
    count = len(items) if isinstance(items, list) else "?"
    return _Ok(f"the vending role may list {arn}: {count} client secret(s)", body.get("RequestId"))


ROTATION_WORKERS = 4  # listings at once: STS and EIAM are shared with the running service
NAMED_AT_MOST = 10


def _rotation_list_check(up: _Upstreams) -> _Ok:
    """Every application of VEND_ROTATION listed, under one session per instance that may list
    its applications' secrets and nothing else (not one per application: a list of thousands
    would cost as many AssumeRoles)."""
    by_instance: dict[str, list[str]] = {}
    for instance_id, application_id in up.settings.rotation:
        by_instance.setdefault(instance_id, []).append(application_id)
    if not by_instance:
        return _Ok("VEND_ROTATION lists no application: nothing is rotated on a schedule")
    region, account = up.settings.region, up.settings.account_id

    def listable(instance_id: str, creds: Credentials, application_id: str) -> _Failed | None:
        try:
            up.call(
                up.settings.eiam,
                creds,
                "EIAM",
                EIAM_VERSION,
                "ListApplicationClientSecrets",
                {"InstanceId": instance_id, "ApplicationId": application_id},
            )
        except _Failed as failed:
            return failed
        return None

    failures: list[tuple[str, _Failed]] = []
    with ThreadPoolExecutor(max_workers=ROTATION_WORKERS) as pool:
        for instance_id, applications in by_instance.items():
            # Every application of the instance (its ID was checked when VEND_ROTATION loaded).
            every = f"acs:eiam:{region}:{account}:instance/{instance_id}/application/*/secret/*"
            try:
                creds, _ = up.assume(session_policy(EIAM_LIST, every))
            except _Failed as failed:
                failures += [(f"{instance_id}/{a}", failed) for a in applications]
                continue
            answers = pool.map(functools.partial(listable, instance_id, creds), applications)
            failures += [
                (f"{instance_id}/{a}", failed)
                for a, failed in zip(applications, answers, strict=True)
                if failed is not None
            ]
    total = len(up.settings.rotation)
    if failures:
        named = ", ".join(
            f"{app} ({failed.code or failed.detail})" for app, failed in failures[:NAMED_AT_MOST]
        )
        more = f" and {len(failures) - NAMED_AT_MOST} more" if len(failures) > NAMED_AT_MOST else ""
        first = failures[0][1]
        raise _Failed(
            f"the vending role may not list {len(failures)} of the {total} application(s) of "
            f"VEND_ROTATION: {named}{more}",
            first.code,
            first.request_id,
        )
    return _Ok(
        f"the vending role may list all {total} application(s) of VEND_ROTATION "
        f"({len(by_instance)} instance(s))"
    )


def _rotation_policy_check(settings: Settings) -> Check:
    """No I/O: may the schedule (service:vend-rotation) take each step of each listed
    application? Otherwise its runs refuse them, one WARNING each, every run."""
    from shared.arns import ROTATION_ACTIONS  # noqa: PLC0415
    from shared.principal import ROTATION_SERVICE, Caller  # noqa: PLC0415

    caller = Caller.service(ROTATION_SERVICE)
    missing: list[str] = []
    for instance_id, application_id in settings.rotation:
        arn = secret_arn(settings.region, settings.account_id, instance_id, application_id, None)
        refused = [
            action.removeprefix("eiam:").removesuffix("ApplicationClientSecret")
            for action in ROTATION_ACTIONS.values()
            if not settings.policy.decide(caller, action, arn).allowed
        ]
        if refused:
            missing.append(f"{instance_id}/{application_id} ({', '.join(refused)})")
    total = len(settings.rotation)
    if missing:
        more = f" and {len(missing) - NAMED_AT_MOST} more" if len(missing) > NAMED_AT_MOST else ""
        return Check(
            "rotation-policy",
            "fail",
            f"the approval policy does not let service:{ROTATION_SERVICE} take every step of "
            f"{len(missing)} of the {total} application(s) of VEND_ROTATION: "
            f"{', '.join(missing[:NAMED_AT_MOST])}{more}",
        )
    return Check(
        "rotation-policy",
        "ok",
        f"the approval policy lets service:{ROTATION_SERVICE} take every step of the {total} "
        "application(s) of VEND_ROTATION",
    )


def _store_password_check(settings: Settings) -> Check:
    """A Redis password in VEND_IDEMPOTENCY_URL fails: deployed, it is a plain FC environment
    variable, shown to whoever may read the function's configuration. The service still starts
    with it (a laptop's Redis); the deployment gives it as a KMS ciphertext instead, which the
    `startup` check has decrypted by now when it passes."""
    url = settings.idempotency_url
    if url.startswith("redis") and urlsplit(url).password is not None:
        return Check(
            "store-password",
            "fail",
            "VEND_IDEMPOTENCY_URL holds the Redis password in clear: give it as "
            "VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT, a KMS ciphertext (README, Deploy)",
        )
    if settings.idempotency_password_ciphertext:
        return Check(
            "store-password",
            "ok",
            "the Redis password comes as a KMS ciphertext, decrypted at start",
        )
    return Check("store-password", "ok", "no Redis password in the configuration")


def _keys(settings: Settings) -> list[tuple[str, str]]:
    """(key id, whose) for the default key and every recipient key, each key once."""
    keys = {settings.kms_key_id: "the default key (VEND_KMS_KEY_ID)"}
    for principal, key_id in settings.policy.recipients:
        keys.setdefault(key_id, f"recipient key of {principal}")
    return list(keys.items())


def run(
    env: Mapping[str, str],
    *,
    region: str | None = None,
    account_id: str | None = None,
    identity: FunctionIdentity | None = None,
    application: tuple[str, str] | None = None,
) -> Report:
    """Every check, in a fixed order. `region`/`account_id`: the FC context's, as the service
    takes them; `application`: (instance id, application id) for the listing check."""
    from shared.composition_root import build_vendor  # noqa: PLC0415 - it imports the whole service

    identity = identity or FunctionIdentity()
    checks: list[Check] = []
    try:
        settings = Settings.from_env(env, region=region, account_id=account_id)
    except ConfigError as exc:
        checks.append(Check("config", "fail", str(exc)))
        checks.append(Check("upstreams", "skip", "skipped: the configuration does not load"))
        return Report(tuple(checks))
    policy = settings.policy
    checks.append(
        Check(
            "config",
            "ok",
            f"{settings.region}, account {settings.account_id}, "
            f"STS {settings.sts.url}, EIAM {settings.eiam.url}, KMS {settings.kms.url}",
        )
    )
    checks.append(
        Check(
            "policy",
            "ok",
            f"{len(policy.policy.statements)} statement(s), "
            f"{len(policy.recipients)} recipient key(s)",
        )
    )
    checks.append(_rotation_policy_check(settings))
    checks.append(_store_password_check(settings))
    vendor: Vendor | None = None
    try:
        vendor = build_vendor(settings, identity)
        checks.append(Check("startup", "ok", "the service builds from this configuration"))
    except (ConfigError, ValueError) as exc:
        checks.append(Check("startup", "fail", str(exc)))

    up = _Upstreams(settings, identity)
    plan: list[tuple[str, Callable[[], _Ok]]] = [
        ("identity", functools.partial(_identity_check, up)),
        ("assume-role", functools.partial(_assume_check, up)),
    ]
    for key_id, whose in _keys(settings):
        plan.append((f"data-key:{key_id}", functools.partial(_data_key_check, up, key_id, whose)))
    plan.append(("rotation-list", functools.partial(_rotation_list_check, up)))
    if application is not None:
        instance_id, application_id = application
        plan.append(
            (
                f"eiam-list:{instance_id}/{application_id}",
                functools.partial(_list_check, up, instance_id, application_id),
            )
        )
    if vendor is not None:
        plan.append(("store", functools.partial(_store_check, vendor, settings.idempotency_url)))
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(_run, name, check) for name, check in plan]
        checks.extend(f.result() for f in futures)
    if vendor is None:
        checks.append(Check("store", "skip", "skipped: the service does not start"))
        return Report(tuple(checks))
    checks.extend(_jwks_checks(vendor))
    return Report(tuple(checks))


def _jwks_checks(vendor: Vendor) -> list[Check]:
    jwt = vendor.authenticator.jwt
    if jwt is None:
        return [Check("jwks", "ok", "no JWT issuers (VEND_JWT_ISSUERS): RAM proofs only")]
    return [
        Check(f"jwks:{name}", "fail", problem)
        if problem
        else Check(f"jwks:{name}", "ok", "the key set was fetched and has a usable key")
        for name, problem in jwt.refresh().items()
    ]


def run_in_function(context: object) -> Report:
    """The checks from inside FC (`{"action": "doctor", "authorization"}` to vend-events, once
    `Vendor.run_doctor` has approved the caller for `vend:RunDoctor`): the function's own
    environment, region, account and credentials, as its requests see them."""
    import os  # noqa: PLC0415

    identity = FunctionIdentity()
    identity.update_from_context(context)
    return run(
        os.environ,
        region=getattr(context, "region", None),
        account_id=getattr(context, "account_id", None),
        identity=identity,
    )
