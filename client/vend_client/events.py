"""`EventsClient`: another function's way in, `vend-events` through fc2's `invoke_function`
(install the `events` extra), with the same authorization as over HTTP; open the answer with
`VendClient.open`.

    fc = fc2.Client(endpoint=..., accessKeyID=..., accessKeySecret=..., securityToken=...)
    events = EventsClient(VendClient(url="", audience="vend-prod", ...), fc, service="vend")
    response = events.obtain("idaas_x", "app_y", "sct_z")

Every failure is a VendClientError, as over HTTP: the function's error answer a VendApiError
(RefusedError, UpstreamError), FC's own refusal (a bad signature, an unknown function) too,
with FC's request id; FC unreachable a ServiceUnreachable (ServiceTimeout).

fc2 (2.5) retries a refused connection itself, 5 times with a backoff of 0, 2, 4, 8 and 16 s:
FC refusing connections is a ServiceUnreachable after about 30 s. Those settings are fc2's
module-level `fc2.client.retries` and `fc2.client.backoff_factor`, the same for every fc2 client
of the process; this client does not change them. A connection dropped after the invocation was
sent is not retried (it is a POST): ServiceUnreachable at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from .errors import RefusedError, VendApiError, api_error
from .http import VendClient, create_body, response_of, unreachable
from .response import VendResponse, request_id_of

# What the function raises for FC to retry (shared/events.py RetryableError).
_RAISED = re.compile(
    r"(?P<status>50[0234]) (?P<code>[A-Za-z.]+): (?P<message>.*?)"
    r"(?: \(request (?P<request>[^)]*)\))?",
    re.DOTALL,
)


@dataclass
class EventsClient:
    vend: VendClient
    fc: Any  # an fc2.Client
    service: str = "vend"
    function: str = "vend-events"

    def _event(self, action: str, body: dict[str, Any]) -> bytes:
        """The event, with a fresh authorization (a RAM proof is single-use)."""
        event = {"action": action, **body, "authorization": self.vend.authorization()}
        return json.dumps(event).encode()

    def _call(self, call: Callable[[], Any]) -> Any:
        """An fc2 call; its failures as VendClientErrors."""
        from fc2.fc_exceptions import FcError  # noqa: PLC0415 - the `events` extra

        try:
            return call()
        except FcError as exc:
            raise _fc_error(exc) from None
        except requests.exceptions.RequestException as exc:
            where = str(getattr(self.fc, "endpoint", ""))
            raise unreachable(exc, where, _fc_timeout(self.fc)) from None
        except ValueError:  # fc2 reads an error answer's body as JSON: it was not
            raise api_error(502, "BadResponse", "FC's error answer is not JSON", None) from None

    def _invoke(self, action: str, body: dict[str, Any]) -> Any:
        """The function's answer to a sync invocation; asked once more, with a fresh token,
        after a 401 to a callable's token (as `VendClient` does)."""
        try:
            return self._invoke_once(action, body)
        except RefusedError as exc:
            if exc.status != 401 or not callable(self.vend.token):
                raise
        return self._invoke_once(action, body)

    def _invoke_once(self, action: str, body: dict[str, Any]) -> Any:
        payload = self._event(action, body)
        reply = self._call(
            lambda: self.fc.invoke_function(
                self.service,
                self.function,
                payload=payload,
                headers={"x-fc-invocation-type": "Sync"},
            )
        )
        try:
            data = json.loads(reply.data)
        except (TypeError, ValueError):
            raise api_error(200, "BadResponse", "the answer is not JSON", None) from None
        # An error is {"error": ..., "status": N}; a vend response's own "status" is the secret's.
        if isinstance(data, dict) and "error" in data:
            status = data.get("status")
            response_of(status if isinstance(status, int) else 500, data)  # raises its error
        return data

    def doctor(self) -> dict[str, Any]:
        """The deployment checks, run by the function itself (`{"action": "doctor"}`): the
        report `{"ok", "checks": [...], "request_id"}`, for a caller the service's approval
        policy allows `vend:RunDoctor`; RefusedError (401, 403) for anyone else."""
        data = self._invoke("doctor", {})
        if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
            raise VendApiError(200, "BadResponse", "the answer is not a doctor's report", None)
        return data

    def obtain(self, instance_id: str, application_id: str, secret_id: str) -> VendResponse:
        body = {"instance_id": instance_id, "application_id": application_id}
        return response_of(200, self._invoke("obtain", {**body, "secret_id": secret_id}))

    def current(self, instance_id: str, application_id: str) -> VendResponse:
        """The application's current secret (`{"action": "current"}`); open it with
        `VendClient.open_current`."""
        body = {"instance_id": instance_id, "application_id": application_id}
        return response_of(200, self._invoke("current", body))

    def create(
        self,
        instance_id: str,
        application_id: str,
        expiration_time: int | None = None,
        idempotency_key: str | None = None,
    ) -> VendResponse:
        body = create_body(instance_id, application_id, expiration_time, idempotency_key)
        return response_of(200, self._invoke("create", body))

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
        payload = self._event(
            "create", create_body(instance_id, application_id, expiration_time, idempotency_key)
        )
        reply = self._call(
            lambda: self.fc.invoke_function(
                self.service,
                self.function,
                payload=payload,
                headers={"x-fc-invocation-type": "Async"},
            )
        )
        return str(reply.headers.get("x-fc-request-id") or reply.headers.get("X-Fc-Request-Id"))


def _fc_error(exc: Any) -> VendApiError:
    """An fc2 FcError as what it means. Below 400: the function raised (a retryable 5xx), which
    FC reports as an unhandled error whose `errorMessage` is "STATUS CODE: MESSAGE (request
    ID)". Else FC itself refused (a signature, an unknown function: 4xx) or failed (5xx)."""
    fc_request = request_id_of(getattr(exc, "request_id", None))
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and status >= 400:
        code = str(getattr(exc, "err_code", "") or "FcError")
        what = "refused" if status < 500 else "failed"
        return api_error(status, code, f"Function Compute {what} the invocation", fc_request)
    try:
        said = json.loads(str(getattr(exc, "message", "")))
    except ValueError:
        said = None
    text = str(said.get("errorMessage", "")) if isinstance(said, dict) else ""
    match = _RAISED.fullmatch(text)
    if match is None:
        return api_error(502, "UpstreamError", "the function failed", fc_request)
    request_id = request_id_of(match["request"]) or fc_request
    return api_error(int(match["status"]), match["code"], match["message"], request_id)


def _fc_timeout(fc: Any) -> float:
    timeout = getattr(fc, "timeout", None)
    return float(timeout) if isinstance(timeout, (int, float)) else 0.0
