"""`EventsClient`: another function's way in, `vend-events` through fc2's `invoke_function`
(install the `events` extra), with the same authorization as over HTTP; open the answer with
`VendClient.open`.

    fc = fc2.Client(endpoint=..., accessKeyID=..., accessKeySecret=..., securityToken=...)
    events = EventsClient(VendClient(url="", audience="vend-prod", ...), fc, service="vend")
    response = events.obtain("idaas_x", "app_y", "sct_z")
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import VendApiError
from .http import VendClient, create_body, response_of
from .response import VendResponse


@dataclass
class EventsClient:
    vend: VendClient
    fc: Any  # an fc2.Client
    service: str = "vend"
    function: str = "vend-events"

    def _authorization(self) -> dict[str, str]:
        return {"authorization": self.vend.authorization()}

    def _event(self, action: str, body: dict[str, Any]) -> bytes:
        return json.dumps({"action": action, **body, **self._authorization()}).encode()

    def _invoke(self, payload: bytes) -> Any:
        from fc2.fc_exceptions import FcError  # noqa: PLC0415 - the `events` extra

        try:
            reply = self.fc.invoke_function(
                self.service,
                self.function,
                payload=payload,
                headers={"x-fc-invocation-type": "Sync"},
            )
        except FcError as exc:
            raise _unhandled(exc) from None
        return json.loads(reply.data)

    def _sync(self, payload: bytes) -> VendResponse:
        data = self._invoke(payload)
        # An error is {"error": ..., "status": N}; a vend response's own "status" is the secret's.
        failed = isinstance(data, dict) and "error" in data
        return response_of(int(data.get("status", 500)) if failed else 200, data)

    def doctor(self) -> dict[str, Any]:
        """The deployment checks, run by the function itself (`{"action": "doctor"}`): the
        report `{"ok", "checks": [...], "request_id"}`, for a caller the service's approval
        policy allows `vend:RunDoctor`; VendApiError (401, 403) for anyone else."""
        data = self._invoke(json.dumps({"action": "doctor", **self._authorization()}).encode())
        if isinstance(data, dict) and "error" in data:
            response_of(int(data.get("status", 500)), data)  # raises the error it describes
        if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
            raise VendApiError(200, "BadResponse", "the answer is not a doctor's report", None)
        return data

    def obtain(self, instance_id: str, application_id: str, secret_id: str) -> VendResponse:
        body = {"instance_id": instance_id, "application_id": application_id}
        return self._sync(self._event("obtain", {**body, "secret_id": secret_id}))

    def create(
        self,
        instance_id: str,
        application_id: str,
        expiration_time: int | None = None,
        idempotency_key: str | None = None,
    ) -> VendResponse:
        body = create_body(instance_id, application_id, expiration_time, idempotency_key)
        return self._sync(self._event("create", body))

    def create_async(
        self,
        instance_id: str,
        application_id: str,
        expiration_time: int | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Queues a create; FC retries it if it fails. Returns FC's request id, which is also the
        idempotency key when none is given: a later `create(..., idempotency_key=<it>)` returns
        the same secret."""
        reply = self.fc.invoke_function(
            self.service,
            self.function,
            payload=self._event(
                "create", create_body(instance_id, application_id, expiration_time, idempotency_key)
            ),
            headers={"x-fc-invocation-type": "Async"},
        )
        return str(reply.headers.get("x-fc-request-id") or reply.headers.get("X-Fc-Request-Id"))


def _unhandled(exc: Exception) -> VendApiError:
    """The function raised (a retryable 502/503/504): FC reports it as an unhandled error."""
    text = str(getattr(exc, "message", "") or exc)
    match = re.search(r"(50[234]) ([A-Za-z.]+): ([^\"]*)", text)
    if match:
        return VendApiError(int(match[1]), match[2], match[3].strip(), None)
    return VendApiError(502, "UpstreamError", "the function failed", None)
