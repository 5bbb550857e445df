"""IDaaS EIAM's authorization server for M2M applications, per instance: the OAuth 2.0 token
endpoint (`client_credentials`, with `client_secret_basic` or `client_secret_post`), the OIDC
discovery document and the JWKS that verify its tokens (infra/ASSUMPTIONS.md, T1 to T14).

In the cloud each instance has a domain of its own, and the paths below hang from it
(`https://{domain}/api/v2/iauths_system/oauth2/token`). Here every instance shares the emulator's
one port, so the instance ID stands in for the domain as the first path segment:
`http://127.0.0.1:9100/{instance_id}/api/v2/iauths_system/oauth2/token`. The issuer is built from
the host the request came to, as IDaaS's "dynamic" issuer mode builds it from the request's
domain.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from .clock import Clock
from .eiam import ClientRejected, Eiam

AUTHORIZATION_SERVER = "iauths_system"
ISSUER_PATH = f"/api/v2/{AUTHORIZATION_SERVER}/oauth2"
DISCOVERY = "/.well-known/openid-configuration"
DEFAULT_EXPIRES_IN = 3600
ALGORITHM = "RS256"
FORM = "application/x-www-form-urlencoded"

# The emulator's name for each endpoint, in its call history and for injected faults (a fault's
# `action` is letters only).
ACTIONS = {"/token": "OAuthToken", DISCOVERY: "OidcDiscovery", "/jwks": "OidcJwks"}

_ROUTE = re.compile(
    r"^/(?P<instance>[A-Za-z0-9_-]{1,64})" + re.escape(ISSUER_PATH) + r"(?P<endpoint>/.*)?$"
)
# RFC 6749 5.1: a token answer is never cached; errors carry the same.
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def issuer(base_url: str, instance_id: str) -> str:
    """The issuer of an instance's tokens, for an emulator at `base_url` (`http://host:port`)."""
    return f"{base_url.rstrip('/')}/{instance_id}{ISSUER_PATH}"


@dataclass(frozen=True)
class Route:
    instance_id: str
    endpoint: str  # "/token", "/jwks", DISCOVERY, or whatever else was asked for

    @property
    def action(self) -> str:
        return ACTIONS.get(self.endpoint, "OAuthNotFound")


def route(path: str) -> Route | None:
    """The instance and endpoint a path asks for, or None: not an authorization server's path."""
    found = _ROUTE.match(path)
    if found is None:
        return None
    return Route(found["instance"], found["endpoint"] or "")


@dataclass(frozen=True)
class Request:
    method: str
    base_url: str  # scheme://host[:port] the request came to
    authorization: str = ""
    content_type: str = ""
    body: bytes = b""


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    client_id: str | None = None  # who asked for a token, for the call history

    @property
    def outcome(self) -> str:
        return str(self.body.get("error", "OK"))


class OAuthError(Exception):
    """An error answer of the token endpoint (RFC 6749 5.2), or a 404/405 of the others."""

    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        *,
        headers: Mapping[str, str] | None = None,
        client_id: str | None = None,
    ) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.headers = dict(headers or {})
        self.client_id = client_id

    def answer(self) -> Answer:
        body = {"error": self.error, "error_description": self.description}
        return Answer(self.status, body, self.headers, self.client_id)


@dataclass(frozen=True)
class _Key:
    kid: str
    private: rsa.RSAPrivateKey


class SigningKeys:
    """One RSA key per instance, made at its first use (a 2048-bit key takes a tenth of a
    second, and most emulators a test starts never issue a token), and kept in the emulator's
    state file when it has one, so that tokens outlive a restart there."""

    def __init__(
        self,
        saved: Mapping[str, Mapping[str, str]] | None = None,
        on_new: Callable[[], None] = lambda: None,
    ) -> None:
        self._lock = threading.Lock()
        self._on_new = on_new
        self._keys: dict[str, _Key] = {}
        for instance_id, item in (saved or {}).items():
            private = serialization.load_pem_private_key(item["pem"].encode(), password=None)
            if not isinstance(private, rsa.RSAPrivateKey):
                raise ValueError(f"the signing key of {instance_id} is not an RSA key")
            self._keys[instance_id] = _Key(item["kid"], private)

    def key(self, instance_id: str) -> _Key:
        with self._lock:
            found = self._keys.get(instance_id)
            if found is None:
                private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                found = self._keys[instance_id] = _Key(secrets.token_hex(8), private)
                new = True
            else:
                new = False
        if new:
            self._on_new()
        return found

    def to_json(self) -> dict[str, dict[str, str]]:
        with self._lock:
            keys = dict(self._keys)
        return {
            instance_id: {
                "kid": key.kid,
                "pem": key.private.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                ).decode(),
            }
            for instance_id, key in keys.items()
        }


class AuthorizationServer:
    """The token endpoint, discovery document and JWKS of every instance EIAM holds."""

    def __init__(
        self,
        eiam: Eiam,
        clock: Clock,
        keys: SigningKeys,
        expires_in: Mapping[str, int] | None = None,
    ) -> None:
        self.eiam = eiam
        self.clock = clock
        self.keys = keys
        self.expires_in = dict(expires_in or {})

    def serve(self, where: Route, request: Request) -> Answer:
        try:
            if where.instance_id not in self.eiam.state:
                raise OAuthError(
                    404, "not_found", f"No IDaaS instance {where.instance_id} is emulated here."
                )
            iss = issuer(request.base_url, where.instance_id)
            if where.endpoint == "/token":
                return self._token(where.instance_id, iss, request)
            if where.endpoint not in (DISCOVERY, "/jwks"):
                raise OAuthError(
                    404,
                    "not_found",
                    f"The emulator serves {iss}/token, {iss}/jwks and {iss}{DISCOVERY} only.",
                )
            if request.method != "GET":
                raise OAuthError(
                    405, "invalid_request", "This endpoint takes GET.", headers={"Allow": "GET"}
                )
            if where.endpoint == "/jwks":
                return Answer(200, self._jwks(where.instance_id))
            return Answer(200, _discovery(iss))
        except OAuthError as error:
            return error.answer()

    # -- the token endpoint -----------------------------------------------------------------------

    def _token(self, instance_id: str, iss: str, request: Request) -> Answer:
        if request.method != "POST":
            raise OAuthError(
                405,
                "invalid_request",
                "The token endpoint takes POST.",
                headers={"Allow": "POST", **_NO_STORE},
            )
        params = _form(request)
        challenge = {"WWW-Authenticate": f'Basic realm="{instance_id}"', **_NO_STORE}
        client_id, client_secret = _client_credentials(request.authorization, params, challenge)
        try:
            self.eiam.authenticate_client(instance_id, client_id, client_secret)
        except ClientRejected as rejected:
            raise OAuthError(
                401,
                "invalid_client",
                _REJECTED[rejected.reason],
                headers=challenge,
                client_id=client_id,
            ) from None
        grant_type = params.get("grant_type")
        if not grant_type:
            raise _bad(400, "invalid_request", "The parameter grant_type is missing.", client_id)
        if grant_type != "client_credentials":
            raise _bad(
                400,
                "unsupported_grant_type",
                "This token endpoint issues client_credentials tokens only.",
                client_id,
            )
        audience, scopes = _scope(params.get("scope"), client_id)
        expires_in = self.expires_in.get(instance_id, DEFAULT_EXPIRES_IN)
        issued_at = int(self.clock.now())
        claims: dict[str, Any] = {
            "iss": iss,
            "sub": client_id,
            "client_id": client_id,
            "iat": issued_at,
            "exp": issued_at + expires_in,
            "jti": uuid.uuid4().hex,
        }
        if audience is not None:
            claims["aud"] = audience
            claims["scope"] = " ".join(scopes)
        key = self.keys.key(instance_id)
        token = jwt.encode(
            claims, key.private, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "at+jwt"}
        )
        body = {
            "token_type": "Bearer",
            "access_token": token,
            "expires_in": expires_in,
            "expires_at": issued_at + expires_in,
        }
        return Answer(200, body, dict(_NO_STORE), client_id)

    # -- discovery and keys -----------------------------------------------------------------------

    def _jwks(self, instance_id: str) -> dict[str, Any]:
        key = self.keys.key(instance_id)
        public: dict[str, Any] = json.loads(RSAAlgorithm.to_jwk(key.private.public_key()))
        return {"keys": [{**public, "kid": key.kid, "use": "sig", "alg": ALGORITHM}]}


_REJECTED = {
    "unknown": "Client authentication failed: unknown client_id, or a wrong client_secret.",
    "disabled": "The client secret is disabled.",
    "expired": "The client secret has expired.",
}


def _discovery(iss: str) -> dict[str, Any]:
    """The OIDC discovery document, of what the emulator serves: the M2M token endpoint and its
    keys (no authorization endpoint, so none of the browser flows' fields)."""
    return {
        "issuer": iss,
        "token_endpoint": f"{iss}/token",
        "jwks_uri": f"{iss}/jwks",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
    }


def _bad(status: int, error: str, description: str, client_id: str | None = None) -> OAuthError:
    return OAuthError(status, error, description, headers=_NO_STORE, client_id=client_id)


def _form(request: Request) -> dict[str, str]:
    """The form parameters; each at most once (RFC 6749 3.2)."""
    media_type = request.content_type.split(";", 1)[0].strip().lower()
    if media_type != FORM:
        raise _bad(400, "invalid_request", f"The request body must be {FORM}.")
    try:
        pairs = parse_qsl(request.body.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise _bad(400, "invalid_request", "The request body is not UTF-8.") from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise _bad(400, "invalid_request", f"The parameter {name[:64]!r} is repeated.")
        params[name] = value
    return params


def _client_credentials(
    authorization: str, params: dict[str, str], challenge: dict[str, str]
) -> tuple[str, str]:
    """(client_id, client_secret) from HTTP Basic (client_secret_basic, RFC 6749 2.3.1) or from
    the body (client_secret_post), never both. A 401 carries `challenge` (WWW-Authenticate):
    RFC 6749 5.2 requires it when the client tried the Authorization header, and RFC 9110
    requires it of every 401."""
    if authorization:
        scheme, _, encoded = authorization.strip().partition(" ")
        if scheme.lower() != "basic":
            raise OAuthError(
                401,
                "invalid_client",
                "Client authentication must be HTTP Basic (client_secret_basic) or in the body "
                "(client_secret_post).",
                headers=challenge,
            )
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            decoded = ""
        raw_id, colon, raw_secret = decoded.partition(":")
        if not colon or not raw_id:
            raise OAuthError(
                401,
                "invalid_client",
                "The Authorization header is not Basic base64(client_id:client_secret).",
                headers=challenge,
            )
        client_id, client_secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if "client_secret" in params:
            raise _bad(
                400,
                "invalid_request",
                "The client authenticated twice: in the Authorization header and the body.",
            )
        if params.get("client_id", client_id) != client_id:
            raise _bad(
                400,
                "invalid_request",
                "client_id in the body is not the one in the Authorization header.",
            )
        return client_id, client_secret
    client_id, client_secret = params.get("client_id", ""), params.get("client_secret", "")
    if not client_id or not client_secret:
        raise OAuthError(
            401,
            "invalid_client",
            "No client authentication: send client_id and client_secret with HTTP Basic or in "
            "the body.",
            headers=challenge,
            client_id=client_id or None,
        )
    return client_id, client_secret


def _scope(raw: str | None, client_id: str) -> tuple[str | None, tuple[str, ...]]:
    """The resource server (the token's audience) and the scope names a request asks for:
    `resourceServerIdentifier|scope` items, space-separated, all of one resource server."""
    if raw is None or not raw.strip():
        return None, ()
    audiences: set[str] = set()
    names: list[str] = []
    for item in raw.split():
        resource, bar, name = item.partition("|")
        if not bar or not resource or not name:
            raise _bad(
                400,
                "invalid_scope",
                "Each scope is resourceServerIdentifier|scope, e.g. api://example|read:file.",
                client_id,
            )
        audiences.add(resource)
        names.append(name)
    if len(audiences) > 1:
        raise _bad(
            400, "invalid_scope", "One request names the scopes of one resource server.", client_id
        )
    return audiences.pop(), tuple(dict.fromkeys(names))
