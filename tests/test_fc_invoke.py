"""FC's invoke API on localhost (infra/local/fc_invoke.py), driven by the unchanged fc2 SDK over a real
HTTP server, as another function's code would call `vend local`."""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import fc2
import pytest
import requests
from fc2.auth import Auth
from fc2.fc_exceptions import FcError

from functions.wsgi_server import WsgiServer
from infra.local.fc_invoke import MAX_ASYNC_PAYLOAD, MAX_SYNC_PAYLOAD, FcInvokeApi

pytestmark = pytest.mark.contract("6")

KEY = ("LTAIfcInvokeTest0001", "fc-invoke-test-secret-0001")
STS_KEY = ("STS.fcInvokeTest0002", "fc-invoke-test-secret-0002")
STS_TOKEN = "fc-invoke-test-token-0002"
KEYS: dict[str, tuple[str, str | None]] = {
    KEY[0]: (KEY[1], None),
    STS_KEY[0]: (STS_KEY[1], STS_TOKEN),
}
PATH = "/2016-08-15/services/svc/functions/vend-events/invocations"
SYNC = {"x-fc-invocation-type": "Sync"}
ASYNC = {"x-fc-invocation-type": "Async"}

Serve = Callable[..., tuple[FcInvokeApi, str]]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """Start FcInvokeApi(handler, keys=KEYS unless given, ...) on a free port: (api, url)."""
    running: list[tuple[FcInvokeApi, WsgiServer]] = []

    def start(handler: Callable[[bytes, Any], Any], **kwargs: Any) -> tuple[FcInvokeApi, str]:
        kwargs.setdefault("keys", KEYS.get)
        api = FcInvokeApi(handler, region="cn-hangzhou", account_id="1234567890123456", **kwargs)
        server = WsgiServer(api).start()
        running.append((api, server))
        return api, server.url

    yield start
    for api, server in running:
        api.close()
        server.stop()


def client(url: str, key: tuple[str, str] = KEY, token: str = "") -> Any:
    return fc2.Client(
        endpoint=url, accessKeyID=key[0], accessKeySecret=key[1], securityToken=token, Timeout=5
    )


class Recorder:
    """A handler: records each call's payload and context; fails its first `failures` calls."""

    def __init__(self, failures: int = 0, result: Any = None) -> None:
        self.failures = failures
        self.result = result
        self.calls: list[tuple[bytes, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, event: bytes, context: Any) -> Any:
        with self.lock:
            self.calls.append((event, context))
            attempt = len(self.calls)
        if attempt <= self.failures:
            raise RuntimeError(f"attempt {attempt} fails")
        if self.result is not None:
            return self.result
        return json.dumps({"echo": event.decode("latin-1"), "request_id": context.request_id})

    @property
    def request_ids(self) -> list[str]:
        return [context.request_id for _, context in self.calls]


def signed_headers(
    path: str = PATH, date: str | None = None, key: tuple[str, str] = KEY, **extra: str
) -> dict[str, str]:
    """Headers as the SDK builds them, signed with the SDK's own Auth, for a hand-made request."""
    headers = {
        "date": date or email.utils.formatdate(usegmt=True),
        "content-type": "application/json",
        **extra,
    }
    headers["authorization"] = Auth(key[0], key[1]).sign_request("POST", path, headers)
    return headers


# -- sync ---------------------------------------------------------------------------------------


def test_sync_echo_returns_the_handler_bytes_and_the_request_id(serve: Serve) -> None:
    handler = Recorder()
    _, url = serve(handler)
    payload = b'{"action":"obtain"}\xff\x00'  # any bytes, not only UTF-8
    resp = client(url).invoke_function("svc", "vend-events", payload=payload, headers=SYNC)
    request_id = resp.headers["x-fc-request-id"]
    assert json.loads(resp.data) == {
        "echo": payload.decode("latin-1"),
        "request_id": request_id,
    }
    assert handler.calls[0][0] == payload
    assert "x-fc-error-type" not in resp.headers


def test_the_context_is_fc_s(serve: Serve) -> None:
    contexts: list[Any] = []

    def handler(event: bytes, context: Any) -> bytes:
        contexts.append(context)
        return b""

    _, url = serve(handler, timeout_s=7)
    client(url).invoke_function("svc", "vend-events", payload=b"{}", headers=SYNC)
    client(url).invoke_function("svc", "vend-events", payload=b"{}", headers=SYNC)
    first, second = contexts
    assert first.request_id != second.request_id
    assert first.function.name == "vend-events"
    assert first.function.handler == "test_fc_invoke.handler"  # FC's module.function
    assert first.function.timeout == 7
    assert (first.region, first.account_id, first.credentials) == (
        "cn-hangzhou",
        "1234567890123456",
        None,
    )


def test_no_invocation_type_header_is_a_sync_call(serve: Serve) -> None:
    _, url = serve(Recorder(result=b"done"))
    resp = client(url).invoke_function("svc", "vend-events", payload=b"{}")
    assert resp.data == b"done"


@pytest.mark.parametrize(
    ("result", "body"),
    [(b"raw", b"raw"), ("text \u00e9", "text \u00e9".encode()), ({"a": [1]}, b'{"a":[1]}')],
)
def test_the_handler_result_becomes_the_body(serve: Serve, result: Any, body: bytes) -> None:
    _, url = serve(lambda event, context: result)
    resp = client(url).invoke_function("svc", "vend-events", payload=b"{}", headers=SYNC)
    assert resp.data == body


@pytest.mark.parametrize("service", ["svc", "another-service", "svc.LATEST"])
def test_any_service_name_works(serve: Serve, service: str) -> None:
    _, url = serve(Recorder(result=b"ok"))
    resp = client(url).invoke_function(service, "vend-events", payload=b"{}", headers=SYNC)
    assert resp.data == b"ok"


def test_a_qualifier_is_accepted(serve: Serve) -> None:
    _, url = serve(Recorder(result=b"ok"))
    resp = client(url).invoke_function(
        "svc", "vend-events", payload=b"{}", headers=SYNC, qualifier="prod"
    )
    assert resp.data == b"ok"


def test_an_unknown_function_is_function_not_found(serve: Serve) -> None:
    handler = Recorder()
    _, url = serve(handler)
    with pytest.raises(FcError) as raised:
        client(url).invoke_function("svc", "vend-http", payload=b"{}", headers=SYNC)
    assert (raised.value.status_code, raised.value.err_code) == (404, "FunctionNotFound")
    assert raised.value.request_id not in ("", "unknown")
    assert handler.calls == []


def test_a_raising_handler_is_fc_s_unhandled_invocation_error(serve: Serve) -> None:
    def failing(event: bytes, context: Any) -> bytes:
        hidden = "local-value-never-sent"  # a local variable: not in the stack trace
        assert hidden
        raise ValueError("the message of the error")

    _, url = serve(failing)
    # The SDK raises FcError for X-Fc-Error-Type even on a 200, with no ErrorCode, the body in
    # the message and the request id from the header.
    with pytest.raises(FcError) as raised:
        client(url).invoke_function("svc", "vend-events", payload=b"{}", headers=SYNC)
    error = raised.value
    assert (error.status_code, error.err_code) == (200, "")
    body = json.loads(error.message)
    assert body["errorMessage"] == "the message of the error"
    assert body["errorType"] == "ValueError"
    assert body["RequestId"] == error.request_id != "unknown"
    frames = body["stackTrace"]
    assert frames and all(len(frame) == 4 for frame in frames)
    assert all(isinstance(part, str) for frame in frames for part in frame)
    assert frames[-1][2:] == ["in failing", 'raise ValueError("the message of the error")']
    assert frames[-1][0] == f'File "{__file__}"'
    assert "local-value-never-sent" not in error.message
    assert "infra/local/fc_invoke.py" not in error.message  # only the function's own frames


def test_the_unhandled_error_on_the_wire(serve: Serve) -> None:
    def failing(event: bytes, context: Any) -> bytes:
        raise KeyError("k")

    _, url = serve(failing)
    resp = requests.post(url + PATH, data=b"{}", headers=signed_headers(), timeout=5)
    assert resp.status_code == 200
    assert resp.headers["X-Fc-Error-Type"] == "UnhandledInvocationError"
    assert resp.headers["X-Fc-Request-Id"]
    assert set(resp.json()) == {"errorMessage", "errorType", "stackTrace"}
    assert resp.json()["errorMessage"] == "'k'"  # str(exc)


def test_an_unknown_invocation_type_is_refused(serve: Serve) -> None:
    handler = Recorder()
    _, url = serve(handler)
    with pytest.raises(FcError) as raised:
        client(url).invoke_function(
            "svc", "vend-events", payload=b"{}", headers={"x-fc-invocation-type": "Later"}
        )
    assert (raised.value.status_code, raised.value.err_code) == (400, "InvalidArgument")
    assert handler.calls == []


# -- authentication -------------------------------------------------------------------------------


def test_a_security_token_is_checked(serve: Serve) -> None:
    _, url = serve(Recorder(result=b"ok"))
    resp = client(url, STS_KEY, STS_TOKEN).invoke_function(
        "svc", "vend-events", payload=b"{}", headers=SYNC
    )
    assert resp.data == b"ok"


@pytest.mark.parametrize(
    ("key", "token", "status", "code"),
    [
        ((KEY[0], "not-the-secret"), "", 403, "SignatureNotMatch"),
        (("LTAIfcInvokeUnknown01", KEY[1]), "", 403, "InvalidAccessKeyID"),
        (STS_KEY, "fc-invoke-test-token-other", 403, "InvalidSecurityToken"),
        (STS_KEY, "", 403, "InvalidSecurityToken"),  # the token is missing
        (KEY, "fc-invoke-test-token-unexpected", 403, "InvalidSecurityToken"),
    ],
    ids=["bad-secret", "unknown-key", "other-token", "missing-token", "unexpected-token"],
)
def test_a_bad_credential_is_refused(
    serve: Serve, key: tuple[str, str], token: str, status: int, code: str
) -> None:
    handler = Recorder()
    _, url = serve(handler)
    with pytest.raises(FcError) as raised:
        client(url, key, token).invoke_function("svc", "vend-events", payload=b"{}", headers=SYNC)
    assert (raised.value.status_code, raised.value.err_code) == (status, code)
    assert raised.value.request_id not in ("", "unknown")
    assert handler.calls == []


def test_without_keys_nothing_is_authenticated(serve: Serve) -> None:
    _, url = serve(Recorder(result=b"ok"), keys=None)
    resp = client(url, ("anyone", "anything")).invoke_function(
        "svc", "vend-events", payload=b"{}", headers=SYNC
    )
    assert resp.data == b"ok"
    assert requests.post(url + PATH, data=b"{}", timeout=5).content == b"ok"


def test_an_unsigned_request_is_refused(serve: Serve) -> None:
    _, url = serve(Recorder())
    resp = requests.post(url + PATH, data=b"{}", timeout=5)
    assert resp.status_code == 400
    assert resp.json()["ErrorCode"] == "MissingRequiredHeader"


def test_a_signed_request_built_by_hand_is_accepted(serve: Serve) -> None:
    """The control for the tests below: the same construction with nothing changed works."""
    _, url = serve(Recorder(result=b"ok"))
    resp = requests.post(url + PATH, data=b"{}", headers=signed_headers(), timeout=5)
    assert (resp.status_code, resp.content) == (200, b"ok")


@pytest.mark.parametrize("offset_s", [-901, 901, -3600])
def test_a_stale_or_future_date_is_refused(serve: Serve, offset_s: int) -> None:
    handler = Recorder()
    _, url = serve(handler)
    date = email.utils.formatdate(time.time() + offset_s, usegmt=True)
    resp = requests.post(url + PATH, data=b"{}", headers=signed_headers(date=date), timeout=5)
    assert resp.status_code == 403
    assert resp.json() == {
        "ErrorCode": "RequestTimeTooSkewed",
        "ErrorMessage": resp.json()["ErrorMessage"],
    }
    assert resp.headers["X-Fc-Request-Id"]
    assert handler.calls == []


def test_a_date_within_the_skew_is_accepted(serve: Serve) -> None:
    _, url = serve(Recorder(result=b"ok"))
    date = email.utils.formatdate(time.time() - 890, usegmt=True)
    resp = requests.post(url + PATH, data=b"{}", headers=signed_headers(date=date), timeout=5)
    assert resp.status_code == 200


def test_the_x_fc_headers_are_signed(serve: Serve) -> None:
    """Turning a signed Sync call into an Async one breaks the signature."""
    handler = Recorder()
    _, url = serve(handler)
    headers = signed_headers(**SYNC)
    headers["x-fc-invocation-type"] = "Async"
    resp = requests.post(url + PATH, data=b"{}", headers=headers, timeout=5)
    assert (resp.status_code, resp.json()["ErrorCode"]) == (403, "SignatureNotMatch")


def test_the_path_is_signed(serve: Serve) -> None:
    _, url = serve(Recorder())
    other = PATH.replace("/svc/", "/other/")
    resp = requests.post(url + other, data=b"{}", headers=signed_headers(), timeout=5)
    assert (resp.status_code, resp.json()["ErrorCode"]) == (403, "SignatureNotMatch")


def test_a_content_md5_must_match_the_body(serve: Serve) -> None:
    handler = Recorder(result=b"ok")
    _, url = serve(handler)
    md5 = base64.b64encode(hashlib.md5(b"{}").digest()).decode()
    good = signed_headers(**{"content-md5": md5})
    assert requests.post(url + PATH, data=b"{}", headers=good, timeout=5).status_code == 200
    resp = requests.post(url + PATH, data=b"{ }", headers=good, timeout=5)
    assert (resp.status_code, resp.json()["ErrorCode"]) == (400, "InvalidArgument")
    assert len(handler.calls) == 1


# -- routes -------------------------------------------------------------------------------------


def test_another_method_is_405(serve: Serve) -> None:
    _, url = serve(Recorder())
    resp = requests.get(url + PATH, timeout=5)
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "POST"
    assert resp.json()["ErrorCode"] == "PathNotSupported"
    assert resp.headers["X-Fc-Request-Id"]


def test_another_fc_api_path_is_not_supported(serve: Serve) -> None:
    _, url = serve(Recorder())
    resp = requests.get(url + "/2016-08-15/services/svc/functions", timeout=5)
    assert (resp.status_code, resp.json()["ErrorCode"]) == (400, "PathNotSupported")


def test_matches_claims_fc_s_api_paths_only() -> None:
    api = FcInvokeApi(Recorder(), keys=None)
    try:
        assert api.matches(PATH)
        assert api.matches("/2016-08-15/services/x/functions/other/invocations")
        assert api.matches("/2016-08-15/account-settings")
        assert not api.matches("/v1/secrets/obtain")
        assert not api.matches("/2016-08-150/x")
        assert not api.matches("/")
    finally:
        api.close()


# -- payload limits -----------------------------------------------------------------------------


def test_an_async_payload_at_the_limit_is_accepted_and_one_byte_more_refused(
    serve: Serve,
) -> None:
    handler = Recorder(result=b"ok")
    api, url = serve(handler)
    fc = client(url)
    fc.invoke_function("svc", "vend-events", payload=b"x" * MAX_ASYNC_PAYLOAD, headers=ASYNC)
    with pytest.raises(FcError) as raised:
        fc.invoke_function(
            "svc", "vend-events", payload=b"x" * (MAX_ASYNC_PAYLOAD + 1), headers=ASYNC
        )
    assert (raised.value.status_code, raised.value.err_code) == (400, "EntityTooLarge")
    assert api.wait_idle(5)
    assert [len(event) for event, _ in handler.calls] == [MAX_ASYNC_PAYLOAD]
    # The same size is fine for a sync call.
    resp = fc.invoke_function(
        "svc", "vend-events", payload=b"x" * (MAX_ASYNC_PAYLOAD + 1), headers=SYNC
    )
    assert resp.data == b"ok"


def test_a_chunked_payload_over_the_limit_is_refused(serve: Serve) -> None:
    handler = Recorder()
    _, url = serve(handler)
    chunks = iter([b"x" * MAX_ASYNC_PAYLOAD, b"x"])  # sent without a content-length
    resp = requests.post(url + PATH, data=chunks, headers=signed_headers(**ASYNC), timeout=5)
    assert (resp.status_code, resp.json()["ErrorCode"]) == (400, "EntityTooLarge")
    assert handler.calls == []


def test_a_sync_payload_over_the_limit_is_refused(serve: Serve) -> None:
    handler = Recorder(result=b"ok")
    _, url = serve(handler)
    assert MAX_SYNC_PAYLOAD == 32 * 1024 * 1024
    with pytest.raises(FcError) as raised:
        client(url).invoke_function(
            "svc", "vend-events", payload=b"x" * (MAX_SYNC_PAYLOAD + 1), headers=SYNC
        )
    assert (raised.value.status_code, raised.value.err_code) == (400, "EntityTooLarge")
    assert handler.calls == []


# -- async --------------------------------------------------------------------------------------


def test_async_answers_202_at_once_and_runs_the_handler_in_the_background(serve: Serve) -> None:
    release = threading.Event()
    seen: list[tuple[bytes, str]] = []

    def slow(event: bytes, context: Any) -> bytes:
        assert release.wait(5)
        seen.append((event, context.request_id))
        return b"dropped"

    api, url = serve(slow)
    started = time.monotonic()
    resp = client(url).invoke_function("svc", "vend-events", payload=b'{"a":1}', headers=ASYNC)
    assert time.monotonic() - started < 2
    assert resp.data == b""
    request_id = resp.headers["x-fc-request-id"]
    assert not api.wait_idle(0.05)  # the handler is still running
    assert seen == []
    release.set()
    assert api.wait_idle(5)
    assert seen == [(b'{"a":1}', request_id)]


def test_async_answers_202(serve: Serve) -> None:
    api, url = serve(Recorder())
    resp = requests.post(url + PATH, data=b"{}", headers=signed_headers(**ASYNC), timeout=5)
    assert (resp.status_code, resp.content) == (202, b"")
    assert resp.headers["X-Fc-Request-Id"]
    assert api.wait_idle(5)


def test_a_failing_async_invocation_is_retried_with_the_same_request_id(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    handler = Recorder(failures=2)
    api, url = serve(handler, retry_delay_s=0.01)
    with caplog.at_level(logging.INFO, logger="vend.fc"):
        resp = client(url).invoke_function(
            "svc", "vend-events", payload=b'{"marker":"payload-never-logged"}', headers=ASYNC
        )
        assert api.wait_idle(5)
    request_id = resp.headers["x-fc-request-id"]
    assert handler.request_ids == [request_id] * 3
    assert [event for event, _ in handler.calls] == [b'{"marker":"payload-never-logged"}'] * 3
    records = [r for r in caplog.records if r.name == "vend.fc"]
    failed = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(failed) == 2
    assert all(request_id in line and "RuntimeError" in line for line in failed)
    assert any(r.levelno == logging.INFO and request_id in r.getMessage() for r in records)
    text = "\n".join(r.getMessage() for r in records)
    assert "payload-never-logged" not in text
    assert "fails" not in text  # the exception's message is not logged, only its type


def test_an_always_failing_async_invocation_runs_max_async_attempts_times(serve: Serve) -> None:
    handler = Recorder(failures=100)
    api, url = serve(handler, max_async_attempts=3)
    resp = client(url).invoke_function("svc", "vend-events", payload=b"{}", headers=ASYNC)
    assert api.wait_idle(5)
    assert handler.request_ids == [resp.headers["x-fc-request-id"]] * 3


def test_by_default_async_makes_fc_s_1_plus_3_attempts(serve: Serve) -> None:
    handler = Recorder(failures=100)
    api, url = serve(handler)
    client(url).invoke_function("svc", "vend-events", payload=b"{}", headers=ASYNC)
    assert api.wait_idle(5)
    assert len(handler.calls) == 4


def test_async_waits_between_attempts(serve: Serve) -> None:
    times: list[float] = []

    def failing(event: bytes, context: Any) -> None:
        times.append(time.monotonic())
        raise RuntimeError("again")

    api, url = serve(failing, max_async_attempts=2, retry_delay_s=0.2)
    client(url).invoke_function("svc", "vend-events", payload=b"{}", headers=ASYNC)
    assert api.wait_idle(5)
    assert len(times) == 2
    assert times[1] - times[0] >= 0.19


def test_too_many_pending_async_invocations_are_refused(serve: Serve) -> None:
    release = threading.Event()
    api, url = serve(lambda event, context: release.wait(5))
    api.max_pending_async = 1
    fc = client(url)
    fc.invoke_function("svc", "vend-events", payload=b"{}", headers=ASYNC)
    with pytest.raises(FcError) as raised:
        fc.invoke_function("svc", "vend-events", payload=b"{}", headers=ASYNC)
    assert (raised.value.status_code, raised.value.err_code) == (429, "ResourceExhausted")
    release.set()
    assert api.wait_idle(5)


def test_concurrent_async_invocations_each_get_their_own_request_id(serve: Serve) -> None:
    handler = Recorder()
    api, url = serve(handler)
    fc = client(url)
    ids = {
        fc.invoke_function("svc", "vend-events", payload=b"{}", headers=ASYNC).headers[
            "x-fc-request-id"
        ]
        for _ in range(10)
    }
    assert api.wait_idle(5)
    assert len(ids) == 10
    assert set(handler.request_ids) == ids


def test_close_drops_queued_async_invocations_and_stops_retrying(serve: Serve) -> None:
    release = threading.Event()
    calls: list[str] = []

    def blocking(event: bytes, context: Any) -> None:
        calls.append(context.request_id)
        release.wait(5)
        raise RuntimeError("retry me")

    api, url = serve(blocking, retry_delay_s=5)
    fc = client(url)
    for _ in range(6):  # 4 run on the pool's workers, 2 wait in its queue
        fc.invoke_function("svc", "vend-events", payload=b"{}", headers=ASYNC)
    deadline = time.monotonic() + 5
    while len(calls) < 4 and time.monotonic() < deadline:  # the workers have taken theirs
        time.sleep(0.005)
    api.close()
    release.set()
    assert api.wait_idle(2)  # no 5 s retry wait, no queued invocation left pending
    assert len(calls) == 4
    with pytest.raises(FcError) as raised:
        fc.invoke_function("svc", "vend-events", payload=b"{}", headers=ASYNC)
    assert raised.value.err_code == "ResourceExhausted"
