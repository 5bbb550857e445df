"""`Bearer <JWT>` authentication (shared/auth/jwt_bearer.py) against a real JWKS served over HTTP."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
from certs import self_signed
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from ports import full_port
from pytest_httpserver import HTTPServer
from thread_waits import event_wait_timeout, wait_until, waiting_on_events
from trickle import TrickleServer, http_answer
from werkzeug.wrappers import Request, Response

from shared.auth.header import Authenticator
from shared.auth.jwt_bearer import (
    MAX_WAITING_FOR_FETCH,
    IssuerConfig,
    JwtAuthenticator,
    parse_issuers,
)
from shared.auth.ram_proof import ProofPolicy, RamProofVerifier
from shared.errors import VendError
from shared.upstream.bounded import tls_context
from shared.upstream.deadline import Deadline

ISS = "https://idaas.example.com/api/v2/app_x/oidc"
PARTNER_ISS = "https://partner.example.org/oidc"
AUD = "secret-vending"
PARTNER_AUD = "vend-for-partner"
NOW = 1_800_000_000
INTERVAL = 60.0
DROP = object()  # a claim override that removes the claim


# --- keys ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Keys:
    rsa1: rsa.RSAPrivateKey
    rsa2: rsa.RSAPrivateKey
    rsa_stranger: rsa.RSAPrivateKey  # never published
    rsa_weak: rsa.RSAPrivateKey  # 1024 bits
    ec1: ec.EllipticCurvePrivateKey
    ec_p384: ec.EllipticCurvePrivateKey


@pytest.fixture(scope="module")
def keys() -> Keys:
    def new_rsa(bits: int = 2048) -> rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)

    return Keys(
        rsa1=new_rsa(),
        rsa2=new_rsa(),
        rsa_stranger=new_rsa(),
        rsa_weak=new_rsa(1024),
        ec1=ec.generate_private_key(ec.SECP256R1()),
        ec_p384=ec.generate_private_key(ec.SECP384R1()),
    )


def public_jwk(private: Any, kid: str | None, **extra: Any) -> dict[str, Any]:
    if isinstance(private, rsa.RSAPrivateKey):
        jwk = RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    else:
        jwk = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    if kid is not None:
        jwk["kid"] = kid
    jwk.update(extra)
    return jwk


def standard_jwks(k: Keys) -> list[dict[str, Any]]:
    return [public_jwk(k.rsa1, "rsa1", use="sig", alg="RS256"), public_jwk(k.ec1, "ec1")]


# --- a JWKS endpoint whose content and behaviour a test can change --------------------------------


@dataclass
class JwksServer:
    server: HTTPServer
    keys: list[Any]
    status: int = 200
    body: bytes | None = None  # served instead of the key set when set
    gate: threading.Event | None = None  # when set, the handler waits for it (a slow server)
    served: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # of the last request
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url_for("/jwks")

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.served += 1
            self.headers = dict(request.headers)
        if self.gate is not None:
            self.gate.wait(5)
        body = self.body if self.body is not None else json.dumps({"keys": self.keys}).encode()
        return Response(body, status=self.status, content_type="application/json")


@pytest.fixture
def jwks(httpserver: HTTPServer, keys: Keys) -> Iterator[JwksServer]:
    served = JwksServer(httpserver, standard_jwks(keys))
    httpserver.expect_request("/jwks").respond_with_handler(served.handle)
    yield served
    if served.gate is not None:
        served.gate.set()


class Clock:
    def __init__(self) -> None:
        self.now = float(NOW)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def issuer(url: str, **overrides: Any) -> IssuerConfig:
    return IssuerConfig(**{"name": "idaas", "issuer": ISS, "jwks_url": url, **overrides})


@pytest.fixture
def make_auth(jwks: JwksServer, clock: Clock) -> Callable[..., JwtAuthenticator]:
    def make(*configs: IssuerConfig, **kwargs: Any) -> JwtAuthenticator:
        kwargs.setdefault("clock", clock)
        kwargs.setdefault("http_timeout_s", 2.0)
        kwargs.setdefault("min_refetch_interval_s", INTERVAL)
        return JwtAuthenticator(configs or (issuer(jwks.url),), AUD, **kwargs)

    return make


@pytest.fixture
def auth(make_auth: Callable[..., JwtAuthenticator]) -> JwtAuthenticator:
    return make_auth()


# --- tokens -------------------------------------------------------------------------------------


def claims(**overrides: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "iss": ISS,
        "aud": AUD,
        "sub": "svc-1",
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 300,
    }
    for name, value in overrides.items():
        if value is DROP:
            payload.pop(name, None)
        else:
            payload[name] = value
    return payload


def sign(private: Any, alg: str = "RS256", kid: str | None = "rsa1", **overrides: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return jwt.encode(claims(**overrides), private, algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], payload: Any) -> str:
    """A token with the given parts and a signature nothing will verify."""
    return f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}.c2lnbmF0dXJl"


def hs256_with_public_pem(k: Keys) -> str:
    """The classic confusion attack: HMAC keyed with the RSA public key, which the verifier has."""
    pem = k.rsa1.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = (
        b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": "rsa1"}).encode())
        + "."
        + b64(json.dumps(claims()).encode())
    )
    signature = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def tampered(k: Keys) -> str:
    header, _, signature = sign(k.rsa1).split(".")
    return ".".join([header, b64(json.dumps(claims(sub="admin")).encode()), signature])


def refused(auth: JwtAuthenticator, token: str) -> VendError:
    with pytest.raises(VendError) as caught:
        auth.authenticate(token)
    error = caught.value
    assert error.status == 401
    assert error.code == "Unauthenticated"
    assert error.headers == {"WWW-Authenticate": "Bearer, RAM"}
    # Neither the token nor any of its parts is ever repeated back.
    for text in (error.message, str(error)):
        assert not token or token not in text
        for part in token.split("."):
            if len(part) >= 8:
                assert part not in text
    return error


# --- accepted -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_token", "caller"),
    [
        pytest.param(lambda k: sign(k.rsa1), "jwt:svc-1@idaas", id="rs256"),
        pytest.param(lambda k: sign(k.ec1, "ES256", "ec1"), "jwt:svc-1@idaas", id="es256"),
        pytest.param(lambda k: sign(k.rsa1, aud=["other", AUD]), "jwt:svc-1@idaas", id="aud-list"),
        pytest.param(lambda k: sign(k.rsa1, iat=NOW + 30), "jwt:svc-1@idaas", id="iat-30s-ahead"),
        pytest.param(lambda k: sign(k.rsa1, nbf=NOW + 30), "jwt:svc-1@idaas", id="nbf-30s-ahead"),
        pytest.param(lambda k: sign(k.rsa1, nbf=NOW + 60), "jwt:svc-1@idaas", id="nbf-60s-ahead"),
        # the service does not use jti, so it does not judge its form either
        pytest.param(lambda k: sign(k.rsa1, jti=42), "jwt:svc-1@idaas", id="jti-a-number"),
        pytest.param(
            lambda k: sign(k.rsa1, iat=DROP, nbf=DROP), "jwt:svc-1@idaas", id="no-iat-nbf"
        ),
        pytest.param(lambda k: sign(k.rsa1, exp=NOW + 1), "jwt:svc-1@idaas", id="exp-1s-ahead"),
        pytest.param(lambda k: sign(k.rsa1, sub="x"), "jwt:x@idaas", id="sub-1"),
        pytest.param(
            lambda k: sign(k.rsa1, sub="x" * 256), "jwt:" + "x" * 256 + "@idaas", id="sub-256"
        ),
        pytest.param(
            lambda k: sign(k.rsa1, sub="client|Ünïcode@x"),
            "jwt:client|Ünïcode@x@idaas",
            id="sub-printable",
        ),
        pytest.param(lambda k: sign(k.rsa1, kid=None), "jwt:svc-1@idaas", id="rs256-no-kid"),
        pytest.param(lambda k: sign(k.ec1, "ES256", None), "jwt:svc-1@idaas", id="es256-no-kid"),
    ],
)
def test_accepted(
    auth: JwtAuthenticator, keys: Keys, make_token: Callable[[Keys], str], caller: str
) -> None:
    result = auth.authenticate(make_token(keys))
    assert result.name == caller
    assert result.policy_principal.type == "JWT"
    assert result.policy_principal.id == caller.removeprefix("jwt:")


def test_keys_are_cached(auth: JwtAuthenticator, jwks: JwksServer, keys: Keys) -> None:
    for _ in range(5):
        auth.authenticate(sign(keys.rsa1))
        auth.authenticate(sign(keys.ec1, "ES256", "ec1"))
    assert jwks.served == 1


# --- refused ------------------------------------------------------------------------------------


SUBJECT_RULE = "subject (sub) must be 1 to 256 printable characters without whitespace"

REFUSALS = [
    # not a JWT at all
    pytest.param(lambda k: "", "malformed bearer token", id="empty"),
    pytest.param(lambda k: "not-a-jwt", "malformed bearer token", id="no-dots"),
    pytest.param(lambda k: "aaaaaaaa.bbbbbbbb.cccccccc", "malformed bearer token", id="junk"),
    pytest.param(
        lambda k: sign(k.rsa1) + "x" * 20000,
        "malformed bearer token: too long",
        id="huge",
    ),
    pytest.param(lambda k: "x" * 16 * 1024, "malformed bearer token", id="16-KiB"),
    pytest.param(
        lambda k: "eyJhbGciOiJSUzI1NiJ9.\ud800.c2ln",
        "malformed bearer token",
        id="lone-surrogate",
    ),
    pytest.param(lambda k: sign(k.rsa1) + "\u00e9", "malformed bearer token", id="not-ascii"),
    pytest.param(
        lambda k: unsigned({"alg": "RS256", "kid": 7}, claims()),
        "malformed bearer token",
        id="kid-not-string",
    ),
    pytest.param(
        lambda k: unsigned({"alg": "RS256"}, [1, 2]),
        "malformed bearer token",
        id="payload-not-object",
    ),
    # issuer
    pytest.param(lambda k: sign(k.rsa1, iss="https://evil.example"), "unknown issuer", id="iss"),
    pytest.param(lambda k: sign(k.rsa1, iss=ISS + "/"), "unknown issuer", id="iss-not-exact"),
    pytest.param(lambda k: sign(k.rsa1, iss=DROP), "unknown issuer", id="no-iss"),
    pytest.param(
        lambda k: unsigned({"alg": "RS256", "kid": "rsa1"}, claims(iss=[ISS])),
        "unknown issuer",
        id="iss-list",
    ),
    # algorithm
    pytest.param(
        lambda k: sign(k.rsa1, "RS512"),
        "algorithm RS512 not allowed for issuer idaas",
        id="rs512",
    ),
    pytest.param(
        lambda k: sign(k.rsa1, "PS256"), "algorithm PS256 not allowed for issuer idaas", id="ps256"
    ),
    pytest.param(
        lambda k: unsigned({"alg": "none", "kid": "rsa1"}, claims()).rsplit(".", 1)[0] + ".",
        "algorithm none not allowed for issuer idaas",
        id="alg-none",
    ),
    pytest.param(
        hs256_with_public_pem, "algorithm HS256 not allowed for issuer idaas", id="hs256-confusion"
    ),
    pytest.param(
        lambda k: unsigned({"alg": "<script>", "kid": "rsa1"}, claims()),
        "algorithm (unnamed) not allowed for issuer idaas",
        id="alg-garbage-not-echoed",
    ),
    # key choice: type confusion, unknown kid
    pytest.param(
        lambda k: sign(k.rsa1, "RS256", "ec1"),
        "the issuer's key with the token's kid cannot verify RS256: the key is EC P-256",
        id="rs256-with-ec-kid",
    ),
    pytest.param(
        lambda k: sign(k.ec1, "ES256", "rsa1"),
        "the issuer's key with the token's kid cannot verify ES256: the key is RSA",
        id="es256-with-rsa-kid",
    ),
    pytest.param(
        lambda k: sign(k.rsa1, kid="nobody"),
        "no key in the issuer's key set has the token's kid",
        id="unknown-kid",
    ),
    # signature
    pytest.param(
        lambda k: sign(k.rsa_stranger, kid="rsa1"), "signature does not verify", id="wrong-key"
    ),
    pytest.param(tampered, "signature does not verify", id="tampered-payload"),
    # audience
    pytest.param(lambda k: sign(k.rsa1, aud="someone-else"), "audience mismatch", id="aud"),
    pytest.param(lambda k: sign(k.rsa1, aud=["a", "b"]), "audience mismatch", id="aud-list"),
    pytest.param(lambda k: sign(k.rsa1, aud=DROP), "audience mismatch", id="no-aud"),
    pytest.param(lambda k: sign(k.rsa1, aud=PARTNER_AUD), "audience mismatch", id="aud-other-iss"),
    # time
    pytest.param(lambda k: sign(k.rsa1, exp=NOW - 1), "token expired", id="expired"),
    pytest.param(lambda k: sign(k.rsa1, exp=NOW), "token expired", id="exp-now-no-leeway"),
    pytest.param(lambda k: sign(k.rsa1, exp=DROP), "token has no expiry (exp)", id="no-exp"),
    pytest.param(
        lambda k: sign(k.rsa1, exp="never"), "token expiry (exp) is not a number", id="exp-string"
    ),
    pytest.param(
        lambda k: sign(k.rsa1, exp=True), "token expiry (exp) is not a number", id="exp-bool"
    ),
    pytest.param(
        lambda k: sign(k.rsa1, nbf=NOW + 120), "token not yet valid (nbf)", id="nbf-120s-ahead"
    ),
    pytest.param(
        lambda k: sign(k.rsa1, nbf=NOW + 61), "token not yet valid (nbf)", id="nbf-61s-ahead"
    ),
    pytest.param(
        lambda k: sign(k.rsa1, iat=NOW + 120),
        "token issued in the future (iat)",
        id="iat-120s-ahead",
    ),
    pytest.param(
        lambda k: sign(k.rsa1, iat="yesterday"), "token iat is not a number", id="iat-str"
    ),
    pytest.param(
        lambda k: sign(k.rsa1, nbf=DROP, iat=NOW + 120),
        "token issued in the future (iat)",
        id="iat-ahead-without-nbf",
    ),
    # subject
    pytest.param(lambda k: sign(k.rsa1, sub=DROP), "token has no subject (sub)", id="no-sub"),
    pytest.param(lambda k: sign(k.rsa1, sub=""), SUBJECT_RULE, id="sub-empty"),
    pytest.param(lambda k: sign(k.rsa1, sub="x" * 257), SUBJECT_RULE, id="sub-257"),
    pytest.param(lambda k: sign(k.rsa1, sub="a b"), SUBJECT_RULE, id="sub-space"),
    pytest.param(lambda k: sign(k.rsa1, sub="a\nb"), SUBJECT_RULE, id="sub-newline"),
    pytest.param(lambda k: sign(k.rsa1, sub="a\u3000b"), SUBJECT_RULE, id="sub-wide"),
    pytest.param(lambda k: sign(k.rsa1, sub="a\x00b"), SUBJECT_RULE, id="sub-nul"),
    pytest.param(lambda k: sign(k.rsa1, sub=42), SUBJECT_RULE, id="sub-number"),
]


@pytest.mark.parametrize(("make_token", "message"), REFUSALS)
def test_refused(
    auth: JwtAuthenticator, keys: Keys, make_token: Callable[[Keys], str], message: str
) -> None:
    error = refused(auth, make_token(keys))
    assert error.message == message


def test_algorithms_are_pinned_per_issuer(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys
) -> None:
    auth = make_auth(issuer(jwks.url, algorithms=["RS256"]))
    assert auth.authenticate(sign(keys.rsa1)).name == "jwt:svc-1@idaas"
    error = refused(auth, sign(keys.ec1, "ES256", "ec1"))
    assert error.message == "algorithm ES256 not allowed for issuer idaas"


def test_hs256_refused_even_if_configured_behind_validation(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys
) -> None:
    # model_construct skips validation: the authenticator itself still never accepts HS*.
    sneaky = IssuerConfig.model_construct(
        name="idaas", issuer=ISS, jwks_url=jwks.url, audience=None, algorithms=("HS256", "RS256")
    )
    auth = make_auth(sneaky)
    error = refused(auth, hs256_with_public_pem(keys))
    assert error.message == "algorithm HS256 not allowed for issuer idaas"


def test_issuer_specific_audience(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys
) -> None:
    auth = make_auth(
        issuer(jwks.url),
        issuer(jwks.url, name="partner", issuer=PARTNER_ISS, audience=PARTNER_AUD),
    )
    partner = auth.authenticate(sign(keys.rsa1, iss=PARTNER_ISS, aud=PARTNER_AUD))
    assert partner.name == "jwt:svc-1@partner"
    assert "audience mismatch" in refused(auth, sign(keys.rsa1, iss=PARTNER_ISS)).message
    # the service audience still applies to the issuer without its own
    assert auth.authenticate(sign(keys.rsa1)).name == "jwt:svc-1@idaas"
    assert "audience mismatch" in refused(auth, sign(keys.rsa1, aud=PARTNER_AUD)).message


# --- what the JWKS holds ------------------------------------------------------------------------

# The start of a refusal by the key with the token's kid; the key's own problem follows.
K_RS = "the issuer's key with the token's kid cannot verify RS256: "
K_ES = "the issuer's key with the token's kid cannot verify ES256: "


@pytest.mark.parametrize(
    ("published", "make_token", "message"),
    [
        pytest.param(
            lambda k: [public_jwk(k.rsa1, "rsa1", alg="PS256")],
            lambda k: sign(k.rsa1),
            K_RS + "the key is for PS256",
            id="jwk-alg-differs-from-token-alg",
        ),
        pytest.param(
            lambda k: [public_jwk(k.rsa1, "rsa1", alg="<script>")],
            lambda k: sign(k.rsa1),
            K_RS + "the key is for another algorithm",
            id="jwk-alg-unknown-not-echoed",
        ),
        pytest.param(
            lambda k: [{"kty": "RSA", "kid": "rsa1", "n": "AA", "e": ""}],
            lambda k: sign(k.rsa1),
            K_RS + "the key cannot be loaded",
            id="jwk-unloadable",
        ),
        pytest.param(
            lambda k: [public_jwk(k.ec_p384, "ec1")],
            lambda k: sign(k.ec1, "ES256", "ec1"),
            K_ES + "the key is EC P-384, which is neither RSA nor EC P-256",
            id="ec-wrong-curve",
        ),
        pytest.param(
            lambda k: [public_jwk(k.ec1, "ec1", alg="ES384")],
            lambda k: sign(k.ec1, "ES256", "ec1"),
            K_ES + "the key is for ES384",
            id="ec-jwk-alg-mismatch",
        ),
        pytest.param(
            lambda k: [public_jwk(k.rsa1, "rsa1", use="enc")],
            lambda k: sign(k.rsa1),
            K_RS + "the key is not a signing key",
            id="encryption-key",
        ),
        pytest.param(
            lambda k: [RSAAlgorithm.to_jwk(k.rsa1, as_dict=True) | {"kid": "rsa1"}],
            lambda k: sign(k.rsa1),
            K_RS + "the key set publishes a private key",
            id="private-key-published",
        ),
        pytest.param(
            lambda k: [public_jwk(k.rsa_weak, "rsa1")],
            lambda k: sign(k.rsa_weak),
            K_RS + "the RSA key is shorter than 2048 bits",
            id="weak-rsa-key",
            marks=pytest.mark.filterwarnings("ignore::jwt.InsecureKeyLengthWarning"),
        ),
        pytest.param(
            lambda k: [public_jwk(k.rsa1, "rsa1"), public_jwk(k.rsa2, "rsa1")],
            lambda k: sign(k.rsa1),
            "the issuer's key set has more than one RS256 key with the token's kid",
            id="duplicate-kid",
        ),
        pytest.param(
            lambda k: [public_jwk(k.rsa1, "rsa1"), public_jwk(k.rsa2, "rsa2")],
            lambda k: sign(k.rsa1, kid=None),
            "the token has no kid and the issuer's key set has more than one RS256 key",
            id="no-kid-two-rsa-keys",
        ),
        pytest.param(
            lambda k: [public_jwk(k.rsa1, "rsa1")],
            lambda k: sign(k.ec1, "ES256", None),
            "the issuer's key set has no ES256 key",
            id="no-kid-no-key-of-that-type",
        ),
        *(
            pytest.param(
                lambda k, jwk=jwk: [jwk],
                lambda k: sign(k.rsa1),
                K_RS + f"the key is {kind}, which is neither RSA nor EC P-256",
                id=f"kind-{kind}",
            )
            for jwk, kind in [
                ({"kty": "oct", "kid": "rsa1", "k": "c2VjcmV0"}, "oct"),
                ({"kty": "OKP", "kid": "rsa1", "crv": "Ed25519", "x": "AAAA"}, "OKP"),
                ({"kty": "EC", "kid": "rsa1", "crv": "P-521"}, "EC P-521"),
                ({"kty": "EC", "kid": "rsa1", "crv": "secp256k1"}, "EC secp256k1"),
                ({"kty": "EC", "kid": "rsa1", "crv": "P-999"}, "EC"),
                ({"kty": "XYZ", "kid": "rsa1"}, "unknown type"),
            ]
        ),
        pytest.param(
            lambda k: [public_jwk(k.rsa1, "k"), {"kty": "oct", "kid": "k", "k": "c2VjcmV0"}],
            lambda k: sign(k.ec1, "ES256", "k"),
            K_ES + "the key is oct, which is neither RSA nor EC P-256",
            id="kid-shared-by-a-usable-and-an-unusable-key",
        ),
    ],
)
def test_refused_by_key_set(
    auth: JwtAuthenticator,
    jwks: JwksServer,
    keys: Keys,
    published: Callable[[Keys], list[dict[str, Any]]],
    make_token: Callable[[Keys], str],
    message: str,
) -> None:
    jwks.keys = published(keys)
    error = refused(auth, make_token(keys))
    assert error.message == message


def test_ec_and_rsa_keys_may_share_a_kid(
    auth: JwtAuthenticator, jwks: JwksServer, keys: Keys
) -> None:
    jwks.keys = [public_jwk(keys.rsa1, "k"), public_jwk(keys.ec1, "k")]
    assert auth.authenticate(sign(keys.rsa1, kid="k")).name == "jwt:svc-1@idaas"
    assert auth.authenticate(sign(keys.ec1, "ES256", "k")).name == "jwt:svc-1@idaas"


def test_a_key_whose_kid_is_not_a_string_serves_tokens_without_kid(
    auth: JwtAuthenticator, jwks: JwksServer, keys: Keys
) -> None:
    jwks.keys = [public_jwk(keys.rsa1, None) | {"kid": ["rsa1"]}]
    assert auth.authenticate(sign(keys.rsa1, kid=None)).name == "jwt:svc-1@idaas"


def test_unusable_keys_do_not_spoil_the_set(
    auth: JwtAuthenticator, jwks: JwksServer, keys: Keys
) -> None:
    jwks.keys = [
        {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        "not an object",
        public_jwk(keys.rsa1, "rsa1"),
    ]
    assert auth.authenticate(sign(keys.rsa1)).name == "jwt:svc-1@idaas"
    assert "neither RSA nor EC P-256" in refused(auth, sign(keys.rsa1, kid="hmac")).message
    assert "cannot be loaded" in refused(auth, sign(keys.rsa1, kid="broken")).message


# --- refetching ---------------------------------------------------------------------------------


def test_rotation_unknown_kid_refetches_once_and_succeeds(
    auth: JwtAuthenticator, jwks: JwksServer, keys: Keys, clock: Clock
) -> None:
    assert auth.authenticate(sign(keys.rsa1)).name == "jwt:svc-1@idaas"
    assert jwks.served == 1
    jwks.keys = [*jwks.keys, public_jwk(keys.rsa2, "rsa2")]
    clock.advance(INTERVAL)
    assert auth.authenticate(sign(keys.rsa2, kid="rsa2")).name == "jwt:svc-1@idaas"
    assert jwks.served == 2
    assert auth.authenticate(sign(keys.rsa2, kid="rsa2")).name == "jwt:svc-1@idaas"
    assert jwks.served == 2


def test_first_sight_of_a_rotated_key_fetches_the_set(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys
) -> None:
    jwks.keys = [public_jwk(keys.rsa2, "rsa2")]
    auth = make_auth()
    assert auth.authenticate(sign(keys.rsa2, kid="rsa2")).name == "jwt:svc-1@idaas"
    assert jwks.served == 1


def test_unknown_kid_within_interval_is_not_refetched(
    auth: JwtAuthenticator, jwks: JwksServer, keys: Keys, clock: Clock
) -> None:
    auth.authenticate(sign(keys.rsa1))
    jwks.keys = [*jwks.keys, public_jwk(keys.rsa2, "rsa2")]
    clock.advance(INTERVAL - 1)
    error = refused(auth, sign(keys.rsa2, kid="rsa2"))
    assert error.message == "no key in the issuer's key set has the token's kid"
    assert jwks.served == 1
    clock.advance(1)
    assert auth.authenticate(sign(keys.rsa2, kid="rsa2")).name == "jwt:svc-1@idaas"
    assert jwks.served == 2


def test_refetch_rate_limit_under_a_flood_of_random_kids(
    auth: JwtAuthenticator, jwks: JwksServer, keys: Keys, clock: Clock
) -> None:
    auth.authenticate(sign(keys.rsa1))
    assert jwks.served == 1
    clock.advance(INTERVAL + 1)
    for i in range(10):
        refused(auth, sign(keys.rsa_stranger, kid=f"random-{i}"))
        clock.advance(1)
    assert jwks.served == 2
    clock.advance(INTERVAL)
    for i in range(10):
        refused(auth, sign(keys.rsa_stranger, kid=f"again-{i}"))
    assert jwks.served == 3
    # known keys keep working from the cache throughout
    assert auth.authenticate(sign(keys.rsa1)).name == "jwt:svc-1@idaas"
    assert jwks.served == 3


def test_rate_limit_is_per_issuer(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys
) -> None:
    auth = make_auth(
        issuer(jwks.url), issuer(jwks.url, name="partner", issuer=PARTNER_ISS, audience=AUD)
    )
    auth.authenticate(sign(keys.rsa1))
    auth.authenticate(sign(keys.rsa1, iss=PARTNER_ISS))
    assert jwks.served == 2


def _in_threads(count: int, call: Callable[[], str]) -> tuple[list[threading.Thread], list[str]]:
    """`count` threads started at once, each appending what `call` returns (or the message of
    the VendError it raises) to the list."""
    start = threading.Barrier(count)
    results: list[str] = []

    def run() -> None:
        start.wait()
        try:
            results.append(call())
        except VendError as error:
            results.append(error.message)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def test_concurrent_first_calls_fetch_once(
    auth: JwtAuthenticator, jwks: JwksServer, keys: Keys
) -> None:
    token = sign(keys.rsa1)
    jwks.gate = threading.Event()  # hold the first fetch until every thread is waiting
    threads, results = _in_threads(1 + MAX_WAITING_FOR_FETCH, lambda: auth.authenticate(token).name)
    wait_until(
        lambda: jwks.served == 1 and waiting_on_events(threads) == MAX_WAITING_FOR_FETCH,
        "the others wait for the first one's fetch",
    )
    jwks.gate.set()
    for thread in threads:
        thread.join(5)
    assert results == ["jwt:svc-1@idaas"] * (1 + MAX_WAITING_FOR_FETCH)
    assert jwks.served == 1


def test_a_slow_fetch_holds_only_a_few_threads(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys
) -> None:
    """While the first fetch hangs, the tokens that need it beyond MAX_WAITING_FOR_FETCH are
    refused at once, not queued behind it: a slow JWKS cannot take every thread of the
    server. Those that waited get their answer when the fetch comes."""
    auth = make_auth(http_timeout_s=5.0)
    token = sign(keys.rsa1)
    jwks.gate = threading.Event()
    threads, results = _in_threads(1 + MAX_WAITING_FOR_FETCH, lambda: auth.authenticate(token).name)
    wait_until(
        lambda: jwks.served == 1 and waiting_on_events(threads) == MAX_WAITING_FOR_FETCH,
        "they reach the fetch and wait for it",
    )
    started = time.monotonic()
    error = refused(auth, token)
    assert time.monotonic() - started < 1.0  # not the 5 s of the fetch
    assert error.message == "could not fetch the issuer's keys (issuer idaas)"
    assert results == []  # the others still wait
    jwks.gate.set()
    for thread in threads:
        thread.join(5)
    assert results == ["jwt:svc-1@idaas"] * (1 + MAX_WAITING_FOR_FETCH)
    assert auth.authenticate(token).name == "jwt:svc-1@idaas"
    assert jwks.served == 1


CANNOT_FETCH = "could not fetch the issuer's keys (issuer idaas)"


def test_a_token_waits_for_the_fetch_in_flight_until_its_end_or_its_deadline(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys
) -> None:
    """A token that needs the keys a fetch in flight is getting waits for it until the fetch's
    own end and 50 ms more (for it to hand over what it got), or until the request's deadline
    when that comes first; every one of them gets the keys when they come."""
    monotonic = Clock()
    auth = make_auth(http_timeout_s=30.0, monotonic=monotonic)
    token = sign(keys.rsa1)
    jwks.gate = threading.Event()
    threads, results = _in_threads(1, lambda: auth.authenticate(token).name)
    answers = [results]
    wait_until(lambda: jwks.served == 1, "the first token's fetch is in flight")

    def waits(deadline_s: float | None) -> float | None:
        deadline = None if deadline_s is None else Deadline(deadline_s, monotonic)
        (thread,), answer = _in_threads(1, lambda: auth.authenticate(token, deadline).name)
        threads.append(thread)
        answers.append(answer)
        wait_until(lambda: waiting_on_events([thread]) == 1, "the token waits for the fetch")
        return event_wait_timeout(thread)

    assert waits(None) == pytest.approx(30.05)
    assert waits(10.0) == pytest.approx(10.0)
    assert waits(40.0) == pytest.approx(30.05)
    monotonic.advance(20.0)
    assert waits(None) == pytest.approx(10.05)
    jwks.gate.set()
    for thread in threads:
        thread.join(5)
    assert [a for answer in answers for a in answer] == ["jwt:svc-1@idaas"] * 5
    assert jwks.served == 1


def test_a_token_does_not_wait_for_a_fetch_past_its_end(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys
) -> None:
    """A fetch still in flight after its end (and the 50 ms to hand over) holds up no token
    that comes then: it is refused at once, even if the fetch brings the keys a moment later."""
    monotonic = Clock()
    auth = make_auth(http_timeout_s=30.0, monotonic=monotonic)
    token = sign(keys.rsa1)
    jwks.gate = threading.Event()
    (first,), firsts = _in_threads(1, lambda: auth.authenticate(token).name)
    wait_until(lambda: jwks.served == 1, "the first token's fetch is in flight")
    monotonic.advance(31.0)
    (late,), lates = _in_threads(1, lambda: auth.authenticate(token).name)
    wait_until(lambda: bool(lates) or waiting_on_events([late]) == 1, "the late token's answer")
    jwks.gate.set()  # the keys come now: a token still waiting would be served them
    for thread in (first, late):
        thread.join(5)
    assert lates == [CANNOT_FETCH]
    assert firsts == ["jwt:svc-1@idaas"]


def test_a_token_that_waited_for_a_refetch_that_failed_is_told_so(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys, clock: Clock
) -> None:
    """Two tokens with a kid the cached set lacks: one refetches the set, the other waits for
    that; the JWKS fails, and both are told the keys could not be fetched (not that the set
    lacks their kid: it is the old set they would be judged by)."""
    auth = make_auth()
    auth.authenticate(sign(keys.rsa1))
    clock.advance(INTERVAL)
    jwks.gate = threading.Event()
    jwks.status = 503
    token = sign(keys.rsa2, kid="rsa2")
    threads, results = _in_threads(1, lambda: auth.authenticate(token).name)
    wait_until(lambda: jwks.served == 2, "the refetch is in flight")
    waiters, waited = _in_threads(1, lambda: auth.authenticate(token).name)
    wait_until(lambda: waiting_on_events(waiters) == 1, "the second token waits for it")
    jwks.gate.set()
    for thread in threads + waiters:
        thread.join(5)
    assert results == waited == [CANNOT_FETCH]
    assert jwks.served == 2


def test_a_token_that_gives_up_waiting_makes_room_for_another(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys
) -> None:
    """The limit of 4 tokens waiting for a fetch counts those waiting now: one whose deadline
    ended its wait leaves room for one more, and no more than one."""
    monotonic = Clock()
    auth = make_auth(http_timeout_s=30.0, monotonic=monotonic)
    token = sign(keys.rsa1)
    jwks.gate = threading.Event()
    threads, results = _in_threads(4, lambda: auth.authenticate(token).name)
    wait_until(
        lambda: jwks.served == 1 and waiting_on_events(threads) == 3,
        "one token fetches, three wait for it",
    )
    with pytest.raises(VendError) as gave_up:  # the fourth waits 0.2 s and gives up
        auth.authenticate(token, Deadline(0.2, monotonic))
    assert gave_up.value.message == CANNOT_FETCH
    (again,), agains = _in_threads(1, lambda: auth.authenticate(token).name)
    threads.append(again)
    wait_until(lambda: waiting_on_events(threads) == 4, "another token takes its place")
    assert refused(auth, token).message == CANNOT_FETCH  # a fifth is refused at once
    jwks.gate.set()
    for thread in threads:
        thread.join(5)
    assert results + agains == ["jwt:svc-1@idaas"] * 5
    assert jwks.served == 1


@pytest.fixture
def partner_server() -> Iterator[HTTPServer]:
    """A second JWKS host, so that one hanging does not hold up the other's answers."""
    server = HTTPServer()
    server.start()
    yield server
    server.clear()
    server.stop()


def test_a_refresh_in_flight_holds_up_no_token_the_cached_set_can_verify(
    make_auth: Callable[..., JwtAuthenticator],
    partner_server: HTTPServer,
    jwks: JwksServer,
    keys: Keys,
    clock: Clock,
) -> None:
    """A stale set is being refreshed and its JWKS hangs: a token whose key the stale set has is
    served from it at once, and another issuer's first token does not wait either."""
    partner_server.expect_request("/jwks").respond_with_json(
        {"keys": [public_jwk(keys.ec1, "ec1")]}
    )
    auth = make_auth(
        issuer(jwks.url),
        issuer(partner_server.url_for("/jwks"), name="partner", issuer=PARTNER_ISS, audience=AUD),
        max_key_age_s=600,
        http_timeout_s=5.0,
    )
    assert auth.authenticate(sign(keys.rsa1, exp=NOW + 3600)).name == "jwt:svc-1@idaas"
    clock.advance(600)
    jwks.gate = threading.Event()
    threads, results = _in_threads(
        1, lambda: auth.authenticate(sign(keys.rsa1, exp=NOW + 3600)).name
    )
    wait_until(lambda: jwks.served == 2, "the refresh is in flight, and hangs")
    started = time.monotonic()
    assert auth.authenticate(sign(keys.rsa1, sub="svc-2", exp=NOW + 3600)).name == (
        "jwt:svc-2@idaas"
    )
    partner_token = sign(keys.ec1, "ES256", "ec1", iss=PARTNER_ISS, exp=NOW + 3600)
    assert auth.authenticate(partner_token).name == "jwt:svc-1@partner"
    assert time.monotonic() - started < 1.0  # not the 5 s of the refresh
    assert results == []
    jwks.gate.set()
    threads[0].join(5)
    assert results == ["jwt:svc-1@idaas"]


def test_a_trickling_jwks_is_given_up_when_the_fetch_time_is_up(
    make_auth: Callable[..., JwtAuthenticator], keys: Keys
) -> None:
    """A JWKS that answers a byte every 0.3 s (each byte well within any read timeout) is given
    up after http_timeout_s in all; the token is refused, and not hung."""
    body = json.dumps({"keys": standard_jwks(keys)}).encode()
    with TrickleServer(http_answer(body), every_s=0.3, for_s=4.0) as server:
        auth = make_auth(issuer(server.url()), http_timeout_s=1.0)
        started = time.monotonic()
        error = refused(auth, sign(keys.rsa1))
        assert time.monotonic() - started < 2.5
        assert error.message == "could not fetch the issuer's keys (issuer idaas)"
        assert server.requests == 1


def test_the_request_deadline_bounds_the_fetch(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys
) -> None:
    jwks.gate = threading.Event()
    auth = make_auth(http_timeout_s=5.0)
    started = time.monotonic()
    with pytest.raises(VendError) as info:
        auth.authenticate(sign(keys.rsa1), Deadline(0.3))
    assert time.monotonic() - started < 2.0  # not the 5 s of the fetch
    assert info.value.message == "could not fetch the issuer's keys (issuer idaas)"


def test_the_request_deadline_reaches_the_bearer_check(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys
) -> None:
    """Through the Authorization header too: with 10 ms left to the request, no fetch of the
    keys is started (one needs 50 ms at least)."""
    ram = RamProofVerifier(ProofPolicy(AUD, frozenset({("https", "sts.aliyuncs.com")})))
    auth = Authenticator(ram, jwt=make_auth())
    with pytest.raises(VendError) as info:
        auth.authenticate("Bearer " + sign(keys.rsa1), Deadline(0.01))
    assert info.value.message == CANNOT_FETCH
    assert jwks.served == 0


def test_stale_key_set_is_refreshed_and_removed_keys_stop_working(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys, clock: Clock
) -> None:
    auth = make_auth(max_key_age_s=600)
    auth.authenticate(sign(keys.rsa1))
    clock.advance(599)
    auth.authenticate(sign(keys.rsa1, exp=NOW + 3600))
    assert jwks.served == 1
    jwks.keys = [public_jwk(keys.ec1, "ec1")]  # rsa1 revoked
    clock.advance(1)
    error = refused(auth, sign(keys.rsa1, exp=NOW + 3600))
    assert error.message == "no key in the issuer's key set has the token's kid"
    assert jwks.served == 2


def test_stale_key_set_survives_a_failed_refresh(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys, clock: Clock
) -> None:
    auth = make_auth(max_key_age_s=600)
    auth.authenticate(sign(keys.rsa1))
    jwks.status = 503
    clock.advance(600)
    assert auth.authenticate(sign(keys.rsa1, exp=NOW + 3600)).name == "jwt:svc-1@idaas"
    assert jwks.served == 2
    clock.advance(10)  # no new attempt within the interval
    assert auth.authenticate(sign(keys.rsa1, exp=NOW + 3600)).name == "jwt:svc-1@idaas"
    assert jwks.served == 2


# --- fetch failures -----------------------------------------------------------------------------


def break_with_status(jwks: JwksServer) -> None:
    jwks.status = 500


def break_with_garbage(jwks: JwksServer) -> None:
    jwks.body = b"<html>not json</html>"


def break_with_non_jwks(jwks: JwksServer) -> None:
    jwks.body = b'{"issuer": "x"}'


def break_with_empty_key_list(jwks: JwksServer) -> None:
    jwks.body = b'{"keys": []}'


@pytest.mark.parametrize(
    "breakage",
    [break_with_status, break_with_garbage, break_with_non_jwks, break_with_empty_key_list],
    ids=["http-500", "garbage", "not-a-jwks", "no-keys"],
)
def test_fetch_failure_then_recovery_after_interval(
    auth: JwtAuthenticator,
    jwks: JwksServer,
    keys: Keys,
    clock: Clock,
    breakage: Callable[[JwksServer], None],
) -> None:
    breakage(jwks)
    error = refused(auth, sign(keys.rsa1))
    if breakage is break_with_empty_key_list:
        assert error.message == "no key in the issuer's key set has the token's kid"
    else:
        assert error.message == "could not fetch the issuer's keys (issuer idaas)"
    assert jwks.served == 1
    jwks.status, jwks.body = 200, None
    # A key set was fetched (an empty one): the minute's limit holds. No keys were ever had:
    # every token fails, so the endpoint is tried again a second later, not a minute.
    wait = INTERVAL if breakage is break_with_empty_key_list else 1.0
    clock.advance(wait - 0.5)
    refused(auth, sign(keys.rsa1))
    assert jwks.served == 1  # no hammering of a failing endpoint
    clock.advance(0.5)
    assert auth.authenticate(sign(keys.rsa1)).name == "jwt:svc-1@idaas"
    assert jwks.served == 2


def test_a_failed_fetch_is_logged_with_the_issuer_its_url_and_why(
    auth: JwtAuthenticator, jwks: JwksServer, keys: Keys, caplog: pytest.LogCaptureFixture
) -> None:
    jwks.status = 503
    with caplog.at_level(logging.WARNING, logger="vend.jwks"):
        refused(auth, sign(keys.rsa1))
    (record,) = [r for r in caplog.records if r.name == "vend.jwks"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        f"could not fetch the JWKS of issuer idaas from {jwks.url}: "
        "HTTPError: HTTP Error 503: SERVICE UNAVAILABLE"
    )


def test_a_token_with_just_the_least_time_for_a_fetch_starts_one(
    make_auth: Callable[..., JwtAuthenticator], keys: Keys
) -> None:
    """A fetch is started with 50 ms left to the request, and not with less (see the readiness
    probe's test below): the JWKS host, which never answers, sees the connection."""
    monotonic = Clock()
    monotonic.now = 0.0  # 0.05 s after it is exactly 0.05
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        auth = make_auth(issuer(f"http://127.0.0.1:{port}/jwks"), monotonic=monotonic)
        with pytest.raises(VendError) as info:
            auth.authenticate(sign(keys.rsa1), Deadline(0.05, monotonic))
        assert info.value.message == CANNOT_FETCH
        silent.settimeout(5)
        connection, _ = silent.accept()
        connection.close()


def test_the_jwks_is_asked_for_as_json_by_the_service(
    auth: JwtAuthenticator, jwks: JwksServer, keys: Keys
) -> None:
    auth.authenticate(sign(keys.rsa1))
    assert jwks.headers["Accept"] == "application/json"
    assert jwks.headers["User-Agent"] == "secret-vending"


def _jwks_of_size(keys: Keys, size: int) -> bytes:
    """The standard key set as JSON, padded with spaces to `size` bytes."""
    body = json.dumps({"keys": standard_jwks(keys)}).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def test_a_jwks_of_one_mib_is_read_and_one_byte_more_is_refused(
    make_auth: Callable[..., JwtAuthenticator], httpserver: HTTPServer, keys: Keys
) -> None:
    mib = 1024 * 1024
    httpserver.expect_request("/whole").respond_with_data(_jwks_of_size(keys, mib))
    httpserver.expect_request("/over").respond_with_data(_jwks_of_size(keys, mib + 1))
    whole = make_auth(issuer(httpserver.url_for("/whole")))
    assert whole.authenticate(sign(keys.rsa1)).name == "jwt:svc-1@idaas"
    over = make_auth(issuer(httpserver.url_for("/over")))
    assert over.refresh() == {
        "idaas": "could not fetch the JWKS: response larger than 1048576 bytes"
    }


def test_an_endless_jwks_is_given_up_at_one_mib(
    make_auth: Callable[..., JwtAuthenticator], httpserver: HTTPServer
) -> None:
    """An answer without a length that goes on and on is refused once it passes 1 MiB, not
    read until the fetch's time is up."""
    stop = threading.Event()

    def endless() -> Iterator[bytes]:
        yield b'{"keys": ['
        for _ in range(32):  # 2 MiB, then it hangs (until the test ends)
            yield b" " * 65536
        stop.wait(10)

    httpserver.expect_request("/endless").respond_with_handler(
        lambda request: Response(endless(), content_type="application/json")
    )
    auth = make_auth(issuer(httpserver.url_for("/endless")), http_timeout_s=5.0)
    try:
        assert auth.refresh() == {
            "idaas": "could not fetch the JWKS: response larger than 1048576 bytes"
        }
    finally:
        stop.set()


def test_the_defaults_one_fetch_a_minute_keys_kept_an_hour_and_3_s_a_fetch(
    jwks: JwksServer, keys: Keys, clock: Clock
) -> None:
    """What the service runs with (composition_root passes none of them): an unknown kid
    refetches the set at most once a minute, a set serves for an hour, and a fetch takes 3 s
    at most (a token waiting for it waits that and the 50 ms to hand over)."""
    auth = JwtAuthenticator((issuer(jwks.url),), AUD, clock=clock)
    assert auth.authenticate(sign(keys.rsa1)).name == "jwt:svc-1@idaas"
    jwks.keys = [*jwks.keys, public_jwk(keys.rsa2, "rsa2")]
    clock.advance(59.5)
    refused(auth, sign(keys.rsa2, kid="rsa2"))
    assert jwks.served == 1
    clock.advance(0.5)
    assert auth.authenticate(sign(keys.rsa2, kid="rsa2")).name == "jwt:svc-1@idaas"
    assert jwks.served == 2
    clock.advance(3599)
    assert auth.authenticate(sign(keys.rsa1, exp=NOW + 7200)).name == "jwt:svc-1@idaas"
    assert jwks.served == 2
    clock.advance(1)
    assert auth.authenticate(sign(keys.rsa1, exp=NOW + 7200)).name == "jwt:svc-1@idaas"
    assert jwks.served == 3

    monotonic = Clock()
    waiting = JwtAuthenticator((issuer(jwks.url),), AUD, clock=clock, monotonic=monotonic)
    jwks.gate = threading.Event()
    token = sign(keys.rsa1, exp=NOW + 7200)
    threads, _ = _in_threads(1, lambda: waiting.authenticate(token).name)
    wait_until(lambda: jwks.served == 4, "the fetch is in flight")
    (waiter,), _ = _in_threads(1, lambda: waiting.authenticate(token).name)
    wait_until(lambda: waiting_on_events([waiter]) == 1, "a token waits for it")
    assert event_wait_timeout(waiter) == pytest.approx(3.05)
    jwks.gate.set()
    for thread in [*threads, waiter]:
        thread.join(5)


def test_connection_refused(make_auth: Callable[..., JwtAuthenticator], keys: Keys) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    auth = make_auth(issuer(f"http://127.0.0.1:{port}/jwks"))
    error = refused(auth, sign(keys.rsa1))
    assert error.message == "could not fetch the issuer's keys (issuer idaas)"


def test_fetch_timeout(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys, clock: Clock
) -> None:
    jwks.gate = threading.Event()
    auth = make_auth(http_timeout_s=0.3)
    started = time.monotonic()
    error = refused(auth, sign(keys.rsa1))
    assert time.monotonic() - started < 2
    assert error.message == "could not fetch the issuer's keys (issuer idaas)"
    jwks.gate.set()
    clock.advance(INTERVAL)
    assert auth.authenticate(sign(keys.rsa1)).name == "jwt:svc-1@idaas"


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for localhost and its key (tests/certs.py): trusted by nothing, unless a
    test makes a TLS context with it as the CA."""
    return self_signed(tmp_path)


@pytest.fixture
def https_jwks(certificate: tuple[Path, Path], keys: Keys) -> Iterator[HTTPServer]:
    """The standard key set over https, with `certificate`."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server = HTTPServer(ssl_context=context)
    server.expect_request("/jwks").respond_with_json({"keys": standard_jwks(keys)})
    server.start()
    yield server
    server.clear()
    server.stop()


def test_a_jwks_over_https_whose_certificate_is_not_trusted_is_not_used(
    make_auth: Callable[..., JwtAuthenticator], https_jwks: HTTPServer, keys: Keys
) -> None:
    auth = make_auth(issuer(https_jwks.url_for("/jwks")))
    detail = auth.refresh()["idaas"]
    assert detail is not None
    assert detail.startswith("could not fetch the JWKS: URLError: ")
    assert "CERTIFICATE_VERIFY_FAILED" in detail
    error = refused(auth, sign(keys.rsa1))
    assert error.message == CANNOT_FETCH


def test_a_jwks_over_https_whose_certificate_is_trusted_serves_tokens(
    make_auth: Callable[..., JwtAuthenticator],
    https_jwks: HTTPServer,
    certificate: tuple[Path, Path],
    keys: Keys,
) -> None:
    tls = tls_context(cafile=str(certificate[0]))
    auth = make_auth(issuer(https_jwks.url_for("/jwks")), tls=tls)
    assert auth.authenticate(sign(keys.rsa1)).name == "jwt:svc-1@idaas"
    assert auth.refresh() == {"idaas": None}


def test_a_jwks_trickling_over_https_is_given_up_when_the_fetch_time_is_up(
    make_auth: Callable[..., JwtAuthenticator], certificate: tuple[Path, Path], keys: Keys
) -> None:
    """As over http: an answer that comes a byte every 50 ms (whole after about 4 s, each byte
    well within any read timeout) is given up when the fetch's 1 s is up."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    answer = http_answer(b'{"keys": []}')
    with TrickleServer(answer, every_s=0.05, for_s=20.0, tls=context) as server:
        auth = make_auth(
            issuer(f"https://localhost:{server.port}/jwks"),
            http_timeout_s=1.0,
            tls=tls_context(cafile=str(certificate[0])),
        )
        assert refused(auth, sign(keys.rsa1)).message == CANNOT_FETCH
        assert server.requests == 1


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_jwks_host_that_takes_no_connection_is_given_up_when_the_fetch_time_is_up(
    make_auth: Callable[..., JwtAuthenticator], keys: Keys, scheme: str
) -> None:
    """Connecting keeps to the fetch's time too: a host whose queue of connections is full (the
    kernel drops each attempt) does not hold the token for the minutes the kernel would try."""
    with full_port() as port:
        auth = make_auth(issuer(f"{scheme}://127.0.0.1:{port}/jwks"), http_timeout_s=0.5)
        (thread,), answers = _in_threads(1, lambda: auth.authenticate(sign(keys.rsa1)).name)
        thread.join(10)
        assert answers == [CANNOT_FETCH]


def test_redirects_are_not_followed(
    make_auth: Callable[..., JwtAuthenticator], httpserver: HTTPServer, jwks: JwksServer, keys: Keys
) -> None:
    httpserver.expect_request("/moved").respond_with_data(
        "", status=302, headers={"Location": jwks.url}
    )
    auth = make_auth(issuer(httpserver.url_for("/moved")))
    error = refused(auth, sign(keys.rsa1))
    assert error.message == "could not fetch the issuer's keys (issuer idaas)"
    assert jwks.served == 0


# --- refresh (vend doctor) ----------------------------------------------------------------------


def test_refresh_fetches_every_issuer_and_says_which_cannot_verify_a_token(
    make_auth: Callable[..., JwtAuthenticator], httpserver: HTTPServer, keys: Keys
) -> None:
    sets: dict[str, list[dict[str, Any]]] = {
        "two-rsa": [public_jwk(keys.rsa1, "rsa1"), public_jwk(keys.rsa2, "rsa2")],
        "ec-without-kid": [public_jwk(keys.ec1, None)],
        # no usable key: an oct one, and two RSA keys without kid (a token cannot pick one)
        "unusable": [
            {"kty": "oct", "kid": "k", "k": "c2VjcmV0"},
            public_jwk(keys.rsa1, None),
            public_jwk(keys.rsa2, None),
        ],
    }
    httpserver.expect_request("/down").respond_with_data("", status=503)
    httpserver.expect_request("/not-a-jwks").respond_with_json({"issuer": "x"})
    httpserver.expect_request("/203").respond_with_json({"keys": sets["two-rsa"]}, status=203)
    for path, published in sets.items():
        httpserver.expect_request(f"/{path}").respond_with_json({"keys": published})

    def config(name: str, path: str, *algorithms: str) -> IssuerConfig:
        url = httpserver.url_for(f"/{path}")
        return issuer(url, name=name, issuer=f"https://{name}.example", algorithms=algorithms)

    auth = make_auth(
        config("down", "down", "RS256"),  # first: a failure does not end the round
        config("not-a-jwks", "not-a-jwks", "RS256"),
        config("non-authoritative", "203", "RS256"),  # a 2xx other than 200 is not the set
        config("rsa", "two-rsa", "RS256"),
        config("ec-wanted", "two-rsa", "ES256"),
        config("ec", "ec-without-kid", "RS256", "ES256"),
        config("unusable", "unusable", "RS256", "ES256"),
    )
    assert auth.refresh() == {
        "down": "could not fetch the JWKS: HTTPError: HTTP Error 503: SERVICE UNAVAILABLE",
        "not-a-jwks": "could not fetch the JWKS: the response is not a JWKS (no 'keys' list)",
        "non-authoritative": "could not fetch the JWKS: HTTP 203",
        "rsa": None,
        "ec-wanted": "the JWKS has no key for ES256",
        "ec": None,
        "unusable": "the JWKS has no key for RS256, ES256",
    }


def test_a_refreshed_key_set_serves_tokens_without_another_fetch(
    auth: JwtAuthenticator, jwks: JwksServer, keys: Keys
) -> None:
    assert auth.refresh() == {"idaas": None}
    assert auth.authenticate(sign(keys.rsa1)).name == "jwt:svc-1@idaas"
    # A refresh counts as an attempt: an unknown kid right after it does not fetch again.
    error = refused(auth, sign(keys.rsa1, kid="nobody"))
    assert error.message == "no key in the issuer's key set has the token's kid"
    assert jwks.served == 1


def test_a_readiness_probe_fetches_a_set_once_and_tokens_are_served_from_it(
    auth: JwtAuthenticator, jwks: JwksServer, keys: Keys
) -> None:
    assert auth.fetched_once(2) == {"idaas": True}
    assert auth.fetched_once(2) == {"idaas": True}
    assert auth.authenticate(sign(keys.rsa1)).name == "jwt:svc-1@idaas"
    assert jwks.served == 1


def test_a_readiness_probe_waits_for_the_fetch_a_token_started(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys
) -> None:
    """...until the fetch ends or the probe's own time is up, whichever comes first."""
    auth = make_auth(http_timeout_s=30.0, monotonic=Clock())
    jwks.gate = threading.Event()  # hold the token's fetch until the probe waits for it
    (token,), tokens = _in_threads(1, lambda: auth.authenticate(sign(keys.rsa1)).name)
    wait_until(lambda: jwks.served == 1, "the token's fetch starts")
    probes: list[dict[str, bool]] = []
    probe = threading.Thread(target=lambda: probes.append(auth.fetched_once(4)))
    probe.start()
    wait_until(lambda: waiting_on_events([probe]) == 1, "the probe waits for the fetch")
    assert event_wait_timeout(probe) == pytest.approx(4.0)  # not the fetch's 30 s
    jwks.gate.set()
    for thread in (token, probe):
        thread.join(5)
    assert tokens == ["jwt:svc-1@idaas"]
    assert probes == [{"idaas": True}]
    assert jwks.served == 1


def test_readiness_probes_fetch_a_failing_set_no_more_often_than_a_token_would(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, clock: Clock
) -> None:
    auth = make_auth(first_fetch_retry_s=1.0)
    jwks.status = 503
    assert auth.fetched_once(2) == {"idaas": False}
    assert auth.fetched_once(2) == {"idaas": False}
    assert jwks.served == 1
    clock.advance(1)
    jwks.status = 200
    assert auth.fetched_once(2) == {"idaas": True}
    assert jwks.served == 2


def test_a_readiness_probe_without_time_for_a_fetch_does_not_start_one(
    auth: JwtAuthenticator, jwks: JwksServer
) -> None:
    assert auth.fetched_once(0.01) == {"idaas": False}
    assert jwks.served == 0


# --- configuration ------------------------------------------------------------------------------


def test_parse_issuers() -> None:
    raw = json.dumps(
        [
            {"name": "idaas", "issuer": ISS, "jwks_url": "https://idaas.example.com/jwks"},
            {
                "name": "partner_2",
                "issuer": PARTNER_ISS,
                "jwks_url": "http://127.0.0.1:8080/jwks",
                "audience": PARTNER_AUD,
                "algorithms": ["ES256"],
            },
        ]
    )
    first, second = parse_issuers(raw)
    assert first == IssuerConfig(
        name="idaas", issuer=ISS, jwks_url="https://idaas.example.com/jwks"
    )
    assert first.audience is None
    assert first.algorithms == ("RS256", "ES256")
    assert second.audience == PARTNER_AUD
    assert second.algorithms == ("ES256",)
    assert parse_issuers("[]") == ()


def entry(**overrides: Any) -> dict[str, Any]:
    base = {"name": "idaas", "issuer": ISS, "jwks_url": "https://idaas.example.com/jwks"}
    return {**base, **overrides}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param("[{", "VEND_JWT_ISSUERS is not valid JSON", id="bad-json"),
        pytest.param('{"name": "x"}', "must be a JSON list", id="not-a-list"),
        pytest.param('["idaas"]', "VEND_JWT_ISSUERS[0] must be a JSON object", id="not-an-object"),
        pytest.param(
            json.dumps([entry(), entry(issuer=PARTNER_ISS)]),
            "issuer name 'idaas' appears more than once",
            id="duplicate-name",
        ),
        pytest.param(
            json.dumps([entry(), entry(name="other")]),
            f"issuer {ISS!r} appears more than once",
            id="duplicate-issuer",
        ),
        pytest.param(
            json.dumps([entry(jwks_uri="https://x")]),
            "VEND_JWT_ISSUERS[0]: jwks_uri: Extra inputs are not permitted",
            id="unknown-field",
        ),
        pytest.param(
            json.dumps([entry(algorithms=["RS256", "HS256"])]),
            "VEND_JWT_ISSUERS[0]: algorithms.1",
            id="hs256",
        ),
        pytest.param(
            json.dumps([entry(algorithms=["none"])]), "algorithms.0", id="alg-none-configured"
        ),
        pytest.param(
            json.dumps([entry(algorithms=[])]), "must name at least one", id="no-algorithms"
        ),
        pytest.param(
            json.dumps([entry(algorithms="RS256")]), "algorithms", id="algorithms-not-a-list"
        ),
        pytest.param(json.dumps([entry(name="has space")]), "name", id="bad-name"),
        pytest.param(json.dumps([entry(name="x" * 65)]), "name", id="long-name"),
        pytest.param(json.dumps([entry(name="")]), "name", id="empty-name"),
        pytest.param(json.dumps([entry(issuer="")]), "issuer: ", id="empty-issuer"),
        pytest.param(
            json.dumps([entry(jwks_url="ftp://x/jwks")]), "jwks_url", id="jwks-url-scheme"
        ),
        pytest.param(json.dumps([entry(jwks_url="https://")]), "jwks_url", id="jwks-url-no-host"),
        pytest.param(json.dumps([entry(audience="")]), "audience", id="empty-audience"),
        pytest.param(json.dumps([{"name": "idaas", "issuer": ISS}]), "jwks_url", id="missing"),
        pytest.param(json.dumps([entry(name=5)]), "name", id="name-not-a-string"),
    ],
)
def test_parse_issuers_errors(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match="VEND_JWT_ISSUERS") as caught:
        parse_issuers(raw)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        pytest.param("{}", "VEND_JWT_ISSUERS must be a JSON list of issuer objects", id="object"),
        pytest.param(
            json.dumps([entry(), entry()]),
            "VEND_JWT_ISSUERS: issuer name 'idaas' appears more than once",
            id="duplicate",
        ),
        pytest.param(
            json.dumps([entry(name="", issuer="")]),
            "VEND_JWT_ISSUERS[0]: name: Value error, must be 1 to 64 characters of A-Z, a-z, "
            "0-9, '_' and '-'; issuer: Value error, must not be empty",
            id="two-problems",
        ),
    ],
)
def test_parse_issuers_errors_in_full(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match="VEND_JWT_ISSUERS") as caught:
        parse_issuers(raw)
    assert str(caught.value) == message


def test_issuer_config_is_frozen() -> None:
    config = issuer("https://idaas.example.com/jwks")
    with pytest.raises(ValueError, match="frozen"):
        config.name = "other"


def test_authenticator_refuses_duplicate_issuers() -> None:
    a = issuer("https://a.example/jwks")
    same_iss = f"JWT issuers: issuer {ISS!r} appears more than once"
    with pytest.raises(ValueError, match=f"^{re.escape(same_iss)}$"):
        JwtAuthenticator([a, issuer("https://b.example/jwks", name="b")], AUD)
    same_name = "JWT issuers: issuer name 'idaas' appears more than once"
    with pytest.raises(ValueError, match=f"^{re.escape(same_name)}$"):
        JwtAuthenticator([a, issuer("https://b.example/jwks", issuer="https://b")], AUD)
    with pytest.raises(ValueError, match=r"^VEND_AUDIENCE must not be empty$"):
        JwtAuthenticator([a], "")


# --- verified tokens, remembered until they expire ---------------------------------------------


def test_a_remembered_token_is_refused_once_it_expires(
    make_auth: Callable[..., JwtAuthenticator], keys: Keys, clock: Clock
) -> None:
    auth = make_auth()
    token = sign(keys.rsa1, exp=NOW + 300)
    assert auth.authenticate(token).name == "jwt:svc-1@idaas"
    clock.advance(300)
    remembered = refused(auth, token)
    fresh = refused(make_auth(), token)  # what a first sight of it says at that time
    assert remembered.message == fresh.message


@pytest.mark.parametrize(
    ("claim", "message"),
    [("nbf", "token not yet valid (nbf)"), ("iat", "token issued in the future (iat)")],
)
def test_a_remembered_token_is_refused_if_the_clock_steps_back_before_its_claim(
    make_auth: Callable[..., JwtAuthenticator],
    keys: Keys,
    clock: Clock,
    claim: str,
    message: str,
) -> None:
    """A remembered token's nbf and iat are checked again too: a clock set back (as NTP may)
    judges it as a first sight would."""
    auth = make_auth()
    token = sign(keys.rsa1, **{claim: NOW + 60})
    assert auth.authenticate(token).name == "jwt:svc-1@idaas"
    clock.advance(-1)
    assert refused(auth, token).message == message


def test_a_remembered_token_whose_key_left_the_set_is_refused(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys, clock: Clock
) -> None:
    auth = make_auth()
    token = sign(keys.rsa1, exp=NOW + 3600)
    assert auth.authenticate(token).name == "jwt:svc-1@idaas"
    jwks.keys = [public_jwk(keys.rsa2, "rsa2")]  # rsa1 revoked, rsa2 in its place
    clock.advance(INTERVAL)
    assert auth.authenticate(sign(keys.rsa2, kid="rsa2", exp=NOW + 3600)).name
    assert jwks.served == 2  # the new kid refreshed the set
    assert refused(auth, token).message == "no key in the issuer's key set has the token's kid"


def test_a_remembered_token_is_checked_again_when_the_key_set_goes_stale(
    make_auth: Callable[..., JwtAuthenticator], jwks: JwksServer, keys: Keys, clock: Clock
) -> None:
    auth = make_auth(max_key_age_s=600)
    token = sign(keys.rsa1, exp=NOW + 3600)
    auth.authenticate(token)
    jwks.keys = [public_jwk(keys.ec1, "ec1")]
    clock.advance(600)
    assert refused(auth, token).message == "no key in the issuer's key set has the token's kid"
    assert jwks.served == 2


def test_a_changed_copy_of_a_remembered_token_is_verified_on_its_own(
    auth: JwtAuthenticator, keys: Keys
) -> None:
    token = sign(keys.rsa1)
    auth.authenticate(token)
    head, payload, signature = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["sub"] = "someone-else"
    assert refused(auth, f"{head}.{b64(json.dumps(forged).encode())}.{signature}").message == (
        "signature does not verify"
    )
    assert auth.authenticate(token).name == "jwt:svc-1@idaas"
