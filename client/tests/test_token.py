"""A bearer token may be a callable, asked for a token at each request: an expiring JWT is renewed
without a new client. A 401 to a request made with a callable's token is asked once more with a
fresh one; a fixed token is not (it would only be refused again)."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pytest
import sealed
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from vend_client import CachingClient, Credentials, RefusedError, VendClient

ACCOUNT = "1234567890123456"
ME = f"acs:ram::{ACCOUNT}:user/billing"
ARN = f"acs:eiam:cn-hangzhou:{ACCOUNT}:instance/idaas_x/application/app_y/secret/sct_z"
KEYS = Credentials("LTAI5tCallerKey000001", "caller-secret-never-sent")
DATA_KEY = bytes(range(32))
IDS = ("idaas_x", "app_y", "sct_z")
SECRET = "CS-the-client-secret"


@dataclass
class Tokens:
    """A token callable: `jwt-1`, `jwt-2`, ... one more each time it is called."""

    calls: int = 0

    def __call__(self) -> str:
        self.calls += 1
        return f"jwt-{self.calls}"


@dataclass
class Service:
    """`POST /v1/secrets/obtain`: 401 to the next `refusals` requests, then the sealed secret;
    the Authorization header of each request, in order."""

    refusals: int = 0
    seen: list[str] = field(default_factory=list)

    def handle(self, request: Request) -> Response:
        self.seen.append(request.headers.get("Authorization", ""))
        if self.refusals:
            self.refusals -= 1
            body: Any = {
                "error": {"code": "Unauthenticated", "message": "expired", "request_id": "r-401"}
            }
            return Response(json.dumps(body), 401, content_type="application/json")
        body = sealed.vend_response(secret=SECRET, arn=ARN, principal=ME, data_key=DATA_KEY)
        return Response(json.dumps(body), 200, content_type="application/json")


@pytest.fixture
def service(httpserver: HTTPServer) -> Service:
    planned = Service()
    httpserver.expect_request("/v1/secrets/obtain", method="POST").respond_with_handler(
        planned.handle
    )
    httpserver.expect_request("/", headers={"x-acs-action": "Decrypt"}).respond_with_json(
        {"KeyId": "key-billing", "Plaintext": base64.b64encode(DATA_KEY).decode()}
    )
    return planned


def vend(server: HTTPServer, token: Any) -> VendClient:
    base = server.url_for("").rstrip("/")
    return VendClient(url=base, token=token, kms_endpoint=base, timeout_s=5)


def test_a_callable_is_asked_for_a_token_at_each_request(
    httpserver: HTTPServer, service: Service
) -> None:
    tokens = Tokens()
    client = vend(httpserver, tokens)
    assert tokens.calls == 0  # not asked before a request needs it
    client.obtain(*IDS)
    client.obtain(*IDS)
    assert service.seen == ["Bearer jwt-1", "Bearer jwt-2"]


def test_a_401_with_a_callable_is_asked_once_more_with_a_fresh_token(
    httpserver: HTTPServer, service: Service
) -> None:
    tokens = Tokens()
    service.refusals = 1
    response = vend(httpserver, tokens).obtain(*IDS)
    assert response.secret_id == "sct_z"
    assert tokens.calls == 2
    assert service.seen == ["Bearer jwt-1", "Bearer jwt-2"]


def test_a_401_with_a_fixed_token_is_not_asked_again(
    httpserver: HTTPServer, service: Service
) -> None:
    service.refusals = 1
    with pytest.raises(RefusedError) as info:
        vend(httpserver, "jwt-fixed").obtain(*IDS)
    assert (info.value.status, info.value.request_id) == (401, "r-401")
    assert service.seen == ["Bearer jwt-fixed"]


def test_two_401s_in_a_row_are_raised(httpserver: HTTPServer, service: Service) -> None:
    tokens = Tokens()
    service.refusals = 3
    with pytest.raises(RefusedError) as info:
        vend(httpserver, tokens).obtain(*IDS)
    assert info.value.status == 401
    assert service.seen == ["Bearer jwt-1", "Bearer jwt-2"]  # one retry, not more


def test_a_caching_client_passes_a_callable_through(
    httpserver: HTTPServer, service: Service
) -> None:
    """The retry is the client's, after a 401 the cache itself never retries: one pause-free
    fetch, two requests."""
    tokens = Tokens()
    pauses: list[float] = []
    base = httpserver.url_for("").rstrip("/")
    service.refusals = 1
    with CachingClient(
        base,
        token=tokens,
        credentials=KEYS,  # the caller's own KMS call needs them, whatever the token
        kms_endpoint=base,
        sleep=pauses.append,
        expected_principal=ME,
    ) as cache:
        assert cache.get(*IDS) == SECRET
        assert cache.get(*IDS) == SECRET
    assert service.seen == ["Bearer jwt-1", "Bearer jwt-2"]
    assert pauses == []


def test_no_repr_calls_the_callable_or_shows_its_token(httpserver: HTTPServer) -> None:
    tokens = Tokens()
    base = httpserver.url_for("").rstrip("/")
    for thing in (vend(httpserver, tokens), CachingClient(base, token=tokens)):
        shown = repr(thing) + str(thing)
        assert "bearer token (callable)" in shown
        assert "jwt-" not in shown and "Tokens" not in shown
    assert tokens.calls == 0
