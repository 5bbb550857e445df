"""The audit record explains a failure (contract section 9; issue 12, part 3), and what Log
Service is told to index and chart is what the records hold.

- The SLS index and the dashboard's queries (infra/terraform/logs.tf, read with an HCL parser)
  name only fields that the audit records of the running stack have, with the types the index
  gives them: text for ids and codes, long for the upstream's status and the attempts, double
  for milliseconds.
- With EIAM, KMS, STS or the store failing (emulator faults, a Redis that is not there), the
  record names the upstream, its code, its status and the calls made to it, and exactly one
  WARNING line, JSON, says the same with the request id. A refusal that is the caller's business
  (EIAM's 404) names its upstream but warns nobody."""

from __future__ import annotations

import json
import logging
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hcl2
import hcl_eval
import pytest
import requests
from alibabacloud_eiam20211201 import models as eiam_models
from hcl2 import SerializationOptions
from stack import Records, Stack, running_stack

from infra.emulator import Seed

pytestmark = pytest.mark.contract("9")

TERRAFORM_DIR = Path(__file__).resolve().parent.parent / "infra" / "terraform"
_OPTIONS = SerializationOptions(
    with_comments=False, explicit_blocks=False, strip_string_quotes=True
)
OBTAIN = {
    "instance_id": "idaas_demo",
    "application_id": "app_billing",
    "secret_id": "sct_billing_1",
}
CREATE = {"instance_id": "idaas_demo", "application_id": "app_empty"}
# What a record has only when an upstream decided its outcome.
UPSTREAM_FIELDS = {"upstream", "upstream_code", "upstream_status", "attempts"}
STAGES = {"auth_ms", "sts_ms", "eiam_ms", "kms_ms", "seal_ms"}


# -- what logs.tf says ---------------------------------------------------------------------------


def _logs_tf() -> dict[str, Any]:
    document: dict[str, Any] = hcl2.loads(
        (TERRAFORM_DIR / "logs.tf").read_text(), serialization_options=_OPTIONS
    )
    return document


def _locals() -> dict[str, Any]:
    (values,) = _logs_tf()["locals"]
    return dict(values)


def _resource(kind: str) -> dict[str, Any]:
    for entry in _logs_tf()["resource"]:
        if kind in entry:
            body: dict[str, Any] = entry[kind]["audit"]
            return body
    raise AssertionError(f"no {kind}.audit in logs.tf")


def index_fields() -> dict[str, str]:
    """The audit fields the index reads out of `message`, and their types."""
    fields: dict[str, str] = _locals()["audit_fields"]
    return fields


def queries() -> dict[str, str]:
    found: dict[str, str] = _locals()["audit_queries"]
    return found


def fields_used(query: str) -> set[str]:
    """The audit fields a query names: `message.x: ...` in its search, `"message.x"` in SQL."""
    return set(re.findall(r"\bmessage\.([A-Za-z_]+)", query))


def test_the_index_reads_the_message_as_json_with_the_audit_fields() -> None:
    index = _resource("alicloud_log_store_index")
    assert index["project"] == "${var.log_project}"
    assert index["logstore"] == "${var.log_logstore}"
    (message,) = [f for f in index["field_search"] if f["name"] == "message"]
    assert message["type"] == "json"
    assert message["enable_analytics"] is True
    (keys,) = message["dynamic"]
    assert keys["json_keys"]["for_each"] == "${local.audit_fields}"
    (content,) = keys["json_keys"]["content"]
    assert content["name"] == "${json_keys.key}"
    assert content["type"] == "${json_keys.value}"
    assert content["doc_value"] is True


def test_the_index_types_ids_as_text_and_measures_as_numbers() -> None:
    fields = index_fields()
    assert {name for name, kind in fields.items() if kind == "double"} == {"duration_ms"} | STAGES
    assert {name for name, kind in fields.items() if kind == "long"} == {
        "upstream_status",
        "attempts",
    }
    assert set(fields.values()) == {"text", "long", "double"}
    for name in ("request_id", "principal", "outcome", "upstream", "upstream_code", "decision"):
        assert fields[name] == "text"


def test_the_dashboard_charts_the_four_views_with_the_queries() -> None:
    dashboard = _resource("alicloud_log_dashboard")
    assert dashboard["project_name"] == "${var.log_project}"
    assert dashboard["char_list"] == "${jsonencode(local.audit_charts)}"
    charts = _locals()["audit_charts"]
    used = {chart["search"]["query"] for chart in charts}
    assert used == {f"${{local.audit_queries.{name}}}" for name in queries()}
    for chart in charts:
        assert chart["search"]["logstore"] == "${var.log_logstore}"
        name = chart["search"]["query"].removeprefix("${local.audit_queries.").rstrip("}")
        # The axes are columns of the query.
        for column in chart["display"]["xAxis"] + chart["display"]["yAxis"]:
            assert f" AS {column}" in queries()[name], (name, column)
    q = queries()
    assert "GROUP BY outcome" in q["requests_by_outcome"]
    assert 'approx_percentile("message.duration_ms", 0.5)' in q["latency"]
    assert 'approx_percentile("message.duration_ms", 0.99)' in q["latency"]
    assert "GROUP BY principal" in q["denials_by_principal"]
    assert "GROUP BY upstream" in q["upstream_failures"]
    for query in q.values():
        search, _, sql = query.partition(" | ")
        assert search.startswith("message.log: audit"), query  # audit records only
        assert sql.startswith("SELECT "), query


def test_every_field_a_query_names_is_indexed() -> None:
    for name, query in queries().items():
        assert fields_used(query) <= set(index_fields()), name


def test_the_queries_are_the_strings_terraform_reads() -> None:
    """The parser's reading of each query is the HCL spec's reading of its literal, escapes and
    all (tests/hcl_eval.py): what `terraform console` shows below, without Terraform (CI)."""
    text = (TERRAFORM_DIR / "logs.tf").read_text()
    for name, query in queries().items():
        (literal,) = re.findall(rf'^ +{name} += ("(?:[^"\\\n]|\\.)*")$', text, re.MULTILINE)
        assert hcl_eval.string_value(literal) == query, name
    for field, kind in index_fields().items():
        assert re.fullmatch(r"[a-z_]+", field) and kind in ("text", "long", "double"), field


def test_terraform_reads_the_queries_as_the_parser_does(terraform: str, tmp_path: Path) -> None:
    """`terraform console` on variables.tf and the locals of logs.tf (no provider needed): the
    strings Terraform sends are the queries checked here, escapes and all."""
    text = (TERRAFORM_DIR / "logs.tf").read_text()
    start = text.index("\nlocals {\n")
    end = text.index("\n}\n", start) + 3
    (tmp_path / "locals.tf").write_text(text[start:end])
    (tmp_path / "variables.tf").write_text((TERRAFORM_DIR / "variables.tf").read_text())
    values = {
        "account_id": "1234567890123456",
        "idaas_instance_id": "i",
        "kms_instance_id": "kst-a",
    }
    args = [a for name, value in values.items() for a in ("-var", f"{name}={value}")]
    done = subprocess.run(
        [terraform, "console", *args],
        input="jsonencode([local.audit_queries, local.audit_fields, local.audit_charts])\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    evaluated_queries, evaluated_fields, charts = json.loads(json.loads(done.stdout))
    assert evaluated_queries == queries()
    assert evaluated_fields == index_fields()
    assert [c["search"]["query"] for c in charts] == [
        queries()[c["search"]["query"].removeprefix("${local.audit_queries.").rstrip("}")]
        for c in _locals()["audit_charts"]
    ]
    assert {c["search"]["logstore"] for c in charts} == {"default-logs"}


# -- what the service writes ---------------------------------------------------------------------


@pytest.fixture
def warnings() -> Iterator[Records]:
    """The `vend.upstream` lines (they do not reach the root logger)."""
    records, logger = Records(), logging.getLogger("vend.upstream")
    logger.addHandler(records)
    yield records
    logger.removeHandler(records)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, warnings: Records) -> Iterator[Stack]:
    with running_stack(monkeypatch, demo_seed) as running:
        yield running


def _faults(stack: Stack, *faults: dict[str, Any]) -> None:
    requests.put(
        f"{stack.emulator.url}/_emulator/faults", json=list(faults), timeout=5
    ).raise_for_status()


def _send(stack: Stack, action: str, body: dict[str, Any], **headers: str) -> requests.Response:
    return requests.post(
        f"{stack.api.url}/v1/secrets/{action}",
        data=json.dumps(body),
        headers={"Authorization": stack.client().authorization(), **headers},
        timeout=30,
    )


def _record(stack: Stack, resp: requests.Response) -> dict[str, Any]:
    request_id = resp.headers["X-Request-Id"]
    records = [json.loads(r.getMessage()) for r in stack.audit.records]
    (record,) = [r for r in records if r["request_id"] == request_id]
    return record


def _warning_lines(stack: Stack, warnings: Records, request_id: str) -> list[dict[str, Any]]:
    """Every WARNING (or worse) line of any logger that names the request."""
    found = [
        r
        for r in [*warnings.records, *stack.logs.records]
        if r.levelno >= logging.WARNING and request_id in r.getMessage()
    ]
    assert all(r.name == "vend.upstream" for r in found), [r.name for r in found]
    return [json.loads(r.getMessage()) for r in found]


def _check_types(record: dict[str, Any]) -> None:
    for name, kind in index_fields().items():
        if name not in record:
            continue
        value = record[name]
        if kind == "text":
            assert value is None or isinstance(value, str), (name, value)
        elif kind == "long":
            assert value is None or (isinstance(value, int) and not isinstance(value, bool))
        else:
            assert isinstance(value, (int, float)) and not isinstance(value, bool), (name, value)
            assert value >= 0


TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_an_ok_obtain_has_every_field_but_the_upstreams(stack: Stack, warnings: Records) -> None:
    resp = _send(stack, "obtain", OBTAIN, traceparent=TRACEPARENT)
    assert resp.status_code == 200, resp.text
    record = _record(stack, resp)
    assert record["trace_id"] == TRACEPARENT.split("-")[1]
    assert record["statement"]  # the Allow that decided, by Sid or position
    _check_types(record)
    assert set(index_fields()) - set(record) == UPSTREAM_FIELDS
    assert record["log"] == "audit" and record["outcome"] == "ok"
    for name, query in queries().items():
        assert fields_used(query) - UPSTREAM_FIELDS <= set(record), name
    assert warnings.records == []


@pytest.mark.parametrize(
    ("action", "upstream", "reached", "not_reached"),
    [
        ("ObtainApplicationClientSecret", "eiam", {"auth_ms", "sts_ms", "eiam_ms"}, {"seal_ms"}),
        ("GenerateDataKey", "kms", {"auth_ms", "sts_ms", "eiam_ms", "kms_ms"}, {"seal_ms"}),
        ("AssumeRole", "sts", {"auth_ms", "sts_ms"}, {"eiam_ms", "seal_ms"}),
    ],
)
def test_an_upstream_503_past_the_retries_is_named_in_the_record_and_one_warning(
    stack: Stack,
    warnings: Records,
    action: str,
    upstream: str,
    reached: set[str],
    not_reached: set[str],
) -> None:
    _faults(stack, {"action": action, "status": 503, "code": "ServiceUnavailable"})
    resp = _send(stack, "obtain", OBTAIN)
    assert resp.status_code == 502, resp.text
    record = _record(stack, resp)
    calls = stack.calls(action)
    assert [code for _, _, code in calls] == ["ServiceUnavailable"] * len(calls)
    assert (record["upstream"], record["upstream_code"], record["upstream_status"]) == (
        upstream,
        "ServiceUnavailable",
        503,
    )
    assert record["attempts"] == len(calls) >= 2  # retried, and every call counted
    assert record["outcome"] == "UpstreamError"
    assert record["upstream_request_id"]  # the upstream's own id of the last answer
    assert reached <= set(record) and not (not_reached & set(record))
    # What the ok record lacks of the fields the index and the queries name is here.
    assert set(record) >= UPSTREAM_FIELDS
    _check_types(record)

    (line,) = _warning_lines(stack, warnings, record["request_id"])
    assert line["log"] == "upstream" and line["level"] == "WARNING"
    assert (line["request_id"], line["upstream"], line["upstream_code"]) == (
        record["request_id"],
        upstream,
        "ServiceUnavailable",
    )
    assert (line["upstream_status"], line["attempts"]) == (503, record["attempts"])
    assert line["outcome"] == "UpstreamError"
    authorization = stack.client().authorization()
    assert authorization.partition(" ")[2][:40] not in warnings.text()


def test_no_value_splits_an_audit_or_warning_line(stack: Stack, warnings: Records) -> None:
    """An upstream whose error code holds U+0085, U+2028, U+2029 and an escape sequence: the
    record and the WARNING line carry it JSON-escaped, each one line of ASCII for any line
    splitter (Log Service's, or a Unicode-aware one), and it reads back unchanged."""
    code = "Busy\u0085\u2028\u2029\x1b[2J"
    _faults(stack, {"action": "ObtainApplicationClientSecret", "status": 503, "code": code})
    resp = _send(stack, "obtain", OBTAIN)
    assert resp.status_code == 502, resp.text
    request_id = resp.headers["X-Request-Id"]
    lines = [
        r.getMessage()
        for r in [*stack.audit.records, *warnings.records]
        if request_id in r.getMessage()
    ]
    assert len(lines) == 2  # the record and the WARNING
    for line in lines:
        assert line.isascii() and line.splitlines() == [line], line
        assert json.loads(line)["upstream_code"] == code


def test_eiam_not_found_names_eiam_but_warns_nobody(stack: Stack, warnings: Records) -> None:
    resp = _send(stack, "obtain", {**OBTAIN, "secret_id": "sct_nobody"})
    assert resp.status_code == 404, resp.text
    record = _record(stack, resp)
    assert record["decision"] == "allow"  # the policy allowed it: EIAM said no such secret
    assert (record["outcome"], record["upstream"], record["upstream_status"]) == (
        "NotFound",
        "eiam",
        404,
    )
    assert record["attempts"] == 1
    assert _warning_lines(stack, warnings, record["request_id"]) == []


def test_a_create_whose_new_secret_cannot_be_obtained_names_eiam(
    stack: Stack, warnings: Records
) -> None:
    # The create's answer is lost after the secret was made; the listing finds it, and then
    # obtaining it fails: the record names that failure, though the error is restated to say
    # which secret was made.
    _faults(
        stack,
        {"action": "CreateApplicationClientSecret", "status": 503, "phase": "after"},
        {"action": "ObtainApplicationClientSecret", "status": 503, "code": "ServiceUnavailable"},
    )
    resp = _send(stack, "create", CREATE, **{"Idempotency-Key": "audit-adopt"})
    assert resp.status_code == 502, resp.text
    (made,) = stack.secret_ids("app_empty")
    assert made in resp.json()["error"]["message"]
    record = _record(stack, resp)
    obtains = stack.calls("ObtainApplicationClientSecret")
    assert (record["upstream"], record["upstream_code"], record["upstream_status"]) == (
        "eiam",
        "ServiceUnavailable",
        503,
    )
    assert record["attempts"] == len(obtains) >= 2
    (line,) = _warning_lines(stack, warnings, record["request_id"])
    assert (line["upstream"], line["upstream_code"]) == ("eiam", "ServiceUnavailable")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_store_that_is_not_there_is_named_store(
    monkeypatch: pytest.MonkeyPatch, demo_seed: Seed, warnings: Records
) -> None:
    env = {"VEND_IDEMPOTENCY_URL": f"redis://:pw-not-shown@127.0.0.1:{_closed_port()}/0"}
    with running_stack(monkeypatch, demo_seed, env=env) as stack:
        resp = _send(stack, "create", CREATE, **{"Idempotency-Key": "audit-store-down"})
        assert resp.status_code == 502, resp.text
        record = _record(stack, resp)
        assert (record["upstream"], record["upstream_code"], record["upstream_status"]) == (
            "store",
            "ConnectionError",
            None,
        )
        assert record["attempts"] == 2  # a refused connection is tried once more at once
        assert "eiam_ms" not in record  # nothing was sent to EIAM without the store
        (line,) = _warning_lines(stack, warnings, record["request_id"])
        assert (line["upstream"], line["upstream_code"]) == ("store", "ConnectionError")
        assert "pw-not-shown" not in warnings.text() + stack.audit.text() + resp.text


# -- every kind of fault, on every upstream action, names the right upstream ---------------------

UPSTREAM_OF = {
    "GetCallerIdentity": "sts",  # the RAM proof's verification
    "AssumeRole": "sts",
    "ObtainApplicationClientSecret": "eiam",
    "ListApplicationClientSecrets": "eiam",
    "CreateApplicationClientSecret": "eiam",
    "GenerateDataKey": "kms",
}
FAULTS: dict[str, dict[str, Any]] = {
    "503": {"status": 503, "code": "ServiceUnavailable"},
    "429": {"status": 429, "code": "Throttling"},
    "html-502": {"status": 502, "body": "html"},
    "malformed-200": {"malformed": True},
    "reset": {"reset": True},
}
CELLS = [
    (action, fault, request)
    for action in UPSTREAM_OF
    for fault in FAULTS
    for request in ("obtain", "create")
    if not (action == "ObtainApplicationClientSecret" and request == "create")
    and not (action.endswith("ClientSecrets") and request == "obtain")
    and not (action == "CreateApplicationClientSecret" and request == "obtain")
]


@pytest.fixture(scope="module")
def quick_stack(demo_seed: Seed) -> Iterator[Stack]:
    monkeypatch = pytest.MonkeyPatch()
    try:
        with running_stack(monkeypatch, demo_seed, timeout_s=2) as running:
            yield running
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize(("action", "fault", "request_kind"), CELLS)
def test_each_failing_upstream_is_the_one_named(
    quick_stack: Stack, warnings: Records, action: str, fault: str, request_kind: str
) -> None:
    stack = quick_stack
    _faults(stack, {"action": action, **FAULTS[fault]})
    try:
        resp = _send(stack, request_kind, OBTAIN if request_kind == "obtain" else CREATE)
    finally:
        _faults(stack)
    record = _record(stack, resp)
    lines = _warning_lines(stack, warnings, record["request_id"])
    if resp.status_code == 200:  # a fault the request got past (a create adopting its secret)
        assert "upstream" not in record and lines == []
        return
    assert resp.status_code in (429, 502, 504), resp.text
    assert record["upstream"] == UPSTREAM_OF[action], record
    assert record["attempts"] is None or record["attempts"] >= 1
    if fault in ("503", "429"):
        assert record["upstream_code"] in ("ServiceUnavailable", "Throttling"), record
    (line,) = lines
    assert (line["upstream"], line["upstream_code"]) == (
        record["upstream"],
        record["upstream_code"],
    )
    for secret_id in stack.secret_ids("app_empty"):  # what a create made despite the fault
        stack.operator_eiam().delete_application_client_secret(
            eiam_models.DeleteApplicationClientSecretRequest(
                instance_id="idaas_demo", application_id="app_empty", secret_id=secret_id
            )
        )
