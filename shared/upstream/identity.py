"""The function's own credentials: what signs every call the function role makes (STS AssumeRole,
KMS GenerateDataKey, FC InvokeFunction).

FC hands the role's temporary keys over in three places (infra/ASSUMPTIONS.md F2, F3, F34):
`context.credentials` with every invocation on the python3.9/3.10 runtimes; the
`x-fc-access-key-id`, `x-fc-access-key-secret` and `x-fc-security-token` headers of every request
to a custom runtime; and the ALIBABA_CLOUD_* environment variables, set once when the instance
starts. An instance can outlive the keys of its environment, so the set the platform handed with
a request is preferred, and the newest of those: the set most recently offered. Each set is
handed over by FC, which hands over valid ones only; the environment (or, outside FC, the
credentials library's default chain) is used until the platform has offered one."""

from __future__ import annotations

from shared.wire.credentials import Credentials, DefaultChain


class FunctionIdentity:
    def __init__(self, fixed: Credentials | None = None) -> None:
        self._fixed = fixed
        self._from_platform: Credentials | None = None
        self._chain = DefaultChain()

    def offer(self, creds: Credentials) -> None:
        """The set FC handed over with the request being served: it replaces any earlier one.

        The requests of a custom runtime run on many threads at once. Binding one name is
        atomic, so a thread that signs sees one whole set, never parts of two. Nothing in a set
        says when it was issued, so the order is that of the offers: a request held up between
        FC and this call may put back the set FC sent just before, which is still valid (FC
        hands over no expired set) and is replaced by the next request's."""
        self._from_platform = creds

    def update_from_context(self, context: object) -> None:
        """Offers `context.credentials` (python3.9/3.10) when the context carries a set."""
        creds = getattr(context, "credentials", None)
        key_id = getattr(creds, "access_key_id", None) or getattr(creds, "accessKeyId", None)
        if creds is None or not key_id:
            return
        secret = getattr(creds, "access_key_secret", None) or getattr(
            creds, "accessKeySecret", None
        )
        token = getattr(creds, "security_token", None) or getattr(creds, "securityToken", None)
        self.offer(Credentials(str(key_id), str(secret), token or None))

    def current(self) -> Credentials:
        if self._fixed is not None:
            return self._fixed
        offered = self._from_platform
        if offered is not None:
            return offered
        return self._chain.current()
