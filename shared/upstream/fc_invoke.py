"""FC 3.0's InvokeFunction, asynchronous: how the scheduled rotation hands its batches to its own
function (shared.lifecycle.schedule). The request is the one alibabacloud-fc20230330's
`invoke_function` sends (ROA `POST /2023-03-30/functions/{name}/invocations`, the payload as the
body, `x-fc-invocation-type: Async`), signed with ACS3-HMAC-SHA256 by the signer of every other
upstream call, with the function's own credentials. FC answers 202 and runs the function later,
retrying a failed attempt per the function's asyncInvokeConfig (infra/ASSUMPTIONS.md)."""

from __future__ import annotations

import hashlib
from urllib.parse import quote

from alibabacloud_openapi_util.client import Client as Signer
from alibabacloud_tea_util.client import Client as TeaUtil
from Tea.request import TeaRequest

from shared.errors import VendError, upstream_error, upstream_timeout
from shared.upstream.deadline import Deadline
from shared.upstream.identity import FunctionIdentity
from shared.upstream.transport import SIGNATURE_ALGORITHM, RpcTransport, WireError
from shared.wire.credentials import Credentials
from shared.wire.endpoint import Endpoint

FC_VERSION = "2023-03-30"
CONNECT_TIMEOUT_MS = 1000
# FC's limit on an asynchronous invocation's payload (infra/local/fc_invoke.py).
MAX_ASYNC_PAYLOAD = 128 * 1024


def default_endpoint(account_id: str, region: str) -> str:
    """FC's endpoint inside the region's network (infra/ASSUMPTIONS.md)."""
    return f"https://{account_id}.{region}-internal.fc.aliyuncs.com"


class FunctionInvoker:
    def __init__(
        self, transport: RpcTransport, endpoint: Endpoint, identity: FunctionIdentity
    ) -> None:
        self.transport = transport
        self.endpoint = endpoint
        self.identity = identity

    def invoke_async(self, function_name: str, payload: bytes, deadline: Deadline) -> str | None:
        """Queues one invocation of `function_name` with `payload`; FC's request id for it. A
        refusal or no answer is a VendError naming FC (the batch waits for the next run)."""
        if len(payload) > MAX_ASYNC_PAYLOAD:
            raise ValueError("an asynchronous invocation's payload is at most 128 KB")
        path = f"/{FC_VERSION}/functions/{quote(function_name, safe='')}/invocations"
        headers = self._signed(path, payload, self.identity.current())
        try:
            answer = self.transport.exchange(
                self.endpoint,
                path,
                headers,
                body=payload,
                connect_timeout_ms=min(CONNECT_TIMEOUT_MS, deadline.remaining_ms()),
                timeout_ms=deadline.remaining_ms(),
            )
        except WireError as exc:
            err = upstream_timeout if exc.kind == "timeout" else upstream_error
            raise _fc(err(f"FC InvokeFunction: {exc}"), None, None) from None
        request_id = answer.headers.get("x-fc-request-id")
        if answer.status != 202:
            raise _fc(
                upstream_error(f"FC refused InvokeFunction ({answer.status})"),
                answer.status,
                request_id,
            )
        return request_id

    def _signed(self, path: str, payload: bytes, creds: Credentials) -> dict[str, str]:
        digest = hashlib.sha256(payload).hexdigest()
        headers = {
            "host": self.endpoint.host,
            "x-acs-version": FC_VERSION,
            "x-acs-action": "InvokeFunction",
            "x-acs-date": Signer.get_timestamp(),
            "x-acs-signature-nonce": TeaUtil.get_nonce(),
            "x-acs-content-sha256": digest,
            "content-type": "application/octet-stream",
            "x-fc-invocation-type": "Async",
            "accept": "application/json",
        }
        if creds.security_token:
            headers["x-acs-accesskey-id"] = creds.access_key_id
            headers["x-acs-security-token"] = creds.security_token
        request = TeaRequest()
        request.protocol = self.endpoint.protocol
        request.method = "POST"
        request.pathname = path
        request.query = {}
        request.headers = headers
        headers["Authorization"] = Signer.get_authorization(
            request, SIGNATURE_ALGORITHM, digest, creds.access_key_id, creds.access_key_secret
        )
        return headers


def _fc(err: VendError, status: int | None, request_id: str | None) -> VendError:
    err.service = "FC"
    err.upstream_status = status
    err.upstream_request_id = request_id
    err.attempts = 1
    return err
