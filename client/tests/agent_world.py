"""What the agent's and `run`'s tests stand on: pytest-httpserver playing the service (its obtain
answers from a plan the test writes), STS, KMS and an IDaaS token endpoint; and `vend-client` run
as a real process, as a user runs it, configured through its environment."""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import pytest
import requests
import sealed
from client_log_scan import SESSION_LOG
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from vend_client.cli import main

ACCOUNT = "1234567890123456"
ME = f"acs:ram::{ACCOUNT}:user/billing"
DATA_KEY = bytes(range(32))
IDS = ("idaas_x", "app_y", "sct_z")
QUERY = "instance_id=idaas_x&application_id=app_y&secret_id=sct_z"
AGENT_TOKEN = "agent-token-marker-0123456789abcdef"
KEY_ID, KEY_SECRET = "LTAI5tCallerKey000001", "caller-key-secret-marker"
VEND_CLIENT = [sys.executable, "-m", "vend_client.cli"]


@dataclass
class Service:
    """The service's `POST /v1/secrets/obtain` and `/v1/secrets/current`: each request takes the
    next planned error (status, headers), or once none is left answers the next of `secrets`
    (the last one once they run out), sealed for the IDs asked; the current secret is
    `current_id`. A planned error's body says `message` and `request_id` (none when None), its
    code `code` or else E and its status. `paths` are the paths asked, in order."""

    secrets: list[str] = field(default_factory=lambda: ["CS-secret-marker-1"])
    errors: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    code: str | None = None
    message: str = "planned"
    request_id: str | None = "svc-req-9"
    current_id: str = "sct_current"
    requests: int = 0
    paths: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.requests += 1
            self.paths.append(request.path)
            planned = self.errors.pop(0) if self.errors else None
            secret = self.secrets.pop(0) if len(self.secrets) > 1 else self.secrets[0]
        if planned is not None:
            status, headers = planned
            error = {"code": self.code or f"E{status}", "message": self.message}
            if self.request_id is not None:
                error["request_id"] = self.request_id
            body = {"error": error}
            return Response(json.dumps(body), status, headers, content_type="application/json")
        asked = json.loads(request.data)
        secret_id = asked.get("secret_id", self.current_id)
        ids = (asked["instance_id"], asked["application_id"], secret_id)
        arn = (
            f"acs:eiam:cn-hangzhou:{ACCOUNT}:instance/{ids[0]}/application/{ids[1]}/secret/{ids[2]}"
        )
        answer = sealed.vend_response(
            secret=secret, arn=arn, principal=ME, data_key=DATA_KEY, ids=ids
        )
        return Response(json.dumps(answer), 200, content_type="application/json")


@dataclass
class TokenEndpoint:
    """An IDaaS instance's token endpoint: client_secret_basic, grant_type client_credentials;
    a token for the client secret it `accepts`, else 401 invalid_client (with a description
    that the agent must not pass on verbatim). `refusal` answers every request instead. While
    `gate` is clear, requests wait for it (up to 10 s)."""

    accepts: str = "CS-secret-marker-1"
    expires_in: int = 3600
    refusal: tuple[int, dict[str, str]] | None = None
    hits: int = 0
    seen: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)  # held: requests wait

    def __post_init__(self) -> None:
        self.gate.set()

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.hits += 1
            n = self.hits
        self.arrived.set()
        assert self.gate.wait(10)
        form = {k: v[0] for k, v in parse_qs(request.get_data(as_text=True)).items()}
        client_id, secret = _basic(request.headers.get("Authorization", ""))
        self.seen.append({"form": form, "client_id": client_id, "path": request.path})
        if self.refusal is not None:
            status, body = self.refusal
            return Response(json.dumps(body), status, content_type="application/json")
        if form.get("grant_type") != "client_credentials" or secret != self.accepts:
            body = {"error": "invalid_client", "error_description": "DESCRIPTION-MARKER"}
            return Response(json.dumps(body), 401, content_type="application/json")
        answer = {
            "access_token": f"access-token-{n}-for-{client_id}-scope-{form.get('scope', '')}",
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }
        return Response(json.dumps(answer), 200, content_type="application/json")


def _basic(header: str) -> tuple[str | None, str | None]:
    if not header.startswith("Basic "):
        return None, None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return unquote(user), unquote(password)


@dataclass
class World:
    server: HTTPServer
    service: Service
    token_endpoint: TokenEndpoint

    @property
    def url(self) -> str:
        return self.server.url_for("").rstrip("/")

    def env(self, **extra: str) -> dict[str, str]:
        """`vend-client`'s environment: this world's service, STS and KMS, the caller's keys,
        and nothing of the test runner's own VEND_* or Alibaba Cloud settings."""
        base = {
            k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_"))
        }
        return {
            **base,
            "VEND_URL": self.url,
            "VEND_AUDIENCE": "vend-prod",
            "VEND_STS_ENDPOINT": self.url,
            "VEND_KMS_ENDPOINT": self.url,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": KEY_SECRET,
            "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
            **extra,
        }


def world_on(server: HTTPServer) -> World:
    server.expect_request("/", headers={"x-acs-action": "GetCallerIdentity"}).respond_with_json(
        {"Arn": ME, "AccountId": ACCOUNT, "RequestId": "sts-1"}
    )
    server.expect_request("/", headers={"x-acs-action": "Decrypt"}).respond_with_json(
        {"KeyId": "key-billing", "Plaintext": base64.b64encode(DATA_KEY).decode()}
    )
    service, token_endpoint = Service(), TokenEndpoint()
    for path in ("/v1/secrets/obtain", "/v1/secrets/current"):
        server.expect_request(path, method="POST").respond_with_handler(service.handle)
    server.expect_request("/api/v2/iauths_system/oauth2/token", method="POST").respond_with_handler(
        token_endpoint.handle
    )
    return World(server, service, token_endpoint)


# -- the agent as a process --------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on now: where a connection is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Agent:
    """A running agent, as its callers reach it: its port, and what it wrote to stderr so far."""

    port: int
    log: Callable[[], str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, token: str | None = AGENT_TOKEN, **headers: str) -> requests.Response:
        sent = {k.replace("_", "-"): v for k, v in headers.items()}
        if token is not None:
            sent["X-Vend-Agent-Token"] = token
        return requests.get(self.url + path, headers=sent, timeout=10)

    def stderr(self) -> str:
        return self.log()


@contextmanager
def running_agent(
    env: dict[str, str], tmp_path: Path, *args: str, agent_token: str | None = AGENT_TOKEN
) -> Iterator[Agent]:
    """`vend-client agent --port 0` until the block ends (SIGTERM, then it must exit 0): it
    binds the port itself and logs where it listens; its stderr goes to a file the test reads."""
    log = tmp_path / f"agent-{time.monotonic_ns()}.log"
    if agent_token is not None:
        env = {**env, "VEND_AGENT_TOKEN": agent_token}
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [*VEND_CLIENT, "agent", "--port", "0", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        yield Agent(_listening_port(proc, log), log.read_text)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
        SESSION_LOG.output("vend-client agent (stderr)", log.read_text())
    assert code == 0, log.read_text()


def _listening_port(proc: subprocess.Popen[bytes], log: Path) -> int:
    """The port of the agent's `listening` log line, once it is written."""
    deadline = time.monotonic() + 30
    while True:
        for line in log.read_text().splitlines():
            record = json.loads(line) if line.startswith("{") else {}
            if record.get("event") == "listening":
                return int(record["urls"][0].rsplit(":", 1)[1])
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, f"the agent never listened:\n{log.read_text()}"
        time.sleep(0.02)


# -- the agent in this process -----------------------------------------------------------------


@dataclass
class Ran:
    """How `vend-client agent` ended in this process: its exit status and all it wrote to
    stderr (its log lines, or the one line of a refusal to start)."""

    code: int
    stderr: str


class _Listening(logging.Handler):
    """Learns the agent's port from its `listening` line, and wakes whoever waits for it."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.port: int | None = None
        self.woken = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict) and fields.get("event") == "listening":
            self.port = int(str(fields["urls"][0]).rsplit(":", 1)[1])
            self.woken.set()


def agent_in_process(
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    body: Callable[[Agent], None] | None = None,
    *args: str,
    agent_token: str | None = AGENT_TOKEN,
    verbose: bool = False,
) -> Ran:
    """`vend-client [-v] agent --port 0 ARGS` run by this process, as `vend_client.cli.main`, with
    `env` as its environment: the cli, the agent's command, its app and its server all run
    here, where mutation testing sees what each test calls. The agent serves in this (the
    main) thread, where its SIGTERM handler must run; `body` asks it from another thread once it
    listens, then this process sends itself SIGTERM, on which the agent must stop and exit 0.
    Without `body` the agent is expected not to start. The logging it sets up for itself (the
    root logger's handlers and level, the exception hooks) is put back afterwards, and its
    lines are checked as a process's are."""
    if agent_token is not None:
        env = {**env, "VEND_AGENT_TOKEN": agent_token}
    for name in list(os.environ):
        if name not in env:
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    listening = _Listening()
    failed: list[BaseException] = []
    ended = threading.Event()

    def stop() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        if not ended.wait(15):
            # A failure, not a hang: Ctrl-C stops waitress's loop whatever became of SIGTERM.
            failed.append(AssertionError("the agent did not stop on SIGTERM"))
            os.kill(os.getpid(), signal.SIGINT)

    def ask() -> None:
        if not listening.woken.wait(20):
            # Serving without saying where, or stuck starting: a failure, not a hang.
            failed.append(
                AssertionError("in 20 s the agent neither said where it listens nor ended")
            )
            stop()
            return
        if listening.port is None:
            return
        try:
            if body is not None:
                body(Agent(listening.port, stderr.getvalue))
        except BaseException as exc:  # raised again in the test's thread
            failed.append(exc)
        finally:
            stop()

    root = logging.getLogger()
    saved = (root.handlers[:], root.level, sys.excepthook, threading.excepthook)
    credentials = logging.getLogger("credentials")
    credentials_disabled = credentials.disabled
    agent_log = logging.getLogger("vend_client.agent")
    agent_log.addHandler(listening)
    # SIGTERM while the agent is not serving (it failed, or never set its own handler) is a
    # failure of the test, not the end of the test run.
    stray: list[int] = []
    before = signal.signal(signal.SIGTERM, lambda signum, frame: stray.append(signum))
    asker = threading.Thread(target=ask, name="agent-caller")
    asker.start()
    try:
        code = main([*(["-v"] if verbose else []), "agent", "--port", "0", *args])
    finally:
        ended.set()
        listening.woken.set()
        asker.join(60)
        signal.signal(signal.SIGTERM, before)
        agent_log.removeHandler(listening)
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
        sys.excepthook, threading.excepthook = saved[2], saved[3]
        credentials.disabled = credentials_disabled
        if listening.port is not None:  # its log; not the one line of a refusal to start
            SESSION_LOG.output("vend-client agent in process (stderr)", stderr.getvalue())
    if failed:
        raise failed[0]
    assert not stray, "SIGTERM came when the agent was not serving"
    if body is not None:
        assert listening.port is not None, f"the agent never listened:\n{stderr.getvalue()}"
        assert code == 0, stderr.getvalue()  # stopped by SIGTERM, as a supervisor stops it
    return Ran(code, stderr.getvalue())


@contextmanager
def serving(app: Any) -> Iterator[Agent]:
    """`app` (an `AgentApp` the test built) on waitress, as the agent's server sets it up, on a
    port of its own in a thread of this process, until the block ends."""
    from waitress import wasyncore  # noqa: PLC0415 - only the tests that build an app need it
    from waitress.server import create_server  # noqa: PLC0415

    server = create_server(
        app, host="127.0.0.1", port=0, threads=2, clear_untrusted_proxy_headers=False
    )
    thread = threading.Thread(target=server.run, name="agent-app", daemon=True)
    thread.start()
    try:
        yield Agent(int(server.effective_port), lambda: "")  # type: ignore[union-attr]
    finally:
        server.task_dispatcher.shutdown(timeout=5)
        # Close every connection from the loop's own thread, which ends the loop at once.
        everything = server._map  # type: ignore[union-attr]
        server.trigger.pull_trigger(lambda: wasyncore.close_all(everything))  # type: ignore[union-attr]
        thread.join(10)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of the agent's stderr, each of which must be one JSON object."""
    lines = [json.loads(line) for line in text.splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines
