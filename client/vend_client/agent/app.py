"""The agent's HTTP API (contract section 13), as a WSGI app: routing, the checks every request
passes, the answers, and one log line per request.

In order: a request that names a proxy hop (`X-Forwarded-For`, `Forwarded`) is refused before
anything else (a server-side request forgery relayed through a proxy must not get a secret);
`GET /v1/health` needs nothing more; every other request needs the agent's token; then the path,
the method and the query are checked, and only then is anything asked."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

from ..wire.arns import ID_PATTERN
from ..wire.traceparent import trace_id_of
from .auth import matches
from .errors import Refusal, refusal_of
from .tokens import Secrets, TokenCache, check_scope, secret_of

__all__ = ["TOKEN_HEADER", "AgentApp", "Secrets"]

TOKEN_HEADER = "X-Vend-Agent-Token"
_TOKEN_ENVIRON = "HTTP_" + TOKEN_HEADER.upper().replace("-", "_")
_PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED")
_ID = re.compile(ID_PATTERN)
_IDS = ("instance_id", "application_id", "secret_id")
_MAX_FIELDS = 8

log = logging.getLogger("vend_client.agent")

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


@dataclass
class _Answer:
    status: int
    body: dict[str, Any]
    headers: list[tuple[str, str]] = field(default_factory=list)
    log: dict[str, Any] = field(default_factory=dict)  # what the request line adds


class _Refused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(refusal.code)
        self.refusal = refusal


class AgentApp:
    """`secrets` answers `/v1/secret`; `tokens` (None: no token endpoint configured) answers
    `/v1/token`; `token` is what callers must send; `url` and `timeout_s` are the service's, for
    the words of its failures; `wall_clock` is epoch seconds, `clock` the seconds a request's
    duration is measured in."""

    def __init__(
        self,
        *,
        secrets: Secrets,
        tokens: TokenCache | None,
        token: str,
        url: str,
        timeout_s: float,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self._secrets = secrets
        self._tokens = tokens
        self._token = token
        self._url = url
        self._timeout_s = timeout_s
        self._wall_clock = wall_clock
        self._clock = clock
        self._routes: dict[str, tuple[tuple[str, ...], Callable[[dict[str, str]], _Answer]]] = {
            "/v1/secret": ((*_IDS, "refresh_now"), self._secret),
            "/v1/token": ((*_IDS, "scope", "refresh_now"), self._token_answer),
        }

    def __repr__(self) -> str:
        return f"AgentApp(url={self._url!r}, tokens={self._tokens is not None})"

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        started = self._clock()
        request_id = uuid.uuid4().hex
        method = str(environ.get("REQUEST_METHOD", ""))
        path = str(environ.get("PATH_INFO", ""))
        try:
            answer = self._handle(environ, method, path)
        except _Refused as refused:
            answer = _refusal(refused.refusal)
        except Exception:
            log.error(
                "request failed",
                exc_info=True,
                extra={"fields": {"event": "bug", "request_id": request_id}},
            )
            answer = _refusal(
                Refusal(500, "InternalError", f"the agent failed (request {request_id})")
            )
        body = json.dumps(answer.body, separators=(",", ":")).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Request-Id", request_id),
            *answer.headers,
        ]
        start_response(_status_line(answer.status), headers)
        log.info(
            "request",
            extra={
                "fields": {
                    "event": "request",
                    "method": method[:16],
                    "path": path[:128],
                    "status": answer.status,
                    "duration_ms": round((self._clock() - started) * 1000, 2),
                    "request_id": request_id,
                    **_trace(environ),
                    **answer.log,
                }
            },
        )
        return [body]

    # -- the checks --------------------------------------------------------------------------

    def _handle(self, environ: dict[str, Any], method: str, path: str) -> _Answer:
        if any(name in environ for name in _PROXY_HEADERS):
            raise _Refused(
                Refusal(
                    400,
                    "ForwardedRequest",
                    "a request that passed through a proxy (X-Forwarded-For or Forwarded) is "
                    "refused: the agent answers only callers on this host",
                )
            )
        if path == "/v1/health":
            _only_get(method)
            return _Answer(200, {"status": "ok"})
        sent = environ.get(_TOKEN_ENVIRON)
        if not matches(sent, self._token):
            said = "missing" if sent is None else "wrong"
            raise _Refused(Refusal(401, "Unauthenticated", f"the {TOKEN_HEADER} header is {said}"))
        route = self._routes.get(path)
        if route is None:
            raise _Refused(Refusal(404, "NotFound", "no such path: GET /v1/secret or /v1/token"))
        _only_get(method)
        allowed, run = route
        params = _query(str(environ.get("QUERY_STRING", "")), allowed)
        try:
            answer = run(params)
        except _Refused:
            raise
        except Exception as exc:
            refusal = refusal_of(exc, url=self._url, timeout_s=self._timeout_s)
            if refusal is None:
                raise
            answer = _refusal(refusal)
        answer.log.update({k: params[k] for k in _IDS if k in params})
        return answer

    # -- the answers -------------------------------------------------------------------------

    def _secret(self, params: dict[str, str]) -> _Answer:
        ids = _ids(params)
        if _refresh(params):
            vended = self._secrets.refresh_now(*ids)
        else:
            vended = secret_of(self._secrets, *ids)
        return _Answer(
            200,
            {
                "instance_id": vended.instance_id,
                "application_id": vended.application_id,
                "secret_id": vended.secret_id,
                "client_id": vended.client_id,
                "client_secret": vended.client_secret,
                "status": vended.status,
                "expiration_time": vended.expiration_time,
            },
        )

    def _token_answer(self, params: dict[str, str]) -> _Answer:
        ids = _ids(params)
        scope = params.get("scope") or None
        if scope is not None:
            try:
                check_scope(scope)
            except ValueError as exc:
                raise _Refused(Refusal(400, "InvalidParameter", str(exc))) from None
        if self._tokens is None:
            raise _Refused(
                Refusal(
                    501,
                    "TokenEndpointNotConfigured",
                    "the agent has no token endpoint: start it with --token-endpoint or "
                    "VEND_TOKEN_ENDPOINT",
                )
            )
        token = self._tokens.get(*ids, scope, refresh=_refresh(params))
        return _Answer(200, token.answer(self._wall_clock()))


def _only_get(method: str) -> None:
    if method != "GET":
        raise _Refused(Refusal(405, "MethodNotAllowed", f"{method[:16]} is not allowed: GET"))


def _query(text: str, allowed: tuple[str, ...]) -> dict[str, str]:
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_FIELDS)
    except ValueError:
        raise _Refused(Refusal(400, "InvalidParameter", "too many query parameters")) from None
    params: dict[str, str] = {}
    for name, value in pairs:
        if name not in allowed:
            shown = name if re.fullmatch(r"[a-z_]{1,32}", name) else "(a name it does not know)"
            raise _Refused(
                Refusal(
                    400,
                    "InvalidParameter",
                    f"unknown query parameter {shown}: this path takes {', '.join(allowed)}",
                )
            )
        if name in params:
            raise _Refused(Refusal(400, "InvalidParameter", f"{name} is given twice"))
        params[name] = value
    return params


def _ids(params: dict[str, str]) -> tuple[str, str, str | None]:
    """The IDs asked for; the secret's None (not given) for the application's current secret
    (contract section 14)."""
    for name in _IDS:
        value = params.get(name)
        if value is None and name == "secret_id":
            continue
        if value is None:
            raise _Refused(Refusal(400, "InvalidParameter", f"{name} is required"))
        if not _ID.fullmatch(value):
            raise _Refused(
                Refusal(400, "InvalidParameter", f"{name} must be 1 to 64 of [A-Za-z0-9_-]")
            )
    return params["instance_id"], params["application_id"], params.get("secret_id")


def _refresh(params: dict[str, str]) -> bool:
    value = params.get("refresh_now", "false")
    if value not in ("true", "false"):
        raise _Refused(Refusal(400, "InvalidParameter", "refresh_now must be true or false"))
    return value == "true"


def _refusal(refusal: Refusal) -> _Answer:
    headers = [("Allow", "GET")] if refusal.status == 405 else []
    if refusal.retry_after is not None:
        headers.append(("Retry-After", str(refusal.retry_after)))
    logged: dict[str, Any] = {"error": refusal.code}
    if refusal.request_id is not None:
        logged["upstream_request_id"] = refusal.request_id
    return _Answer(refusal.status, refusal.body(), headers, logged)


def _trace(environ: dict[str, Any]) -> dict[str, str]:
    """`trace_id` for the request line, when the caller sent a valid W3C `traceparent`."""
    trace_id = trace_id_of(environ.get("HTTP_TRACEPARENT"))
    return {} if trace_id is None else {"trace_id": trace_id}


def _status_line(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} Error"
