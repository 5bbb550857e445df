"""The whole local stack (the emulator, and the FC HTTP handler behind the local FC bridge) with
exactly the deployed RAM policies of `infra/policies/` in place of the demo world's: the main
end-to-end paths still pass, and what the policies forbid stays forbidden even when the
approval policy would let it through."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sdk_clients as sdk
from alibabacloud_eiam20211201 import models as eiam_models
from stack import DEMO_POLICY, DEMO_SEED, Stack, plant_a_dead_create, running_stack

from infra.emulator import Seed, load_seed
from infra.policies import load_policy
from infra.seed_from_policies import seed_with_infra_policies
from vend_client import CloudError, VendApiError, VendResponse

BILLING_ARN = f"acs:ram::{sdk.ACCOUNT}:user/billing"
BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"
REPORTS_SECRET = "CSdemoReportsSecretValue000000000000001"
OTHER_SECRET = "CSdemoOtherSecretValue00000000000000001"
VENDING_SESSION = "acs:ram::1234567890123456:assumed-role/vend-eiam/"


@pytest.fixture(scope="module")
def infra_seed() -> Seed:
    return seed_with_infra_policies(load_seed(DEMO_SEED))


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, infra_seed: Seed) -> Iterator[Stack]:
    with running_stack(monkeypatch, infra_seed) as running:
        yield running


def _open(
    stack: Stack,
    response: VendResponse,
    app: str,
    secret: str | None,
    key: tuple[str, str] = sdk.BILLING,
) -> str:
    return stack.client(key).open(
        response,
        instance_id="idaas_demo",
        application_id=app,
        secret_id=secret,
    )


def _eiam_calls(stack: Stack, action: str) -> list[str]:
    """The outcome code of each call of an EIAM action that a vending-role session made (the
    tests' own look-ups, as the operator, left out)."""
    return [code for _, who, code in stack.calls(action) if who.startswith(VENDING_SESSION)]


def test_the_stack_runs_on_the_infra_policies(stack: Stack) -> None:
    seed = stack.emulator.emulator.seed
    users = {u.name: u for u in seed.users}
    assert users["billing"].policies == (
        load_policy("caller-decrypt", key_arn=sdk.key_arn("key-billing")),
    )
    assert seed.roles[0].policies == (
        load_policy(
            "vend-eiam", region=sdk.REGION, account_id=sdk.ACCOUNT, instance_id="idaas_demo"
        ),
    )


def test_obtain_and_open_as_billing_and_reports_cannot_open_it(stack: Stack) -> None:
    response = stack.client().obtain("idaas_demo", "app_billing", "sct_billing_1")
    assert response.envelope.key_id == "key-billing"
    assert _open(stack, response, "app_billing", "sct_billing_1") == BILLING_SECRET
    with pytest.raises(CloudError) as info:  # KMS: key-billing is not reports' key
        stack.client(sdk.REPORTS).open(
            response,
            instance_id="idaas_demo",
            application_id="app_billing",
            secret_id="sct_billing_1",
            expected_principal=BILLING_ARN,
        )
    assert (info.value.service, info.value.status) == ("KMS", 403)
    assert _eiam_calls(stack, "ObtainApplicationClientSecret") == ["OK"]


def test_reports_obtains_and_opens_its_own(stack: Stack) -> None:
    response = stack.client(sdk.REPORTS).obtain("idaas_demo", "app_reports", "sct_reports_1")
    assert response.envelope.key_id == "key-reports"
    opened = _open(stack, response, "app_reports", "sct_reports_1", key=sdk.REPORTS)
    assert opened == REPORTS_SECRET


def test_create_without_an_idempotency_key(stack: Stack) -> None:
    made = stack.client().create("idaas_demo", "app_empty")
    secret = _open(stack, made, "app_empty", None)
    assert secret.startswith("CS")
    got = stack.client().obtain("idaas_demo", "app_empty", made.secret_id)
    assert _open(stack, got, "app_empty", made.secret_id) == secret
    assert stack.secret_ids("app_empty") == [made.secret_id]
    assert _eiam_calls(stack, "CreateApplicationClientSecret") == ["OK"]


def test_create_with_an_idempotency_key_lists_then_creates_once(stack: Stack) -> None:
    key = f"infra-{uuid.uuid4().hex}"
    first = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    second = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert first.secret_id == second.secret_id
    assert _open(stack, first, "app_empty", None) == _open(stack, second, "app_empty", None)
    assert stack.secret_ids("app_empty") == [first.secret_id]
    assert _eiam_calls(stack, "CreateApplicationClientSecret") == ["OK"]
    # Every keyed create lists the application's secrets first: the vending role needs List.
    assert _eiam_calls(stack, "ListApplicationClientSecrets") == ["OK"]


def test_a_caller_the_approval_policy_refuses(stack: Stack) -> None:
    before = len(stack.emulator.emulator.history)
    with pytest.raises(VendApiError) as info:
        stack.client(sdk.REPORTS).obtain("idaas_demo", "app_billing", "sct_billing_1")
    assert (info.value.status, info.value.code) == (403, "AccessDenied")
    # Only the RAM proof's GetCallerIdentity reached the emulator: nothing upstream.
    assert {a for a, _, _ in list(stack.emulator.emulator.history)[before:]} == {
        "GetCallerIdentity"
    }


def test_recovering_a_create_killed_between_the_eiam_answer_and_the_store_write(
    stack: Stack,
) -> None:
    """The state a process leaves when it dies right after EIAM created: its key's in-progress
    record, the application's lease with the secrets from before, a secret it never recorded,
    its deadline past. The
    retry lists the application's secrets (eiam:ListApplicationClientSecrets on the
    application's ARN) to find and adopt the orphan."""
    key = f"infra-{uuid.uuid4().hex}"
    plant_a_dead_create("memory://", BILLING_ARN, key, stack.secret_ids("app_empty"))
    orphan = (
        sdk.eiam(stack.emulator.endpoint, sdk.OPERATOR)
        .create_application_client_secret(
            eiam_models.CreateApplicationClientSecretRequest(
                instance_id="idaas_demo", application_id="app_empty"
            )
        )
        .body.application_client_secret
    )
    recovered = stack.client().create("idaas_demo", "app_empty", idempotency_key=key)
    assert recovered.secret_id == orphan.secret_id
    assert _open(stack, recovered, "app_empty", None) == orphan.client_secret
    assert stack.secret_ids("app_empty") == [orphan.secret_id]
    # Listed (by the vending role) and adopted; the service itself created nothing.
    assert _eiam_calls(stack, "ListApplicationClientSecrets") == ["OK"]
    assert _eiam_calls(stack, "CreateApplicationClientSecret") == []
    assert [who for _, who, _ in stack.calls("CreateApplicationClientSecret")] == [
        f"acs:ram::{sdk.ACCOUNT}:user/operator"
    ]


def test_the_roles_hold_where_the_approval_policy_is_too_wide(
    monkeypatch: pytest.MonkeyPatch, infra_seed: Seed, tmp_path: Path
) -> None:
    """An approval policy that lets billing into the other instance, and the operator (no
    recipient key) read a secret: the vending role still keeps the other instance out of reach,
    and the function may seal with the default key."""
    policy = json.loads(DEMO_POLICY.read_text())
    policy["Statement"] = [s for s in policy["Statement"] if s["Effect"] == "Allow"]
    policy["Statement"] += [
        {
            "Effect": "Allow",
            "Principal": {"RAM": [BILLING_ARN]},
            "Action": "eiam:ObtainApplicationClientSecret",
            "Resource": sdk.secret_arn("app_other", "*", instance="idaas_other"),
        },
        {
            "Effect": "Allow",
            "Principal": {"RAM": [f"acs:ram::{sdk.ACCOUNT}:user/operator"]},
            "Action": "eiam:ObtainApplicationClientSecret",
            "Resource": sdk.secret_arn("app_reports", "*"),
        },
    ]
    path = tmp_path / "too-wide.json"
    path.write_text(json.dumps(policy))
    with running_stack(monkeypatch, infra_seed, env={"VEND_POLICY": str(path)}) as stack:
        with pytest.raises(VendApiError) as info:
            stack.client().obtain("idaas_other", "app_other", "sct_other_1")
        assert (info.value.status, info.value.code) == (403, "AccessDenied")
        assert _eiam_calls(stack, "ObtainApplicationClientSecret") == ["Forbidden.RAM"]
        assert OTHER_SECRET not in stack.logs.text() + stack.audit.text()

        response = stack.client(sdk.OPERATOR).obtain("idaas_demo", "app_reports", "sct_reports_1")
        assert response.envelope.key_id == "key-default"


def test_without_list_every_create_is_refused_and_creates_nothing(
    monkeypatch: pytest.MonkeyPatch, infra_seed: Seed
) -> None:
    """Why eiam:ListApplicationClientSecrets is in the vending role: take it out and every
    create fails before it is sent (a create lists first, to resolve a lost answer)."""
    data = infra_seed.model_dump(mode="json")
    for statement in data["roles"][0]["policies"][0]["Statement"]:
        statement["Action"].remove("eiam:ListApplicationClientSecrets")
    seed = Seed.model_validate(data)
    with running_stack(monkeypatch, seed) as stack:
        with pytest.raises(VendApiError) as info:
            stack.client().create("idaas_demo", "app_empty", idempotency_key=uuid.uuid4().hex)
        assert (info.value.status, info.value.code) == (403, "AccessDenied")
        assert stack.secret_ids("app_empty") == []
        with pytest.raises(VendApiError) as info:
            stack.client().create("idaas_demo", "app_empty")
        assert (info.value.status, info.value.code) == (403, "AccessDenied")
        assert _eiam_calls(stack, "ListApplicationClientSecrets") == ["Forbidden.RAM"] * 2
        assert _eiam_calls(stack, "CreateApplicationClientSecret") == []
        assert stack.secret_ids("app_empty") == []
