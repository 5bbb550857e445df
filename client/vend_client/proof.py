"""The RAM proof's producer (contract section 3): an STS `GetCallerIdentity` request, signed with
the caller's own credentials (ACS3-HMAC-SHA256, the service's audience header signed in) and not
sent. The service that receives it sends it to STS and takes the identity STS names; STS
accepts a signature nonce once, so a proof is single-use. The verifier is the service's
`shared.auth.ram_proof`; the form both read is `wire.proof`."""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from alibabacloud_credentials.client import Client as CredentialClient
from alibabacloud_credentials.models import Config as CredentialConfig
from alibabacloud_tea_openapi.utils import Utils
from darabonba.request import DaraRequest

from .wire.proof import (
    AUDIENCE_HEADER,
    DEFAULT_STS_HOST,
    HEADER_VALUE,
    MAX_PROOF_BYTES,
    SIGNATURE_ALGORITHM,
    STS_ACTION,
    STS_VERSION,
    host_port,
)


def build_proof(
    *,
    audience: str,
    sts_endpoint: str = DEFAULT_STS_HOST,
    protocol: str = "https",
    access_key_id: str | None = None,
    access_key_secret: str | None = None,
    security_token: str | None = None,
    credential: object | None = None,
) -> str:
    """A RAM proof for the service whose audience is `audience`: base64url (no padding) of the JSON
    of an STS `GetCallerIdentity` request signed with the caller's credentials but not sent.

    Credentials: explicit keys (with `security_token` for STS credentials), or `credential`, an
    `alibabacloud_credentials.client.Client`, or else the environment variables
    ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET / _SECURITY_TOKEN as they are at the call, or else the
    credentials library's default chain (profiles, instance roles...).
    The request is built as `alibabacloud_tea_openapi`'s `Client.do_request` builds it, and
    signed with that package's own signer. Raises ValueError for bad arguments or credentials
    that cannot sign (a bearer token); the credentials library's own errors pass through."""
    if not audience or not HEADER_VALUE.fullmatch(audience):
        raise ValueError("audience must be a non-empty string of printable ASCII")
    scheme = protocol.lower()
    if scheme not in ("http", "https"):
        raise ValueError("protocol must be 'http' or 'https'")
    try:
        host = host_port(sts_endpoint)
    except ValueError as exc:
        raise ValueError(f"invalid sts_endpoint {sts_endpoint!r}: {exc}") from None

    keys_given = (access_key_id, access_key_secret, security_token) != (None, None, None)
    if keys_given and credential is not None:
        raise ValueError("give either access keys or a credential client, not both")
    if not keys_given and credential is None:
        # The default chain starts with these variables, but alibabacloud-credentials 1.0.12 reads
        # them once, when it is imported: read them now, so that setting them later works too.
        access_key_id = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID") or None
        access_key_secret = os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET") or None
        security_token = os.environ.get("ALIBABA_CLOUD_SECURITY_TOKEN") or None
        keys_given = access_key_id is not None and access_key_secret is not None
    if keys_given:
        if not access_key_id or not access_key_secret:
            raise ValueError("access_key_id and access_key_secret must be given together")
        credential = CredentialClient(
            CredentialConfig(
                type="sts" if security_token else "access_key",
                access_key_id=access_key_id,
                access_key_secret=access_key_secret,
                security_token=security_token or None,
            )
        )
    elif credential is None:
        credential = CredentialClient()
    client: Any = credential
    model: Any = client.get_credential()
    if model.type in ("bearer", "id_token") or not model.access_key_id:
        raise ValueError("a RAM proof must be signed with an access key and its secret")
    key_id, secret, token = model.access_key_id, model.access_key_secret, model.security_token
    if not secret:
        raise ValueError("a RAM proof must be signed with an access key and its secret")

    # What `Client.do_request` (tea-openapi 0.4.6) sets for an RPC call, plus our audience.
    # GetCallerIdentity has no parameters: the SDK sends `POST /` with no query and no body.
    headers: dict[str, str] = {
        "host": host,
        "x-acs-version": STS_VERSION,
        "x-acs-action": STS_ACTION,
        "user-agent": Utils.get_user_agent(os.environ.get("ALIBABA_CLOUD_USER_AGENT")),
        "x-acs-date": Utils.get_timestamp(),
        "x-acs-signature-nonce": Utils.get_nonce(),
        "accept": "application/json",
        AUDIENCE_HEADER: audience,
    }
    payload_hash: str = Utils.hash(b"", SIGNATURE_ALGORITHM).hex()
    headers["x-acs-content-sha256"] = payload_hash
    if model.provider_name:
        headers["x-acs-credentials-provider"] = model.provider_name
    if token:
        headers["x-acs-accesskey-id"] = key_id
        headers["x-acs-security-token"] = token
    request = DaraRequest()
    request.protocol = scheme
    request.method = "POST"
    request.pathname = "/"
    request.query = {}
    request.headers = headers
    authorization: str = Utils.get_authorization(
        request, SIGNATURE_ALGORITHM, payload_hash, key_id, secret
    )
    headers["authorization"] = authorization

    document = {"method": "POST", "url": f"{scheme}://{host}/", "headers": headers, "body": ""}
    raw = json.dumps(document, separators=(",", ":")).encode("utf-8")
    if len(raw) > MAX_PROOF_BYTES:
        raise ValueError("the proof would be longer than 16 KiB, which services refuse")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
