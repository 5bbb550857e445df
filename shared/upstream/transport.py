"""The service's STS, EIAM and KMS calls on the wire: the request tea-openapi's `call_api` builds
for an RPC action (the same headers), signed with ACS3-HMAC-SHA256 by Alibaba Cloud's own
signer (`alibabacloud-openapi-util`, whose `get_authorization` tea-openapi 0.4 carries
verbatim), sent over pooled HTTP/1.1 keep-alive connections of the standard library.

Why not `call_api` all the way: its sending goes through darabonba, requests and urllib3, about
0.56 ms of CPU per call against 0.21 ms here; importing it (its signer module imports aiohttp)
takes about 200 ms of every cold start, the signer package alone about 50; and its first call
to each endpoint host builds an SSL context with the CA bundle (about 36 ms), even over http.
Here one SSL context serves every https host, built once. What the SDK decides about an answer
is kept: an error answer raises tea-openapi's own ClientException, ServerException or
ThrottlingException with the same fields, so the callers' mapping of codes is unchanged.

Each call ends within its `timeout_ms`, connect included, however slowly an upstream trickles
its answer (`shared.upstream.bounded`). A request signed elsewhere (a caller's RAM proof, which
the service has STS verify) goes through `exchange`, on the same connections and terms."""

from __future__ import annotations

import hashlib
import http.client
import json
import select
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from alibabacloud_openapi_util.client import Client as Signer
from alibabacloud_tea_openapi.exceptions import (
    ClientException,
    ServerException,
    ThrottlingException,
)
from alibabacloud_tea_util.client import Client as TeaUtil
from Tea.request import TeaRequest

from shared.upstream.bounded import (
    BoundedConnection,
    BoundedHTTPConnection,
    BoundedHTTPSConnection,
    tls_context,
)
from shared.wire.credentials import Credentials
from shared.wire.endpoint import Endpoint

SIGNATURE_ALGORITHM = "ACS3-HMAC-SHA256"
EMPTY_PAYLOAD_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_BODY_BYTES = 1 << 20  # no answer of these APIs comes near; a hostile one is cut here
MAX_IDLE_PER_HOST = 16

WireKind = Literal["connection", "dropped", "timeout", "unreadable"]


class WireError(Exception):
    """The exchange failed below the API: `kind` says how far it got (nothing sent, the
    connection lost or no answer in time after sending, or an answer that is not JSON)."""

    def __init__(self, kind: WireKind, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.kind: WireKind = kind
        self.status_code = status


@dataclass(frozen=True)
class Answer:
    """An HTTP answer as it came: `body` is at most MAX_BODY_BYTES + 1 bytes (longer: cut)."""

    status: int
    headers: http.client.HTTPMessage
    body: bytes


class RpcTransport:
    """Keep-alive connections per endpoint, shared by every thread and credential."""

    def __init__(self, max_idle_per_host: int = MAX_IDLE_PER_HOST) -> None:
        self._max_idle = max_idle_per_host
        self._idle: dict[Endpoint, list[BoundedConnection]] = {}
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self._user_agent = TeaUtil.get_user_agent(None)

    def call(
        self,
        endpoint: Endpoint,
        credentials: Credentials,
        action: str,
        version: str,
        query: dict[str, str],
        *,
        connect_timeout_ms: int,
        timeout_ms: int,
    ) -> Any:
        """The JSON body of a 2xx answer; an error answer raises tea-openapi's exceptions, a
        failed exchange WireError. The whole call (connect, send, the answer) ends within
        `timeout_ms`; connecting, within `connect_timeout_ms` too."""
        path, headers = self._signed(endpoint, credentials, action, version, query)
        answer = self.exchange(
            endpoint,
            path,
            headers,
            connect_timeout_ms=connect_timeout_ms,
            timeout_ms=timeout_ms,
        )
        return _answer(answer.status, answer.headers, answer.body)

    def exchange(
        self,
        endpoint: Endpoint,
        path: str,
        headers: dict[str, str],
        *,
        connect_timeout_ms: int,
        timeout_ms: int,
        body: bytes = b"",
    ) -> Answer:
        """POSTs `body` (empty unless given) to `path` with exactly `headers` (http.client adds
        only Content-Length, and Host and Accept-Encoding: identity when they are not there), on
        a pooled connection, and returns the answer as it came, or raises WireError. The whole
        exchange ends within `timeout_ms`; connecting, within `connect_timeout_ms` too. For a
        request signed elsewhere (a RAM proof, an FC invocation); `call` signs its own."""
        end = time.monotonic() + timeout_ms / 1000
        conn = self._connection(endpoint, min(connect_timeout_ms, timeout_ms))
        try:
            conn.until(end)
            conn.request("POST", path, body=body, headers=headers)
            response = conn.getresponse()
            body = response.read(MAX_BODY_BYTES + 1)
        except TimeoutError:
            conn.close()
            raise WireError("timeout", f"no answer from {endpoint.host} in time") from None
        except ValueError:
            # http.client refuses a header value with a line break (a token as an upstream
            # sent it): nothing went out.
            conn.close()
            raise WireError("connection", "a header value could not be sent") from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise WireError(
                "dropped", f"the connection to {endpoint.host} was lost: {type(exc).__name__}"
            ) from None
        if response.will_close or len(body) > MAX_BODY_BYTES:
            conn.close()
        else:
            self._release(endpoint, conn)
        return Answer(response.status, response.headers, body)

    def _signed(
        self,
        endpoint: Endpoint,
        credentials: Credentials,
        action: str,
        version: str,
        query: dict[str, str],
    ) -> tuple[str, dict[str, str]]:
        """The request tea-openapi's `do_request` builds for an RPC call with no body."""
        request = TeaRequest()
        request.protocol = endpoint.protocol
        request.method = "POST"
        request.pathname = "/"
        request.query = query
        headers = {
            "host": endpoint.host,
            "x-acs-version": version,
            "x-acs-action": action,
            "user-agent": self._user_agent,
            "x-acs-date": Signer.get_timestamp(),
            "x-acs-signature-nonce": TeaUtil.get_nonce(),
            "accept": "application/json",
            "x-acs-content-sha256": EMPTY_PAYLOAD_SHA256,
        }
        if credentials.security_token:
            headers["x-acs-accesskey-id"] = credentials.access_key_id
            headers["x-acs-security-token"] = credentials.security_token
        request.headers = headers
        headers["Authorization"] = Signer.get_authorization(
            request,
            SIGNATURE_ALGORITHM,
            EMPTY_PAYLOAD_SHA256,
            credentials.access_key_id,
            credentials.access_key_secret,
        )
        # The signer canonicalizes the query itself; any correct encoding of it will do here.
        return "/?" + urlencode(query), headers

    def _connection(self, endpoint: Endpoint, connect_timeout_ms: int) -> BoundedConnection:
        with self._lock:
            idle = self._idle.get(endpoint)
            while idle:
                pooled = idle.pop()
                if _still_open(pooled):
                    return pooled
                pooled.close()
        timeout = connect_timeout_ms / 1000
        conn: BoundedConnection
        # http.client parses host[:port] itself, bracketed IPv6 literals included.
        if endpoint.protocol == "https":
            conn = BoundedHTTPSConnection(
                endpoint.host, timeout=timeout, context=self._tls_context()
            )
        else:
            conn = BoundedHTTPConnection(endpoint.host, timeout=timeout)
        try:
            conn.connect()
        except OSError as exc:  # refused, unreachable, timed out, TLS failed: nothing was sent
            conn.close()
            raise WireError(
                "connection", f"no connection to {endpoint.host}: {type(exc).__name__}"
            ) from None
        return conn

    def _release(self, endpoint: Endpoint, conn: BoundedConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(endpoint, [])
            if len(idle) < self._max_idle:
                idle.append(conn)
                return
        conn.close()

    def _tls_context(self) -> ssl.SSLContext:
        # One context for every host, built on first use: loading the CA bundle is the cost.
        with self._lock:
            if self._tls is None:
                import certifi  # noqa: PLC0415 (https only; the bundle requests verifies with)

                self._tls = tls_context(cafile=certifi.where())
            return self._tls

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


def _still_open(conn: http.client.HTTPConnection) -> bool:
    """An idle keep-alive connection the server has not closed: nothing may be readable on it
    (a readable idle socket is at EOF or holds garbage)."""
    sock = conn.sock
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return not poller.poll(0)
    except (OSError, ValueError):
        return False


def _answer(status: int, headers: http.client.HTTPMessage, body: bytes) -> Any:
    """What tea-openapi's `do_request` makes of an answer, for a JSON body."""
    if len(body) > MAX_BODY_BYTES:
        raise WireError("unreadable", f"an answer of over {MAX_BODY_BYTES} bytes", status=status)
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # an HTML error page, a garbled or hostile body
        raise WireError("unreadable", "an answer that is not JSON", status=status) from None
    if status < 400:
        return data
    if not isinstance(data, dict):
        raise WireError("unreadable", "an error answer that is not an object", status=status)
    request_id = data.get("RequestId") or data.get("requestId")
    code = data.get("Code") or data.get("code")
    fields: dict[str, Any] = {
        "status_code": status,
        "code": f"{code}",
        "message": f"code: {status}, {data.get('Message') or data.get('message')} "
        f"request id: {request_id}",
        "detail": f"{data.get('Detail') or data.get('detail')}",
        "description": f"{data.get('Description') or data.get('description')}",
        "data": data,
        "request_id": str(request_id) if request_id is not None else None,
    }
    retry_after = _retry_after(headers.get("x-acs-retry-after"))
    if retry_after is not None:
        raise ThrottlingException(retry_after=retry_after, **fields)
    if status < 500:
        raise ClientException(**fields)
    raise ServerException(**fields)


def _retry_after(value: str | None) -> int | None:
    """`x-acs-retry-after` as tea-openapi reads it: a positive integer, else nothing."""
    try:
        wait = int(value or "")
    except ValueError:
        return None
    return wait if wait > 0 else None


__all__ = ["MAX_BODY_BYTES", "Answer", "RpcTransport", "WireError"]
