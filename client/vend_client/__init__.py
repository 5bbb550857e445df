"""secret-vending's caller side: ask for an EIAM application's client secret, proving who you are
with a RAM proof (your own Alibaba Cloud credentials) or a JWT, and open the envelope it comes in
with your own KMS permission.

    client = VendClient(url="https://...", audience="vend-prod")
    # or from VEND_URL, VEND_AUDIENCE, VEND_KMS_ENDPOINT, ...: VendClient.from_env()
    response = client.obtain("idaas_x", "app_y", "sct_z")
    secret = client.open(
        response, instance_id="idaas_x", application_id="app_y", secret_id="sct_z"
    )

Every failure is a `VendClientError` (see `vend_client.errors` for its kinds).
"""

import importlib
from typing import TYPE_CHECKING, Any

# The one place the version is written: pyproject.toml reads it ([tool.setuptools.dynamic]).
__version__ = "0.1.0"

if TYPE_CHECKING:
    from .caching import CachingClient
    from .credentials import Credentials
    from .errors import (
        CloudError,
        CloudUnreachable,
        ConfigurationError,
        EnvelopeError,
        NoCredentialsError,
        RefusedError,
        ServiceTimeout,
        ServiceUnreachable,
        UpstreamError,
        VendApiError,
        VendClientError,
    )
    from .events import EventsClient
    from .http import VendClient
    from .proof import build_proof
    from .response import Envelope, VendResponse
    from .rotation import RotationState, SecretState
    from .vended import VendedSecret
    from .wire.endpoint import Endpoint, parse_endpoint

# Each name is imported from its module on first use: the SDK behind the clients costs about
# 0.4 s to import, which `vend --help` (whose parser lists the caller's commands) need not pay.
_HOME = {
    "CachingClient": ".caching",
    "Credentials": ".credentials",
    "CloudError": ".errors",
    "CloudUnreachable": ".errors",
    "ConfigurationError": ".errors",
    "EnvelopeError": ".errors",
    "NoCredentialsError": ".errors",
    "RefusedError": ".errors",
    "ServiceTimeout": ".errors",
    "ServiceUnreachable": ".errors",
    "UpstreamError": ".errors",
    "VendApiError": ".errors",
    "VendClientError": ".errors",
    "EventsClient": ".events",
    "VendClient": ".http",
    "build_proof": ".proof",
    "Envelope": ".response",
    "VendResponse": ".response",
    "RotationState": ".rotation",
    "SecretState": ".rotation",
    "VendedSecret": ".vended",
    "Endpoint": ".wire.endpoint",
    "parse_endpoint": ".wire.endpoint",
}


def __getattr__(name: str) -> Any:
    if name not in _HOME:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_HOME[name], __name__), name)


__all__ = [
    "CachingClient",
    "CloudError",
    "CloudUnreachable",
    "ConfigurationError",
    "Credentials",
    "Endpoint",
    "Envelope",
    "EnvelopeError",
    "EventsClient",
    "NoCredentialsError",
    "RefusedError",
    "RotationState",
    "SecretState",
    "ServiceTimeout",
    "ServiceUnreachable",
    "UpstreamError",
    "VendApiError",
    "VendClient",
    "VendClientError",
    "VendResponse",
    "VendedSecret",
    "build_proof",
    "parse_endpoint",
]
