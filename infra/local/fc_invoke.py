"""FC's invoke API (version 2016-08-15, and FC 3.0's 2023-03-30) on localhost, for ONE event
function, so that another function's code runs unchanged against `vend local` with
`fc2.Client(endpoint="http://127.0.0.1:PORT", ...).invoke_function(service, "vend-events", ...)`,
and the rotation schedule queues its batches (shared/upstream/fc_invoke.py) as against FC 3.0.

What it emulates (see ../shared/reference/wire.md and fc.md):

- Route: `POST /2016-08-15/services/{service}[.{qualifier}]/functions/{function}/invocations`.
  Any service name (and qualifier) is accepted; the function must be `function_name`, else 404
  `FunctionNotFound`. Another method on that path is 405 `PathNotSupported`; another path under
  `/2016-08-15/` is 400 `PathNotSupported`. `matches()` claims that whole prefix, so that the
  fc2 SDK gets FC's error shape for every FC API path.
- Authentication, when `keys` is given: the fc2 SDK's signature, `authorization: FC <ak>:<sig>`,
  recomputed with the SDK's own `fc2.auth.Auth.sign_request` over the request's method,
  `content-md5`, `content-type`, `date`, `x-fc-*` headers and unescaped path, and compared in
  constant time. The scheme has no nonce and does not sign the body, so a `date` more than
  `max_skew_s` from now is refused, and a `content-md5` the caller sends must match the body.
  When `keys` is None (what `vend serve` does when it knows no keys) nothing is authenticated:
  anyone who can reach the port can invoke the function.
- FC 3.0's route, `POST /2023-03-30/functions/{function}/invocations` (alibabacloud-fc20230330's
  InvokeFunction): the same function and semantics, authenticated, when `keys` is given, by the
  signature V3 (ACS3-HMAC-SHA256, infra/emulator/signature.py: every x-acs-* header and host
  signed, the body's SHA-256 checked), the security token the key comes with in
  `x-acs-security-token`, and `x-acs-date` within `max_skew_s` of now.
- Errors of our own answer FC's error shape, `{"ErrorCode", "ErrorMessage"}` with the header
  `X-Fc-Request-Id`: the fc2 SDK raises `fc2.fc_exceptions.FcError` for any status >= 400, with
  `err_code` from the body's `ErrorCode` and `request_id` from that header.
- Sync (`x-fc-invocation-type` absent or `Sync`): the handler's result is the 200 body. If it
  raises, the answer is FC's unhandled invocation error: status 200, header
  `X-Fc-Error-Type: UnhandledInvocationError`, body `{"errorMessage", "errorType", "stackTrace"}`
  (the stack trace as FC's Python runtime gives it: per frame `[file, line, function, source]`,
  never local variable values). The fc2 SDK raises `FcError` for it too (status_code 200,
  empty err_code, the body in the message).
- Async (`x-fc-invocation-type: Async`): 202 at once; the handler runs on a small thread pool;
  an attempt that raises is retried, with the same request id, up to `max_async_attempts`
  attempts in all. FC's default is 3 retries after the first attempt (`maxAsyncRetryAttempts`,
  0 to 8), so the default here is 4 attempts. Results are dropped (FC would send them to a
  destination); each failed attempt is logged with the request id and the exception type only.
- Payload limits, FC's documented ones ("EntityTooLarge: payload size exceeds maximum allowed
  size"): 32 MB for a sync invocation, 128 KB for an async one; over them, 400 `EntityTooLarge`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import traceback
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Any, TypeAlias
from urllib.parse import parse_qs

from fc2.auth import Auth

from functions.wsgi_server import status_line
from infra.local.fc_context import FunctionInfo, LocalContext, StartResponse

log = logging.getLogger("vend.fc")

KeyLookup: TypeAlias = Callable[[str], tuple[str, str | None] | None]
"""access key id -> (secret, the security token it must come with, or None); None if unknown."""

API_VERSION = "2016-08-15"
API_PREFIX = f"/{API_VERSION}/"
FC3_VERSION = "2023-03-30"
FC3_PREFIX = f"/{FC3_VERSION}/"
MAX_SYNC_PAYLOAD = 32 * 1024 * 1024  # FC: "the maximum payload for a synchronous invocation"
MAX_ASYNC_PAYLOAD = 128 * 1024  # FC: "... and for an asynchronous invocation is 128 KB"
FC_DEFAULT_ASYNC_ATTEMPTS = 1 + 3  # the first attempt and FC's default maxAsyncRetryAttempts
MAX_PENDING_ASYNC = 1024  # accepted async invocations not yet finished; beyond, 429
ASYNC_WORKERS = 4

_INVOKE_PATH = re.compile(
    rf"^/{API_VERSION}/services/(?P<service>[^/]+)/functions/(?P<function>[^/]+)/invocations/?$"
)
_INVOKE3_PATH = re.compile(rf"^/{FC3_VERSION}/functions/(?P<function>[^/]+)/invocations/?$")


class _Refused(Exception):
    """An answer of FC's own error shape, before the function runs."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class FcInvokeApi:
    """A WSGI app: FC's invoke API for one event function (see the module docstring)."""

    max_pending_async = MAX_PENDING_ASYNC

    def __init__(
        self,
        handler: Callable[[bytes, Any], Any],
        *,
        function_name: str = "vend-events",
        keys: KeyLookup | None,
        region: str | None = None,
        account_id: str | None = None,
        timeout_s: int = 15,
        max_async_attempts: int = FC_DEFAULT_ASYNC_ATTEMPTS,
        max_skew_s: int = 900,
        retry_delay_s: float = 0.0,
    ) -> None:
        if max_async_attempts < 1:
            raise ValueError("max_async_attempts counts the first attempt: at least 1")
        self.handler = handler
        self.function_name = function_name
        self.keys = keys
        self.region = region
        self.account_id = account_id
        self.timeout_s = timeout_s  # the function's timeout, as s.yaml sets it (not enforced)
        self.max_async_attempts = max_async_attempts
        self.max_skew_s = max_skew_s
        self.retry_delay_s = retry_delay_s
        self.handler_name = _handler_name(handler)
        self._pool = ThreadPoolExecutor(max_workers=ASYNC_WORKERS, thread_name_prefix="fc-async")
        self._idle = threading.Condition()
        self._pending = 0
        self._closed = threading.Event()

    # -- public -------------------------------------------------------------------------------

    def matches(self, path: str) -> bool:
        """Whether `path` belongs to FC's API (2016-08-15), which this app answers, invocations
        and, with FC's error shape, every other path under that version."""
        return any(path.startswith(p) or path == p.rstrip("/") for p in (API_PREFIX, FC3_PREFIX))

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no accepted async invocation is pending; False if `timeout_s` ran out."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout_s)

    def close(self) -> None:
        """Stop retrying and drop queued async invocations (shutdown)."""
        self._closed.set()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def context(self, request_id: str) -> LocalContext:
        return LocalContext(
            request_id,
            FunctionInfo(self.function_name, self.handler_name, timeout=self.timeout_s),
            self.region,
            self.account_id,
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        request_id = str(uuid.uuid4())
        try:
            return self._invoke(environ, start_response, request_id)
        except _Refused as refused:
            body = json.dumps({"ErrorCode": refused.code, "ErrorMessage": refused.message})
            headers = [("Content-Type", "application/json")]
            if refused.status == 405:
                headers.append(("Allow", "POST"))
            return _respond(start_response, refused.status, body.encode(), request_id, headers)

    # -- the request --------------------------------------------------------------------------

    def _invoke(
        self, environ: dict[str, Any], start_response: StartResponse, request_id: str
    ) -> Iterable[bytes]:
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        # PATH_INFO holds the unescaped path as latin-1 characters; the SDK signs it as UTF-8.
        path = str(environ.get("PATH_INFO") or "/").encode("latin-1").decode("utf-8", "replace")
        if path.startswith(FC3_PREFIX):
            return self._invoke3(environ, start_response, request_id, method, path)
        route = _INVOKE_PATH.match(path)
        if route is None:
            raise _Refused(400, "PathNotSupported", f"'{method}' against '{path}' is not supported")
        if method != "POST":
            raise _Refused(405, "PathNotSupported", f"'{method}' against '{path}' is not supported")
        headers = _request_headers(environ)
        if self.keys is not None:
            self._authenticate(self.keys, method, path, headers, environ)
        service, function = route["service"], route["function"]
        if function != self.function_name:
            name = service.split(".", 1)[0]
            raise _Refused(
                404, "FunctionNotFound", f"function '{function}' does not exist in service '{name}'"
            )
        kind = _invocation_kind(headers)
        body = _read_body(environ, MAX_SYNC_PAYLOAD if kind == "Sync" else MAX_ASYNC_PAYLOAD)
        _check_content_md5(headers, body)
        return self._deliver(kind, body, request_id, start_response)

    def _invoke3(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        request_id: str,
        method: str,
        path: str,
    ) -> Iterable[bytes]:
        """FC 3.0's InvokeFunction: the body is read first, as the signature covers it."""
        route = _INVOKE3_PATH.match(path)
        if route is None:
            raise _Refused(404, "PathNotFound", f"'{method}' against '{path}' is not supported")
        if method != "POST":
            raise _Refused(405, "MethodNotAllowed", f"'{method}' against '{path}' is not allowed")
        headers = _request_headers(environ)
        kind = _invocation_kind(headers)
        body = _read_body(environ, MAX_SYNC_PAYLOAD if kind == "Sync" else MAX_ASYNC_PAYLOAD)
        if self.keys is not None:
            self._authenticate_v3(self.keys, method, path, headers, environ, body)
        if route["function"] != self.function_name:
            raise _Refused(
                404, "FunctionNotFound", f"function '{route['function']}' does not exist"
            )
        return self._deliver(kind, body, request_id, start_response)

    def _deliver(
        self, kind: str, body: bytes, request_id: str, start_response: StartResponse
    ) -> Iterable[bytes]:
        """An async invocation is queued and answered 202 at once; a sync one runs now."""
        if kind == "Async":
            self._accept(body, request_id)
            return _respond(start_response, 202, b"", request_id, [])
        return self._run_sync(body, request_id, start_response)

    def _authenticate_v3(
        self,
        keys: KeyLookup,
        method: str,
        path: str,
        headers: dict[str, str],
        environ: dict[str, Any],
        body: bytes,
    ) -> None:
        from infra.emulator import signature  # noqa: PLC0415 (FC 3.0's route only)
        from infra.emulator.errors import ApiError  # noqa: PLC0415

        query = str(environ.get("QUERY_STRING") or "")
        request = signature.Request(
            method,
            path,
            [(k, v) for k, vs in parse_qs(query, keep_blank_values=True).items() for v in vs],
            headers,
            body,
        )
        try:
            auth = signature.parse_authorization(request)
            known = keys(auth.access_key_id)
            if known is None:
                raise _Refused(403, "InvalidAccessKeyId", "the access key ID does not exist")
            secret, expected_token = known
            signature.verify(request, auth, secret)
        except ApiError as err:
            raise _Refused(err.status, err.code, err.message) from None
        token = headers.get("x-acs-security-token")
        if not hmac.compare_digest(
            (token or "").encode("utf-8"), (expected_token or "").encode("utf-8")
        ):
            raise _Refused(403, "InvalidSecurityToken", "the security token is not valid")
        self._check_skew(headers.get("x-acs-date"), "x-acs-date", iso=True)

    def _authenticate(
        self,
        keys: KeyLookup,
        method: str,
        path: str,
        headers: dict[str, str],
        environ: dict[str, Any],
    ) -> None:
        authorization = headers.get("authorization")
        if not authorization:
            raise _Refused(
                400, "MissingRequiredHeader", "required HTTP header authorization was not specified"
            )
        scheme, _, credential = authorization.partition(" ")
        access_key_id, _, signature = credential.rpartition(":")
        if scheme != "FC" or not access_key_id or not signature:
            raise _Refused(400, "InvalidArgument", "authorization must be 'FC <AccessKeyId>:<sig>'")
        known = keys(access_key_id)
        if known is None:
            raise _Refused(403, "InvalidAccessKeyID", f"invalid access key ID '{access_key_id}'")
        secret, expected_token = known
        query = str(environ.get("QUERY_STRING") or "")
        queries = parse_qs(query, keep_blank_values=True) if query else None
        expected = Auth(access_key_id, secret, expected_token or "").sign_request(
            method, path, headers, queries
        )
        if not hmac.compare_digest(expected.encode("utf-8"), authorization.encode("utf-8")):
            raise _Refused(
                403,
                "SignatureNotMatch",
                "The request signature we calculated does not match the signature you provided."
                " Check your access key and signing method",
            )
        token = headers.get("x-fc-security-token")
        # No token where none is expected; the expected one where one is.
        if not hmac.compare_digest(
            (token or "").encode("utf-8"), (expected_token or "").encode("utf-8")
        ):
            raise _Refused(403, "InvalidSecurityToken", "the security token is not valid")
        self._check_skew(headers.get("date"), "date", iso=False)

    def _check_skew(self, value: str | None, name: str, *, iso: bool) -> None:
        if not value:
            raise _Refused(
                400, "MissingRequiredHeader", f"required HTTP header {name} was not specified"
            )
        try:
            when = (
                datetime.fromisoformat(value.replace("Z", "+00:00"))
                if iso
                else parsedate_to_datetime(value)
            )
        except (TypeError, ValueError, IndexError):
            kind = "an ISO 8601" if iso else "an RFC 1123"
            raise _Refused(400, "InvalidArgument", f"{name} must be {kind} date") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        skew = abs((datetime.now(timezone.utc) - when).total_seconds())
        if skew > self.max_skew_s:
            raise _Refused(
                403,
                "RequestTimeTooSkewed",
                f"the request date is more than {self.max_skew_s} s away from the server time",
            )

    # -- invocations --------------------------------------------------------------------------

    def _run_sync(
        self, body: bytes, request_id: str, start_response: StartResponse
    ) -> Iterable[bytes]:
        try:
            payload = _encode_result(self.handler(body, self.context(request_id)))
        except Exception as exc:
            log.warning("sync invocation %s failed: %s", request_id, type(exc).__name__)
            error = json.dumps(
                {
                    "errorMessage": str(exc),
                    "errorType": type(exc).__name__,
                    "stackTrace": _stack_trace(exc),
                }
            ).encode("utf-8")
            headers = [
                ("Content-Type", "application/json"),
                ("X-Fc-Error-Type", "UnhandledInvocationError"),
            ]
            return _respond(start_response, 200, error, request_id, headers)
        headers = [("Content-Type", "application/octet-stream")]
        return _respond(start_response, 200, payload, request_id, headers)

    def _accept(self, body: bytes, request_id: str) -> None:
        with self._idle:
            if self._pending >= self.max_pending_async:
                raise _Refused(
                    429, "ResourceExhausted", "too many asynchronous invocations are pending"
                )
            self._pending += 1
        try:
            future = self._pool.submit(self._run_async, body, request_id)
        except RuntimeError:  # the pool was shut down
            self._done()
            raise _Refused(429, "ResourceExhausted", "the invoke API is shutting down") from None
        # An invocation that close() cancels before it started is no longer pending either.
        future.add_done_callback(lambda done: self._done() if done.cancelled() else None)

    def _run_async(self, body: bytes, request_id: str) -> None:
        try:
            for attempt in range(1, self.max_async_attempts + 1):
                try:
                    self.handler(body, self.context(request_id))
                except Exception as exc:
                    log.warning(
                        "async invocation %s attempt %d of %d failed: %s",
                        request_id,
                        attempt,
                        self.max_async_attempts,
                        type(exc).__name__,
                    )
                else:
                    log.info("async invocation %s succeeded (attempt %d)", request_id, attempt)
                    return
                if attempt < self.max_async_attempts and self._closed.wait(self.retry_delay_s):
                    break  # closed while waiting to retry
            log.error(
                "async invocation %s failed; FC would send it to the on-failure destination",
                request_id,
            )
        finally:
            self._done()

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()


# -- helpers ----------------------------------------------------------------------------------


def _handler_name(handler: Callable[..., Any]) -> str:
    """FC's `module.function` handler string for a callable, e.g. functions.events.handler."""
    module, name = getattr(handler, "__module__", None), getattr(handler, "__name__", None)
    return f"{module}.{name}" if module and name else "index.handler"


def _request_headers(environ: dict[str, Any]) -> dict[str, str]:
    """Lower-case request headers, with the names the SDK signed (x-fc-*, date, content-*)."""
    headers: dict[str, str] = {}
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-").lower()] = str(value)
    for key, name in (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length")):
        if environ.get(key):
            headers[name] = str(environ[key])
    return headers


def _invocation_kind(headers: dict[str, str]) -> str:
    kind = headers.get("x-fc-invocation-type", "Sync")
    if kind not in ("Sync", "Async"):
        raise _Refused(400, "InvalidArgument", "x-fc-invocation-type must be Sync or Async")
    return kind


def _read_body(environ: dict[str, Any], limit: int) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    if length > limit:
        raise _too_large(limit)
    stream = environ["wsgi.input"]
    # Reading one byte past the limit tells a body that came without a length from one that fits.
    body = bytes(stream.read(length if length >= 0 else limit + 1))
    if len(body) > limit:
        raise _too_large(limit)
    return body


def _too_large(limit: int) -> _Refused:
    return _Refused(
        400, "EntityTooLarge", f"payload size exceeds maximum allowed size ({limit} bytes)"
    )


def _check_content_md5(headers: dict[str, str], body: bytes) -> None:
    """The signature covers `content-md5` but not the body: a caller that sends one gets it
    checked (base64 of the MD5 digest, RFC 1864)."""
    sent = headers.get("content-md5")
    if sent is None:
        return
    digest = base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()
    if not hmac.compare_digest(sent.encode("utf-8"), digest.encode("utf-8")):
        raise _Refused(400, "InvalidArgument", "content-md5 does not match the body")


def _encode_result(result: Any) -> bytes:
    if result is None:
        return b""
    if isinstance(result, (bytes, bytearray, memoryview)):
        return bytes(result)
    if isinstance(result, str):
        return result.encode("utf-8")
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _stack_trace(exc: BaseException) -> list[list[str]]:
    """FC's Python stack trace: per frame [file, line, function, source], our own frames left
    out. Frames are extracted without their local variables."""
    frames = traceback.extract_tb(exc.__traceback__)
    return [
        [f'File "{frame.filename}"', f"line {frame.lineno}", f"in {frame.name}", frame.line or ""]
        for frame in frames
        if frame.filename != __file__
    ]


def _respond(
    start_response: StartResponse,
    status: int,
    body: bytes,
    request_id: str,
    headers: list[tuple[str, str]],
) -> list[bytes]:
    headers = [
        *headers,
        ("X-Fc-Request-Id", request_id),
        ("Content-Length", str(len(body))),
    ]
    start_response(status_line(status), headers)
    return [body]
