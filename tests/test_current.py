"""The current secret end to end (contract section 14): `POST /v1/secrets/current` and its event
against the local stack (the emulator, and the FC handlers as `vend local` runs them), and every
way a caller asks for it: `CachingClient.get_current`, the agent without `secret_id`,
`vend-client run --env X=I/A/current` and `vend-client obtain` without `--secret`.

The world is the demo's, with applications whose two secrets each put one part of the rule to
the test (EIAM keeps at most two per application), and a policy that approves `billing` on every
secret of the instance but one, and `reports` on narrower grants only."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sdk_clients as sdk
from agent_process import VEND_CLIENT, curl, running_agent, token_endpoint
from alibabacloud_eiam20211201 import models as eiam_models
from pytest_httpserver import HTTPServer
from stack import Stack, running_stack

from infra.emulator import Seed
from vend_client import CachingClient, Credentials, RefusedError, VendResponse

pytestmark = pytest.mark.contract("14")

DAY_MS = 24 * 3600 * 1000
NOW_MS = int(time.time() * 1000)
INSTANCE = sdk.INSTANCE
BILLING_ARN = f"acs:ram::{sdk.ACCOUNT}:user/billing"
REPORTS_ARN = f"acs:ram::{sdk.ACCOUNT}:user/reports"
LIST = "eiam:ListApplicationClientSecrets"
OBTAIN = "eiam:ObtainApplicationClientSecret"
AGENT_TOKEN = "current-agent-token-0123456789abcdef"
# What a refused caller may cost upstream: STS verifying its RAM proof, nothing else.
AUTHENTICATION = {"GetCallerIdentity": 1}


def _secret(secret_id: str, expires_in_days: int | None, status: str = "enabled") -> dict[str, Any]:
    return {
        "secret_id": secret_id,
        "client_secret": f"CS-{secret_id}-{expires_in_days}-days-{status}-0000000000",
        "status": status,
        "expiration_time": None if expires_in_days is None else NOW_MS + expires_in_days * DAY_MS,
    }


# Each application's secrets, in the order EIAM lists them, and which is current.
APPLICATIONS: dict[str, tuple[list[dict[str, Any]], str | None]] = {
    # The latest expiration wins, whatever the order and however the IDs compare.
    "app_latest": ([_secret("sct_a", 10), _secret("sct_b", 20)], "sct_b"),
    # A secret without an expiration ranks below any with one.
    "app_noexp": ([_secret("sct_a", None), _secret("sct_b", 1)], "sct_b"),
    # A disabled secret is never current, however late it expires.
    "app_disabled": ([_secret("sct_a", 10), _secret("sct_b", 20, "disabled")], "sct_a"),
    # The same expiration: the smaller ID.
    "app_tie": ([_secret("sct_b", 30), _secret("sct_a", 30)], "sct_a"),
    # Neither enabled: no current secret.
    "app_off": ([_secret("sct_a", 10, "disabled"), _secret("sct_b", None, "disabled")], None),
    # Its current secret (sct_a) is one the policy denies billing.
    "app_denied": ([_secret("sct_a", 20), _secret("sct_b", 10)], "sct_a"),
}
CURRENT = {app: current for app, (_, current) in APPLICATIONS.items() if current is not None}
VALUES = {
    (app, s["secret_id"]): s["client_secret"]
    for app, (secrets, _) in APPLICATIONS.items()
    for s in secrets
}

POLICY = {
    "Version": "1",
    "Statement": [
        {
            "Sid": "billing-reads-every-secret",
            "Effect": "Allow",
            "Principal": {"RAM": [BILLING_ARN]},
            "Action": OBTAIN,
            "Resource": sdk.secret_arn("*", "*"),
        },
        {
            "Sid": "but-not-these",
            "Effect": "Deny",
            "Principal": {"RAM": [BILLING_ARN]},
            "Action": OBTAIN,
            # The one is current, the other is not (app_noexp's current is sct_b).
            "Resource": [
                sdk.secret_arn("app_denied", "sct_a"),
                sdk.secret_arn("app_noexp", "sct_a"),
            ],
        },
        {
            "Sid": "reports-reads-some-secrets",
            "Effect": "Allow",
            "Principal": {"RAM": [REPORTS_ARN]},
            "Action": OBTAIN,
            # Narrower grants, none of them every secret of the application.
            "Resource": [
                sdk.secret_arn("app_latest", "sct_b"),
                sdk.secret_arn("app_latest", "?"),
                sdk.secret_arn("app_latest", "sct_*"),
            ],
        },
    ],
    "Recipients": [
        {"Principal": BILLING_ARN, "KeyId": "key-billing"},
        {"Principal": REPORTS_ARN, "KeyId": "key-reports"},
    ],
}


@pytest.fixture
def seed(demo_seed: Seed) -> Seed:
    data = demo_seed.model_dump()
    demo = next(i for i in data["eiam_instances"] if i["instance_id"] == INSTANCE)
    demo["applications"] = [
        *demo["applications"],
        *(
            {"application_id": app, "client_id": app, "secrets": secrets}
            for app, (secrets, _) in APPLICATIONS.items()
        ),
    ]
    return Seed.model_validate(data)


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, seed, env={"VEND_POLICY": json.dumps(POLICY)}) as running:
        yield running


def _counts(stack: Stack) -> dict[str, int]:
    """What the emulator has answered, per action, as its admin API counts it."""
    calls = requests.get(stack.emulator.url + "/_emulator/calls", timeout=5).json()["calls"]
    return {k: int(v) for k, v in calls.items()}


def _since(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


def _audit(stack: Stack) -> list[dict[str, Any]]:
    return [json.loads(r.getMessage()) for r in stack.audit.records]


def _session_scopes(stack: Stack) -> set[tuple[str, str]]:
    """(action, resource) of every STS session the service assumed the role with."""
    scopes = set()
    for params in stack.emulator.emulator.params("AssumeRole"):
        for statement in json.loads(params["Policy"])["Statement"]:
            for action in statement["Action"]:
                scopes.update((action, resource) for resource in statement["Resource"])
    return scopes


def _post_current(stack: Stack, body: object, key: tuple[str, str] = sdk.BILLING) -> Any:
    auth = stack.client(key).authorization()
    data = body if isinstance(body, str) else json.dumps(body)
    return requests.post(
        stack.api.url + "/v1/secrets/current",
        data=data,
        headers={"Authorization": auth},
        timeout=20,
    )


def _error(resp: requests.Response) -> tuple[int, str, str]:
    error = resp.json()["error"]
    assert error["request_id"] == resp.headers["X-Request-Id"]
    return resp.status_code, error["code"], error["message"]


def _opened(stack: Stack, response: VendResponse, app: str) -> str:
    return stack.client().open_current(response, instance_id=INSTANCE, application_id=app)


def _disable(stack: Stack, app: str, secret_id: str) -> None:
    request = eiam_models.DisableApplicationClientSecretRequest(
        instance_id=INSTANCE, application_id=app, secret_id=secret_id
    )
    stack.operator_eiam().disable_application_client_secret(request)


# -- the service ----------------------------------------------------------------------------------


def test_the_current_secret_is_chosen_by_the_rule_and_sealed_as_that_secrets(
    stack: Stack,
) -> None:
    client = stack.client()
    wanted = {app: current for app, current in CURRENT.items() if app != "app_denied"}
    chosen: dict[str, str] = {}
    for app in wanted:
        response = client.current(INSTANCE, app)
        chosen[app] = response.secret_id
        # Sealed for the chosen secret's own ARN: the caller opens it as that secret's, and it
        # is that secret's value.
        assert response.envelope.encryption_context == {
            "vend:arn": sdk.secret_arn(app, response.secret_id),
            "vend:principal": BILLING_ARN,
            "vend:request_id": response.request_id,
        }
        assert _opened(stack, response, app) == VALUES[(app, response.secret_id)]
        assert (response.status, response.client_id, response.instance_id) == (
            "enabled",
            app,
            INSTANCE,
        )
    assert chosen == wanted
    # The demo's application and its one secret, as any other.
    demo = client.current(INSTANCE, "app_billing")
    assert demo.secret_id == "sct_billing_1"
    assert _opened(stack, demo, "app_billing") == "CSdemoBillingSecretValue0000000000000001"

    # Each request listed under a session scoped to List on every secret of the application,
    # and obtained under one scoped to the chosen secret alone; nothing else was asked of STS.
    chosen["app_billing"] = "sct_billing_1"
    assert _session_scopes(stack) == {
        scope
        for app, secret_id in chosen.items()
        for scope in ((LIST, sdk.secret_arn(app, "*")), (OBTAIN, sdk.secret_arn(app, secret_id)))
    }
    # One audit record each, naming the secret chosen.
    records = [r for r in _audit(stack) if r["action"] == "current"]
    assert [(r["resource"], r["decision"], r["outcome"]) for r in records] == [
        (sdk.secret_arn(app, secret_id), "allow", "ok") for app, secret_id in chosen.items()
    ]
    assert all(r["principal"] == BILLING_ARN and r["upstream_request_id"] for r in records)


def test_a_caller_approved_only_for_some_secrets_is_refused_before_any_upstream_call(
    stack: Stack,
) -> None:
    before = _counts(stack)
    refused = _post_current(
        stack, {"instance_id": INSTANCE, "application_id": "app_latest"}, sdk.REPORTS
    )
    status, code, message = _error(refused)
    assert (status, code) == (403, "AccessDenied")
    assert REPORTS_ARN in message
    assert _since(before, _counts(stack)) == AUTHENTICATION  # no AssumeRole, EIAM or KMS
    [record] = _audit(stack)
    assert (record["action"], record["resource"], record["decision"], record["outcome"]) == (
        "current",
        sdk.secret_arn("app_latest", "*"),
        "deny",
        "AccessDenied",
    )
    # The same caller gets that one secret by its ID: the refusal was for every secret.
    response = stack.client(sdk.REPORTS).obtain(INSTANCE, "app_latest", "sct_b")
    assert response.secret_id == "sct_b"


def test_an_explicit_deny_of_the_current_secret_holds(stack: Stack) -> None:
    before = _counts(stack)
    refused = _post_current(stack, {"instance_id": INSTANCE, "application_id": "app_denied"})
    status, code, message = _error(refused)
    assert (status, code) == (403, "AccessDenied")
    assert "sct_a" in message
    # Listed, then refused: the secret was never obtained, and no data key was made for it.
    assert _since(before, _counts(stack)) == {
        **AUTHENTICATION,
        "AssumeRole": 1,
        "ListApplicationClientSecrets": 1,
    }
    [record] = _audit(stack)
    assert (record["resource"], record["decision"], record["outcome"]) == (
        sdk.secret_arn("app_denied", "sct_a"),
        "deny",
        "AccessDenied",
    )


def test_an_application_without_an_enabled_secret_is_404(stack: Stack) -> None:
    before = _counts(stack)
    missing = _post_current(stack, {"instance_id": INSTANCE, "application_id": "app_off"})
    status, code, message = _error(missing)
    assert (status, code) == (404, "NotFound")
    assert message == f"application app_off of instance {INSTANCE} has no enabled client secret"
    assert _since(before, _counts(stack)) == {
        **AUTHENTICATION,
        "AssumeRole": 1,
        "ListApplicationClientSecrets": 1,
    }
    # An application EIAM does not know is EIAM's 404, as for obtain.
    unknown = _post_current(stack, {"instance_id": INSTANCE, "application_id": "app_nowhere"})
    assert _error(unknown)[:2] == (404, "NotFound")
    assert [r["outcome"] for r in _audit(stack)] == ["NotFound", "NotFound"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"instance_id": INSTANCE, "application_id": "app_latest", "secret_id": "sct_a"},
            400,
            "InvalidParameter",
        ),
        ({"instance_id": INSTANCE, "application_id": "app_*"}, 400, "InvalidParameter"),
        ({"instance_id": INSTANCE}, 400, "InvalidParameter"),
        ({"instance_id": INSTANCE, "application_id": 7}, 400, "InvalidParameter"),
        ("[]", 400, "MalformedRequest"),
        ("{", 400, "MalformedRequest"),
    ],
)
def test_a_bad_body_is_refused_before_anything_else(
    stack: Stack, body: object, status: int, code: str
) -> None:
    before = _counts(stack)
    assert _error(_post_current(stack, body))[:2] == (status, code)
    assert _since(before, _counts(stack)) == {}  # not even the caller's proof was checked


def test_current_takes_post_only(stack: Stack) -> None:
    got = requests.get(stack.api.url + "/v1/secrets/current", timeout=10)
    assert _error(got)[:2] == (405, "MethodNotAllowed")
    assert got.headers["Allow"] == "POST"


def test_the_current_event(stack: Stack) -> None:
    events = stack.events()
    response = events.current(INSTANCE, "app_latest")
    assert response.secret_id == "sct_b"
    assert _opened(stack, response, "app_latest") == VALUES[("app_latest", "sct_b")]
    with pytest.raises(RefusedError) as refused:
        stack.events(sdk.REPORTS).current(INSTANCE, "app_latest")
    assert (refused.value.status, refused.value.code) == (403, "AccessDenied")
    with pytest.raises(RefusedError) as missing:
        events.current(INSTANCE, "app_off")
    assert (missing.value.status, missing.value.code) == (404, "NotFound")
    assert [(r["action"], r["outcome"]) for r in _audit(stack)] == [
        ("current", "ok"),
        ("current", "AccessDenied"),
        ("current", "NotFound"),
    ]


# -- the caller's ways to it --------------------------------------------------------------------


def test_get_current_is_cached_and_refresh_now_follows_a_new_current_secret(stack: Stack) -> None:
    cache = CachingClient(
        stack.api.url,
        audience="vend-local",
        credentials=Credentials(*sdk.BILLING),
        sts_endpoint=stack.emulator.url,
        kms_endpoint=stack.emulator.url,
    )
    with cache:
        first = cache.get_current(INSTANCE, "app_latest")
        assert (first.secret_id, first.client_secret) == ("sct_b", VALUES[("app_latest", "sct_b")])
        assert cache.get_current(INSTANCE, "app_latest") == first
        assert (len(_audit(stack)), _counts(stack)["ObtainApplicationClientSecret"]) == (1, 1)
        # sct_b disabled: sct_a is current now. The cache serves what it has until asked anew.
        _disable(stack, "app_latest", "sct_b")
        assert cache.get_current(INSTANCE, "app_latest").secret_id == "sct_b"
        fresh = cache.refresh_now(INSTANCE, "app_latest")
        assert (fresh.secret_id, fresh.client_secret) == ("sct_a", VALUES[("app_latest", "sct_a")])
        assert cache.get_current(INSTANCE, "app_latest") == fresh
    assert [r["action"] for r in _audit(stack)] == ["current", "current"]


def test_the_agent_without_secret_id_serves_the_current_secret_and_its_tokens(
    stack: Stack, tmp_path: Path
) -> None:
    env = stack.caller_environment(
        VEND_AGENT_TOKEN=AGENT_TOKEN, VEND_TOKEN_ENDPOINT=token_endpoint(stack)
    )
    header = ("-H", f"X-Vend-Agent-Token: {AGENT_TOKEN}")
    query = f"instance_id={INSTANCE}&application_id=app_latest"
    with running_agent(env, tmp_path) as agent:
        status, secret = curl(f"{agent.url}/v1/secret?{query}", *header)
        assert status == 200, secret
        assert (secret["secret_id"], secret["client_secret"]) == (
            "sct_b",
            VALUES[("app_latest", "sct_b")],
        )
        status, token = curl(f"{agent.url}/v1/token?{query}", *header)
        assert status == 200, token
        assert token["access_token"]
        # sct_b disabled in EIAM: the token endpoint refuses it, and the agent asks the service
        # for the current secret again (sct_a now), and gets the token with that.
        _disable(stack, "app_latest", "sct_b")
        status, again = curl(f"{agent.url}/v1/token?{query}&refresh_now=true", *header)
        assert status == 200, again
        assert again["access_token"] != token["access_token"]
        status, secret = curl(f"{agent.url}/v1/secret?{query}", *header)
        assert secret["secret_id"] == "sct_a"
        stderr = agent.stderr()
    assert [r["action"] for r in _audit(stack)] == ["current", "current"]
    assert VALUES[("app_latest", "sct_b")] not in stderr


def _vend_client(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VEND_CLIENT), *args],
        env=stack.caller_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_run_with_secret_id_current(stack: Stack) -> None:
    done = _vend_client(
        stack,
        *("run", "--env", f"DB={INSTANCE}/app_latest/current", "--"),
        *("sh", "-c", 'printf "%s %s" "$DB" "$DB_CLIENT_ID"'),
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"{VALUES[('app_latest', 'sct_b')]} app_latest"


def test_obtain_without_secret_prints_the_current_secret(stack: Stack) -> None:
    done = _vend_client(stack, "obtain", "--instance", INSTANCE, "--application", "app_latest")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == VALUES[("app_latest", "sct_b")]
    assert done.stderr == "vend: current secret_id sct_b\n"
    whole = _vend_client(
        stack, "obtain", "--instance", INSTANCE, "--application", "app_noexp", "--json"
    )
    answer = json.loads(whole.stdout)
    assert (answer["secret_id"], answer["client_secret"]) == (
        "sct_b",
        VALUES[("app_noexp", "sct_b")],
    )
    refused = _vend_client(stack, "obtain", "--instance", INSTANCE, "--application", "app_off")
    assert refused.returncode != 0
    assert refused.stderr.startswith("vend: 404 NotFound")


# -- a misbehaving EIAM ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "listed",
    [
        [{"SecretId": "sct_a/*", "Status": "enabled"}],  # would widen an ARN
        [{"SecretId": "sct_a", "Status": "enabled"}, {"SecretId": "x" * 65, "Status": "enabled"}],
    ],
)
def test_a_listed_id_that_cannot_be_an_id_is_502_and_nothing_is_obtained(
    monkeypatch: pytest.MonkeyPatch, seed: Seed, httpserver: HTTPServer, listed: list[Any]
) -> None:
    httpserver.expect_request("/", method="POST").respond_with_json(
        {"RequestId": "list-1", "ApplicationClientSecrets": listed, "TotalCount": len(listed)}
    )
    env = {
        "VEND_POLICY": json.dumps(POLICY),
        "VEND_EIAM_ENDPOINT": f"http://{httpserver.host}:{httpserver.port}",
    }
    with running_stack(monkeypatch, seed, env=env) as stack:
        answer = _post_current(stack, {"instance_id": INSTANCE, "application_id": "app_latest"})
        assert _error(answer)[:2] == (502, "UpstreamError")
    asked = {req.headers.get("x-acs-action") for req, _ in httpserver.log}
    assert asked == {"ListApplicationClientSecrets"}


# -- failing upstreams (contract section 7) ------------------------------------------------------

LATEST = {"instance_id": INSTANCE, "application_id": "app_latest"}


@pytest.mark.parametrize(
    ("fault", "status", "code", "upstream"),
    [
        ({"action": "ListApplicationClientSecrets", "status": 503}, 502, "UpstreamError", "eiam"),
        (
            {"action": "ListApplicationClientSecrets", "status": 429, "code": "Throttling"},
            429,
            "Throttled",
            "eiam",
        ),
        (
            {"action": "ListApplicationClientSecrets", "malformed": True},
            502,
            "UpstreamError",
            "eiam",
        ),
        ({"action": "ListApplicationClientSecrets", "reset": True}, 502, "UpstreamError", "eiam"),
        ({"action": "ObtainApplicationClientSecret", "status": 503}, 502, "UpstreamError", "eiam"),
        ({"action": "GenerateDataKey", "status": 503}, 502, "UpstreamError", "kms"),
        ({"action": "AssumeRole", "status": 503}, 502, "UpstreamError", "sts"),
    ],
    ids=[
        "list-503",
        "list-429",
        "list-malformed",
        "list-reset",
        "obtain-503",
        "kms-503",
        "sts-503",
    ],
)
def test_a_failing_upstream_is_its_error_and_the_next_request_after_it_clears_succeeds(
    stack: Stack, fault: dict[str, Any], status: int, code: str, upstream: str
) -> None:
    if "status" in fault and "code" not in fault:
        fault = {**fault, "code": "ServiceUnavailable"}
    put = requests.put(f"{stack.emulator.url}/_emulator/faults", json=[fault], timeout=5)
    assert put.status_code == 200, put.text
    failed = _post_current(stack, LATEST)
    assert _error(failed)[:2] == (status, code)
    requests.delete(f"{stack.emulator.url}/_emulator/faults", timeout=5)
    assert _post_current(stack, LATEST).json()["secret_id"] == "sct_b"
    first, second = _audit(stack)
    assert (first["outcome"], first["upstream"], second["outcome"]) == (code, upstream, "ok")


def test_sessions_the_upstream_forgot_are_assumed_again(stack: Stack) -> None:
    assert _post_current(stack, LATEST).status_code == 200
    restarted = requests.post(f"{stack.emulator.url}/_emulator/restart", timeout=5)
    assert restarted.status_code == 200
    again = _post_current(stack, LATEST)
    assert (again.status_code, again.json()["secret_id"]) == (200, "sct_b")
    assert _since({}, _counts(stack))["AssumeRole"] == 4  # list and obtain, twice each
