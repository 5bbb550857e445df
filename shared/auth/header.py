"""The `Authorization` value of a request (or an event's `authorization` field), dispatched to
the method it names."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared.caller import Caller
from shared.errors import unauthenticated
from shared.upstream.deadline import Deadline

if TYPE_CHECKING:
    from shared.auth.jwt_bearer import JwtAuthenticator
    from shared.auth.ram_proof import RamProofVerifier

MAX_AUTHORIZATION_CHARS = 16 * 1024


class Authenticator:
    def __init__(self, ram: RamProofVerifier, jwt: JwtAuthenticator | None = None) -> None:
        self._ram = ram
        self._jwt = jwt

    def authenticate(self, value: str | None, deadline: Deadline) -> Caller:
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
            return self._jwt.authenticate(credential)
        if scheme.upper() == "RAM":
            return self._ram.authenticate(credential, timeout_s=deadline.remaining())
        raise unauthenticated("the Authorization scheme must be Bearer or RAM")
