"""The emulator as one WSGI application: STS, EIAM and KMS on one port, told apart by
`x-acs-version`; each IDaaS instance's OAuth token endpoint, discovery document and JWKS under
/{instance_id}/api/v2/iauths_system/oauth2/ (oauth.py); and a loopback-only admin API under
/_emulator/."""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import os
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from pydantic import TypeAdapter, ValidationError

from functions.wsgi_server import status_line

from . import eiam, ids, kms, oauth, sts
from .call import Call, Handler
from .clock import Clock
from .errors import ApiError
from .faults import ConnectionDropped, Faults, InjectedAnswer, drop_connection
from .faults import apply as apply_fault
from .iam import Account
from .seed import Fault, Seed
from .signature import Request

log = logging.getLogger("vend.emulator")

MAX_BODY_BYTES = 1 << 20
JSON = "application/json;charset=utf-8"
_FAULTS = TypeAdapter(list[Fault])

StartResponse = Callable[[str, list[tuple[str, str]]], Any]
Environ = dict[str, Any]


@dataclass
class _Answer:
    status: int
    payload: bytes
    content_type: str = JSON
    headers: dict[str, str] = field(default_factory=dict)
    reset: bool = False  # no answer at all: the connection is reset


class Emulator:
    """All emulated state, and the WSGI callable that serves it."""

    def __init__(self, seed: Seed, *, state_path: str | Path | None = None) -> None:
        self.seed = seed
        self.clock = Clock()
        self.account = Account(seed, self.clock)
        self.state_path = Path(state_path) if state_path else None
        self._persist_lock = threading.Lock()
        saved = self._load_state()
        keys = kms.keys_from_json(saved["kms"]) if saved else kms.keys_from_seed(seed.kms_keys)
        records = (
            eiam.records_from_json(saved["eiam"])
            if saved
            else eiam.records_from_seed(seed.eiam_instances)
        )
        self.sts = sts.Sts(self.account)
        self.kms = kms.Kms(self.account, keys)
        self.eiam = eiam.Eiam(self.account, records, on_change=self._save_state)
        self.signing_keys = oauth.SigningKeys(
            saved.get("oauth") if saved else None, on_new=self._save_state
        )
        self.oauth = oauth.AuthorizationServer(
            self.eiam,
            self.clock,
            self.signing_keys,
            {i.instance_id: i.access_token_expires_in for i in seed.eiam_instances},
        )
        self.faults = Faults(seed.faults)
        # What was called, by whom, with what outcome: tests read it to prove a call was (or
        # was not) made.
        self.history: deque[tuple[str, str, str]] = deque(maxlen=10_000)
        # Calls per action since start, for `/_emulator/calls`: the history is bounded, and a
        # benchmark makes more calls than it holds.
        self.counts: dict[str, int] = {}
        self._counts_lock = threading.Lock()
        # The parameters of each authenticated call, in the same spirit (kept in memory only).
        self.received: deque[tuple[str, dict[str, str]]] = deque(maxlen=10_000)
        self.services: dict[str, tuple[str, dict[str, Handler]]] = {
            sts.VERSION: ("sts.aliyuncs.com", self.sts.actions),
            eiam.VERSION: (f"eiam.{seed.region}.aliyuncs.com", self.eiam.actions),
            kms.VERSION: (f"kms.{seed.region}.aliyuncs.com", self.kms.actions),
        }
        if saved is None:
            self._save_state()

    # -- persistence ---------------------------------------------------------------------------

    def _load_state(self) -> dict[str, Any] | None:
        if self.state_path is None or not self.state_path.exists():
            return None
        data: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
        return data

    def _save_state(self) -> None:
        if self.state_path is None:
            return
        data = {
            "eiam": eiam.records_to_json(self.eiam.state),
            "kms": kms.keys_to_json(self.kms.keys),
            "oauth": self.signing_keys.to_json(),
        }
        with self._persist_lock:
            # Write then rename, so a crash never leaves half a state file behind.
            fd, tmp = tempfile.mkstemp(dir=self.state_path.parent or ".", prefix=".state-")
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.state_path)

    # -- WSGI ---------------------------------------------------------------------------------

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        request_id = ids.request_id()
        path = environ.get("PATH_INFO") or "/"
        if path.startswith("/_emulator/"):
            status, body, headers = self._admin(environ, path)
            answer = _Answer(status, json.dumps(body).encode(), headers=headers)
        elif (where := oauth.route(path)) is not None:
            answer = self._oauth(environ, where, request_id)
        else:
            answer = self._api(environ, request_id)
        if answer.reset and not drop_connection(environ):
            raise ConnectionDropped(f"injected fault: no answer to request {request_id}")
        # After a reset, waitress finds the connection closed and sends none of this.
        start_response(
            status_line(answer.status),
            [
                ("Content-Type", answer.content_type),
                ("Content-Length", str(len(answer.payload))),
                ("x-acs-request-id", request_id),
                *answer.headers.items(),
            ],
        )
        return [answer.payload]

    def restart(self) -> None:
        """As if the emulator process had restarted on its persistent state: the STS sessions
        issued and the nonces seen are forgotten (a key issued before is unknown afterwards) and
        the faults cleared; EIAM secrets and KMS keys stay, as does the clock, which models
        the time of day. The history of calls is the tests' record, kept too."""
        self.account.restart()
        self.faults.replace(())
        log.info("emulator: restarted (STS sessions and nonces forgotten, faults cleared)")

    def _api(self, environ: Environ, request_id: str) -> _Answer:
        started = time.monotonic()
        action = environ.get("HTTP_X_ACS_ACTION", "")
        host_id = "emulator"
        who = "-"
        try:
            request = _read_request(environ)
            version = request.headers.get("x-acs-version")
            if not version:
                raise ApiError(400, "MissingParameter", "The x-acs-version header is missing.")
            if not action:
                raise ApiError(400, "MissingParameter", "The x-acs-action header is missing.")
            if version not in self.services:
                raise ApiError(
                    400, "InvalidVersion", f"The API version {version!r} is not served here."
                )
            host_id, actions = self.services[version]
            handler = actions.get(action)
            if handler is None:
                raise ApiError(
                    404, "InvalidAction.NotFound", f"The action {action!r} is not found."
                )
            fault = self.faults.pick(action)
            if fault is not None and fault.phase == "before":
                apply_fault(fault, request_id)
            identity = self.account.authenticate(request)
            who = identity.arn
            params = dict(request.query)
            if request.body and "form-urlencoded" in request.headers.get("content-type", ""):
                params.update(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
            call = Call(action, params, identity, self._conditions(environ))
            self.received.append((action, params))
            result = handler(call)
            if fault is not None and fault.phase == "after":
                apply_fault(fault, request_id)
            status, body, headers = 200, {"RequestId": request_id, **result}, {}
        except InjectedAnswer as injected:
            self.history.append((action, who, injected.outcome))
            log.info(
                "%s %s by %s -> injected %s (%.1f ms)",
                action,
                request_id,
                who,
                injected.outcome,
                (time.monotonic() - started) * 1000,
            )
            return _Answer(
                injected.status or 502,
                injected.payload,
                injected.content_type or JSON,
                injected.headers,
                reset=injected.reset,
            )
        except ApiError as err:
            status, headers = err.status, err.headers
            body = {
                "RequestId": request_id,
                "HostId": host_id,
                "Code": err.code,
                "Message": err.message,
                "Recommend": f"https://api.aliyun.com/troubleshoot?q={err.code}",
            }
        except Exception:
            log.exception("emulator: unhandled error in %s", action)
            status, headers = 500, {}
            body = {
                "RequestId": request_id,
                "HostId": host_id,
                "Code": "InternalError",
                "Message": "The request processing has failed due to some unknown error.",
            }
        self.history.append((action, who, str(body.get("Code", "OK"))))
        with self._counts_lock:
            self.counts[action] = self.counts.get(action, 0) + 1
        log.info(
            "%s %s by %s -> %d %s (%.1f ms)",
            action or "-",
            request_id,
            who,
            status,
            body.get("Code", "OK"),
            (time.monotonic() - started) * 1000,
        )
        return _Answer(status, json.dumps(body).encode(), headers=headers)

    def _oauth(self, environ: Environ, where: oauth.Route, request_id: str) -> _Answer:
        """An instance's OAuth endpoint, with the faults injected for its action (OAuthToken,
        OidcDiscovery, OidcJwks), recorded in the history by client_id. A JSON fault answers
        in OAuth's error shape, with Retry-After when it has one."""
        started = time.monotonic()
        action = where.action
        try:
            fault = self.faults.pick(action)
            if fault is not None and fault.phase == "before":
                apply_fault(fault, request_id)
            request = oauth.Request(
                method=environ.get("REQUEST_METHOD", "GET"),
                base_url=_base_url(environ),
                authorization=environ.get("HTTP_AUTHORIZATION", ""),
                content_type=environ.get("CONTENT_TYPE", ""),
                body=_read_body(environ),
            )
            answer = self.oauth.serve(where, request)
            if fault is not None and fault.phase == "after":
                apply_fault(fault, request_id)
        except InjectedAnswer as injected:
            self.history.append((action, "-", injected.outcome))
            log.info("%s %s -> injected %s", action, request_id, injected.outcome)
            return _Answer(
                injected.status or 502,
                injected.payload,
                injected.content_type or JSON,
                injected.headers,
                reset=injected.reset,
            )
        except ApiError as err:  # an injected fault, or a body too large to read
            headers = dict(err.headers)
            if "x-acs-retry-after" in headers:
                headers["Retry-After"] = headers["x-acs-retry-after"]
            body = {"error": err.code, "error_description": err.message}
            answer = oauth.Answer(err.status, body, headers)
        except Exception:
            log.exception("emulator: unhandled error in %s", action)
            body = {"error": "server_error", "error_description": "The emulator failed."}
            answer = oauth.Answer(500, body)
        who = answer.client_id or "-"
        self.history.append((action, who, answer.outcome))
        with self._counts_lock:
            self.counts[action] = self.counts.get(action, 0) + 1
        log.info(
            "%s %s by %s -> %d %s (%.1f ms)",
            action,
            request_id,
            who,
            answer.status,
            answer.outcome,
            (time.monotonic() - started) * 1000,
        )
        return _Answer(answer.status, json.dumps(answer.body).encode(), headers=answer.headers)

    def calls(self, action: str | None = None) -> list[tuple[str, str, str]]:
        """The history, optionally of one action: (action, caller ARN, "OK" or error code)."""
        return [h for h in list(self.history) if action is None or h[0] == action]

    def params(self, action: str) -> list[dict[str, str]]:
        """The parameters each authenticated call of `action` was made with, in order."""
        return [p for a, p in list(self.received) if a == action]

    def _conditions(self, environ: Environ) -> dict[str, str]:
        return {
            "acs:SourceIp": environ.get("REMOTE_ADDR", ""),
            "acs:CurrentTime": self.clock.iso(),
            "acs:SecureTransport": "true" if environ.get("wsgi.url_scheme") == "https" else "false",
        }

    # -- admin --------------------------------------------------------------------------------

    def _admin(self, environ: Environ, path: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        if not _is_loopback(environ.get("REMOTE_ADDR", "")):
            return 403, {"Code": "Forbidden", "Message": "The admin API answers loopback only."}, {}
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/_emulator/health":
            return 200, {"status": "ok"}, {}
        if path == "/_emulator/faults":
            if method == "GET":
                return 200, {"faults": [f.model_dump() for f in self.faults.current()]}, {}
            if method in ("PUT", "POST"):
                try:
                    raw = json.loads(_read_body(environ) or b"[]")
                    self.faults.replace(
                        _FAULTS.validate_python(
                            raw.get("faults", raw) if isinstance(raw, dict) else raw
                        )
                    )
                except (ValueError, ValidationError) as exc:
                    return 400, {"Code": "InvalidParameter", "Message": str(exc)}, {}
                return 200, {"faults": [f.model_dump() for f in self.faults.current()]}, {}
            if method == "DELETE":
                self.faults.replace(())
                return 200, {"faults": []}, {}
            return 405, {"Code": "MethodNotAllowed", "Message": method}, {}
        if path == "/_emulator/restart":
            if method != "POST":
                return 405, {"Code": "MethodNotAllowed", "Message": method}, {}
            sessions, nonces = self.account.held()
            self.restart()
            return 200, {"restarted": True, "sessions": sessions, "nonces": nonces}, {}
        if path == "/_emulator/calls" and method == "GET":
            with self._counts_lock:
                counts = dict(self.counts)
            return 200, {"calls": counts}, {}
        if path == "/_emulator/clock" and method in ("PUT", "POST"):
            try:
                # Time passes for everyone, the callers' signing clocks included (clock.py).
                advance = float(json.loads(_read_body(environ))["advance_s"])
                if not math.isfinite(advance):
                    raise ValueError("advance_s must be a finite number of seconds")
                self.clock.advanced_s += advance
            except (ValueError, KeyError, TypeError) as exc:
                return 400, {"Code": "InvalidParameter", "Message": str(exc)}, {}
            return 200, {"advanced_s": self.clock.advanced_s, "now_ms": self.clock.now_ms()}, {}
        return 404, {"Code": "NotFound", "Message": path}, {}


def _read_body(environ: Environ) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise ApiError(400, "InvalidParameter", "Content-Length is not a number.") from None
    if length > MAX_BODY_BYTES:
        raise ApiError(413, "RequestEntityTooLarge", "The request body is too large.")
    body: bytes = environ["wsgi.input"].read(length) if length else b""
    return body


def _read_request(environ: Environ) -> Request:
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    if environ.get("CONTENT_TYPE"):
        headers["content-type"] = environ["CONTENT_TYPE"]
    # WSGI hands the path over decoded from latin-1; restore the bytes before re-encoding.
    path = (environ.get("PATH_INFO") or "/").encode("latin-1").decode("utf-8", "replace")
    query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    return Request(environ.get("REQUEST_METHOD", "GET"), path, query, headers, _read_body(environ))


def _base_url(environ: Environ) -> str:
    """scheme://host[:port] as the client addressed this server (the Host header)."""
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME')}:{environ.get('SERVER_PORT')}"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False
