"""The service's log: every line one JSON object naming its kind (`log`); a line written while a
request is handled names the request and, when the request carried a valid W3C `traceparent`
(an HTTP header, or an event's field), its trace; an exception nothing caught is a line too.
That every line of the suite passes is checked for the whole session (log_scan.py); these
tests show what a reader of the log finds."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from log_scan import SESSION_LOG
from processes import VEND, Server, free_port
from stack import Stack, running_stack

from infra.emulator import EmulatorServer, Seed
from infra.local.cli import DEMO_POLICY, DEMO_SEED, local_environment

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
# What W3C Trace Context (version 00) does not accept, each ignored, never refused.
NOT_TRACEPARENTS = [
    "",
    f"01-{TRACE}-00f067aa0ba902b7-01",  # a version this service does not read
    f"ff-{TRACE}-00f067aa0ba902b7-01",  # the invalid version
    f"00-{TRACE.upper()}-00f067aa0ba902b7-01",  # hex is lower-case
    f"00-{'0' * 32}-00f067aa0ba902b7-01",  # the all-zero trace id
    f"00-{TRACE}-{'0' * 16}-01",  # the all-zero parent id
    f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",  # 31 hex digits
    f"00-{TRACE}-00f067aa0ba902b7-1",  # one flags digit
    f"00-{TRACE}-00f067aa0ba902b7-0g",  # not hex
    f"{TRACEPARENT}-00",  # anything after the flags
    f"{TRACEPARENT}, {TRACEPARENT}",  # two headers, joined
]
OBTAIN = {
    "instance_id": "idaas_demo",
    "application_id": "app_billing",
    "secret_id": "sct_billing_1",
}
REDIS_PASSWORD = "s3cret-redis-pw-in-the-url"
CUSTOM_RUNTIME = [sys.executable, "-m", "functions.custom_runtime", "--host", "127.0.0.1"]


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed) as running:
        yield running


def _audit(stack: Stack, request_id: str) -> dict[str, Any]:
    records = [json.loads(r.getMessage()) for r in stack.audit.records]
    found = [r for r in records if r["request_id"] == request_id]
    assert len(found) == 1, records
    return found[0]


def _obtain(stack: Stack, **headers: str) -> requests.Response:
    return requests.post(
        f"{stack.api.url}/v1/secrets/obtain",
        json=OBTAIN,
        headers={"Authorization": stack.client().authorization(), **headers},
        timeout=30,
    )


def test_an_http_requests_traceparent_names_its_trace_in_the_audit(stack: Stack) -> None:
    answer = _obtain(stack, traceparent=TRACEPARENT)
    assert answer.status_code == 200, answer.text
    record = _audit(stack, answer.headers["X-Request-Id"])
    assert record["trace_id"] == TRACE
    assert record["log"] == "audit" and record["outcome"] == "ok"


@pytest.mark.parametrize("value", NOT_TRACEPARENTS)
def test_a_traceparent_that_is_not_one_is_ignored_never_refused(stack: Stack, value: str) -> None:
    answer = _obtain(stack, traceparent=value)
    assert answer.status_code == 200, answer.text
    assert "trace_id" not in _audit(stack, answer.headers["X-Request-Id"])


def _event(stack: Stack, **fields: object) -> dict[str, Any]:
    reply = stack.fc().invoke_function(
        "any-service",
        "vend-events",
        payload=json.dumps(
            {"action": "obtain", **OBTAIN, "authorization": stack.client().authorization()} | fields
        ).encode(),
        headers={"x-fc-invocation-type": "Sync"},
    )
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


def test_an_events_traceparent_field_names_its_trace_in_the_audit(stack: Stack) -> None:
    answer = _event(stack, traceparent=TRACEPARENT)
    assert "envelope" in answer, answer
    record = _audit(stack, answer["request_id"])
    assert record["trace_id"] == TRACE and record["action"] == "obtain"


@pytest.mark.parametrize("value", [7, None, ["x"], NOT_TRACEPARENTS[4], NOT_TRACEPARENTS[9]])
def test_an_events_traceparent_that_is_not_one_is_ignored(stack: Stack, value: object) -> None:
    answer = _event(stack, traceparent=value)
    assert "envelope" in answer, answer
    assert "trace_id" not in _audit(stack, answer["request_id"])


def _lines(text: str) -> list[dict[str, Any]]:
    """Every line of a process's log; each must be a JSON object with its kind."""
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    assert all(isinstance(line, dict) and isinstance(line.get("log"), str) for line in lines)
    return lines


def _service_env(emulator: EmulatorServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_"))}
    env.update(local_environment(emulator.url, DEMO_SEED, DEMO_POLICY))
    return env


def test_readiness_warnings_are_json_naming_the_request_and_its_trace(
    emulator: EmulatorServer,
) -> None:
    """`vend serve` with a Redis that does not answer: /v1/ready says `store`, and the log says
    why in a JSON `ready` line with the probe's request and trace (not in text, and not with
    the Redis URL's password)."""
    env = _service_env(emulator)
    env["VEND_IDEMPOTENCY_URL"] = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{free_port()}/0"
    server = Server([*VEND, "serve", "--port", "0"], "vend serve", env)
    try:
        url = server.wait_for(r"HTTP API at (http://127\.0\.0\.1:[0-9]+)/v1/").group(1)
        answer = requests.get(f"{url}/v1/ready", headers={"traceparent": TRACEPARENT}, timeout=10)
    finally:
        _, log = server.stop()
    assert (answer.status_code, answer.json()["failing"]) == (503, ["store"])
    ready = [line for line in _lines(log) if line["log"] == "ready"]
    assert len(ready) == 1, log
    assert ready[0]["level"] == "WARNING" and "does not answer" in ready[0]["message"]
    assert ready[0]["request_id"] == answer.headers["X-Request-Id"]
    assert ready[0]["trace_id"] == TRACE
    assert REDIS_PASSWORD not in log


def test_an_exception_nothing_caught_is_a_json_line_with_its_traceback(
    emulator: EmulatorServer,
) -> None:
    """The custom runtime, given a port another socket holds, cannot start: what Python would
    print as a traceback is one `crash` line on its log (stdout, as FC ships it)."""
    env = _service_env(emulator)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*CUSTOM_RUNTIME, "--port", str(port)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=Path(__file__).resolve().parent.parent,
        )
    SESSION_LOG.output("functions.custom_runtime (stdout)", done.stdout)
    assert done.returncode != 0
    assert done.stderr == ""
    crash = [line for line in _lines(done.stdout) if line["log"] == "crash"]
    assert len(crash) == 1, done.stdout
    assert crash[0]["level"] == "CRITICAL" and crash[0]["error"] == "OSError"
    assert crash[0]["traceback"].startswith("Traceback (most recent call last):")
    assert "wsgi_server.py" in crash[0]["traceback"]


def test_a_custom_runtime_that_cannot_start_says_why_in_a_json_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_"))}
    done = subprocess.run(
        [*CUSTOM_RUNTIME, "--port", "0"], env=env, capture_output=True, text=True, timeout=60
    )
    SESSION_LOG.output("functions.custom_runtime (stdout)", done.stdout)
    assert (done.returncode, done.stderr) == (2, "")
    (start,) = _lines(done.stdout)
    assert (start["log"], start["level"]) == ("start", "ERROR")
    assert {"VEND_REGION", "VEND_ACCOUNT_ID"} <= set(start["variables"])


# In an FC instance: FC's runtime gave the root logger a text handler of its own before the
# initializer runs; a library logs; an event with a traceparent but no authorization is refused.
IN_FC_INSTANCE = f"""
import logging, sys
logging.basicConfig(stream=sys.stdout, format="%(asctime)s [%(levelname)s] %(message)s")
from functions import events
from infra.local.fc_context import FunctionInfo, LocalContext
context = LocalContext("fc-request-1", FunctionInfo("vend-events", "functions.events.handler"))
events.initializer(context)
logging.getLogger("urllib3.connectionpool").warning("a library's line")
event = {{"action": "obtain", **{OBTAIN!r}, "traceparent": "{TRACEPARENT}"}}
print(events.handler(event, context).decode(), file=sys.stderr)
"""


def test_in_an_fc_instance_every_line_is_json_with_the_events_trace(
    emulator: EmulatorServer,
) -> None:
    env = {**_service_env(emulator), "FC_FUNCTION_NAME": "vend-events", "FC_INSTANCE_ID": "c-1"}
    done = subprocess.run(
        [sys.executable, "-c", IN_FC_INSTANCE],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parent.parent,
    )
    SESSION_LOG.output("functions.events in FC (stdout)", done.stdout)
    assert json.loads(done.stderr)["status"] == 401, done.stderr
    lines = _lines(done.stdout)
    assert [line["log"] for line in lines] == ["library", "audit"]
    audit = lines[1]
    assert (audit["request_id"], audit["trace_id"]) == ("fc-request-1", TRACE)
