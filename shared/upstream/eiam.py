"""EIAM's client secret actions (Obtain, Create, List, Disable, Delete), each with the scoped
credentials of its own request."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from alibabacloud_tea_openapi.exceptions import ClientException

from shared.errors import (
    MaybeActed,
    VendError,
    access_denied,
    invalid_expiration,
    not_found,
    upstream_error,
)
from shared.lifecycle.current import Secret
from shared.upstream.deadline import Deadline
from shared.upstream.rpc import EIAM_VERSION, Credentials, RpcTransport, Service
from shared.wire.arns import ID_PATTERN
from shared.wire.endpoint import Endpoint

_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class SecretInfo:
    upstream_request_id: str | None
    instance_id: str
    application_id: str
    client_id: str | None
    secret_id: str
    status: str | None
    expiration_time: int | None
    last_used_time: int | None
    client_secret: str = field(repr=False)


class Eiam:
    def __init__(self, transport: RpcTransport, endpoint: Endpoint) -> None:
        self._call = Service(transport, endpoint, "EIAM", EIAM_VERSION, eiam_error).call

    def obtain(
        self,
        creds: Credentials,
        instance_id: str,
        application_id: str,
        secret_id: str,
        deadline: Deadline,
    ) -> SecretInfo:
        body = self._call(
            "ObtainApplicationClientSecret",
            creds,
            {"InstanceId": instance_id, "ApplicationId": application_id, "SecretId": secret_id},
            deadline,
        )
        s = _secret_of(body)
        return SecretInfo(
            upstream_request_id=body.get("RequestId"),
            instance_id=instance_id,
            application_id=application_id,
            client_id=s.get("ClientId"),
            secret_id=str(s.get("SecretId") or secret_id).strip(),
            status=_status(s.get("Status")),
            expiration_time=_int_or_none(s.get("ExpirationTime")),
            last_used_time=_int_or_none(s.get("LastUsedTime")),
            client_secret=str(s["ClientSecret"]),
        )

    def create(
        self,
        creds: Credentials,
        instance_id: str,
        application_id: str,
        expiration_time: int | None,
        deadline: Deadline,
    ) -> SecretInfo:
        query: dict[str, Any] = {"InstanceId": instance_id, "ApplicationId": application_id}
        if expiration_time is not None:
            query["ExpirationTime"] = str(expiration_time)
        # Sent once: a lost answer is resolved by listing (shared.create_once), never by
        # sending it again blindly.
        body = self._call("CreateApplicationClientSecret", creds, query, deadline, idempotent=False)
        # A 200 that cannot be read still says EIAM acted: the secret may well exist.
        try:
            s = _secret_of(body)
        except VendError as err:
            raise MaybeActed(
                err.status, err.code, err.message, service="EIAM", settled=True
            ) from None
        if not s.get("SecretId"):
            raise MaybeActed(
                502,
                "UpstreamError",
                "EIAM answered its create without a SecretId",
                service="EIAM",
                settled=True,
            )
        return SecretInfo(
            upstream_request_id=body.get("RequestId"),
            instance_id=instance_id,
            application_id=application_id,
            client_id=s.get("ClientId"),
            # EIAM's own example shows a stray leading space in SecretId; never pass it on.
            secret_id=str(s["SecretId"]).strip(),
            status="enabled",
            expiration_time=expiration_time,
            last_used_time=None,
            client_secret=str(s["ClientSecret"]),
        )

    def list_secret_ids(
        self, creds: Credentials, instance_id: str, application_id: str, deadline: Deadline
    ) -> tuple[str, ...]:
        """The application's secret IDs, to recover a create."""
        listed = self.list_secrets(creds, instance_id, application_id, deadline)
        return tuple(s.secret_id for s in listed)

    def list_secrets(
        self, creds: Credentials, instance_id: str, application_id: str, deadline: Deadline
    ) -> tuple[Secret, ...]:
        """The application's secrets as ListApplicationClientSecrets shows them: ID, status and
        expiration (the values it shows are masked, and are never read)."""
        body = self._call(
            "ListApplicationClientSecrets",
            creds,
            {"InstanceId": instance_id, "ApplicationId": application_id},
            deadline,
        )
        items = body.get("ApplicationClientSecrets")
        if not isinstance(items, list):
            raise upstream_error("EIAM answered ListApplicationClientSecrets without a list")
        listed = tuple(
            Secret(
                # EIAM's own example shows a stray leading space in SecretId; never pass it on.
                str(item["SecretId"]).strip(),
                _status(item.get("Status")),
                _int_or_none(item.get("ExpirationTime")),
            )
            for item in items
            if isinstance(item, dict) and item.get("SecretId")
        )
        # A listed ID names an ARN and a session policy next: one that is not an ID could widen
        # them, so the whole answer is refused.
        if not all(_ID.fullmatch(s.secret_id) for s in listed):
            raise upstream_error("EIAM listed a SecretId that is not 1 to 64 of [A-Za-z0-9_-]")
        return listed

    def disable(
        self,
        creds: Credentials,
        instance_id: str,
        application_id: str,
        secret_id: str,
        deadline: Deadline,
    ) -> str | None:
        """DisableApplicationClientSecret; its RequestId. Sent again after a lost answer: one
        secret disabled twice is disabled."""
        return self._secret_action(
            "DisableApplicationClientSecret",
            creds,
            instance_id,
            application_id,
            secret_id,
            deadline,
        )

    def delete(
        self,
        creds: Credentials,
        instance_id: str,
        application_id: str,
        secret_id: str,
        deadline: Deadline,
    ) -> str | None:
        """DeleteApplicationClientSecret; its RequestId. Sent again after a lost answer: what
        the first one deleted, the second finds gone (404, which the caller takes as done)."""
        return self._secret_action(
            "DeleteApplicationClientSecret", creds, instance_id, application_id, secret_id, deadline
        )

    def _secret_action(
        self,
        action: str,
        creds: Credentials,
        instance_id: str,
        application_id: str,
        secret_id: str,
        deadline: Deadline,
    ) -> str | None:
        body = self._call(
            action,
            creds,
            {"InstanceId": instance_id, "ApplicationId": application_id, "SecretId": secret_id},
            deadline,
        )
        request_id = body.get("RequestId")
        return str(request_id) if request_id else None


def _secret_of(body: dict[str, Any]) -> dict[str, Any]:
    secret = body.get("ApplicationClientSecret")
    if not isinstance(secret, dict) or not isinstance(secret.get("ClientSecret"), str):
        raise upstream_error("EIAM answered without a client secret")
    # The fields passed on to the caller as text: a value of another type is EIAM's fault (502),
    # not one for the answer's model to trip on later as a bug of ours (500).
    for name in ("ClientId", "SecretId"):
        if not isinstance(secret.get(name), (str, type(None))):
            raise upstream_error(f"EIAM answered a {name} that is not text")
    return secret


def _status(value: Any) -> str | None:
    return value if value in ("enabled", "disabled") else None


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def eiam_error(exc: ClientException) -> VendError:
    """EIAM's codes for missing entities are not published: 404 is what says "not found"."""
    code = str(exc.code or "")
    message = str(getattr(exc, "message", "") or "")
    if exc.status_code == 404:
        return not_found("EIAM says the instance, application or secret does not exist")
    if exc.status_code == 403:
        return access_denied("EIAM denied the call")
    if "quota" in code.lower() or ("quota" in message.lower() and exc.status_code in (400, 409)):
        return VendError(409, "QuotaExceeded", "the application already has its 2 client secrets")
    if code.startswith("InvalidParameter.ExpirationTime"):
        return invalid_expiration("EIAM refused the expiration time")
    return upstream_error(f"EIAM refused the call: {code}")
