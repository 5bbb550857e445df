"""The composition root: builds the service from its configuration, once per instance (FC's
initializer, or `vend serve` at start), so that a bad configuration fails the start, not a
caller's request."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared import audit
from shared.auth.header import Authenticator
from shared.config import ConfigError, Problem, Settings
from shared.idempotency import open_store
from shared.store_password import StorePasswordError, decrypt_store_password
from shared.upstream.eiam import Eiam
from shared.upstream.fc_invoke import FunctionInvoker
from shared.upstream.identity import FunctionIdentity
from shared.upstream.kms import Kms
from shared.upstream.rpc import Credentials, RpcTransport
from shared.upstream.sts import ASSUME_ROLE_BURST, ASSUME_ROLE_PER_S, ScopedSessions
from shared.vend import Vendor


def build_vendor(
    settings: Settings,
    identity: FunctionIdentity,
    *,
    now_ms: Callable[[], int] | None = None,
    lapse_now_ms: Callable[[], int] | None = None,
    scheduled: bool = False,
    transport: RpcTransport | None = None,
) -> Vendor:
    """The service. `now_ms`: rotation's clock (ms since the epoch), the wall clock unless a
    test brings the emulator's. `lapse_now_ms`: the clock idempotency marks and application
    leases lapse by, the wall clock unless a test brings one it moves. `scheduled`: the
    instance runs the rotation schedule and serves no caller, so a new STS session over the
    instance's rate waits for its turn."""
    from shared.auth.ram_proof import ProofPolicy, RamProofVerifier, allowed_sts_targets

    try:
        targets = allowed_sts_targets(settings.region, settings.sts.url, settings.proof_hosts)
    except ValueError as exc:
        # Settings checked each variable alone; this is what remains: how they combine.
        raise ConfigError(
            Problem("VEND_STS_ENDPOINT / VEND_STS_PROOF_HOSTS / VEND_REGION", str(exc))
        ) from None
    transport = transport or RpcTransport()
    # The proofs go to STS over the service's own connections: each exchange ends in time.
    ram = RamProofVerifier(
        ProofPolicy(audience=settings.audience, allowed=targets), transport=transport
    )
    jwt = None
    if settings.jwt_issuers_json:
        from shared.auth.jwt_bearer import JwtAuthenticator, parse_issuers

        try:
            issuers = parse_issuers(settings.jwt_issuers_json)
        except ValueError as exc:
            raise ConfigError(Problem("VEND_JWT_ISSUERS", str(exc))) from None
        jwt = JwtAuthenticator(issuers, settings.audience)
    kms = Kms(transport, settings.kms)
    password = None
    if settings.idempotency_password_ciphertext:
        try:
            password = decrypt_store_password(
                kms, identity, settings.idempotency_password_ciphertext
            )
        except StorePasswordError as exc:
            raise ConfigError(Problem("VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT", str(exc))) from None
    try:
        store = open_store(settings.idempotency_url, password=password)
    except ValueError as exc:
        raise ConfigError(Problem("VEND_IDEMPOTENCY_URL", str(exc))) from None
    audit.configure()
    return Vendor(
        region=settings.region,
        account_id=settings.account_id,
        default_key_id=settings.kms_key_id,
        policy=settings.policy,
        authenticator=Authenticator(ram, jwt, notes=store),
        identity=identity,
        sessions=sessions(settings, transport, identity, patient=scheduled),
        eiam=Eiam(transport, settings.eiam),
        kms=kms,
        store=store,
        rotation=settings.rotation,
        now_ms=now_ms,
        lapse_now_ms=lapse_now_ms,
    )


def sessions(
    settings: Settings,
    transport: RpcTransport,
    identity: FunctionIdentity,
    *,
    patient: bool = False,
) -> ScopedSessions:
    rate, burst = settings.assume_role_rate or (ASSUME_ROLE_PER_S, ASSUME_ROLE_BURST)
    return ScopedSessions(
        transport,
        settings.sts,
        identity,
        settings.role_arn,
        rate_per_s=rate,
        burst=burst,
        patient=patient,
    )


def from_environment(
    env: Mapping[str, str] | None = None,
    *,
    region: str | None = None,
    account_id: str | None = None,
    credentials: Credentials | None = None,
    now_ms: Callable[[], int] | None = None,
    context: object = None,
    lapse_now_ms: Callable[[], int] | None = None,
) -> Vendor:
    """`context`: FC's, whose credentials the start already needs (to decrypt the store's
    password)."""
    settings = Settings.from_env(
        os.environ if env is None else env, region=region, account_id=account_id
    )
    return build_vendor(
        settings, _identity(credentials, context), now_ms=now_ms, lapse_now_ms=lapse_now_ms
    )


def _identity(credentials: Credentials | None, context: object) -> FunctionIdentity:
    identity = FunctionIdentity(credentials)
    if context is not None:
        identity.update_from_context(context)
    return identity


@dataclass(frozen=True)
class Scheduled:
    """What the rotation schedule's function runs with: the service, whose sessions wait for
    the instance's AssumeRole rate, and FC's API to queue its batches with."""

    vendor: Vendor
    invoker: FunctionInvoker


def scheduled_from_environment(
    env: Mapping[str, str] | None = None,
    *,
    region: str | None = None,
    account_id: str | None = None,
    credentials: Credentials | None = None,
    now_ms: Callable[[], int] | None = None,
    context: object = None,
) -> Scheduled:
    settings = Settings.from_env(
        os.environ if env is None else env, region=region, account_id=account_id
    )
    identity, transport = _identity(credentials, context), RpcTransport()
    vendor = build_vendor(settings, identity, now_ms=now_ms, scheduled=True, transport=transport)
    assert settings.fc is not None  # Settings.from_env always sets it
    return Scheduled(vendor, FunctionInvoker(transport, settings.fc, identity))


_instance: Vendor | None = None
_scheduled: Scheduled | None = None
_instance_lock = threading.Lock()


def instance_vendor(context: object) -> Vendor:
    """The service of this FC instance, built on first use (or by the initializer) from the
    environment and the context, and reused by every invocation after it. Both functions of the
    code package use it; each FC function has instances of its own."""
    global _instance  # noqa: PLW0603 - one service per FC instance
    if _instance is None:
        with _instance_lock:
            if _instance is None:
                _instance = from_environment(
                    region=getattr(context, "region", None),
                    account_id=getattr(context, "account_id", None),
                    context=context,
                )
    _instance.identity.update_from_context(context)
    return _instance


def instance_scheduled(context: object) -> Scheduled:
    """As `instance_vendor`, for the rotation schedule's function (functions/rotation.py)."""
    global _scheduled  # noqa: PLW0603 - one per FC instance
    if _scheduled is None:
        with _instance_lock:
            if _scheduled is None:
                _scheduled = scheduled_from_environment(
                    region=getattr(context, "region", None),
                    account_id=getattr(context, "account_id", None),
                    context=context,
                )
    _scheduled.vendor.identity.update_from_context(context)
    return _scheduled


def set_instance(vendor: Vendor) -> None:
    """Makes `vendor` this instance's service, as if the initializer had built it: for a test
    that builds it with clocks of its own (`from_environment(lapse_now_ms=...)`)."""
    global _instance  # noqa: PLW0603
    with _instance_lock:
        _instance = vendor


def reset_instance() -> None:
    """Forgets the instance's service, as a new FC instance would start without it."""
    global _instance, _scheduled  # noqa: PLW0603
    with _instance_lock:
        _instance = None
        _scheduled = None
