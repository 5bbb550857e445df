"""EIAM 2021-12-01: the client secrets of IDaaS applications."""

from __future__ import annotations

import hmac
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from . import ids
from .call import Call, Handler, not_found
from .errors import ActionErrors, ApiError
from .iam import Account
from .seed import Instance

VERSION = "2021-12-01"
MAX_SECRETS_PER_APPLICATION = 2
DAY_MS = 24 * 3600 * 1000
MIN_EXPIRATION_MS = DAY_MS
MAX_EXPIRATION_MS = 3 * 365 * DAY_MS
# A request computed "one day from now" by a client arrives a little later; real services
# tolerate that, and so do we.
EXPIRATION_SLACK_MS = 5 * 60 * 1000

_SECRET_NOT_FOUND = {
    "EntityNotExists.Instance": 404,
    "EntityNotExists.Application": 404,
    "EntityNotExists.Secret": 404,
    "InvalidParameter": 400,  # an ID that is not 1 to 64 of A-Z a-z 0-9 _ -
}
# The codes each action answers itself, with their HTTP status, beyond the gateway's
# (errors.GATEWAY_CODES). EIAM's metadata (infra/api-metadata/eiam-2021-12-01.json) lists no
# error codes for any action, so none of these is verified: they are the emulator's own choice,
# all in UNLISTED and explained in DEVIATIONS.md; tests/test_emulator_fidelity.py checks that
# this table and the `ApiError`s this module can reach agree.
ERRORS: ActionErrors = {
    "ObtainApplicationClientSecret": dict(_SECRET_NOT_FOUND),
    "CreateApplicationClientSecret": {
        "EntityNotExists.Instance": 404,
        "EntityNotExists.Application": 404,
        "InvalidParameter": 400,
        "InvalidParameter.ExpirationTime": 400,
        "QuotaExceeded.ApplicationClientSecret": 400,
    },
    "ListApplicationClientSecrets": {
        "EntityNotExists.Instance": 404,
        "EntityNotExists.Application": 404,
        "InvalidParameter": 400,
    },
    "DeleteApplicationClientSecret": dict(_SECRET_NOT_FOUND),
    "EnableApplicationClientSecret": dict(_SECRET_NOT_FOUND),
    "DisableApplicationClientSecret": dict(_SECRET_NOT_FOUND),
}
UNLISTED: dict[str, frozenset[str]] = {action: frozenset(codes) for action, codes in ERRORS.items()}


@dataclass
class SecretRecord:
    secret_id: str
    client_secret: str
    status: str = "enabled"
    expiration_time: int | None = None
    last_used_time: int | None = None


@dataclass
class ApplicationRecord:
    application_id: str
    client_id: str
    secrets: dict[str, SecretRecord] = field(default_factory=dict)


def records_from_seed(instances: tuple[Instance, ...]) -> dict[str, dict[str, ApplicationRecord]]:
    state: dict[str, dict[str, ApplicationRecord]] = {}
    for inst in instances:
        apps = state.setdefault(inst.instance_id, {})
        for app in inst.applications:
            apps[app.application_id] = ApplicationRecord(
                app.application_id,
                app.client_id or app.application_id,
                {s.secret_id: SecretRecord(**s.model_dump()) for s in app.secrets},
            )
    return state


def records_to_json(state: dict[str, dict[str, ApplicationRecord]]) -> dict[str, Any]:
    return {
        inst: {app_id: asdict(app) for app_id, app in apps.items()} for inst, apps in state.items()
    }


def records_from_json(data: dict[str, Any]) -> dict[str, dict[str, ApplicationRecord]]:
    return {
        inst: {
            app_id: ApplicationRecord(
                app["application_id"],
                app["client_id"],
                {sid: SecretRecord(**sec) for sid, sec in app["secrets"].items()},
            )
            for app_id, app in apps.items()
        }
        for inst, apps in data.items()
    }


class ClientRejected(Exception):
    """A token request's client credentials, refused: why, in the OAuth endpoint's words."""

    def __init__(self, reason: Literal["unknown", "disabled", "expired"]) -> None:
        super().__init__(reason)
        self.reason = reason


# Compared against when the client is unknown, so that the work done does not tell an unknown
# client_id from a known one with a wrong secret.
_NO_SECRET = ids.client_secret().encode()


class Eiam:
    def __init__(
        self,
        account: Account,
        state: dict[str, dict[str, ApplicationRecord]],
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.account = account
        self.state = state
        self.on_change = on_change
        self.lock = threading.Lock()
        self.actions: dict[str, Handler] = {
            "ObtainApplicationClientSecret": self.obtain,
            "CreateApplicationClientSecret": self.create,
            "ListApplicationClientSecrets": self.list,
            "DeleteApplicationClientSecret": self.delete,
            "EnableApplicationClientSecret": self.enable,
            "DisableApplicationClientSecret": self.disable,
        }

    # -- helpers ------------------------------------------------------------------------------

    def _arn(self, instance_id: str, application_id: str, secret: str | None = None) -> str:
        seed = self.account.seed
        arn = (
            f"acs:eiam:{seed.region}:{seed.account_id}"
            f":instance/{instance_id}/application/{application_id}"
        )
        return arn if secret is None else f"{arn}/secret/{secret}"

    def _app(self, call: Call, secret: str | None) -> tuple[str, ApplicationRecord, str]:
        """Authorizes the call on its resource, then finds the application (RAM decides first,
        as in the real service, so that existence does not leak to the unauthorized)."""
        instance_id = call.required_id("InstanceId")
        application_id = call.required_id("ApplicationId")
        resource = self._arn(instance_id, application_id, secret)
        self.account.authorize(call.identity, f"eiam:{call.action}", resource, call.conditions)
        apps = self.state.get(instance_id)
        if apps is None:
            raise not_found("EntityNotExists.Instance", "instance")
        app = apps.get(application_id)
        if app is None:
            raise not_found("EntityNotExists.Application", "application")
        return instance_id, app, resource

    def _secret(self, call: Call) -> tuple[str, ApplicationRecord, SecretRecord]:
        secret_id = call.required_id("SecretId")
        instance_id, app, _ = self._app(call, secret_id)
        record = app.secrets.get(secret_id)
        if record is None:
            raise not_found("EntityNotExists.Secret", "client secret")
        return instance_id, app, record

    # -- the instance's OAuth token endpoint (oauth.py) --------------------------------------

    def authenticate_client(
        self, instance_id: str, client_id: str, client_secret: str
    ) -> ApplicationRecord:
        """The application whose client_id this is, if `client_secret` is one of its secrets,
        enabled and unexpired (by the emulator's clock); that secret's LastUsedTime becomes now.
        Every secret of the application is compared, each in constant time. ClientRejected
        otherwise: "unknown" for an unknown client_id or a secret that matches none (a deleted
        one included), so that the answer does not tell which."""
        given = client_secret.encode()
        now = self.account.clock.now_ms()
        with self.lock:
            apps = self.state.get(instance_id, {})
            app = next((a for a in apps.values() if a.client_id == client_id), None)
            match: SecretRecord | None = None
            for secret in app.secrets.values() if app is not None else ():
                if hmac.compare_digest(secret.client_secret.encode(), given) and match is None:
                    match = secret
            if app is None:
                hmac.compare_digest(_NO_SECRET, given)
            if app is None or match is None:
                raise ClientRejected("unknown")
            if match.status != "enabled":
                raise ClientRejected("disabled")
            if match.expiration_time is not None and match.expiration_time <= now:
                raise ClientRejected("expired")
            match.last_used_time = now
            self.on_change()
            return app

    # -- actions ------------------------------------------------------------------------------

    def obtain(self, call: Call) -> dict[str, Any]:
        with self.lock:
            instance_id, app, secret = self._secret(call)
            return {
                "ApplicationClientSecret": _secret_fields(
                    instance_id, app, secret, secret.client_secret
                )
            }

    def create(self, call: Call) -> dict[str, Any]:
        expiration = call.optional_int("ExpirationTime")
        if expiration is not None:
            now = self.account.clock.now_ms()
            low = now + MIN_EXPIRATION_MS - EXPIRATION_SLACK_MS
            high = now + MAX_EXPIRATION_MS + EXPIRATION_SLACK_MS
            if not low <= expiration <= high:
                raise ApiError(
                    400,
                    "InvalidParameter.ExpirationTime",
                    "ExpirationTime must be 1 day to 3 years from now, in milliseconds.",
                )
        with self.lock:
            _, app, _ = self._app(call, "*")
            if len(app.secrets) >= MAX_SECRETS_PER_APPLICATION:
                raise ApiError(
                    400,
                    "QuotaExceeded.ApplicationClientSecret",
                    "The application already has 2 client secrets, the most it may have.",
                )
            record = SecretRecord(ids.secret_id(), ids.client_secret(), expiration_time=expiration)
            app.secrets[record.secret_id] = record
            self.on_change()
            return {
                "ApplicationClientSecret": {
                    "ClientId": app.client_id,
                    "SecretId": record.secret_id,
                    "ClientSecret": record.client_secret,
                }
            }

    def list(self, call: Call) -> dict[str, Any]:
        with self.lock:
            # RAM checks List on the resource type Secret, `.../application/{id}/secret/*`, as
            # Create (the API reference, "RAM authorization"; infra/ASSUMPTIONS.md I9).
            instance_id, app, _ = self._app(call, "*")
            items = [
                _secret_fields(instance_id, app, s, _mask(s.client_secret))
                for s in app.secrets.values()
            ]
            return {"ApplicationClientSecrets": items, "TotalCount": len(items)}

    def delete(self, call: Call) -> dict[str, Any]:
        with self.lock:
            _, app, secret = self._secret(call)
            del app.secrets[secret.secret_id]
            self.on_change()
            return {}

    def enable(self, call: Call) -> dict[str, Any]:
        return self._set_status(call, "enabled")

    def disable(self, call: Call) -> dict[str, Any]:
        return self._set_status(call, "disabled")

    def _set_status(self, call: Call, status: str) -> dict[str, Any]:
        with self.lock:
            _, _, secret = self._secret(call)
            secret.status = status
            self.on_change()
            return {}


def _secret_fields(
    instance_id: str, app: ApplicationRecord, secret: SecretRecord, client_secret: str
) -> dict[str, Any]:
    """One ApplicationClientSecret as Obtain and List answer it. LastUsedTime and
    ExpirationTime (int64 milliseconds) are left out while unknown rather than sent as null:
    the metadata declares them integers, null is none, and the SDK's models take every
    response field as optional."""
    fields: dict[str, Any] = {
        "InstanceId": instance_id,
        "ApplicationId": app.application_id,
        "ClientId": app.client_id,
        "SecretId": secret.secret_id,
        "ClientSecret": client_secret,
        "Status": secret.status,
    }
    if secret.last_used_time is not None:
        fields["LastUsedTime"] = secret.last_used_time
    if secret.expiration_time is not None:
        fields["ExpirationTime"] = secret.expiration_time
    return fields


def _mask(secret: str) -> str:
    return secret[:4] + "*" * 8 + secret[-4:] if len(secret) > 12 else "*" * len(secret)
