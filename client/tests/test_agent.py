"""`vend-client agent`, asked over HTTP as a program in any language asks it; pytest-httpserver
plays the service (its answers planned by the test), STS, KMS and the IDaaS instance's token
endpoint. The agent runs in this process (`agent_world.agent_in_process`: the real cli, command
and waitress server on a port of its own), where mutation testing sees what each test calls; the
last tests start it as a process, for what only a process shows (its token file made before it
serves, its exit on SIGTERM)."""

from __future__ import annotations

import http.client
import json
import logging
import os
import resource
import signal
import socket
import stat
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, cast

import pytest
import requests
from agent_world import (
    AGENT_TOKEN,
    QUERY,
    Agent,
    Ran,
    World,
    agent_in_process,
    free_port,
    json_lines,
    running_agent,
    serving,
    world_on,
)
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from vend_client.agent.app import AgentApp
from vend_client.agent.logs import JsonLines
from vend_client.exit_status import ExitStatus
from vend_client.vended import VendedSecret

SECRET = "CS-secret-marker-1"


class Serve(Protocol):
    def __call__(
        self,
        body: Callable[[Agent], None] | None = None,
        *args: str,
        env: dict[str, str] | None = None,
        agent_token: str | None = AGENT_TOKEN,
        verbose: bool = False,
    ) -> Ran: ...


@pytest.fixture
def world(httpserver: HTTPServer) -> World:
    return world_on(httpserver)


@pytest.fixture
def other() -> Iterator[HTTPServer]:
    """A second server, for an upstream that misbehaves beside the world's."""
    server = HTTPServer()
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def serve(world: World, monkeypatch: pytest.MonkeyPatch) -> Serve:
    """Runs the agent in this process with `env` (by default the world's, with its token
    endpoint), `body` asking it; without `body`, the agent must refuse to start."""

    def run(
        body: Callable[[Agent], None] | None = None,
        *args: str,
        env: dict[str, str] | None = None,
        agent_token: str | None = AGENT_TOKEN,
        verbose: bool = False,
    ) -> Ran:
        if env is None:
            env = world.env(VEND_TOKEN_ENDPOINT=world.url + "/api/v2/iauths_system/oauth2/token")
        return agent_in_process(
            monkeypatch, env, body, *args, agent_token=agent_token, verbose=verbose
        )

    return run


# -- the secret, for the agent token only -------------------------------------------------------


def test_the_secret_answers_as_json_with_the_agent_token_and_only_with_it(
    serve: Serve, world: World
) -> None:
    def ask(agent: Agent) -> None:
        missing = agent.get(f"/v1/secret?{QUERY}", token=None)
        wrong = agent.get(f"/v1/secret?{QUERY}", token=AGENT_TOKEN[:-1] + "X")
        for refused, said in ((missing, "missing"), (wrong, "wrong")):
            assert refused.status_code == 401
            assert refused.json()["error"] == {
                "code": "Unauthenticated",
                "message": f"the X-Vend-Agent-Token header is {said}",
            }
            assert SECRET not in refused.text
        empty = agent.get(f"/v1/secret?{QUERY}", token="")
        assert empty.json()["error"]["message"] == "the X-Vend-Agent-Token header is wrong"
        assert world.service.requests == 0  # nothing was asked for a caller without the token

        answer = agent.get(f"/v1/secret?{QUERY}")
        assert (answer.status_code, answer.reason) == (200, "OK")
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Content-Length"] == str(len(answer.content))
        assert answer.json() == {
            "instance_id": "idaas_x",
            "application_id": "app_y",
            "secret_id": "sct_z",
            "client_id": "app_y",
            "client_secret": SECRET,
            "status": "enabled",
            "expiration_time": None,
        }

    serve(ask)


def test_a_request_through_a_proxy_is_refused_before_anything_else(
    serve: Serve, world: World
) -> None:
    def ask(agent: Agent) -> None:
        for header in ({"X_Forwarded_For": "203.0.113.9"}, {"Forwarded": "for=203.0.113.9"}):
            for path in (f"/v1/secret?{QUERY}", "/v1/health", "/nowhere"):
                refused = agent.get(path, **header)
                assert refused.status_code == 400, (header, path)
                assert refused.json()["error"] == {
                    "code": "ForwardedRequest",
                    "message": "a request that passed through a proxy (X-Forwarded-For or "
                    "Forwarded) is refused: the agent answers only callers on this host",
                }

    serve(ask)
    assert world.service.requests == 0


def test_health_needs_no_token(serve: Serve) -> None:
    def ask(agent: Agent) -> None:
        answer = agent.get("/v1/health", token=None)
        assert (answer.status_code, answer.json()) == (200, {"status": "ok"})

    serve(ask)


def test_one_connection_serves_request_after_request(serve: Serve) -> None:
    def ask(agent: Agent) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=10)
        headers = {"X-Vend-Agent-Token": AGENT_TOKEN}
        try:
            connection.request("GET", f"/v1/secret?{QUERY}", headers=headers)
            first = connection.getresponse()
            assert (first.status, json.loads(first.read())["client_secret"]) == (200, SECRET)
            assert first.getheader("Connection") != "close"
            socket = connection.sock
            connection.request("GET", "/v1/health")
            second = connection.getresponse()
            assert (second.status, second.read()) == (200, b'{"status":"ok"}')
            assert connection.sock is socket  # kept alive, not opened again
        finally:
            connection.close()

    serve(ask)


def test_only_get_on_known_paths(serve: Serve, world: World) -> None:
    def ask(agent: Agent) -> None:
        posted = requests.post(
            f"{agent.url}/v1/secret?{QUERY}",
            headers={"X-Vend-Agent-Token": AGENT_TOKEN},
            timeout=10,
        )
        assert posted.status_code == 405
        assert posted.headers["Allow"] == "GET"
        assert posted.json()["error"]["code"] == "MethodNotAllowed"
        assert posted.json()["error"]["message"] == "POST is not allowed: GET"
        unknown = agent.get("/v1/secrets")
        assert (unknown.status_code, unknown.json()["error"]) == (
            404,
            {"code": "NotFound", "message": "no such path: GET /v1/secret or /v1/token"},
        )
        odd = requests.request("PROPFINDANDMORE17", f"{agent.url}/v1/health", timeout=10)
        assert odd.json()["error"]["message"] == "PROPFINDANDMORE1 is not allowed: GET"
        agent.get("/v1/" + "p" * 200)

    lines = [line for line in json_lines(serve(ask).stderr) if line.get("event") == "request"]
    assert world.service.requests == 0
    assert lines[-2]["method"] == "PROPFINDANDMORE1"  # cut to 16 characters
    assert lines[-1]["path"] == ("/v1/" + "p" * 200)[:128]


SECRET_TAKES = "this path takes instance_id, application_id, secret_id, refresh_now"
ID_CHARS = "must be 1 to 64 of [A-Za-z0-9_-]"


@pytest.mark.parametrize(
    ("query", "said"),
    [
        ("instance_id=idaas_x&application_id=app_y&secret_id=sct*", f"secret_id {ID_CHARS}"),
        (
            "instance_id=idaas_x&application_id=app%2Fy&secret_id=sct_z",
            f"application_id {ID_CHARS}",
        ),
        ("instance_id=&application_id=app_y&secret_id=sct_z", f"instance_id {ID_CHARS}"),
        (f"instance_id={'i' * 65}&application_id=app_y", f"instance_id {ID_CHARS}"),
        ("application_id=app_y&secret_id=sct_z", "instance_id is required"),
        ("instance_id=idaas_x&secret_id=sct_z", "application_id is required"),
        (f"{QUERY}&colour=blue", f"unknown query parameter colour: {SECRET_TAKES}"),
        (
            f"{QUERY}&Colour=blue",
            f"unknown query parameter (a name it does not know): {SECRET_TAKES}",
        ),
        (
            f"{QUERY}&{'c' * 33}=blue",
            f"unknown query parameter (a name it does not know): {SECRET_TAKES}",
        ),
        (f"{QUERY}&secret_id=sct_y", "secret_id is given twice"),
        (f"{QUERY}&refresh_now=yes", "refresh_now must be true or false"),
        (f"{QUERY}&refresh_now=", "refresh_now must be true or false"),
        (f"{QUERY}&scope=x", f"unknown query parameter scope: {SECRET_TAKES}"),
        (QUERY + "&refresh_now=false" * 6, "too many query parameters"),  # 9 fields
        (QUERY + "&refresh_now=false" * 5, "refresh_now is given twice"),  # 8: read
    ],
)
def test_a_bad_query_is_refused_before_anything_is_asked(
    serve: Serve, world: World, query: str, said: str
) -> None:
    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/secret?{query}")
        assert refused.status_code == 400
        assert refused.json()["error"] == {"code": "InvalidParameter", "message": said}

    serve(ask)
    assert world.service.requests == 0


def test_a_second_ask_is_served_from_memory_and_refresh_now_asks_again(
    serve: Serve, world: World
) -> None:
    world.service.secrets = [SECRET, "CS-secret-marker-2"]

    def ask(agent: Agent) -> None:
        assert agent.get(f"/v1/secret?{QUERY}").json()["client_secret"] == SECRET
        assert agent.get(f"/v1/secret?{QUERY}").json()["client_secret"] == SECRET
        assert world.service.requests == 1
        fresh = agent.get(f"/v1/secret?{QUERY}&refresh_now=true")
        assert fresh.json()["client_secret"] == "CS-secret-marker-2"
        assert world.service.requests == 2
        assert agent.get(f"/v1/secret?{QUERY}").json()["client_secret"] == "CS-secret-marker-2"
        assert world.service.requests == 2

    serve(ask)


def test_without_secret_id_the_current_secret_is_served_and_cached_on_its_own(
    serve: Serve, world: World
) -> None:
    world.service.secrets = [SECRET, "CS-secret-marker-2"]
    current = "/v1/secret?instance_id=idaas_x&application_id=app_y"

    def ask(agent: Agent) -> None:
        first = agent.get(current)
        assert first.status_code == 200, first.text
        assert (first.json()["secret_id"], first.json()["client_secret"]) == (
            "sct_current",
            SECRET,
        )
        assert agent.get(current).json()["client_secret"] == SECRET
        assert world.service.paths == ["/v1/secrets/current"]
        fresh = agent.get(f"{current}&refresh_now=true")
        assert fresh.json()["client_secret"] == "CS-secret-marker-2"
        # The secret by its ID is its own entry, asked for by obtain.
        assert agent.get(f"/v1/secret?{QUERY}").json()["secret_id"] == "sct_z"

    serve(ask)
    assert world.service.paths == [
        "/v1/secrets/current",
        "/v1/secrets/current",
        "/v1/secrets/obtain",
    ]


# -- the service's refusals, kept ----------------------------------------------------------------


@pytest.mark.parametrize("status", [403, 404, 400])
def test_the_services_refusal_keeps_its_status_code_and_request_id(
    serve: Serve, world: World, status: int
) -> None:
    world.service.errors = [(status, {})]

    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/secret?{QUERY}")
        assert refused.status_code == status
        assert refused.json() == {
            "error": {"code": f"E{status}", "message": "planned", "request_id": "svc-req-9"}
        }
        assert world.service.requests == 1  # a refusal is not tried again
        assert agent.get(f"/v1/secret?{QUERY}").status_code == 200  # nor cached

    serve(ask)


def test_the_services_refusal_of_the_agents_own_credentials_says_so(
    serve: Serve, world: World
) -> None:
    world.service.errors = [(401, {})]

    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/secret?{QUERY}")
        assert refused.status_code == 401
        assert refused.json()["error"]["message"] == (
            "the service refused the agent's credentials: planned"
        )

    serve(ask)


@pytest.mark.parametrize("status", [200, 302, 599, 600])
def test_an_error_body_without_an_error_status_is_a_bad_gateway(
    serve: Serve, world: World, status: int
) -> None:
    world.service.errors = [(status, {})]

    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/secret?{QUERY}")
        assert refused.status_code == (599 if status == 599 else 502)
        assert refused.reason == ("Error" if status == 599 else "Bad Gateway")
        assert refused.json()["error"]["code"] == f"E{status}"

    serve(ask)


def test_what_the_service_said_is_one_line_cut_to_its_bounds(serve: Serve, world: World) -> None:
    # Its request id is bounded already: the client keeps only 1 to 64 of [A-Za-z0-9_.:-].
    world.service.errors = [(403, {}), (403, {}), (403, {})]
    world.service.request_id = "r" * 64

    def ask(agent: Agent) -> None:
        world.service.code, world.service.message = "C" * 65, "m" * 301
        cut = agent.get(f"/v1/secret?{QUERY}").json()["error"]
        assert cut == {"code": "C" * 63 + "…", "message": "m" * 299 + "…", "request_id": "r" * 64}
        world.service.code, world.service.message = "C" * 64, "m" * 300
        whole = agent.get(f"/v1/secret?{QUERY}").json()["error"]
        assert whole == {"code": "C" * 64, "message": "m" * 300, "request_id": "r" * 64}
        world.service.request_id, world.service.message = None, "two\n  lines"
        flat = agent.get(f"/v1/secret?{QUERY}").json()["error"]
        assert flat == {"code": "C" * 64, "message": "two lines"}

    serve(ask)


def test_a_service_answer_nested_deeper_than_python_parses_is_a_bad_gateway(
    serve: Serve, world: World, other: HTTPServer
) -> None:
    nested = "[" * 100_000 + "]" * 100_000
    other.expect_request("/v1/secrets/obtain").respond_with_data(nested, 200)

    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/secret?{QUERY}")
        assert refused.status_code == 502
        assert refused.json()["error"] == {
            "code": "BadResponse",
            "message": "the answer is not JSON",
        }

    serve(ask, env=world.env(VEND_URL=other.url_for("").rstrip("/")))


def test_throttling_keeps_its_retry_after(serve: Serve, world: World) -> None:
    # Longer than the cache waits for (30 s): answered at once, as the service answered.
    world.service.errors = [(429, {"Retry-After": "120"})]

    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/secret?{QUERY}")
        assert refused.status_code == 429
        assert refused.headers["Retry-After"] == "120"
        assert refused.json()["error"]["code"] == "E429"

    serve(ask)


def test_an_unreachable_service_is_503(serve: Serve, world: World) -> None:
    dead = f"http://127.0.0.1:{free_port()}"

    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/secret?{QUERY}")
        assert refused.status_code == 503
        assert refused.json()["error"] == {
            "code": "ServiceUnreachable",
            "message": f"cannot reach the service at {dead}: connection refused (--url or VEND_URL)",
        }

    serve(ask, env=world.env(VEND_URL=dead))


def test_a_service_that_does_not_answer_in_time_is_503_with_the_timeout(
    serve: Serve, world: World, other: HTTPServer
) -> None:
    released = threading.Event()

    def late(request: Request) -> Response:
        released.wait(10)
        return Response("{}", 500)

    other.expect_request("/v1/secrets/obtain").respond_with_handler(late)
    slow = other.url_for("").rstrip("/")

    def ask(agent: Agent) -> None:
        try:
            refused = agent.get(f"/v1/secret?{QUERY}")
        finally:
            released.set()
        assert refused.status_code == 503
        assert refused.json()["error"] == {
            "code": "ServiceUnreachable",
            "message": f"the service at {slow} did not answer within 1 s (--timeout)",
        }

    serve(ask, env=world.env(VEND_URL=slow, VEND_TIMEOUT="1"))


def test_a_kms_that_denies_the_data_key_is_403_in_words(
    serve: Serve, world: World, other: HTTPServer
) -> None:
    other.expect_request("/", headers={"x-acs-action": "Decrypt"}).respond_with_json(
        {"Code": "Forbidden.NoPermission", "Message": "no", "RequestId": "kms-req-1"}, status=403
    )

    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/secret?{QUERY}")
        assert refused.status_code == 403
        assert refused.json()["error"] == {
            "code": "AccessDenied",
            "message": "the data key is not yours to decrypt: KMS denied Decrypt with its key "
            "(Forbidden.NoPermission, KMS request kms-req-1)",
        }

    serve(ask, env=world.env(VEND_KMS_ENDPOINT=other.url_for("").rstrip("/")))


# -- tokens --------------------------------------------------------------------------------------


def test_a_token_is_got_with_the_secret_cached_and_refreshed_on_demand(
    serve: Serve, world: World
) -> None:
    def ask(agent: Agent) -> None:
        first = agent.get(f"/v1/token?{QUERY}")
        assert first.status_code == 200
        body = first.json()
        assert set(body) == {"access_token", "token_type", "expires_in", "expires_at"}
        assert body["access_token"] == "access-token-1-for-app_y-scope-"
        assert body["token_type"] == "Bearer"
        assert 3590 <= body["expires_in"] <= 3600
        assert isinstance(body["expires_at"], int)
        assert world.token_endpoint.seen[0]["form"] == {"grant_type": "client_credentials"}
        assert world.token_endpoint.seen[0]["client_id"] == "app_y"

        assert agent.get(f"/v1/token?{QUERY}").json()["access_token"] == body["access_token"]
        assert world.token_endpoint.hits == 1  # the second from memory
        again = agent.get(f"/v1/token?{QUERY}&refresh_now=true").json()
        assert again["access_token"] == "access-token-2-for-app_y-scope-"
        assert world.token_endpoint.hits == 2
        assert world.service.requests == 1  # the secret, from the agent's cache all along

        # Each scope is its own token.
        scoped = agent.get(f"/v1/token?{QUERY}&scope=api%3A%2F%2Fbilling%7Cread%3Afile").json()
        assert scoped["access_token"] == "access-token-3-for-app_y-scope-api://billing|read:file"
        assert world.token_endpoint.hits == 3

        # The secret reached the token endpoint and nowhere else: no answer, no log line.
        stderr = agent.stderr()
        assert SECRET not in first.text + str(again) + str(scoped)
        assert SECRET not in stderr
        assert AGENT_TOKEN not in stderr
        assert body["access_token"] not in stderr

    serve(ask)


def test_a_rotated_secret_is_fetched_again_once_when_the_token_endpoint_says_invalid_client(
    serve: Serve, world: World
) -> None:
    world.service.secrets = ["CS-old-secret", SECRET]

    def ask(agent: Agent) -> None:
        assert agent.get(f"/v1/secret?{QUERY}").json()["client_secret"] == "CS-old-secret"
        token = agent.get(f"/v1/token?{QUERY}")
        assert token.status_code == 200, token.text
        assert world.token_endpoint.hits == 2  # refused with the old secret, then given
        assert world.service.requests == 2  # the secret asked for again, once
        assert agent.get(f"/v1/secret?{QUERY}").json()["client_secret"] == SECRET

    serve(ask)


def test_without_secret_id_a_token_is_got_with_the_current_secret_asked_anew_once_refused(
    serve: Serve, world: World
) -> None:
    # The current secret was rotated since the agent cached it: the token endpoint refuses the
    # old one, and the current secret is asked for again (not a secret by its ID).
    world.service.secrets = ["CS-old-secret", SECRET]
    current = "instance_id=idaas_x&application_id=app_y"

    def ask(agent: Agent) -> None:
        assert agent.get(f"/v1/secret?{current}").json()["client_secret"] == "CS-old-secret"
        token = agent.get(f"/v1/token?{current}")
        assert token.status_code == 200, token.text
        assert token.json()["access_token"] == "access-token-2-for-app_y-scope-"
        assert world.service.paths == ["/v1/secrets/current"] * 2
        again = agent.get(f"/v1/token?{current}").json()
        assert again["access_token"] == token.json()["access_token"]
        assert world.token_endpoint.hits == 2  # the token, from memory now
        assert agent.get(f"/v1/secret?{current}").json()["client_secret"] == SECRET

    serve(ask)


def test_a_secret_the_token_endpoint_keeps_refusing_is_502_with_its_oauth_code(
    serve: Serve, world: World
) -> None:
    world.token_endpoint.accepts = "CS-something-else"

    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/token?{QUERY}")
        assert refused.status_code == 502
        error = refused.json()["error"]
        assert error["code"] == "TokenRefused"
        assert "401: invalid_client" in error["message"]
        assert "DESCRIPTION-MARKER" not in refused.text  # its words are not passed on verbatim
        assert world.token_endpoint.hits == 2  # tried once more with the secret asked again
        assert world.service.requests == 2
        assert agent.get(f"/v1/token?{QUERY}").status_code == 502  # not cached: asked again
        assert world.token_endpoint.hits == 4

    serve(ask)


def test_another_refusal_is_not_retried(serve: Serve, world: World) -> None:
    world.token_endpoint.refusal = (400, {"error": "invalid_scope", "error_description": "x"})

    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/token?{QUERY}&scope=nope")
        assert refused.status_code == 502
        assert "400: invalid_scope" in refused.json()["error"]["message"]

    serve(ask)
    assert (world.token_endpoint.hits, world.service.requests) == (1, 1)


def test_an_unreachable_token_endpoint_is_502(serve: Serve, world: World) -> None:
    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/token?{QUERY}")
        assert refused.status_code == 502
        assert refused.json()["error"]["code"] == "TokenEndpointUnreachable"
        assert "connection refused" in refused.json()["error"]["message"]

    dead = f"http://127.0.0.1:{free_port()}/token"
    serve(ask, env=world.env(VEND_TOKEN_ENDPOINT=dead))


def test_the_token_endpoint_is_given_the_services_timeout(serve: Serve, world: World) -> None:
    endpoint = world.url + "/api/v2/iauths_system/oauth2/token"

    def ask(agent: Agent) -> None:
        assert agent.get(f"/v1/secret?{QUERY}").status_code == 200  # the secret, cached
        world.token_endpoint.gate.clear()  # it answers nothing until the gate opens
        try:
            refused = agent.get(f"/v1/token?{QUERY}")
        finally:
            world.token_endpoint.gate.set()
        assert refused.status_code == 502
        assert refused.json()["error"] == {
            "code": "TokenEndpointUnreachable",
            "message": f"the token endpoint {endpoint} did not answer within 1 s",
        }

    serve(ask, env=world.env(VEND_TOKEN_ENDPOINT=endpoint, VEND_TIMEOUT="1"))


def test_without_a_token_endpoint_tokens_are_not_served(serve: Serve, world: World) -> None:
    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/token?{QUERY}")
        assert refused.status_code == 501
        assert refused.json()["error"] == {
            "code": "TokenEndpointNotConfigured",
            "message": "the agent has no token endpoint: start it with --token-endpoint or "
            "VEND_TOKEN_ENDPOINT",
        }

    serve(ask, env=world.env())


def test_a_scope_that_is_not_rfc_6749_scope_tokens_is_refused_before_anything_is_asked(
    serve: Serve, world: World
) -> None:
    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/token?{QUERY}&scope=a%20%20b")
        assert refused.status_code == 400
        assert refused.json()["error"] == {
            "code": "InvalidParameter",
            "message": 'scope must be scope tokens (printable ASCII but " and \\) separated by '
            "single spaces, at most 1024 characters",
        }

    serve(ask)
    assert (world.token_endpoint.hits, world.service.requests) == (0, 0)


def test_the_token_endpoint_may_be_per_instance_and_application_and_take_client_secret_post(
    serve: Serve, world: World, httpserver: HTTPServer
) -> None:
    template = world.url + "/{instance_id}/{application_id}/token"
    httpserver.expect_request("/idaas_x/app_y/token", method="POST").respond_with_json(
        {"access_token": "per-app-token", "token_type": "Bearer", "expires_in": 600}
    )

    def ask(agent: Agent) -> None:
        assert agent.get(f"/v1/token?{QUERY}").json()["access_token"] == "per-app-token"

    env = world.env(VEND_TOKEN_ENDPOINT=template, VEND_TOKEN_AUTH_METHOD="client_secret_post")
    serve(ask, env=env)
    sent = httpserver.log[-1][0]
    assert "Authorization" not in sent.headers
    assert sent.form["client_id"] == "app_y"
    assert sent.form["client_secret"] == SECRET


# -- its log --------------------------------------------------------------------------------------


def test_every_log_line_is_json_and_none_holds_a_secret_or_token(serve: Serve) -> None:
    ids: list[str] = []

    def ask(agent: Agent) -> None:
        ids.append(agent.get(f"/v1/secret?{QUERY}").headers["X-Request-Id"])
        ids.append(agent.get(f"/v1/token?{QUERY}").headers["X-Request-Id"])
        wrong = agent.get(f"/v1/secret?{QUERY}", token="wrong-token-marker-0000")
        ids.append(wrong.headers["X-Request-Id"])

    stderr = serve(ask).stderr
    lines = json_lines(stderr)
    requests_logged = [line for line in lines if line.get("event") == "request"]
    assert [(r["path"], r["status"], r["request_id"]) for r in requests_logged] == [
        ("/v1/secret", 200, ids[0]),
        ("/v1/token", 200, ids[1]),
        ("/v1/secret", 401, ids[2]),
    ]
    assert len(set(ids)) == 3
    for line in requests_logged:
        assert {"time", "method", "path", "status", "duration_ms", "request_id"} <= set(line)
    for marker in (SECRET, AGENT_TOKEN, "wrong-token-marker", "access-token-"):
        assert marker not in stderr


def test_a_refused_request_is_logged_with_its_code_and_the_services_request_id(
    serve: Serve, world: World
) -> None:
    world.service.errors = [(403, {})]

    def ask(agent: Agent) -> None:
        refused = agent.get(f"/v1/secret?{QUERY}")
        assert refused.status_code == 403
        assert "Allow" not in refused.headers  # only a 405 names the allowed method
        assert agent.get(f"/v1/secret?{QUERY}", token=None).status_code == 401
        assert agent.get(f"/v1/secret?{QUERY}").status_code == 200

    lines = [line for line in json_lines(serve(ask).stderr) if line.get("event") == "request"]
    ids = {"instance_id": "idaas_x", "application_id": "app_y", "secret_id": "sct_z"}
    by_service, unauthenticated, served = lines
    assert by_service["error"] == "E403"
    assert by_service["upstream_request_id"] == "svc-req-9"
    assert ids.items() <= by_service.items()
    assert unauthenticated["error"] == "Unauthenticated"
    assert "upstream_request_id" not in unauthenticated
    assert "instance_id" not in unauthenticated  # refused before its query was read
    assert ids.items() <= served.items()
    assert "error" not in served


def test_a_requests_traceparent_names_its_trace_in_its_line(serve: Serve) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"

    def ask(agent: Agent) -> None:
        agent.get(f"/v1/secret?{QUERY}", traceparent=f"00-{trace}-00f067aa0ba902b7-01")
        agent.get(f"/v1/secret?{QUERY}", traceparent=f"00-{trace.upper()}-00f067aa0ba902b7-01")
        agent.get(f"/v1/secret?{QUERY}", traceparent=f"00-{trace}-{'0' * 16}-01")

    lines = [line for line in json_lines(serve(ask).stderr) if line.get("event") == "request"]
    assert [(line["log"], line.get("trace_id", "none")) for line in lines] == [
        ("access", trace),
        ("access", "none"),
        ("access", "none"),
    ]


def test_every_logger_of_the_process_writes_json_lines_of_its_kind(serve: Serve) -> None:
    def ask(agent: Agent) -> None:
        logging.getLogger("waitress.queue").warning("Task queue depth is %d", 5)
        logging.getLogger("urllib3.pool").info("pool of %s full", "x")
        logging.getLogger("credentials").warning("provider failed")  # silenced
        logging.getLogger("vend_client.caching").warning(
            "stale", extra={"fields": {"event": "stale"}}
        )

    # With -v, as without: the credentials library's lines are silenced by the agent itself.
    lines = json_lines(serve(ask, verbose=True).stderr)
    kinds = {line["logger"]: (line["log"], line.get("message")) for line in lines}
    assert kinds["waitress.queue"] == ("server", "Task queue depth is 5")
    assert kinds["urllib3.pool"] == ("library", "pool of x full")
    assert kinds["vend_client.caching"] == ("agent", None)
    assert "credentials" not in kinds


def test_a_line_is_compact_json_its_time_utc_to_the_millisecond_cut_not_rounded() -> None:
    record = logging.makeLogRecord(
        {
            "name": "vend_client.agent",
            "levelname": "INFO",
            "created": 1_700_000_001.7009,
            "msg": "m",
        }
    )
    assert JsonLines().format(record) == (
        '{"log":"agent","time":"2023-11-14T22:13:21.700Z","level":"info",'
        '"logger":"vend_client.agent","message":"m"}'
    )


def test_a_field_json_cannot_write_is_written_as_its_text() -> None:
    """Not a logging error in place of the line."""
    record = logging.makeLogRecord(
        {"name": "vend_client.agent", "levelname": "INFO", "fields": {"where": Path("/x/y")}}
    )
    assert json.loads(JsonLines().format(record))["where"] == "/x/y"


def _raise(kind: type[BaseException]) -> None:
    raise kind("words-of-the-error-marker")


def test_what_nothing_caught_is_a_crash_line_with_its_type_and_place_not_its_words(
    serve: Serve,
) -> None:
    def ask(agent: Agent) -> None:
        for kind in (RuntimeError, SystemExit):
            thread = threading.Thread(target=_raise, args=(kind,))
            thread.start()
            thread.join()
        for kind in (ValueError, KeyboardInterrupt):
            try:
                _raise(kind)
            except BaseException as exc:  # as Python hands the main thread's to sys.excepthook
                sys.excepthook(type(exc), exc, exc.__traceback__)

    stderr = serve(ask).stderr
    crashes = [line for line in json_lines(stderr) if line.get("event") == "crash"]
    at = f"{__file__}:{_raise.__code__.co_firstlineno + 1}"
    assert [(c["log"], c["level"], c["error"], c["at"]) for c in crashes] == [
        ("crash", "critical", "RuntimeError", at),
        ("crash", "critical", "ValueError", at),
    ]
    assert "words-of-the-error-marker" not in stderr


class _Broken:
    """Stands in for the agent's cache of secrets with a bug: anything asked of it raises."""

    def get_secret(self, instance_id: str, application_id: str, secret_id: str) -> VendedSecret:
        raise ArithmeticError("planted-secret-marker: words of a bug")

    get_current = refresh_now = get_secret  # type: ignore[assignment]


class _Steps:
    """A clock that moves 12.3456 ms each time it is read."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 0.0123456
        return self.now


def test_a_bug_is_500_with_the_request_id_and_logged_with_its_type_not_its_words(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = AgentApp(
        secrets=_Broken(),
        tokens=None,
        token=AGENT_TOKEN,
        url="http://127.0.0.1:1",
        timeout_s=5,
        clock=_Steps(),
    )
    assert repr(app) == "AgentApp(url='http://127.0.0.1:1', tokens=False)"  # not its token
    with caplog.at_level(logging.INFO, logger="vend_client.agent"), serving(app) as agent:
        answer = agent.get(f"/v1/secret?{QUERY}")
    request_id = answer.headers["X-Request-Id"]
    assert answer.status_code == 500
    assert answer.json() == {
        "error": {"code": "InternalError", "message": f"the agent failed (request {request_id})"}
    }
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Content-Length"] == str(len(answer.content))
    lines = [json.loads(JsonLines().format(r)) for r in caplog.records]
    assert "planted" not in json.dumps(lines)
    bug, line = lines
    assert (bug["level"], bug["event"], bug["request_id"]) == ("error", "bug", request_id)
    assert bug["error"] == "ArithmeticError"
    assert bug["at"].endswith(f"test_agent.py:{_Broken.get_secret.__code__.co_firstlineno + 1}")
    assert (line["status"], line["error"], line["request_id"]) == (500, "InternalError", request_id)
    assert line["duration_ms"] == 12.35  # one step of the clock, in ms, to 2 places


# -- starting and stopping -----------------------------------------------------------------------


def _agent_lines(stderr: str) -> list[dict[str, object]]:
    return [line for line in json_lines(stderr) if line["logger"] == "vend_client.agent"]


def test_the_agent_says_where_it_listens_and_that_it_stopped(serve: Serve, world: World) -> None:
    ports: list[int] = []

    def ask(agent: Agent) -> None:
        ports.append(agent.port)
        assert agent.get("/v1/health").headers["Server"] == "vend-agent"

    endpoint = world.url + "/{instance_id}/token"
    lines = _agent_lines(serve(ask, env=world.env(VEND_TOKEN_ENDPOINT=endpoint)).stderr)
    first, last = lines[0], lines[-1]
    assert (first["log"], first["level"], first["event"]) == ("start", "info", "listening")
    assert first["urls"] == [f"http://127.0.0.1:{ports[0]}"]
    assert (first["service"], first["token_endpoint"]) == (world.url, endpoint)
    assert (last["log"], last["event"]) == ("stop", "stopped")
    assert not [line for line in lines if line["event"] == "exposed"]


def test_without_a_token_endpoint_the_listening_line_says_none(serve: Serve, world: World) -> None:
    lines = _agent_lines(serve(lambda agent: None, env=world.env()).stderr)
    assert lines[0]["token_endpoint"] is None


def test_an_agent_on_an_ipv6_loopback_is_named_in_brackets(serve: Serve) -> None:
    ports: list[int] = []

    def ask(agent: Agent) -> None:
        ports.append(agent.port)
        answer = requests.get(f"http://[::1]:{agent.port}/v1/health", timeout=10)
        assert answer.status_code == 200

    lines = _agent_lines(serve(ask, "--host", "::1").stderr)
    assert lines[0]["urls"] == [f"http://[::1]:{ports[0]}"]
    assert not [line for line in lines if line["event"] == "exposed"]


def test_a_name_with_two_addresses_is_listened_on_at_both(
    serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`localhost` as most hosts resolve it, to 127.0.0.1 and ::1 (this one may not): the
    agent listens at both, each on a port of its own, names both, and each answers."""
    resolve = socket.getaddrinfo

    def both(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "localhost":
            return [*resolve("127.0.0.1", *args, **kwargs), *resolve("::1", *args, **kwargs)]
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", both)
    answered: list[int] = []

    def ask(agent: Agent) -> None:
        (line,) = [line for line in _agent_lines(agent.stderr()) if line["event"] == "listening"]
        for url in cast(list[str], line["urls"]):
            answered.append(requests.get(f"{url}/v1/health", timeout=10).status_code)

    lines = _agent_lines(serve(ask, "--host", "localhost").stderr)
    v4, v6 = cast(list[str], lines[0]["urls"])
    assert v4.startswith("http://127.0.0.1:") and v6.startswith("http://[::1]:")
    assert answered == [200, 200]


def test_an_agent_listening_beyond_this_host_warns_that_only_its_token_keeps_callers_out(
    serve: Serve,
) -> None:
    lines = _agent_lines(serve(lambda agent: None, "--host", "0.0.0.0").stderr)
    exposed = [line for line in lines if line["event"] == "exposed"]
    assert [(line["level"], line["message"]) for line in exposed] == [
        (
            "warning",
            "listening on 0.0.0.0: callers beyond this host can reach the agent; only its "
            "token keeps them out",
        )
    ]


def test_a_host_name_other_than_localhost_is_warned_about(serve: Serve) -> None:
    """The agent does not resolve a name to tell whether it is a loopback one."""
    host = socket.gethostname()
    lines = _agent_lines(serve(lambda agent: None, "--host", host).stderr)
    assert [line["event"] for line in lines] == ["listening", "exposed", "stopped"]


@pytest.mark.parametrize("host", ["localhost", "127.0.0.2"])
def test_every_loopback_name_is_this_host_only(serve: Serve, host: str) -> None:
    lines = _agent_lines(serve(lambda agent: None, "--host", host).stderr)
    assert [line["event"] for line in lines] == ["listening", "stopped"]


def test_with_verbose_the_libraries_debug_lines_are_logged_too(serve: Serve) -> None:
    def ask(agent: Agent) -> None:
        assert agent.get(f"/v1/secret?{QUERY}").status_code == 200

    quiet = json_lines(serve(ask).stderr)
    assert not [line for line in quiet if line["level"] == "debug"]
    verbose = json_lines(serve(ask, verbose=True).stderr)
    assert [line for line in verbose if line["level"] == "debug" and line["log"] == "library"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("--threads", "0"), "--threads and --max-connections must be at least 1"),
        (("--max-connections", "0"), "--threads and --max-connections must be at least 1"),
        (
            ("--token-endpoint", "idaas.example/token"),
            "--token-endpoint: the token endpoint 'idaas.example/token' is not an http(s):// URL",
        ),
    ],
)
def test_settings_the_agent_cannot_run_with_are_refused(
    serve: Serve, args: tuple[str, ...], said: str
) -> None:
    done = serve(None, *args)
    assert (done.code, done.stderr) == (ExitStatus.USAGE, f"vend: {said}\n")


def test_one_thread_and_one_connection_are_enough(serve: Serve) -> None:
    def ask(agent: Agent) -> None:
        assert agent.get(f"/v1/secret?{QUERY}").status_code == 200

    serve(ask, "--threads", "1", "--max-connections", "1")


def test_max_connections_counts_the_callers_connections(serve: Serve) -> None:
    """waitress counts its own listening socket and trigger among the connections it limits: a
    limit of 2 once accepted no caller at all."""

    def ask(agent: Agent) -> None:
        opened = [http.client.HTTPConnection("127.0.0.1", agent.port, timeout=10) for _ in "ab"]
        try:
            for connection in opened:  # each kept open while the next asks
                connection.request("GET", "/v1/health")
                assert connection.getresponse().read() == b'{"status":"ok"}'
        finally:
            for connection in opened:
                connection.close()

    serve(ask, "--max-connections", "2")


def test_with_one_thread_a_request_waits_while_the_thread_is_busy(
    serve: Serve, world: World
) -> None:
    """--threads 1: while the one thread waits for the token endpoint, a request on another
    connection is not answered; once the endpoint answers, both are."""

    def ask(agent: Agent) -> None:
        assert agent.get(f"/v1/secret?{QUERY}").status_code == 200  # the secret, cached
        world.token_endpoint.gate.clear()
        answers: list[requests.Response] = []
        token = threading.Thread(target=lambda: answers.append(agent.get(f"/v1/token?{QUERY}")))
        token.start()
        try:
            assert world.token_endpoint.arrived.wait(10)  # the one thread is in the exchange
            health = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=1)
            try:
                health.request("GET", "/v1/health")
                with pytest.raises(TimeoutError):
                    health.getresponse()
            finally:
                health.close()
        finally:
            world.token_endpoint.gate.set()
            token.join(15)
        assert [answer.status_code for answer in answers] == [200]
        assert agent.get("/v1/health").status_code == 200

    serve(ask, "--threads", "1")


def test_a_caller_past_the_connection_limit_waits_for_a_free_one(serve: Serve) -> None:
    """--max-connections 1: while one caller keeps its connection open, another's request is
    not answered (it waits to be accepted); once both are closed, a new one is."""

    def ask(agent: Agent) -> None:
        first = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=10)
        second = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=1)
        try:
            first.request("GET", "/v1/health")
            assert first.getresponse().read() == b'{"status":"ok"}'
            second.request("GET", "/v1/health")
            with pytest.raises(TimeoutError):
                second.getresponse()  # not accepted while the first is open
        finally:
            first.close()
            second.close()
        third = http.client.HTTPConnection("127.0.0.1", agent.port, timeout=10)
        try:
            third.request("GET", "/v1/health")
            assert third.getresponse().read() == b'{"status":"ok"}'
        finally:
            third.close()

    serve(ask, "--max-connections", "1")


def test_a_handler_set_on_the_root_logger_before_the_agent_started_gets_nothing(
    serve: Serve,
) -> None:
    class Kept(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.records: list[logging.LogRecord] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.records.append(record)

    before = Kept()
    root = logging.getLogger()
    root.addHandler(before)
    try:
        lines = json_lines(serve(lambda agent: None).stderr)
    finally:
        root.removeHandler(before)
    assert [line["event"] for line in lines] == ["listening", "stopped"]
    assert before.records == []  # every line went to the agent's own, as JSON


def test_a_port_in_use_is_refused_in_words(serve: Serve) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        done = serve(None, "--port", str(port))
    assert (done.code, done.stderr) == (
        ExitStatus.PORT_IN_USE,
        f"vend: cannot listen on 127.0.0.1:{port}: Address already in use\n",
    )


def test_the_token_auth_method_flag_wins_over_its_variable(
    serve: Serve, world: World, httpserver: HTTPServer
) -> None:
    def ask(agent: Agent) -> None:
        assert agent.get(f"/v1/token?{QUERY}").status_code == 200

    env = world.env(
        VEND_TOKEN_ENDPOINT=world.url + "/api/v2/iauths_system/oauth2/token",
        VEND_TOKEN_AUTH_METHOD="client_secret_post",
    )
    serve(ask, "--token-auth-method", "client_secret_basic", env=env)
    assert world.token_endpoint.seen[0]["client_id"] == "app_y"  # from the Basic header


# -- the agent token ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_a_token_file_open_to_others_is_refused(serve: Serve, tmp_path: Path, mode: int) -> None:
    path = tmp_path / "token"
    path.write_text("a-token-of-enough-length-000\n")
    os.chmod(path, mode)
    done = serve(None, "--token-file", str(path), agent_token=None)
    assert done.code == ExitStatus.FILE
    assert done.stderr.count("\n") == 1
    assert f"mode {mode:04o}" in done.stderr and "chmod 600" in done.stderr
    assert "a-token-of-enough-length" not in done.stderr


def test_without_a_token_the_agent_does_not_start(serve: Serve) -> None:
    done = serve(None, agent_token=None)
    assert (done.code, done.stderr) == (
        ExitStatus.USAGE,
        "vend: the agent needs a token its callers must send: set VEND_AGENT_TOKEN, or give "
        "--token-file PATH (created with a random token if absent)\n",
    )


def test_a_short_agent_token_is_refused(serve: Serve) -> None:
    done = serve(None, agent_token="x" * 15)
    assert (done.code, done.stderr) == (
        ExitStatus.USAGE,
        "vend: VEND_AGENT_TOKEN: the token is shorter than 16 characters\n",
    )

    def ask(agent: Agent) -> None:
        assert agent.get("/v1/secret?" + QUERY, token="x" * 16).status_code == 200

    serve(ask, agent_token="x" * 16)


def test_a_missing_token_file_is_made_private_with_a_random_token_and_kept(
    serve: Serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "token"
    made: list[str] = []
    files: list[Path] = []

    def ask(agent: Agent) -> None:
        assert stat.S_IMODE(files[-1].stat().st_mode) == 0o600
        token = files[-1].read_text()
        assert token.endswith("\n")
        made.append(token.strip())
        assert agent.get(f"/v1/secret?{QUERY}", token=made[-1]).status_code == 200
        assert agent.get(f"/v1/secret?{QUERY}").status_code == 401  # not the usual token

    files.append(path)
    # Made beside it (then linked into place), not in the temporary directory, which may be
    # another file system.
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-temporary-directory"))
    serve(ask, "--token-file", str(path), agent_token=None)
    serve(ask, "--token-file", str(path), agent_token=None)  # started again: kept
    assert made[0] == made[1]
    assert len(made[0]) == 43  # 32 random bytes, URL-safe base64
    assert os.listdir(tmp_path) == ["token"]  # no temporary file left beside it
    other = tmp_path / "other"
    files.append(other)
    serve(ask, "--token-file", str(other), agent_token=None)
    assert made[2] != made[0]


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"a-token-with-\xe9-in-it-0000\n", "the token must be visible ASCII without spaces"),
        (b"a token with spaces 0000\n", "the token must be visible ASCII without spaces"),
        (b"short\n", "the token is shorter than 16 characters"),
    ],
)
def test_a_token_file_that_holds_no_usable_token_is_refused(
    serve: Serve, tmp_path: Path, content: bytes, said: str
) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    path.chmod(0o600)
    done = serve(None, "--token-file", str(path), agent_token=None)
    assert (done.code, done.stderr) == (ExitStatus.FILE, f"vend: {path}: {said}\n")


def test_only_the_first_4_kib_of_a_token_file_are_read(serve: Serve, tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("t" * 4096 + "u" * 100)
    path.chmod(0o600)

    def ask(agent: Agent) -> None:
        assert agent.get(f"/v1/secret?{QUERY}", token="t" * 4096).status_code == 200

    serve(ask, "--token-file", str(path), agent_token=None)


def test_a_token_file_that_is_not_a_private_regular_file_of_the_agents_user_is_refused(
    serve: Serve, tmp_path: Path
) -> None:
    directory = tmp_path / "a-directory"
    directory.mkdir(mode=0o700)
    done = serve(None, "--token-file", str(directory), agent_token=None)
    assert (done.code, done.stderr) == (
        ExitStatus.FILE,
        f"vend: {directory} is not a regular file\n",
    )
    beneath_a_file = tmp_path / "token" / "x"
    (tmp_path / "token").write_text("")
    done = serve(None, "--token-file", str(beneath_a_file), agent_token=None)
    assert (done.code, done.stderr) == (
        ExitStatus.FILE,
        f"vend: cannot read {beneath_a_file}: Not a directory\n",
    )
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nothing")
    done = serve(None, "--token-file", str(dangling), agent_token=None)
    assert (done.code, done.stderr) == (
        ExitStatus.FILE,
        f"vend: {dangling} is a link to a file that does not exist\n",
    )
    nowhere = tmp_path / "no-such-directory" / "token"
    done = serve(None, "--token-file", str(nowhere), agent_token=None)
    assert (done.code, done.stderr) == (
        ExitStatus.FILE,
        f"vend: cannot create {nowhere}: No such file or directory\n",
    )


@contextmanager
def _files_cannot_grow() -> Iterator[None]:
    """Every write to a file fails in this process until the block ends, as on a full disk
    (RLIMIT_FSIZE 0, with its signal ignored: the write fails with EFBIG instead)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    before = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, before)


def test_a_token_file_that_cannot_be_written_is_refused_and_leaves_nothing_behind(
    serve: Serve, tmp_path: Path
) -> None:
    path = tmp_path / "token"
    with _files_cannot_grow():
        done = serve(None, "--token-file", str(path), agent_token=None)
    assert (done.code, done.stderr) == (
        ExitStatus.FILE,
        f"vend: cannot create {path}: File too large\n",
    )
    assert list(tmp_path.iterdir()) == []  # neither the token file nor its temporary one


def test_a_token_file_of_another_user_is_refused(serve: Serve, tmp_path: Path) -> None:
    if os.geteuid() == 0:  # root can give a file away
        path = tmp_path / "token"
        path.write_text("a-token-of-enough-length-000\n")
        path.chmod(0o600)
        os.chown(path, 65534, 65534)
    else:  # anyone else can read root's
        path = Path("/etc/passwd")
    done = serve(None, "--token-file", str(path), agent_token=None)
    assert (done.code, done.stderr) == (
        ExitStatus.FILE,
        f"vend: {path} belongs to another user: it must be the agent's own\n",
    )


def test_the_agent_token_comes_from_the_environment_or_a_file_not_both(
    serve: Serve, tmp_path: Path
) -> None:
    done = serve(None, "--token-file", str(tmp_path / "token"))
    assert (done.code, done.stderr) == (
        ExitStatus.USAGE,
        "vend: give VEND_AGENT_TOKEN or --token-file, not both\n",
    )
    done = serve(None, agent_token="a token with spaces 0000")
    assert (done.code, done.stderr) == (
        ExitStatus.USAGE,
        "vend: VEND_AGENT_TOKEN: the token must be visible ASCII without spaces\n",
    )

    def ask(agent: Agent) -> None:
        assert agent.get(f"/v1/secret?{QUERY}").status_code == 200

    serve(ask, agent_token=f"  {AGENT_TOKEN}\n")  # the variable's blanks are not the token


# -- as a process ---------------------------------------------------------------------------------


def test_a_missing_token_file_is_made_private_with_a_random_token(
    world: World, tmp_path: Path
) -> None:
    tokens = []
    for name in ("one", "two"):
        path = tmp_path / name
        with running_agent(world.env(), tmp_path, "--token-file", str(path), agent_token=None) as a:
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
            token = path.read_text().strip()
            assert len(token) >= 40
            assert a.get(f"/v1/secret?{QUERY}", token=token).status_code == 200
            assert a.get(f"/v1/secret?{QUERY}", token=None).status_code == 401
        tokens.append(token)
    assert tokens[0] != tokens[1]
    # Started again, the agent keeps the token it made.
    path = tmp_path / "one"
    with running_agent(world.env(), tmp_path, "--token-file", str(path), agent_token=None) as a:
        assert a.get(f"/v1/secret?{QUERY}", token=tokens[0]).status_code == 200
