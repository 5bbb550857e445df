"""The agent's exchange at an IDaaS token endpoint (`vend_client.agent.tokens.TokenEndpoint`) in
this process over real HTTP, pytest-httpserver answering as the test plans: what is sent (the
client's authentication, the form), and what each kind of answer becomes (a token, or a
`TokenEndpointError` whose words hold neither the endpoint's body nor the secret)."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from agent_world import free_port
from pytest_httpserver import HTTPServer
from threads import wait_until
from werkzeug import Request, Response

from vend_client.agent.tokens import MAX_ANSWER_BYTES, TokenEndpoint, TokenEndpointError
from vend_client.vended import VendedSecret

PATH = "/oauth2/token"
SECRET = "CS-secret-marker:a/b c%"  # what form encoding must escape


def vended(client_id: str | None = "client/1") -> VendedSecret:
    return VendedSecret(
        instance_id="idaas_x",
        application_id="app_y",
        secret_id="sct_z",
        client_id=client_id,
        client_secret=SECRET,
        status="enabled",
        expiration_time=None,
    )


def endpoint(server: HTTPServer, **kw: Any) -> TokenEndpoint:
    return TokenEndpoint(server.url_for(PATH), timeout_s=5, wall_clock=lambda: 1_000.0, **kw)


def answering(server: HTTPServer, body: object, status: int = 200) -> None:
    text = body if isinstance(body, str) else json.dumps(body)
    server.expect_request(PATH, method="POST").respond_with_data(
        text, status, content_type="application/json"
    )


def refused(server: HTTPServer, body: object, status: int = 200) -> TokenEndpointError:
    answering(server, body, status)
    with pytest.raises(TokenEndpointError) as caught:
        endpoint(server).exchange(vended(), None)
    assert SECRET not in str(caught.value)
    return caught.value


# -- what is sent ----------------------------------------------------------------------------------


def test_client_secret_basic_sends_the_form_encoded_pair_and_the_grant(
    httpserver: HTTPServer,
) -> None:
    answering(httpserver, {"access_token": "t", "expires_in": 600})
    token = endpoint(httpserver).exchange(vended(), "api://a|read b")
    sent: Request = httpserver.log[0][0]
    pair = base64.b64encode(b"client%2F1:CS-secret-marker%3Aa%2Fb%20c%25").decode()
    assert sent.headers["Authorization"] == f"Basic {pair}"
    assert sent.headers["Accept"] == "application/json"
    assert sent.form.to_dict() == {"grant_type": "client_credentials", "scope": "api://a|read b"}
    assert (token.access_token, token.token_type, token.expires_in) == ("t", "Bearer", 600)
    assert (token.issued_at, token.expires_at) == (1_000.0, 1_600)


def test_without_a_client_id_the_application_is_the_client_and_no_scope_is_sent(
    httpserver: HTTPServer,
) -> None:
    answering(httpserver, {"access_token": "t"})
    endpoint(httpserver).exchange(vended(client_id=None), None)
    sent: Request = httpserver.log[0][0]
    user = base64.b64decode(sent.headers["Authorization"].removeprefix("Basic ")).split(b":")[0]
    assert user == b"app_y"
    assert sent.form.to_dict() == {"grant_type": "client_credentials"}


def test_client_secret_post_sends_both_in_the_form_and_no_authorization(
    httpserver: HTTPServer,
) -> None:
    answering(httpserver, {"access_token": "t"})
    endpoint(httpserver, auth_method="client_secret_post").exchange(vended(), None)
    sent: Request = httpserver.log[0][0]
    assert "Authorization" not in sent.headers
    assert sent.form.to_dict() == {
        "grant_type": "client_credentials",
        "client_id": "client/1",
        "client_secret": SECRET,
    }


def test_an_unknown_auth_method_is_refused_and_the_repr_holds_the_template_only() -> None:
    with pytest.raises(ValueError, match="client_secret_basic, client_secret_post"):
        TokenEndpoint("https://idaas.example/token", auth_method="private_key_jwt")
    made = TokenEndpoint("https://idaas.example/{instance_id}/{application_id}/t")
    assert repr(made) == (
        "TokenEndpoint('https://idaas.example/{instance_id}/{application_id}/t', "
        "auth_method='client_secret_basic', timeout_s=15.0)"
    )
    assert made.url_for("i1", "a1") == "https://idaas.example/i1/a1/t"
    with pytest.raises(ValueError, match=r"not \{a\}, \{b\}$"):
        TokenEndpoint("https://idaas.example/{b}/{a}/{instance_id}")


# -- what an answer becomes --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "kept"),
    [
        ({"access_token": "t", "token_type": "DPoP", "expires_in": "600"}, ("DPoP", 600)),
        ({"access_token": "t", "token_type": "", "expires_in": 0}, ("Bearer", 0)),
        ({"access_token": "t", "token_type": 7}, ("Bearer", None)),
    ],
)
def test_a_token_keeps_its_type_and_life_and_a_life_in_digits_is_read(
    httpserver: HTTPServer, answer: dict[str, Any], kept: tuple[str, int | None]
) -> None:
    answering(httpserver, answer)
    token = endpoint(httpserver).exchange(vended(), None)
    assert (token.token_type, token.expires_in) == kept


@pytest.mark.parametrize("expires_in", [-1, "-1", "6e2", 1.5, True, [600]])
def test_a_life_that_is_not_a_number_of_seconds_is_refused(
    httpserver: HTTPServer, expires_in: object
) -> None:
    error = refused(httpserver, {"access_token": "t", "expires_in": expires_in})
    url = httpserver.url_for(PATH)
    assert str(error) == (
        f"the token endpoint {url} answered an expires_in that is not a number of seconds"
    )
    assert (error.status, error.error) == (200, None)


@pytest.mark.parametrize(
    "body",
    [
        {"token_type": "Bearer"},
        {"access_token": ""},
        {"access_token": 7},
        "[1]",
        "not json",
        "[" * 20_000 + "]" * 20_000,  # under the size limit, nested deeper than Python parses
    ],
)
def test_a_200_without_an_access_token_is_refused(httpserver: HTTPServer, body: object) -> None:
    error = refused(httpserver, body)
    url = httpserver.url_for(PATH)
    assert str(error) == f"the token endpoint {url} answered 200 without an access token"
    assert (error.status, error.error) == (200, None)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"error": "invalid_client", "error_description": "DESCRIPTION-MARKER"},
            401,
            "invalid_client",
        ),
        ({"error": "x" * 64}, 400, "x" * 64),
        ({"error": "x" * 65}, 400, None),
        ({"error": "bad code"}, 400, None),
        ({"error": 'say "hi"'}, 400, None),
        ({"error": 401}, 401, None),
        ({}, 503, None),
        ("<html>busy</html>", 502, None),
    ],
)
def test_a_refusal_names_its_status_and_its_oauth_code_when_it_reads_as_one(
    httpserver: HTTPServer, body: object, status: int, code: str | None
) -> None:
    error = refused(httpserver, body, status)
    said = f": {code}" if code else " (no OAuth error code)"
    assert str(error) == f"the token endpoint {httpserver.url_for(PATH)} refused: {status}{said}"
    assert (error.status, error.error) == (status, code)
    assert len(httpserver.log) == 1


def test_an_answer_of_the_largest_size_is_read_whole_and_a_larger_one_is_not(
    httpserver: HTTPServer,
) -> None:
    def of_size(size: int) -> tuple[str, str]:
        start, end = '{"access_token": "', '"}'
        token = "t" * (size - len(start) - len(end))
        return token, start + token + end

    token, body = of_size(MAX_ANSWER_BYTES)  # read in chunks, joined as they came
    answering(httpserver, body)
    assert endpoint(httpserver).exchange(vended(), None).access_token == token
    httpserver.clear()
    error = refused(httpserver, of_size(MAX_ANSWER_BYTES + 1)[1])
    assert "without an access token" in str(error)


def test_an_endpoint_that_does_not_answer_in_time_is_named_with_its_timeout(
    httpserver: HTTPServer,
) -> None:
    released = threading.Event()

    def late(request: Request) -> Response:
        released.wait(10)
        return Response("{}", 200)

    httpserver.expect_request(PATH, method="POST").respond_with_handler(late)
    made = TokenEndpoint(httpserver.url_for(PATH), timeout_s=0.25)
    try:
        with pytest.raises(TokenEndpointError) as caught:
            made.exchange(vended(), None)
    finally:
        released.set()
        # The server logs the late answer once its handler returns: waited for here, or it
        # lands in the log of the next test that uses the server.
        wait_until(lambda: len(httpserver.log) == 1, "the late answer logged")
    assert str(caught.value) == (
        f"the token endpoint {httpserver.url_for(PATH)} did not answer within 0.25 s"
    )
    assert (caught.value.status, caught.value.error) == (None, None)


def test_an_endpoint_nothing_listens_on_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}/token"
    with pytest.raises(TokenEndpointError) as caught:
        TokenEndpoint(url, timeout_s=5).exchange(vended(), None)
    assert str(caught.value) == f"cannot reach the token endpoint {url}: connection refused"
    assert caught.value.status is None


def test_an_endpoint_whose_host_is_unknown_says_so() -> None:
    url = "http://no-such-host.invalid/token"
    with pytest.raises(TokenEndpointError) as caught:
        TokenEndpoint(url, timeout_s=5).exchange(vended(), None)
    assert str(caught.value) == f"cannot reach the token endpoint {url}: unknown host"


def test_a_redirect_is_not_followed(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/elsewhere").respond_with_json({"access_token": "t"})
    httpserver.expect_request(PATH, method="POST").respond_with_data(
        "", 307, headers={"Location": httpserver.url_for("/elsewhere")}
    )
    with pytest.raises(TokenEndpointError) as caught:
        endpoint(httpserver).exchange(vended(), None)
    assert (caught.value.status, caught.value.error) == (307, None)
    assert len(httpserver.log) == 1


def test_an_endless_answer_is_read_only_to_the_limit(httpserver: HTTPServer) -> None:
    done = threading.Event()

    def endless(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            yield b'{"access_token": "t", "pad": "'
            while not done.is_set():
                yield b"x" * 65536

        return Response(chunks(), 200, content_type="application/json")

    httpserver.expect_request(PATH, method="POST").respond_with_handler(endless)
    try:
        with pytest.raises(TokenEndpointError, match="without an access token"):
            endpoint(httpserver).exchange(vended(), None)
    finally:
        done.set()


def test_a_connection_closed_without_an_answer_names_the_failure_kind() -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def drop() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.close()

    thread = threading.Thread(target=drop)
    thread.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/token"
    try:
        with pytest.raises(TokenEndpointError) as caught:
            TokenEndpoint(url, timeout_s=5).exchange(vended(), None)
    finally:
        thread.join(10)
        listener.close()
    assert str(caught.value) == (
        f"cannot reach the token endpoint {url}: connection failed (ConnectionError)"
    )
