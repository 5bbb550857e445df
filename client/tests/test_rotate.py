"""`VendClient.rotate` on its own: pytest-httpserver plays the service. What it sends (the body,
`dry_run` included, and a bearer token), what it makes of a rotation's answer, of an error body,
and of an answer that is not a rotation's; and how `vend-client rotate` prints a state."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from vend_client import RefusedError, RotationState, SecretState, VendApiError, VendClient
from vend_client.rotation import describe, describe_step

TOKEN = "eyJ.a-token.sig"
NOW = 1_800_000_000_000
ANSWER: dict[str, Any] = {
    "step": "disable",
    "reason": "sct_new has been current since 2027-01-15T08:00:00Z, over the grace period",
    "current_secret_id": "sct_new",
    "secrets": [
        {"secret_id": "sct_old", "status": "disabled", "expiration_time": None},
        {"secret_id": "sct_new", "status": "enabled", "expiration_time": NOW + 30 * 86_400_000},
    ],
    "next_step_at": NOW + 3_600_000,
}


def _client(server: HTTPServer) -> VendClient:
    return VendClient(url=server.url_for(""), token=TOKEN, timeout_s=5)


@pytest.mark.parametrize("dry_run", [True, False])
def test_rotate_posts_the_application_and_dry_run_and_reads_the_state(
    httpserver: HTTPServer, dry_run: bool
) -> None:
    sent: list[dict[str, Any]] = []

    def answer(request: Request) -> Any:
        sent.append({"body": json.loads(request.data), "auth": request.headers["Authorization"]})
        return Response(
            json.dumps(ANSWER), headers={"X-Request-Id": "req-1"}, content_type="application/json"
        )

    httpserver.expect_request("/v1/secrets/rotate", method="POST").respond_with_handler(answer)
    state = _client(httpserver).rotate("idaas_x", "app_y", dry_run=dry_run)
    assert sent == [
        {
            "body": {"instance_id": "idaas_x", "application_id": "app_y", "dry_run": dry_run},
            "auth": f"Bearer {TOKEN}",
        }
    ]
    assert state == RotationState(
        request_id="req-1",
        step="disable",
        reason=ANSWER["reason"],
        current_secret_id="sct_new",
        secrets=(
            SecretState("sct_old", "disabled", None),
            SecretState("sct_new", "enabled", NOW + 30 * 86_400_000),
        ),
        next_step_at=NOW + 3_600_000,
    )
    assert state.to_dict()["secrets"][0] == ANSWER["secrets"][0]


def test_an_error_body_is_the_services_error(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/v1/secrets/rotate").respond_with_json(
        {"error": {"code": "AccessDenied", "message": "no", "request_id": "req-2"}}, status=403
    )
    with pytest.raises(RefusedError) as info:
        _client(httpserver).rotate("idaas_x", "app_y")
    assert (info.value.status, info.value.code, info.value.request_id) == (
        403,
        "AccessDenied",
        "req-2",
    )


@pytest.mark.parametrize(
    "body",
    [
        {**ANSWER, "step": "rotate"},
        {**ANSWER, "secrets": [{"status": "enabled"}]},
        {**ANSWER, "next_step_at": "soon"},
        {**ANSWER, "reason": None},
        [ANSWER],
    ],
)
def test_an_answer_that_is_not_a_rotations_is_a_bad_response(
    httpserver: HTTPServer, body: Any
) -> None:
    httpserver.expect_request("/v1/secrets/rotate").respond_with_json(body)
    with pytest.raises(VendApiError) as info:
        _client(httpserver).rotate("idaas_x", "app_y")
    assert info.value.code == "BadResponse"


def test_the_state_as_vend_rotate_prints_it() -> None:
    state = RotationState.from_dict(ANSWER, request_id="req-1")
    assert describe(state, instance_id="idaas_x", application_id="app_y", now_ms=NOW) == (
        "application idaas_x/app_y\n"
        "  sct_old  disabled  expires never\n"
        "  sct_new  enabled   expires 2027-02-14T08:00:00Z (in 30 d)  current"
    )
    assert describe_step(state, now_ms=NOW, taken=False) == (
        f"next step: disable, due now\n  why: {ANSWER['reason']}"
    )
    waiting = RotationState.from_dict({**ANSWER, "step": "none"})
    assert describe_step(waiting, now_ms=NOW, taken=True) == (
        "step taken: none; the next may come due 2027-01-15T09:00:00Z (in 1 h)\n"
        f"  why: {ANSWER['reason']}"
    )
    stuck = RotationState.from_dict({**ANSWER, "step": "none", "next_step_at": None})
    assert "none will come due without an operator" in describe_step(stuck, now_ms=NOW, taken=False)
