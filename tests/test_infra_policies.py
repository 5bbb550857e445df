"""The deployed RAM policies (`infra/policies/*.json`, filled as `infra/terraform/` fills them):
what each identity may and may not do, asked of the project's RAM engine, of Terraform itself
where it is installed, and of the emulator over real HTTP with the real SDK clients."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sdk_clients as sdk
from alibabacloud_eiam20211201 import models as eiam_models
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_tea_openapi.exceptions import ClientException

from infra.emulator import EmulatorServer, Seed
from infra.policies import (
    POLICY_DIR,
    PolicyTemplate,
    PolicyTemplateError,
    load_policy,
    policy_names,
    policy_template,
)
from infra.seed_from_policies import seed_with_infra_policies
from shared.arns import session_policy
from shared.ram_policy import (
    Decision,
    Policy,
    Principal,
    RequestContext,
    evaluate,
    evaluate_session,
    parse_policy,
)

ROOT = Path(__file__).resolve().parent.parent
TERRAFORM_DIR = ROOT / "infra" / "terraform"

ACCOUNT, REGION, INSTANCE = sdk.ACCOUNT, sdk.REGION, sdk.INSTANCE
OTHER_ACCOUNT = "6543210987654321"
# In the cloud the function's identity is a role that FC assumes; its ARN fills the trust.
FUNCTION_ROLE = f"acs:ram::{ACCOUNT}:role/vend-function"
VENDING_ROLE = sdk.ROLE_ARN
FUNCTION_USER = f"acs:ram::{ACCOUNT}:user/vend-function"
DATA_KEYS = [sdk.key_arn("key-default"), sdk.key_arn("key-billing"), sdk.key_arn("key-reports")]
ROTATION_FUNCTION = f"acs:fc:{REGION}:{ACCOUNT}:functions/vend-rotation"
STORE_PASSWORD_KEY = sdk.key_arn("key-store-password")

# The variables each file is filled with here, as Terraform fills them in the cloud.
CLOUD_VARIABLES: dict[str, dict[str, str | list[str]]] = {
    "fc-function-trust": {},
    "fc-function": {
        "vending_role_arn": VENDING_ROLE,
        "data_key_arns": DATA_KEYS,
        "rotation_function_arn": ROTATION_FUNCTION,
        "store_password_key_arn": STORE_PASSWORD_KEY,
    },
    "vend-eiam-trust": {"function_principal": FUNCTION_ROLE},
    "vend-eiam": {"region": REGION, "account_id": ACCOUNT, "instance_id": INSTANCE},
    "caller-decrypt": {"key_arn": sdk.key_arn("key-billing")},
}

EIAM_ACTIONS = [
    "eiam:ObtainApplicationClientSecret",
    "eiam:CreateApplicationClientSecret",
    "eiam:ListApplicationClientSecrets",
    "eiam:DeleteApplicationClientSecret",
    "eiam:EnableApplicationClientSecret",
    "eiam:DisableApplicationClientSecret",
    "eiam:UpdateApplicationClientSecretExpirationTime",
    "eiam:CreateApplication",
    "eiam:DeleteApplication",
]
KMS_ACTIONS = [
    "kms:Decrypt",
    "kms:Encrypt",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:ReEncrypt",
    "kms:ScheduleKeyDeletion",
    "kms:CreateAlias",
]
OTHER_ACTIONS = ["sts:AssumeRole", "ram:AttachPolicyToRole", "ram:UpdateRole", "fc:InvokeFunction"]


def _policy(name: str, **variables: str | list[str]) -> Policy:
    template = policy_template(name)
    return parse_policy(load_policy(name, **variables), kind=template.kind, name=name)


def _secret(app: str, secret: str, instance: str = INSTANCE, region: str = REGION) -> str:
    return f"acs:eiam:{region}:{ACCOUNT}:instance/{instance}/application/{app}/secret/{secret}"


def _all_secrets(app: str, instance: str = INSTANCE, account: str = ACCOUNT) -> str:
    """What RAM authorizes List on: the resource type Secret, every secret of the application."""
    return f"acs:eiam:{REGION}:{account}:instance/{instance}/application/{app}/secret/*"


def _ram(arn: str) -> Principal:
    return Principal("RAM", arn)


def _decide(policies: list[Policy], action: str, resource: str | None, who: str) -> Decision:
    """`resource=None` asks about the action on any resource at all."""
    ctx = RequestContext(action=action, resource=resource, principal=_ram(who))
    return evaluate(policies, ctx).decision


ALLOW, DENY = Decision.ALLOW, Decision.IMPLICIT_DENY


# -- The files themselves, and the loader -----------------------------------------------------


def test_the_policy_files_are_the_five_documents() -> None:
    assert set(policy_names()) == set(CLOUD_VARIABLES)


@pytest.mark.parametrize("name", sorted(CLOUD_VARIABLES))
def test_each_filled_document_is_a_valid_alibaba_ram_policy(name: str) -> None:
    """RAM's grammar: Version "1" and a Statement list; Effect, Action/NotAction,
    Resource/NotResource, Condition (and Principal in a trust policy); no Sid; 6,144 characters
    at most."""
    template = policy_template(name)
    document = load_policy(name, **CLOUD_VARIABLES[name])
    assert set(document) == {"Version", "Statement"}
    assert document["Version"] == "1"
    assert isinstance(document["Statement"], list) and document["Statement"]
    allowed = {"Effect", "Action", "NotAction", "Resource", "NotResource", "Condition"}
    for statement in document["Statement"]:
        if template.kind == "trust":
            assert set(statement) <= allowed | {"Principal"} and "Principal" in statement
            assert set(statement["Principal"]) <= {"RAM", "Service", "Federated"}
            assert statement["Action"] == "sts:AssumeRole"
        else:
            assert set(statement) <= allowed and "Resource" in statement
            for arn in statement["Resource"]:
                assert arn.startswith("acs:")
        assert statement["Effect"] in ("Allow", "Deny")
        actions = statement["Action"]
        for action in [actions] if isinstance(actions, str) else actions:
            assert re.fullmatch(r"[a-z]+:[A-Z][A-Za-z]+", action), action
    assert len(json.dumps(document, separators=(",", ":"))) <= 6144


def test_the_only_wildcard_is_the_vending_roles_applications() -> None:
    resources = [
        arn
        for name, variables in CLOUD_VARIABLES.items()
        if policy_template(name).kind == "identity"
        for statement in load_policy(name, **variables)["Statement"]
        for arn in statement["Resource"]
    ]
    wild = [arn for arn in resources if "*" in arn or "?" in arn]
    assert wild == [f"acs:eiam:{REGION}:{ACCOUNT}:instance/{INSTANCE}/application/*"]
    for name in CLOUD_VARIABLES:
        for statement in load_policy(name, **CLOUD_VARIABLES[name])["Statement"]:
            assert statement["Effect"] == "Allow"
            assert "*" not in json.dumps(statement.get("Action")), name


@pytest.mark.parametrize(
    ("name", "variables", "message"),
    [
        pytest.param(
            "vend-eiam", {"region": REGION, "account_id": ACCOUNT}, "missing", id="missing"
        ),
        pytest.param(
            "caller-decrypt",
            {"key_arn": sdk.key_arn("key-billing"), "extra": "x"},
            "unknown",
            id="unknown",
        ),
        pytest.param(
            "vend-eiam",
            {"region": REGION, "account_id": ACCOUNT, "instance_id": "*"},
            "contains '*'",
            id="wildcard-widens",
        ),
        pytest.param(
            "vend-eiam",
            {"region": REGION, "account_id": ACCOUNT, "instance_id": "a?"},
            "contains '?'",
            id="question-mark",
        ),
        pytest.param(
            "caller-decrypt", {"key_arn": 'x", "*'}, "contains '\"'", id="quote-breaks-out"
        ),
        pytest.param("caller-decrypt", {"key_arn": "${x}"}, "contains '$'", id="template-syntax"),
        pytest.param("caller-decrypt", {"key_arn": ""}, "empty", id="empty"),
        pytest.param(
            "caller-decrypt", {"key_arn": ["a"]}, "must be a string", id="list-for-string"
        ),
        pytest.param(
            "fc-function",
            {**CLOUD_VARIABLES["fc-function"], "data_key_arns": DATA_KEYS[0]},
            "must be a list",
            id="string-for-list",
        ),
        pytest.param(
            "fc-function",
            {**CLOUD_VARIABLES["fc-function"], "data_key_arns": []},
            "must not be empty",
            id="empty-list",
        ),
        pytest.param("../seed", {}, "not a policy name", id="path"),
        pytest.param("no-such-policy", {}, "no policy file", id="no-file"),
    ],
)
def test_the_loader_refuses(name: str, variables: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyTemplateError, match=re.escape(message)):
        load_policy(name, **variables)


@pytest.mark.parametrize(
    "text",
    [
        '{"Version": "1", "Statement": %{ if a }[]%{ endif }}',
        '{"Resource": "${upper(key_arn)}"}',
        '{"Resource": "$key_arn"}',
        '{"Resource": "$${key_arn}"}',
    ],
    ids=["directive", "function", "bare-dollar", "escape"],
)
def test_the_loader_refuses_other_template_syntax(text: str) -> None:
    """Only the syntax that Terraform and the loader read the same way."""
    with pytest.raises(PolicyTemplateError, match="template syntax"):
        PolicyTemplate.parse("x", text)


def test_every_file_parses_as_a_template() -> None:
    for name in policy_names():
        template = policy_template(name)
        assert template.variables == set(CLOUD_VARIABLES[name]), name


# -- The function's role ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "resource", "expected"),
    [
        ("sts:AssumeRole", VENDING_ROLE, ALLOW),
        ("sts:AssumeRole", f"acs:ram::{ACCOUNT}:role/billing", DENY),
        ("sts:AssumeRole", f"acs:ram::{ACCOUNT}:role/vend-eiam-admin", DENY),
        ("sts:AssumeRole", f"acs:ram::{OTHER_ACCOUNT}:role/vend-eiam", DENY),
        ("kms:GenerateDataKey", sdk.key_arn("key-default"), ALLOW),
        ("kms:GenerateDataKey", sdk.key_arn("key-billing"), ALLOW),
        ("kms:GenerateDataKey", sdk.key_arn("key-reports"), ALLOW),
        ("kms:GenerateDataKey", sdk.key_arn("key-other"), DENY),
        ("kms:GenerateDataKey", f"acs:kms:cn-shanghai:{ACCOUNT}:key/key-billing", DENY),
        ("kms:GenerateDataKey", f"acs:kms:{REGION}:{OTHER_ACCOUNT}:key/key-billing", DENY),
        ("kms:Decrypt", sdk.key_arn("key-billing"), DENY),
        ("kms:Decrypt", sdk.key_arn("key-default"), DENY),
        # the Redis password's ciphertext, and with that key nothing else
        ("kms:Decrypt", STORE_PASSWORD_KEY, ALLOW),
        ("kms:Encrypt", STORE_PASSWORD_KEY, DENY),
        ("kms:GenerateDataKey", STORE_PASSWORD_KEY, DENY),
        ("kms:Encrypt", sdk.key_arn("key-default"), DENY),
        ("kms:GenerateDataKeyWithoutPlaintext", sdk.key_arn("key-default"), DENY),
        ("eiam:ObtainApplicationClientSecret", _secret("app_billing", "sct_billing_1"), DENY),
        ("eiam:CreateApplicationClientSecret", _secret("app_empty", "*"), DENY),
        ("eiam:ListApplicationClientSecrets", _all_secrets("app_empty"), DENY),
        ("ram:UpdateRole", VENDING_ROLE, DENY),
        # the rotation schedule queues its batches to itself, and to no other function
        ("fc:InvokeFunction", ROTATION_FUNCTION, ALLOW),
        ("fc:InvokeFunction", f"acs:fc:{REGION}:{ACCOUNT}:functions/vend-events", DENY),
        ("fc:InvokeFunction", f"acs:fc:cn-shanghai:{ACCOUNT}:functions/vend-rotation", DENY),
        ("fc:InvokeFunction", f"acs:fc:{REGION}:{OTHER_ACCOUNT}:functions/vend-rotation", DENY),
        ("fc:UpdateFunction", ROTATION_FUNCTION, DENY),
    ],
)
def test_the_function_role(action: str, resource: str, expected: Decision) -> None:
    function = _policy("fc-function", **CLOUD_VARIABLES["fc-function"])
    assert _decide([function], action, resource, FUNCTION_ROLE) is expected


@pytest.mark.parametrize("action", EIAM_ACTIONS + OTHER_ACTIONS[1:] + KMS_ACTIONS)
def test_the_function_role_has_no_other_action_on_any_resource(action: str) -> None:
    """No EIAM action at all (it cannot read a secret without the scoped role); of KMS, only
    GenerateDataKey and Decrypt (on the store-password key); of STS, only AssumeRole; of FC,
    only InvokeFunction (on one function)."""
    function = _policy("fc-function", **CLOUD_VARIABLES["fc-function"])
    allowed = ("kms:GenerateDataKey", "kms:Decrypt", "fc:InvokeFunction")
    expected = ALLOW if action in allowed else DENY
    assert _decide([function], action, None, FUNCTION_ROLE) is expected


# -- The vending role ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "resource", "expected"),
    [
        ("eiam:ObtainApplicationClientSecret", _secret("app_billing", "sct_billing_1"), ALLOW),
        ("eiam:CreateApplicationClientSecret", _secret("app_empty", "*"), ALLOW),
        ("eiam:ListApplicationClientSecrets", _all_secrets("app_empty"), ALLOW),
        # another instance, a look-alike instance, another region or account
        (
            "eiam:ObtainApplicationClientSecret",
            _secret("app_other", "sct_other_1", "idaas_other"),
            DENY,
        ),
        ("eiam:CreateApplicationClientSecret", _secret("app_other", "*", "idaas_other"), DENY),
        ("eiam:ListApplicationClientSecrets", _all_secrets("app_other", "idaas_other"), DENY),
        ("eiam:ObtainApplicationClientSecret", _secret("app_billing", "s", "idaas_demo2"), DENY),
        (
            "eiam:ObtainApplicationClientSecret",
            _secret("app_billing", "s", region="cn-beijing"),
            DENY,
        ),
        (
            "eiam:ListApplicationClientSecrets",
            _all_secrets("app_empty", account=OTHER_ACCOUNT),
            DENY,
        ),
        (
            "eiam:ListApplicationClientSecrets",
            f"acs:eiam:{REGION}:{ACCOUNT}:instance/{INSTANCE}",
            DENY,
        ),
        # rotation retires old secrets: disable and delete, in the instance only
        ("eiam:DisableApplicationClientSecret", _secret("app_billing", "sct_billing_1"), ALLOW),
        ("eiam:DeleteApplicationClientSecret", _secret("app_billing", "sct_billing_1"), ALLOW),
        (
            "eiam:DisableApplicationClientSecret",
            _secret("app_other", "sct_other_1", "idaas_other"),
            DENY,
        ),
        (
            "eiam:DeleteApplicationClientSecret",
            _secret("app_other", "sct_other_1", "idaas_other"),
            DENY,
        ),
        (
            "eiam:DeleteApplicationClientSecret",
            _secret("app_billing", "sct_billing_1", region="cn-beijing"),
            DENY,
        ),
        # the other secret actions: re-enabling a retired secret is an operator's
        ("eiam:EnableApplicationClientSecret", _secret("app_billing", "sct_billing_1"), DENY),
        (
            "eiam:UpdateApplicationClientSecretExpirationTime",
            _secret("app_billing", "sct_billing_1"),
            DENY,
        ),
        ("eiam:DeleteApplication", _all_secrets("app_billing").removesuffix("/secret/*"), DENY),
        # no KMS, no STS
        ("kms:Decrypt", sdk.key_arn("key-billing"), DENY),
        ("kms:GenerateDataKey", sdk.key_arn("key-default"), DENY),
        ("sts:AssumeRole", VENDING_ROLE, DENY),
    ],
)
def test_the_vending_role(action: str, resource: str, expected: Decision) -> None:
    vending = _policy("vend-eiam", **CLOUD_VARIABLES["vend-eiam"])
    assert _decide([vending], action, resource, VENDING_ROLE) is expected


@pytest.mark.parametrize("action", KMS_ACTIONS + OTHER_ACTIONS)
def test_the_vending_role_has_no_kms_sts_or_ram_action_at_all(action: str) -> None:
    vending = _policy("vend-eiam", **CLOUD_VARIABLES["vend-eiam"])
    assert _decide([vending], action, None, VENDING_ROLE) is DENY


ONE_SECRET = _secret("app_billing", "sct_billing_1")


@pytest.mark.parametrize(
    ("session", "action", "resource", "expected"),
    [
        # obtain: the one secret it names
        (
            ("eiam:ObtainApplicationClientSecret", ONE_SECRET),
            "eiam:ObtainApplicationClientSecret",
            ONE_SECRET,
            ALLOW,
        ),
        (
            ("eiam:ObtainApplicationClientSecret", ONE_SECRET),
            "eiam:ObtainApplicationClientSecret",
            _secret("app_billing", "sct_billing_2"),
            DENY,
        ),
        (
            ("eiam:ObtainApplicationClientSecret", ONE_SECRET),
            "eiam:ObtainApplicationClientSecret",
            _secret("app_reports", "sct_reports_1"),
            DENY,
        ),
        (
            ("eiam:ObtainApplicationClientSecret", ONE_SECRET),
            "eiam:CreateApplicationClientSecret",
            _secret("app_billing", "*"),
            DENY,
        ),
        (
            ("eiam:ObtainApplicationClientSecret", ONE_SECRET),
            "eiam:ListApplicationClientSecrets",
            _all_secrets("app_billing"),
            DENY,
        ),
        # create: in one application
        (
            ("eiam:CreateApplicationClientSecret", _secret("app_empty", "*")),
            "eiam:CreateApplicationClientSecret",
            _secret("app_empty", "*"),
            ALLOW,
        ),
        (
            ("eiam:CreateApplicationClientSecret", _secret("app_empty", "*")),
            "eiam:CreateApplicationClientSecret",
            _secret("app_billing", "*"),
            DENY,
        ),
        (
            ("eiam:CreateApplicationClientSecret", _secret("app_empty", "*")),
            "eiam:ObtainApplicationClientSecret",
            _secret("app_empty", "sci_1"),
            DENY,
        ),
        # list (an idempotent create): one application's secrets, nothing else
        (
            ("eiam:ListApplicationClientSecrets", _all_secrets("app_empty")),
            "eiam:ListApplicationClientSecrets",
            _all_secrets("app_empty"),
            ALLOW,
        ),
        (
            ("eiam:ListApplicationClientSecrets", _all_secrets("app_empty")),
            "eiam:ListApplicationClientSecrets",
            _all_secrets("app_billing"),
            DENY,
        ),
        (
            ("eiam:ListApplicationClientSecrets", _all_secrets("app_empty")),
            "eiam:ObtainApplicationClientSecret",
            _secret("app_empty", "sci_1"),
            DENY,
        ),
        # a session policy cannot widen the role: another instance stays out of reach
        (
            (
                "eiam:ObtainApplicationClientSecret",
                _secret("app_other", "sct_other_1", "idaas_other"),
            ),
            "eiam:ObtainApplicationClientSecret",
            _secret("app_other", "sct_other_1", "idaas_other"),
            DENY,
        ),
    ],
)
def test_a_vending_session_is_held_to_its_session_policy(
    session: tuple[str, str], action: str, resource: str, expected: Decision
) -> None:
    """The session policy the service sends (shared.arns.session_policy) intersected with the
    vending role's policy."""
    vending = _policy("vend-eiam", **CLOUD_VARIABLES["vend-eiam"])
    scoped = parse_policy(session_policy(*session))
    ctx = RequestContext(action=action, resource=resource, principal=_ram(VENDING_ROLE))
    assert evaluate_session([vending], scoped, ctx).allowed is (expected is ALLOW)


# -- Callers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("caller", "action", "key", "expected"),
    [
        ("key-billing", "kms:Decrypt", "key-billing", ALLOW),
        ("key-billing", "kms:Decrypt", "key-reports", DENY),
        ("key-billing", "kms:Decrypt", "key-default", DENY),
        ("key-reports", "kms:Decrypt", "key-reports", ALLOW),
        ("key-reports", "kms:Decrypt", "key-billing", DENY),
        ("key-billing", "kms:GenerateDataKey", "key-billing", DENY),
        ("key-billing", "kms:Encrypt", "key-billing", DENY),
    ],
)
def test_a_caller_decrypts_with_its_own_key_only(
    caller: str, action: str, key: str, expected: Decision
) -> None:
    policy = _policy("caller-decrypt", key_arn=sdk.key_arn(caller))
    assert _decide([policy], action, sdk.key_arn(key), "acs:ram::x:role/c") is expected


@pytest.mark.parametrize("action", EIAM_ACTIONS + KMS_ACTIONS[1:] + OTHER_ACTIONS)
def test_a_caller_policy_grants_nothing_but_decrypt(action: str) -> None:
    policy = _policy("caller-decrypt", key_arn=sdk.key_arn("key-billing"))
    assert _decide([policy], action, None, "acs:ram::x:role/c") is DENY


# -- Trust ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        (Principal("Service", "fc.aliyuncs.com"), ALLOW),
        (Principal("Service", "ecs.aliyuncs.com"), DENY),
        (Principal("Service", "fc.aliyuncs.com.example.com"), DENY),
        (_ram(f"acs:ram::{ACCOUNT}:root"), DENY),
        (_ram(f"acs:ram::{ACCOUNT}:user/billing"), DENY),
        (_ram(VENDING_ROLE), DENY),
    ],
)
def test_only_function_compute_assumes_the_function_role(
    principal: Principal, expected: Decision
) -> None:
    trust = _policy("fc-function-trust")
    ctx = RequestContext(action="sts:AssumeRole", principal=principal)
    assert evaluate([trust], ctx).decision is expected


@pytest.mark.parametrize(
    ("function_principal", "principal", "expected"),
    [
        (FUNCTION_ROLE, _ram(FUNCTION_ROLE), ALLOW),
        (FUNCTION_ROLE, _ram(f"acs:ram::{ACCOUNT}:role/billing"), DENY),
        (FUNCTION_ROLE, _ram(f"acs:ram::{OTHER_ACCOUNT}:role/vend-function"), DENY),
        (FUNCTION_ROLE, _ram(FUNCTION_USER), DENY),
        (FUNCTION_ROLE, _ram(f"acs:ram::{ACCOUNT}:root"), DENY),
        (FUNCTION_ROLE, Principal("Service", "fc.aliyuncs.com"), DENY),
        # the emulator's fill: the local stand-in for the function's role is a user
        (FUNCTION_USER, _ram(FUNCTION_USER), ALLOW),
        (FUNCTION_USER, _ram(f"acs:ram::{ACCOUNT}:user/billing"), DENY),
    ],
)
def test_only_the_function_assumes_the_vending_role(
    function_principal: str, principal: Principal, expected: Decision
) -> None:
    trust = _policy("vend-eiam-trust", function_principal=function_principal)
    ctx = RequestContext(action="sts:AssumeRole", principal=principal)
    assert evaluate([trust], ctx).decision is expected


# -- The Terraform template reads these very files -------------------------------------------------

_TEMPLATEFILE = re.compile(
    r'templatefile\(\s*"\$\{local\.policy_dir\}/([a-z0-9-]+)\.json"\s*,\s*\{([^{}]*)\}\s*\)'
)


def _terraform_text() -> str:
    """The .tf files without their comments (no string in them holds a #)."""
    text = "\n".join(p.read_text() for p in sorted(TERRAFORM_DIR.glob("*.tf")))
    return re.sub(r"#.*", "", text)


def test_terraform_reads_every_policy_file_with_exactly_its_variables() -> None:
    text = _terraform_text()
    assert 'policy_dir = "${path.module}/../policies"' in text
    assert (TERRAFORM_DIR / "../policies").resolve() == POLICY_DIR
    calls = _TEMPLATEFILE.findall(text)
    assert sorted(name for name, _ in calls) == sorted(policy_names())
    for name, body in calls:
        passed = set(re.findall(r"^\s*([a-z_][a-z0-9_]*)\s*=", body, re.MULTILINE))
        assert passed == policy_template(name).variables, name
    # No policy document is written inline: every one comes from a file.
    assert text.count("policy_document") == text.count("templatefile(") == len(calls)


def test_terraform_references_resolve() -> None:
    """What `terraform validate` would check first, without the provider (not reachable here):
    every resource, variable and local referenced is declared; only the eight resource types
    (the audit's SLS index and dashboard in logs.tf, its alerts in alerts.tf)."""
    text = _terraform_text()
    declared = set(re.findall(r'^resource "(alicloud_[a-z_]+)" "([a-z_]+)"', text, re.MULTILINE))
    assert {kind for kind, _ in declared} == {
        "alicloud_ram_role",
        "alicloud_ram_policy",
        "alicloud_ram_role_policy_attachment",
        "alicloud_kms_key",
        "alicloud_kms_alias",
        "alicloud_log_store_index",
        "alicloud_log_dashboard",
        "alicloud_log_alert",
    }
    used = set(re.findall(r"\b(alicloud_[a-z_]+)\.([a-z_]+)\b", text))
    assert used <= declared
    attributes = set(re.findall(r"\balicloud_[a-z_]+\.[a-z_]+(?:\[[^\]]+\])?\.([a-z_]+)", text))
    assert attributes <= {"arn", "id", "role_name", "policy_name"}
    variables = set(re.findall(r'^variable "([a-z][a-z0-9_]*)"', text, re.MULTILINE))
    assert set(re.findall(r"\bvar\.([a-z][a-z0-9_]*)", text)) <= variables
    assert {"region", "account_id", "idaas_instance_id", "callers"} <= variables
    locals_blocks = re.findall(r"^locals \{(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert locals_blocks
    declared_locals = {
        name
        for block in locals_blocks
        for name in re.findall(r"^  ([a-z_]+)\s*=", block, re.MULTILINE)
    }
    assert set(re.findall(r"\blocal\.([a-z_]+)", text)) <= declared_locals


def _hcl(value: str | list[str]) -> str:
    return json.dumps(value)  # a JSON string or list of strings is valid HCL


def test_terraform_formats_and_parses_the_template(terraform: str) -> None:
    result = subprocess.run(
        [terraform, "fmt", "-check", "-diff", "-no-color", str(TERRAFORM_DIR)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_terraform_fills_the_files_as_the_loader_does(terraform: str, tmp_path: Path) -> None:
    """Terraform's own templatefile(), on each file with the cloud variables, gives the very
    document that the tests above evaluate."""
    entries = []
    for name, variables in sorted(CLOUD_VARIABLES.items()):
        args = ", ".join(f"{k} = {_hcl(v)}" for k, v in variables.items())
        path = json.dumps(str(POLICY_DIR / f"{name}.json"))
        entries.append(f'"{name}" = jsondecode(templatefile({path}, {{ {args} }}))')
    # One expression: a piped `terraform console` prints only the last one's value.
    result = subprocess.run(
        [terraform, "console"],
        input="jsonencode({" + ", ".join(entries) + "})\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    filled = json.loads(json.loads(result.stdout.strip()))
    assert set(filled) == set(CLOUD_VARIABLES)
    for name, variables in CLOUD_VARIABLES.items():
        assert filled[name] == load_policy(name, **variables), name


# -- The same questions, asked of the emulator over HTTP --------------------------------------


@pytest.fixture(scope="module")
def infra_emulator(demo_seed: Seed) -> Iterator[EmulatorServer]:
    with EmulatorServer(seed_with_infra_policies(demo_seed)) as server:
        yield server


def _refused(call: Any) -> ClientException:
    with pytest.raises(ClientException) as info:
        call()
    return info.value


def _vending_session(endpoint: str) -> tuple[tuple[str, str], str]:
    """vend-eiam, assumed by the function without a session policy: all the role allows."""
    body = (
        sdk.sts(endpoint, sdk.FUNCTION)
        .assume_role(
            sts_models.AssumeRoleRequest(role_arn=sdk.ROLE_ARN, role_session_name="infra-test")
        )
        .body
    )
    creds = body.credentials
    return (creds.access_key_id, creds.access_key_secret), creds.security_token


def test_the_seed_carries_the_filled_files(demo_seed: Seed) -> None:
    seed = seed_with_infra_policies(demo_seed)
    users = {u.name: u for u in seed.users}
    (role,) = seed.roles
    assert users["vend-function"].policies == (
        load_policy(
            "fc-function",
            vending_role_arn=sdk.ROLE_ARN,
            data_key_arns=DATA_KEYS,
            rotation_function_arn=ROTATION_FUNCTION,
            store_password_key_arn=STORE_PASSWORD_KEY,
        ),
    )
    assert role.trust_policy == load_policy("vend-eiam-trust", function_principal=FUNCTION_USER)
    assert role.policies == (load_policy("vend-eiam", **CLOUD_VARIABLES["vend-eiam"]),)
    for caller in ("billing", "reports"):
        assert users[caller].policies == (
            load_policy("caller-decrypt", key_arn=sdk.key_arn(f"key-{caller}")),
        )
    assert users["operator"].policies == {u.name: u for u in demo_seed.users}["operator"].policies


def test_the_function_cannot_obtain_a_secret_directly(infra_emulator: EmulatorServer) -> None:
    eiam = sdk.eiam(infra_emulator.endpoint, sdk.FUNCTION)
    err = _refused(
        lambda: eiam.obtain_application_client_secret(
            eiam_models.ObtainApplicationClientSecretRequest(
                instance_id=INSTANCE, application_id="app_billing", secret_id="sct_billing_1"
            )
        )
    )
    assert (err.status_code, err.code) == (403, "Forbidden.RAM")


def test_the_function_makes_data_keys_but_cannot_decrypt(infra_emulator: EmulatorServer) -> None:
    kms = sdk.kms(infra_emulator.endpoint, sdk.FUNCTION)
    context = {"vend:arn": ONE_SECRET}
    made = {}
    for key in ("key-default", "alias/vend-billing", "key-reports"):
        made[key] = kms.generate_data_key(
            kms_models.GenerateDataKeyRequest(
                key_id=key, key_spec="AES_256", encryption_context=context
            )
        ).body
    blob = made["key-default"].ciphertext_blob
    err = _refused(
        lambda: kms.decrypt(
            kms_models.DecryptRequest(ciphertext_blob=blob, encryption_context=context)
        )
    )
    assert (err.status_code, err.code) == (403, "Forbidden.RAM")


def test_the_function_assumes_the_vending_role_and_callers_cannot(
    infra_emulator: EmulatorServer,
) -> None:
    creds, token = _vending_session(infra_emulator.endpoint)
    assert creds[0].startswith("STS.")
    who = sdk.sts(infra_emulator.endpoint, creds, token).get_caller_identity().body
    assert who.arn == f"acs:ram::{ACCOUNT}:assumed-role/vend-eiam/infra-test"
    for caller in (sdk.BILLING, sdk.REPORTS):
        err = _refused(
            lambda caller=caller: sdk.sts(infra_emulator.endpoint, caller).assume_role(
                sts_models.AssumeRoleRequest(role_arn=sdk.ROLE_ARN, role_session_name="steal")
            )
        )
        assert (err.status_code, err.code) == (403, "NoPermission")


def test_the_vending_role_acts_on_its_instance_only(infra_emulator: EmulatorServer) -> None:
    """It obtains, lists, creates, disables and deletes in its instance (a secret of its own
    making here: the module's emulator is shared), and nothing in another instance, nor KMS,
    nor re-enabling what rotation retired."""
    creds, token = _vending_session(infra_emulator.endpoint)
    eiam = sdk.eiam(infra_emulator.endpoint, creds, token)
    # What it is for works ...
    got = eiam.obtain_application_client_secret(
        eiam_models.ObtainApplicationClientSecretRequest(
            instance_id=INSTANCE, application_id="app_billing", secret_id="sct_billing_1"
        )
    ).body
    assert got.application_client_secret.secret_id == "sct_billing_1"
    listed = eiam.list_application_client_secrets(
        eiam_models.ListApplicationClientSecretsRequest(
            instance_id=INSTANCE, application_id="app_billing"
        )
    ).body
    assert [s.secret_id for s in listed.application_client_secrets] == ["sct_billing_1"]
    made = eiam.create_application_client_secret(
        eiam_models.CreateApplicationClientSecretRequest(
            instance_id=INSTANCE, application_id="app_empty"
        )
    ).body.application_client_secret.secret_id.strip()
    mine = {"instance_id": INSTANCE, "application_id": "app_empty", "secret_id": made}
    eiam.disable_application_client_secret(
        eiam_models.DisableApplicationClientSecretRequest(**mine)
    )
    # ... and nothing else does.
    other = {"instance_id": "idaas_other", "application_id": "app_other"}
    refusals = [
        lambda: eiam.obtain_application_client_secret(
            eiam_models.ObtainApplicationClientSecretRequest(**other, secret_id="sct_other_1")
        ),
        lambda: eiam.create_application_client_secret(
            eiam_models.CreateApplicationClientSecretRequest(**other)
        ),
        lambda: eiam.delete_application_client_secret(
            eiam_models.DeleteApplicationClientSecretRequest(**other, secret_id="sct_other_1")
        ),
        lambda: eiam.disable_application_client_secret(
            eiam_models.DisableApplicationClientSecretRequest(**other, secret_id="sct_other_1")
        ),
        lambda: eiam.enable_application_client_secret(
            eiam_models.EnableApplicationClientSecretRequest(**mine)
        ),
        lambda: sdk.kms(infra_emulator.endpoint, creds, token).generate_data_key(
            kms_models.GenerateDataKeyRequest(key_id="key-default", key_spec="AES_256")
        ),
    ]
    for refusal in refusals:
        err = _refused(refusal)
        assert (err.status_code, err.code) == (403, "Forbidden.RAM")
    eiam.delete_application_client_secret(eiam_models.DeleteApplicationClientSecretRequest(**mine))
    after = eiam.list_application_client_secrets(
        eiam_models.ListApplicationClientSecretsRequest(
            instance_id=INSTANCE, application_id="app_empty"
        )
    ).body
    assert not after.application_client_secrets
    # The other instance's secret it could neither delete nor disable is still there, enabled.
    operator = sdk.eiam(infra_emulator.endpoint, sdk.OPERATOR)
    again = operator.obtain_application_client_secret(
        eiam_models.ObtainApplicationClientSecretRequest(**other, secret_id="sct_other_1")
    ).body
    assert again.application_client_secret.status.lower() == "enabled"


def test_a_caller_cannot_decrypt_with_another_callers_key(infra_emulator: EmulatorServer) -> None:
    context = {"vend:arn": _secret("app_reports", "sct_reports_1")}
    blob = (
        sdk.kms(infra_emulator.endpoint, sdk.FUNCTION)
        .generate_data_key(
            kms_models.GenerateDataKeyRequest(
                key_id="key-reports", key_spec="AES_256", encryption_context=context
            )
        )
        .body
    )
    request = kms_models.DecryptRequest(
        ciphertext_blob=blob.ciphertext_blob, encryption_context=context
    )
    err = _refused(lambda: sdk.kms(infra_emulator.endpoint, sdk.BILLING).decrypt(request))
    assert (err.status_code, err.code) == (403, "Forbidden.RAM")
    opened = sdk.kms(infra_emulator.endpoint, sdk.REPORTS).decrypt(request).body
    assert opened.plaintext == blob.plaintext
