"""The approval policy: parsed and checked at start, evaluated per request, and `vend policy check`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from infra.local.cli import main as cli_main
from shared.approval import load_approval_policy, parse_approval_policy
from shared.principal import Caller
from shared.ram_policy import PolicyError

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "examples" / "policy.json"
ACCT = "1234567890123456"
OBTAIN = "eiam:ObtainApplicationClientSecret"
RUN_DOCTOR = "vend:RunDoctor"
BILLING = Caller.ram(f"acs:ram::{ACCT}:user/billing", ACCT)
REPORTS = Caller.ram(f"acs:ram::{ACCT}:user/reports", ACCT)
OPERATOR = Caller.ram(f"acs:ram::{ACCT}:user/operator", ACCT)


def _arn(app: str, secret: str = "s1", instance: str = "idaas_demo") -> str:
    return f"acs:eiam:cn-hangzhou:{ACCT}:instance/{instance}/application/{app}/secret/{secret}"


@pytest.mark.parametrize(
    ("caller", "action", "resource", "allowed", "statement", "key"),
    [
        (
            BILLING,
            OBTAIN,
            _arn("app_billing"),
            True,
            "billing-reads-and-rotates-its-secrets",
            "key-billing",
        ),
        (
            BILLING,
            "EIAM:obtainapplicationclientsecret",
            _arn("app_billing"),
            True,
            "billing-reads-and-rotates-its-secrets",
            "key-billing",
        ),
        (BILLING, OBTAIN, _arn("app_reports"), False, None, "key-billing"),
        (REPORTS, OBTAIN, _arn("app_reports"), True, "reports-reads-its-secret", "key-reports"),
        (
            REPORTS,
            "eiam:CreateApplicationClientSecret",
            _arn("app_reports", "*"),
            False,
            None,
            "key-reports",
        ),
        (
            Caller.jwt("app_reports", "demo"),
            OBTAIN,
            _arn("app_reports"),
            True,
            "reports-reads-its-secret",
            "key-reports",
        ),
        (Caller.jwt("app_reports", "other"), OBTAIN, _arn("app_reports"), False, None, None),
        (
            BILLING,
            OBTAIN,
            _arn("app_billing", instance="idaas_other"),
            False,
            "nobody-touches-the-other-instance",
            "key-billing",
        ),
        (
            Caller.ram(f"acs:ram::{ACCT}:user/Billing", ACCT),
            OBTAIN,
            _arn("app_billing"),
            False,
            None,
            None,
        ),
        (OPERATOR, RUN_DOCTOR, "*", True, "the-operator-runs-the-deployment-checks", None),
        (OPERATOR, "VEND:rundoctor", "*", True, "the-operator-runs-the-deployment-checks", None),
        (BILLING, RUN_DOCTOR, "*", False, None, "key-billing"),
        (OPERATOR, OBTAIN, _arn("app_billing"), False, None, None),
    ],
    ids=[
        "allowed",
        "action-case",
        "other-app",
        "reports",
        "not-create",
        "jwt",
        "jwt-other-issuer",
        "explicit-deny",
        "principal-case",
        "operator-runs-doctor",
        "run-doctor-case",
        "billing-may-not-run-doctor",
        "operator-reads-no-secret",
    ],
)
def test_decisions_of_the_demo_policy(
    caller: Caller,
    action: str,
    resource: str,
    allowed: bool,
    statement: str | None,
    key: str | None,
) -> None:
    verdict = load_approval_policy(str(POLICY)).decide(
        caller, action, resource, source_ip="10.0.0.1"
    )
    assert (verdict.allowed, verdict.statement, verdict.recipient_key_id) == (
        allowed,
        statement,
        key,
    )


def test_conditions_on_source_ip() -> None:
    policy = parse_approval_policy(
        json.dumps(
            {
                "Version": "1",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"RAM": "*"},
                        "Action": OBTAIN,
                        "Resource": "*",
                        "Condition": {"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}},
                    }
                ],
            }
        )
    )
    assert policy.decide(BILLING, OBTAIN, _arn("a"), source_ip="10.1.2.3").allowed
    assert not policy.decide(BILLING, OBTAIN, _arn("a"), source_ip="192.168.1.1").allowed
    assert not policy.decide(BILLING, OBTAIN, _arn("a"), source_ip=None).allowed


def test_without_a_source_ip_every_ip_condition_fails_closed() -> None:
    """No address (an event, or one the platform did not give): `Allow ... NotIpAddress` does
    not allow, and `Deny ... IpAddress` denies, as if the address were the worst one."""
    statement = {"Principal": {"RAM": "*"}, "Action": OBTAIN}
    policy = parse_approval_policy(
        json.dumps(
            {
                "Version": "1",
                "Statement": [
                    {
                        **statement,
                        "Effect": "Allow",
                        "Resource": _arn("a"),
                        "Condition": {"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}},
                    },
                    {**statement, "Effect": "Allow", "Resource": _arn("b")},
                    {
                        **statement,
                        "Effect": "Deny",
                        "Resource": _arn("b"),
                        "Condition": {"IpAddress": {"acs:SourceIp": "192.0.2.0/24"}},
                    },
                ],
            }
        )
    )
    assert policy.decide(BILLING, OBTAIN, _arn("a"), source_ip="203.0.113.7").allowed
    assert policy.decide(BILLING, OBTAIN, _arn("b"), source_ip="203.0.113.7").allowed
    for unknown in (None, ""):
        assert not policy.decide(BILLING, OBTAIN, _arn("a"), source_ip=unknown).allowed
        assert not policy.decide(BILLING, OBTAIN, _arn("b"), source_ip=unknown).allowed


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {
                "Version": "1",
                "Statement": [{"Sid": "s1", "Effect": "Allow", "Action": OBTAIN, "Resource": "*"}],
            },
            "Principal",
        ),
        (
            {
                "Version": "1",
                "Statement": [
                    {
                        "Sid": "s2",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": OBTAIN,
                        "Resource": "*",
                        "Conditions": {},
                    }
                ],
            },
            "Conditions",
        ),
        (
            {
                "Version": "1",
                "Statement": [
                    {"Effect": "Allow", "Principal": "*", "Action": OBTAIN, "Resource": "*"}
                ],
                "Recipients": [{"Principal": "x"}],
            },
            "KeyId",
        ),
        ({"Version": "1", "Statement": [], "Recipient": []}, "Recipient"),
        ({"Version": "2", "Statement": []}, "Version"),
        (
            {
                "Version": "1",
                "Statement": [
                    {
                        "Sid": "typo",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": ["vend:RunDocter"],
                        "Resource": "*",
                    }
                ],
            },
            'Statement\\[0\\] \\("typo"\\): Action "vend:RunDocter" names no action',
        ),
        (
            {
                "Version": "1",
                "Statement": [
                    {"Effect": "Allow", "Principal": "*", "Action": OBTAIN, "Resource": "*"},
                    {
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": RUN_DOCTOR,
                        "Resource": _arn("app_billing", "*"),
                    },
                ],
            },
            'Statement\\[1\\]: vend:RunDoctor is decided on Resource "\\*"',
        ),
        (
            {
                "Version": "1",
                "Statement": [
                    {"Effect": "Allow", "Principal": "*", "Action": RUN_DOCTOR, "Resource": "?"}
                ],
            },
            'Statement\\[0\\]: vend:RunDoctor is decided on Resource "\\*"',
        ),
    ],
    ids=[
        "no-principal",
        "unknown-element",
        "recipient-without-key",
        "unknown-top-level",
        "version",
        "unknown-vend-action",
        "run-doctor-on-a-secret",
        "run-doctor-on-one-character",
    ],
)
def test_bad_policies_are_refused_naming_the_problem(
    document: dict[str, object], message: str
) -> None:
    with pytest.raises(PolicyError, match=message):
        parse_approval_policy(json.dumps(document))


@pytest.mark.parametrize(
    "actions", [RUN_DOCTOR, "vend:*", "vend:Run*", [OBTAIN, "vend:RunDoctor"], "*"]
)
def test_run_doctor_is_an_action_the_policy_loads(actions: str | list[str]) -> None:
    policy = parse_approval_policy(
        json.dumps(
            {
                "Version": "1",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"RAM": OPERATOR.name},
                        "Action": actions,
                        "Resource": "*",
                    }
                ],
            }
        )
    )
    assert policy.decide(OPERATOR, RUN_DOCTOR, "*").allowed
    assert not policy.decide(BILLING, RUN_DOCTOR, "*").allowed


def test_policy_from_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(
        "Version: '1'\nStatement:\n  - Effect: Allow\n    Principal: {RAM: '*'}\n"
        f"    Action: {OBTAIN}\n    Resource: '*'\n"
    )
    assert load_approval_policy(str(path)).decide(BILLING, OBTAIN, _arn("a")).allowed


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.local.cli",
            "policy",
            "check",
            "--policy",
            str(POLICY),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_vend_policy_check_prints_the_decision_and_statement() -> None:
    done = _check(
        "--principal",
        f"acs:ram::{ACCT}:user/billing",
        "--action",
        OBTAIN,
        "--resource",
        _arn("app_billing"),
    )
    assert done.returncode == 0
    assert "decision: allow" in done.stdout
    assert "statement: billing-reads-and-rotates-its-secrets" in done.stdout
    assert "recipient key: key-billing" in done.stdout
    denied = _check(
        "--principal",
        f"acs:ram::{ACCT}:user/billing",
        "--action",
        OBTAIN,
        "--resource",
        _arn("app_billing", instance="idaas_other"),
    )
    assert denied.returncode == 3
    assert "decision: deny (explicit_deny)" in denied.stdout
    assert "statement: nobody-touches-the-other-instance" in denied.stdout
    jwt = _check(
        "--principal", "jwt:app_reports@demo", "--action", OBTAIN, "--resource", _arn("app_reports")
    )
    assert "decision: allow" in jwt.stdout and "reports-reads-its-secret" in jwt.stdout


def test_vend_policy_check_knows_run_doctor() -> None:
    """vend:RunDoctor is decided on `*`, so the question needs no --resource; a `vend:` name the
    service does not know is a usage error, not a silent deny."""
    operator = _check("--principal", OPERATOR.name, "--action", RUN_DOCTOR)
    assert operator.returncode == 0, operator.stderr
    assert "decision: allow" in operator.stdout
    assert "statement: the-operator-runs-the-deployment-checks" in operator.stdout
    assert "recipient key" not in operator.stdout  # the checks seal nothing
    billing = _check("--principal", BILLING.name, "--action", RUN_DOCTOR, "--resource", "*")
    assert billing.returncode == 3 and "decision: deny" in billing.stdout
    typo = _check("--principal", OPERATOR.name, "--action", "vend:RunDocter")
    assert typo.returncode == 2 and "vend:RunDoctor" in typo.stderr
    elsewhere = _check("--principal", OPERATOR.name, "--action", RUN_DOCTOR, "--resource", "x")
    assert elsewhere.returncode == 2 and "leave out --resource" in elsewhere.stderr
    no_resource = _check("--principal", BILLING.name, "--action", OBTAIN)
    assert no_resource.returncode == 2 and "--resource is required" in no_resource.stderr


def test_vend_policy_check_refuses_a_bad_policy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        json.dumps(
            {
                "Version": "1",
                "Statement": [
                    {
                        "Sid": "oops",
                        "Effect": "Allow",
                        "Principal": "*",
                        "Action": OBTAIN,
                        "Resources": "*",
                    }
                ],
            }
        )
    )
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "infra.local.cli",
            "policy",
            "check",
            "--policy",
            str(bad),
            "--principal",
            "x",
            "--action",
            OBTAIN,
            "--resource",
            "y",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "oops" in done.stderr and "Resources" in done.stderr


# What `make mutate` (infra/mutation/) found untested: the clock the policy is evaluated at, the
# exact words of each refusal, the `.yml` suffix, and statements that mix vend: and eiam: actions.

_STATEMENT = {"Effect": "Allow", "Principal": {"RAM": "*"}, "Action": OBTAIN, "Resource": "*"}


def _window(start: datetime, end: datetime) -> dict[str, object]:
    moment = "%Y-%m-%dT%H:%M:%SZ"
    return {
        "DateGreaterThan": {"acs:CurrentTime": start.strftime(moment)},
        "DateLessThan": {"acs:CurrentTime": end.strftime(moment)},
    }


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Kiritimati", "America/Adak"])
def test_a_grant_for_a_window_of_time_holds_in_it_and_not_after(
    monkeypatch: pytest.MonkeyPatch, zone: str
) -> None:
    """`acs:CurrentTime` is now in UTC, whatever the machine's time zone (here 14 hours ahead
    of UTC, or 10 behind): an hour's window around now allows, one that ended an hour ago
    does not."""
    monkeypatch.setenv("TZ", zone)
    time.tzset()
    try:
        now = datetime.now(timezone.utc)
        hour = timedelta(hours=1)
        statements = [
            {**_STATEMENT, "Resource": _arn("now"), "Condition": _window(now - hour, now + hour)},
            {
                **_STATEMENT,
                "Resource": _arn("past"),
                "Condition": _window(now - 3 * hour, now - hour),
            },
        ]
        policy = parse_approval_policy(json.dumps({"Version": "1", "Statement": statements}))
        assert policy.decide(BILLING, OBTAIN, _arn("now")).allowed
        assert not policy.decide(BILLING, OBTAIN, _arn("past")).allowed
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize(
    ("statements", "top", "message"),
    [
        (
            [_STATEMENT],
            {"Recipients": {"x": "y"}},
            "approval policy: Recipients must be a list",
        ),
        (
            [{k: v for k, v in _STATEMENT.items() if k != "Effect"}],
            {},
            'policy "approval" Statement[0]: missing "Effect"',
        ),
        (
            [{**_STATEMENT, "Sid": "typo", "Action": "vend:RunDocter"}],
            {},
            'policy "approval" Statement[0] ("typo"): Action "vend:RunDocter" names no action of'
            " this service (it knows vend:RunDoctor)",
        ),
        (
            [{k: v for k, v in _STATEMENT.items() if k != "Action"} | {"NotAction": "vend:Nope"}],
            {},
            'policy "approval" Statement[0]: NotAction "vend:Nope" names no action of this'
            " service (it knows vend:RunDoctor)",
        ),
        (
            [{**_STATEMENT, "Action": RUN_DOCTOR, "Resource": "x"}],
            {},
            'policy "approval" Statement[0]: vend:RunDoctor is decided on Resource "*", which'
            " this statement's Resource leaves out",
        ),
        (
            [
                {k: v for k, v in _STATEMENT.items() if k != "Resource"}
                | {"Action": RUN_DOCTOR, "NotResource": "*"}
            ],
            {},
            'policy "approval" Statement[0]: vend:RunDoctor is decided on Resource "*", which'
            " this statement's NotResource leaves out",
        ),
    ],
    ids=[
        "recipients-not-a-list",
        "named-approval",
        "unknown-vend-action",
        "unknown-vend-not-action",
        "run-doctor-resource",
        "run-doctor-not-resource",
    ],
)
def test_a_bad_policy_is_refused_in_these_words(
    statements: list[dict[str, object]], top: dict[str, object], message: str
) -> None:
    """The operator reads the refusal at start (and from `vend policy check`): every word of it."""
    with pytest.raises(PolicyError) as refused:
        parse_approval_policy(json.dumps({"Version": "1", "Statement": statements, **top}))
    assert str(refused.value) == message


def test_a_policy_that_is_not_json_says_so() -> None:
    with pytest.raises(PolicyError) as refused:
        parse_approval_policy("{")
    assert str(refused.value).startswith("approval policy: not valid JSON: Expecting property")


def test_a_policy_that_is_a_json_list_is_refused_by_name() -> None:
    """A list is valid JSON but no policy: refused in words at start, not with a TypeError."""
    with pytest.raises(PolicyError) as refused:
        parse_approval_policy(json.dumps([_STATEMENT]))
    assert str(refused.value) == 'policy "approval": the document must be a JSON object'


def test_a_recipient_that_is_not_an_object_is_named() -> None:
    document = {"Version": "1", "Statement": [_STATEMENT], "Recipients": ["billing"]}
    with pytest.raises(PolicyError) as refused:
        parse_approval_policy(json.dumps(document))
    assert str(refused.value).startswith("approval policy: Recipients[0] entry: Input should be")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (None, None, "approval policy: cannot read {path}: No such file or directory"),
        ("p.yaml", "Version: [", "approval policy: {path} is not valid YAML: "),
        ("p.yml", "- a list", "approval policy: {path} must hold a mapping"),
    ],
    ids=["missing", "not-yaml", "not-a-mapping"],
)
def test_a_policy_file_that_cannot_be_used_is_named(
    tmp_path: Path, name: str | None, content: str | None, message: str
) -> None:
    path = tmp_path / (name or "absent.json")
    if content is not None:
        path.write_text(content)
    with pytest.raises(PolicyError) as refused:
        load_approval_policy(str(path))
    assert str(refused.value).startswith(message.format(path=path))


def test_a_policy_file_ending_in_yml_is_yaml(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text(
        "Version: '1'\nStatement:\n  - Effect: Allow\n    Principal: {RAM: '*'}\n"
        f"    Action: {OBTAIN}\n    Resource: '*'\n"
    )
    assert load_approval_policy(str(path)).decide(BILLING, OBTAIN, _arn("a")).allowed


def test_vend_actions_are_named_in_any_case_and_may_share_a_statement() -> None:
    """`VEND:RUNDOCTOR` is vend:RunDoctor (action names ignore case); a statement that names it
    beside a secret's action is decided on the secret's resource for that action."""
    statements = [
        {**_STATEMENT, "Action": "VEND:RUNDOCTOR"},
        {**_STATEMENT, "Action": [OBTAIN, RUN_DOCTOR], "Resource": _arn("app_billing")},
    ]
    policy = parse_approval_policy(json.dumps({"Version": "1", "Statement": statements}))
    assert policy.decide(OPERATOR, RUN_DOCTOR, "*").allowed
    assert policy.decide(BILLING, OBTAIN, _arn("app_billing")).allowed


def test_vend_policy_check_names_the_kind_of_deny(capsys: pytest.CaptureFixture[str]) -> None:
    """`vend policy check`, in this process: the deny of a Deny statement is explicit."""
    code = cli_main(
        [
            "policy",
            "check",
            "--policy",
            str(POLICY),
            "--principal",
            BILLING.name,
            "--action",
            OBTAIN,
            "--resource",
            _arn("app_billing", instance="idaas_other"),
        ]
    )
    assert code == 3
    assert "decision: deny (explicit_deny)\n" in capsys.readouterr().out
