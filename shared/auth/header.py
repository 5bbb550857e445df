"""The `Authorization` value of a request (or an event's `authorization` field), dispatched to
the method it names."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import TYPE_CHECKING

from shared.errors import unauthenticated
from shared.idempotency import DEFAULT_TTL_S, IdempotencyStore, StoreUnavailable
from shared.principal import Caller
from shared.upstream.deadline import Deadline

if TYPE_CHECKING:
    from shared.auth.jwt_bearer import JwtAuthenticator
    from shared.auth.ram_proof import RamProofVerifier

MAX_AUTHORIZATION_CHARS = 16 * 1024
# FC drops async events older than maxAsyncEventAgeInSeconds (s.yaml: 3600 s; FC allows up to
# 7 days, so s.yaml must stay below the notes' 24 hours).
NOTE_TTL_S = DEFAULT_TTL_S


class Authenticator:
    def __init__(
        self,
        ram: RamProofVerifier,
        jwt: JwtAuthenticator | None = None,
        notes: IdempotencyStore | None = None,
    ) -> None:
        self._ram = ram
        self._jwt = jwt
        self._notes = notes

    @property
    def jwt(self) -> JwtAuthenticator | None:
        return self._jwt

    def authenticate(
        self, value: str | None, deadline: Deadline, *, retry_of: str | None = None
    ) -> Caller:
        """`retry_of`: the FC request id of an event invocation. FC retries an async invocation
        with the same payload and request id, and so with a RAM proof that STS has already
        spent; the principal that proof proved is noted in the shared store under (request id,
        proof) and found again by the retry. A proof replayed by anyone else comes with another
        request id, finds no note, and STS refuses it."""
        if not value or not value.strip():
            raise unauthenticated(
                "an Authorization of the form 'Bearer <JWT>' or 'RAM <proof>' is required"
            )
        if len(value) > MAX_AUTHORIZATION_CHARS:
            raise unauthenticated("the Authorization value is too long")
        scheme, _, credential = value.strip().partition(" ")
        credential = credential.strip()
        if not credential:
            raise unauthenticated("the Authorization value has no credential after its scheme")
        if scheme.lower() == "bearer":
            if self._jwt is None:
                raise unauthenticated("no JWT issuer is configured; use RAM proofs")
            return self._jwt.authenticate(credential, deadline)
        if scheme.upper() == "RAM":
            if retry_of is None or self._notes is None:
                return self._ram.authenticate(credential, timeout_s=deadline.remaining())
            return self._ram_once(credential, deadline, retry_of, self._notes)
        raise unauthenticated("the Authorization scheme must be Bearer or RAM")

    def _ram_once(
        self, proof: str, deadline: Deadline, retry_of: str, notes: IdempotencyStore
    ) -> Caller:
        key = "proof:" + hashlib.sha256(f"{retry_of}\n{proof}".encode()).hexdigest()
        try:
            noted = notes.recall(key)
        except StoreUnavailable:
            noted = None
        if noted is not None:
            name, account = json.loads(noted)
            return Caller.ram(name, account)
        caller = self._ram.authenticate(proof, timeout_s=deadline.remaining())
        # Without the note a retry is refused (401), as it would be anyway.
        with contextlib.suppress(StoreUnavailable):
            notes.remember(
                key, json.dumps([caller.name, caller.policy_principal.account_id]), NOTE_TTL_S
            )
        return caller
