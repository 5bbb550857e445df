"""The emulated account: RAM users and roles, the STS sessions issued for them, and the checks
every signed call goes through (who signed it, and may they do this)."""

from __future__ import annotations

import heapq
import hmac
import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Literal

from shared.ram_policy import (
    Policy,
    PolicyError,
    Principal,
    RequestContext,
    evaluate,
    evaluate_session,
    parse_policy,
)

from . import ids
from .clock import Clock
from .errors import ApiError
from .seed import Seed
from .signature import Authorization, Request, parse_authorization, verify

# Alibaba Cloud refuses a request whose x-acs-date is more than 15 minutes off, and the nonce of
# a signed request is remembered for as long, which makes each signed request single-use.
MAX_SKEW_S = 15 * 60
NONCE_TTL_S = 15 * 60


@dataclass(frozen=True)
class Identity:
    """The caller behind an access key."""

    type: Literal["RAMUser", "AssumedRoleUser"]
    arn: str  # as GetCallerIdentity reports it
    principal_arn: str  # as policies name it: the user, or the role for an assumed role
    account_id: str
    principal_id: str
    user_id: str | None
    role_id: str | None
    policies: tuple[Policy, ...]
    session_policy: Policy | None = None

    @property
    def principal(self) -> Principal:
        return Principal(type="RAM", id=self.principal_arn, account_id=self.account_id)


@dataclass(frozen=True)
class RoleRecord:
    name: str
    arn: str
    role_id: str
    trust: Policy
    policies: tuple[Policy, ...]
    max_session_duration: int


@dataclass
class Session:
    access_key_id: str
    access_key_secret: str
    security_token: str
    expires_at: float
    identity: Identity


@dataclass
class _Key:
    secret: str
    identity: Identity


@dataclass
class Account:
    seed: Seed
    clock: Clock
    _keys: dict[str, _Key] = field(default_factory=dict)
    _roles: dict[str, RoleRecord] = field(default_factory=dict)
    _sessions: dict[str, Session] = field(default_factory=dict)
    # (expires_at, access key id), a heap: sessions last 15 minutes to 12 hours, so they do not
    # expire in the order they were issued.
    _session_expiry: list[tuple[float, str]] = field(default_factory=list)
    # nonce -> when it may be used again, and the same as (expiry, nonce) in the order of use.
    # Every nonce lives NONCE_TTL_S, so the queue is ordered by expiry as long as the clock does
    # not go back, and the expired ones are at its left.
    _nonces: dict[str, float] = field(default_factory=dict)
    _nonce_expiry: deque[tuple[float, str]] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        acct = self.seed.account_id
        for user in self.seed.users:
            arn = f"acs:ram::{acct}:user/{user.name}"
            uid = ids.numeric_id(arn, 16)
            policies = tuple(
                _parse(doc, "identity", f"user {user.name} policy {i}")
                for i, doc in enumerate(user.policies)
            )
            identity = Identity("RAMUser", arn, arn, acct, uid, uid, None, policies)
            if user.access_key_id in self._keys:
                raise ValueError(f"seed: access key {user.access_key_id} is used twice")
            self._keys[user.access_key_id] = _Key(user.access_key_secret, identity)
        for role in self.seed.roles:
            arn = f"acs:ram::{acct}:role/{role.name}"
            self._roles[role.name.lower()] = RoleRecord(
                name=role.name,
                arn=arn,
                role_id=ids.numeric_id(arn, 19),
                trust=_parse(role.trust_policy, "trust", f"role {role.name} trust policy"),
                policies=tuple(
                    _parse(doc, "identity", f"role {role.name} policy {i}")
                    for i, doc in enumerate(role.policies)
                ),
                max_session_duration=role.max_session_duration,
            )

    # -- authentication -------------------------------------------------------------------

    def authenticate(self, request: Request) -> Identity:
        """Checks the signature, the security token, the clock and the nonce, in that order."""
        auth = parse_authorization(request)
        key = self._lookup_key(auth, request.headers.get("x-acs-security-token"))
        verify(request, auth, key.secret)
        self._check_date(request.headers["x-acs-date"])
        self._use_nonce(request.headers["x-acs-signature-nonce"])
        return key.identity

    def _lookup_key(self, auth: Authorization, token: str | None) -> _Key:
        key_id = auth.access_key_id
        with self._lock:
            session = self._sessions.get(key_id)
            static = self._keys.get(key_id)
        if session is not None:
            if not token:
                raise ApiError(400, "MissingSecurityToken", "The security token is missing.")
            if not _same(token, session.security_token):
                raise ApiError(
                    400,
                    "InvalidSecurityToken.MismatchWithAccessKey",
                    "The security token does not match the access key.",
                )
            if self.clock.now() >= session.expires_at:
                raise ApiError(
                    400, "InvalidSecurityToken.Expired", "The security token has expired."
                )
            return _Key(session.access_key_secret, session.identity)
        if static is None:
            raise ApiError(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
        if token:
            raise ApiError(
                400,
                "InvalidSecurityToken.MismatchWithAccessKey",
                "A security token was sent with a permanent access key.",
            )
        return static

    def key_secret(self, access_key_id: str) -> tuple[str, str | None] | None:
        """(secret, security token or None) of a key this emulator knows, for local services
        that verify their own signatures (the local FC invoke API); None if unknown or expired."""
        with self._lock:
            session = self._sessions.get(access_key_id)
            static = self._keys.get(access_key_id)
        if session is not None:
            if self.clock.now() >= session.expires_at:
                return None
            return session.access_key_secret, session.security_token
        return (static.secret, None) if static is not None else None

    def _check_date(self, value: str) -> None:
        try:
            sent = (
                datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ")
                .replace(tzinfo=timezone.utc)
                .timestamp()
            )
        except ValueError:
            raise ApiError(
                400, "InvalidTimeStamp.Format", "x-acs-date must look like 2026-01-01T00:00:00Z."
            ) from None
        if abs(self.clock.now() - self.clock.callers(sent)) > MAX_SKEW_S:
            raise ApiError(
                400, "InvalidTimeStamp.Expired", "The x-acs-date is more than 15 minutes off."
            )

    def _use_nonce(self, nonce: str) -> None:
        now = self.clock.now()
        with self._lock:
            self._forget_expired_nonces(now)
            if self._nonces.get(nonce, 0.0) > now:
                raise ApiError(
                    400, "SignatureNonceUsed", "The x-acs-signature-nonce has been used already."
                )
            expiry = now + NONCE_TTL_S
            self._nonces[nonce] = expiry
            self._nonce_expiry.append((expiry, nonce))

    def _forget_expired_nonces(self, now: float) -> None:
        """Pops the expired nonces off the left of the queue: amortized O(1) a call, since each
        nonce is queued once and popped once. Holding the lock."""
        queue, nonces = self._nonce_expiry, self._nonces
        while queue and queue[0][0] <= now:
            expiry, nonce = queue.popleft()
            # The nonce may have been used again since (after this expiry): keep that use.
            if nonces.get(nonce) == expiry:
                del nonces[nonce]

    def held(self) -> tuple[int, int]:
        """(STS sessions, nonces) remembered, expired ones not yet forgotten included."""
        with self._lock:
            return len(self._sessions), len(self._nonces)

    def restart(self) -> None:
        """Forgets every STS session issued and every nonce seen, as a restarted STS would
        (the keys it issued are unknown to it afterwards); users and roles are the seed's."""
        with self._lock:
            self._sessions.clear()
            self._session_expiry.clear()
            self._nonces.clear()
            self._nonce_expiry.clear()

    # -- authorization ----------------------------------------------------------------------

    def authorize(
        self, identity: Identity, action: str, resource: str, conditions: Mapping[str, str]
    ) -> None:
        ctx = RequestContext(
            action=action, resource=resource, principal=identity.principal, conditions=conditions
        )
        result = evaluate_session(identity.policies, identity.session_policy, ctx)
        if not result.allowed:
            raise ApiError(
                403,
                "Forbidden.RAM",
                f"User not authorized to operate on the specified resource: "
                f"{identity.arn} may not {action} on {resource}.",
            )

    # -- STS --------------------------------------------------------------------------------

    def role(self, role_arn: str) -> RoleRecord:
        prefix = f"acs:ram::{self.seed.account_id}:role/"
        if not role_arn.lower().startswith(prefix):
            raise ApiError(404, "EntityNotExist.Role", f"The role {role_arn} does not exist.")
        record = self._roles.get(role_arn[len(prefix) :].lower())
        if record is None:
            raise ApiError(404, "EntityNotExist.Role", f"The role {role_arn} does not exist.")
        return record

    def may_assume(self, caller: Identity, role: RoleRecord, conditions: Mapping[str, str]) -> bool:
        own = RequestContext(
            action="sts:AssumeRole",
            resource=role.arn,
            principal=caller.principal,
            conditions=conditions,
        )
        trusted = RequestContext(
            action="sts:AssumeRole", principal=caller.principal, conditions=conditions
        )
        return (
            evaluate_session(caller.policies, caller.session_policy, own).allowed
            and evaluate([role.trust], trusted).allowed
        )

    def issue_session(
        self, role: RoleRecord, session_name: str, duration_s: int, session_policy: Policy | None
    ) -> Session:
        acct = self.seed.account_id
        identity = Identity(
            type="AssumedRoleUser",
            arn=f"acs:ram::{acct}:assumed-role/{role.name}/{session_name}",
            principal_arn=role.arn,
            account_id=acct,
            principal_id=f"{role.role_id}:{session_name}",
            user_id=None,
            role_id=role.role_id,
            policies=role.policies,
            session_policy=session_policy,
        )
        session = Session(
            access_key_id="STS." + ids.random_string(28),
            access_key_secret=ids.random_string(44),
            security_token="CAIS" + ids.random_string(300),
            expires_at=self.clock.now() + duration_s,
            identity=identity,
        )
        now = self.clock.now()
        with self._lock:
            # Forget the sessions expired by now: amortized O(log n) a session, each being
            # pushed and popped once.
            heap = self._session_expiry
            while heap and heap[0][0] <= now:
                _, key_id = heapq.heappop(heap)
                self._sessions.pop(key_id, None)
            self._sessions[session.access_key_id] = session
            heapq.heappush(heap, (session.expires_at, session.access_key_id))
        return session


def parse_session_policy(text: str) -> Policy:
    return _parse(text, "identity", "session policy")


def _parse(doc: object, kind: Literal["identity", "trust"], name: str) -> Policy:
    try:
        return parse_policy(doc, kind=kind, name=name)  # type: ignore[arg-type]
    except PolicyError as exc:
        raise PolicyError(f"{name}: {exc}") from exc


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())
