"""secret-vending's caller side: ask for an EIAM application's client secret, proving who you are
with a RAM proof (your own Alibaba Cloud credentials) or a JWT, and open the envelope it comes in
with your own KMS permission.

    kms = parse_endpoint("kms.cn-hangzhou.aliyuncs.com")
    client = VendClient(url="https://...", audience="vend-prod", kms=kms)
    response = client.obtain("idaas_x", "app_y", "sct_z")
    secret = client.open(
        response, instance_id="idaas_x", application_id="app_y", secret_id="sct_z"
    )
"""

from .credentials import Credentials
from .errors import CloudError, EnvelopeError, VendApiError, VendClientError
from .events import EventsClient
from .http import VendClient
from .proof import build_proof
from .response import Envelope, VendResponse
from .wire.endpoint import Endpoint, parse_endpoint

__all__ = [
    "CloudError",
    "Credentials",
    "Endpoint",
    "Envelope",
    "EnvelopeError",
    "EventsClient",
    "VendApiError",
    "VendClient",
    "VendClientError",
    "VendResponse",
    "build_proof",
    "parse_endpoint",
]
