"""Table-driven tests for the RAM policy engine (shared.ram_policy)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.ram_policy import (
    Decision,
    Effect,
    Policy,
    PolicyError,
    PolicyKind,
    Principal,
    RequestContext,
    evaluate,
    evaluate_session,
    parse_policy,
)

ACCOUNT = "1234567890123456"
OTHER_ACCOUNT = "6543210987654321"
SECRETS = f"acs:vend:cn-hangzhou:{ACCOUNT}:secret"
SCT_1 = f"{SECRETS}/sct_1"
OBTAIN = "eiam:ObtainApplicationClientSecret"
ROLE = f"acs:ram::{ACCOUNT}:role/billing"

ALLOW = Decision.ALLOW
EXPLICIT = Decision.EXPLICIT_DENY
IMPLICIT = Decision.IMPLICIT_DENY


def doc(*statements: Any, **top: Any) -> dict[str, Any]:
    return {"Version": "1", "Statement": list(statements), **top}


def allow(action: Any = OBTAIN, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = OBTAIN, resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def third(statement: dict[str, Any], kind: PolicyKind = "identity") -> dict[str, Any]:
    """A document whose faulty statement is the third one, so labels carry index 2."""
    ok = allow() if kind == "identity" else allow(Principal="*")
    return doc(ok, ok, statement)


def billing(**statement: Any) -> dict[str, Any]:
    return third({"Sid": "billing", **statement})


LABEL = 'Statement[2] ("billing")'

# --------------------------------------------------------------------------- parse errors

PARSE_ERRORS = [
    # top level
    pytest.param("identity", "{", ["policy:", "invalid JSON"], id="invalid-json"),
    pytest.param("identity", b"\xff\xfe\xfa", ["policy:", "invalid JSON"], id="invalid-bytes"),
    pytest.param("identity", "[]", ["must be a JSON object"], id="json-array"),
    pytest.param(
        "identity", '{"Version": "1", "Version": "1"}', ['duplicate key "Version"'], id="dup-key"
    ),
    pytest.param(
        "identity",
        '{"Version": "1", "Statement": {"Effect": "Allow", "Action": "a:b", "Resource": "*",'
        ' "Condition": {"NumericEquals": {"a:n": NaN}}}}',
        ["invalid JSON", "NaN"],
        id="json-nan",
    ),
    pytest.param(
        "identity",
        doc(allow(), Recipients=[]),
        ['unknown top-level element "Recipients"'],
        id="unknown-top-level",
    ),
    pytest.param("identity", {"Statement": [allow()]}, ['missing "Version"'], id="no-version"),
    pytest.param("identity", {**doc(allow()), "Version": "2"}, ['"Version"'], id="version-2"),
    pytest.param("identity", {**doc(allow()), "Version": 1}, ['"Version"'], id="version-int"),
    pytest.param("identity", {"Version": "1"}, ['missing "Statement"'], id="no-statement"),
    pytest.param("identity", doc(), ['"Statement"', "non-empty"], id="empty-statement-list"),
    pytest.param("identity", {"Version": "1", "Statement": "x"}, ['"Statement"'], id="stmt-str"),
    pytest.param("identity", doc("x"), ["Statement[0]", "must be an object"], id="stmt-not-obj"),
    # statement elements
    pytest.param(
        "identity",
        billing(Effect="Allow", Actions=OBTAIN, Resource="*"),
        [LABEL, 'unknown element "Actions"'],
        id="unknown-element",
    ),
    pytest.param(
        "identity",
        billing(effect="Allow", Action=OBTAIN, Resource="*"),
        [LABEL, 'unknown element "effect"'],
        id="element-wrong-case",
    ),
    pytest.param(
        "resource",
        third({"Sid": "billing", **allow(NotPrincipal="*")}, "resource"),
        [LABEL, 'unknown element "NotPrincipal"'],
        id="not-principal",
    ),
    pytest.param(
        "identity", third({"Sid": 7, **allow()}), ["Statement[2]", '"Sid"'], id="sid-not-string"
    ),
    pytest.param(
        "identity",
        billing(Action=OBTAIN, Resource="*"),
        [LABEL, 'missing "Effect"'],
        id="missing-effect",
    ),
    pytest.param(
        "identity",
        billing(Effect="allow", Action=OBTAIN, Resource="*"),
        [LABEL, '"Effect"', '"allow"'],
        id="effect-lowercase",
    ),
    pytest.param(
        "identity",
        billing(Effect=True, Action=OBTAIN, Resource="*"),
        [LABEL, '"Effect"'],
        id="effect-bool",
    ),
    pytest.param(
        "identity",
        billing(Effect="Allow", Action=OBTAIN, NotAction="kms:*", Resource="*"),
        [LABEL, 'both "Action" and "NotAction"'],
        id="action-and-notaction",
    ),
    pytest.param(
        "identity",
        billing(Effect="Allow", Resource="*"),
        [LABEL, 'missing "Action" or "NotAction"'],
        id="no-action",
    ),
    pytest.param(
        "identity",
        billing(Effect="Allow", Action=[], Resource="*"),
        [LABEL, '"Action"', "non-empty list"],
        id="action-empty-list",
    ),
    pytest.param(
        "identity",
        billing(Effect="Allow", Action=42, Resource="*"),
        [LABEL, '"Action"'],
        id="action-int",
    ),
    pytest.param(
        "identity",
        billing(Effect="Allow", Action=[OBTAIN, None], Resource="*"),
        [LABEL, '"Action"'],
        id="action-list-with-null",
    ),
    pytest.param(
        "identity",
        billing(Effect="Allow", Action="GetSecret", Resource="*"),
        [LABEL, '"GetSecret"'],
        id="action-without-colon",
    ),
    pytest.param(
        "identity",
        billing(Effect="Allow", NotAction="eiam: Get", Resource="*"),
        [LABEL, "NotAction", '"eiam: Get"'],
        id="notaction-with-space",
    ),
    pytest.param(
        "identity",
        billing(Effect="Allow", Action="", Resource="*"),
        [LABEL, '"Action" contains an empty string'],
        id="action-empty-string",
    ),
    pytest.param(
        "identity",
        billing(Effect="Allow", Action=OBTAIN),
        [LABEL, 'missing "Resource" or "NotResource"', "identity"],
        id="identity-no-resource",
    ),
    pytest.param(
        "resource",
        third(
            {"Sid": "billing", "Effect": "Allow", "Action": OBTAIN, "Principal": "*"}, "resource"
        ),
        [LABEL, 'missing "Resource" or "NotResource"', "resource"],
        id="resource-kind-no-resource",
    ),
    pytest.param(
        "identity",
        billing(Effect="Allow", Action=OBTAIN, Resource="*", NotResource=SCT_1),
        [LABEL, 'both "Resource" and "NotResource"'],
        id="resource-and-notresource",
    ),
    pytest.param(
        "identity",
        billing(Effect="Allow", Action=OBTAIN, Resource=[]),
        [LABEL, '"Resource"'],
        id="resource-empty-list",
    ),
    pytest.param(
        "identity",
        billing(**allow(Principal="*")),
        [LABEL, '"Principal" is not allowed'],
        id="principal-in-identity",
    ),
    pytest.param(
        "trust",
        third({"Sid": "billing", "Effect": "Allow", "Action": "sts:AssumeRole"}, "trust"),
        [LABEL, 'missing "Principal"', "trust"],
        id="trust-no-principal",
    ),
    pytest.param(
        "resource",
        third({"Sid": "billing", **allow()}, "resource"),
        [LABEL, 'missing "Principal"', "resource"],
        id="resource-no-principal",
    ),
    pytest.param(
        "trust",
        third({"Sid": "billing", **allow(Principal={"Federated": "x"})}, "trust"),
        [LABEL, 'unsupported principal type "Federated"'],
        id="principal-federated",
    ),
    pytest.param(
        "trust",
        third({"Sid": "billing", **allow(Principal=ROLE)}, "trust"),
        [LABEL, '"Principal" must be "*" or'],
        id="principal-bare-string",
    ),
    pytest.param(
        "trust",
        third({"Sid": "billing", **allow(Principal={})}, "trust"),
        [LABEL, '"Principal"'],
        id="principal-empty-object",
    ),
    pytest.param(
        "trust",
        third({"Sid": "billing", **allow(Principal={"RAM": []})}, "trust"),
        [LABEL, "Principal.RAM"],
        id="principal-empty-list",
    ),
    # conditions
    pytest.param(
        "identity",
        billing(**allow(Condition={"ForAnyValue:StringEquals": {"acs:SourceIp": "x"}})),
        [LABEL, 'unsupported condition operator "ForAnyValue:StringEquals"'],
        id="cond-for-any-value",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"StringEqualsIfExists": {"a:b": "x"}})),
        [LABEL, 'unsupported condition operator "StringEqualsIfExists"'],
        id="cond-if-exists",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"stringequals": {"a:b": "x"}})),
        [LABEL, 'unsupported condition operator "stringequals"'],
        id="cond-operator-case",
    ),
    pytest.param(
        "identity", billing(**allow(Condition={})), [LABEL, '"Condition"'], id="cond-empty"
    ),
    pytest.param(
        "identity", billing(**allow(Condition=[])), [LABEL, '"Condition"'], id="cond-list"
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"StringEquals": "a:b"})),
        [LABEL, '"StringEquals"'],
        id="cond-operator-not-object",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"StringEquals": {"SourceIp": "x"}})),
        [LABEL, '"StringEquals"', 'invalid condition key "SourceIp"'],
        id="cond-key-without-colon",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"StringEquals": {"a:b": []}})),
        [LABEL, '"StringEquals" key "a:b"', "empty"],
        id="cond-empty-values",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"StringEquals": {"a:b": None}})),
        [LABEL, '"StringEquals" key "a:b"'],
        id="cond-null-value",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"StringEquals": {"a:b": [["x"]]}})),
        [LABEL, '"StringEquals" key "a:b"'],
        id="cond-nested-list",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"DateLessThan": {"acs:CurrentTime": "2026-13-01T00:00:00Z"}})),
        [LABEL, '"DateLessThan"', 'invalid date "2026-13-01T00:00:00Z"'],
        id="cond-bad-month",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"DateEquals": {"acs:CurrentTime": "2026-01-01T00:00:00"}})),
        [LABEL, '"DateEquals"', "invalid date"],
        id="cond-naive-date",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"DateGreaterThan": {"acs:CurrentTime": "tomorrow"}})),
        [LABEL, '"DateGreaterThan"', 'invalid date "tomorrow"'],
        id="cond-date-word",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"IpAddress": {"acs:SourceIp": "10.0.0.300"}})),
        [LABEL, '"IpAddress"', '"10.0.0.300"'],
        id="cond-bad-ip",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"NotIpAddress": {"acs:SourceIp": ["10.0.0.0/8", "::/129"]}})),
        [LABEL, '"NotIpAddress"', '"::/129"'],
        id="cond-bad-cidr",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"NumericLessThan": {"a:n": "ten"}})),
        [LABEL, '"NumericLessThan"', 'invalid number "ten"'],
        id="cond-bad-number",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"NumericEquals": {"a:n": "NaN"}})),
        [LABEL, '"NumericEquals"', 'invalid number "NaN"'],
        id="cond-nan-string",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"NumericEquals": {"a:n": "1e99999999999999999999"}})),
        [LABEL, '"NumericEquals"', "invalid number"],
        id="cond-number-out-of-range",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"Bool": {"acs:SecureTransport": "yes"}})),
        [LABEL, '"Bool"', 'invalid boolean "yes"'],
        id="cond-bad-bool",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={})),
        [f'{LABEL}: "Condition" must be a non-empty object'],
        id="cond-empty",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"StringEquals": {"k:a": []}})),
        [f'{LABEL}: condition "StringEquals" key "k:a": empty list of values'],
        id="cond-no-values",
    ),
    pytest.param(
        "identity",
        billing(**allow(Condition={"StringEquals": {"k:a": None}})),
        [
            f'{LABEL}: condition "StringEquals" key "k:a": condition values must be strings,'
            " numbers or booleans"
        ],
        id="cond-value-null",
    ),
]


@pytest.mark.parametrize(("kind", "document", "fragments"), PARSE_ERRORS)
def test_parse_error(kind: PolicyKind, document: Any, fragments: list[str]) -> None:
    with pytest.raises(PolicyError) as info:
        parse_policy(document, kind=kind)
    for fragment in fragments:
        assert fragment in str(info.value)


_OBTAIN_ALL = {"Effect": "Allow", "Action": OBTAIN, "Resource": "*"}


@pytest.mark.parametrize(
    ("kind", "document", "message"),
    [
        (
            "resource",
            doc({**_OBTAIN_ALL, "Principal": {}}),
            '"Principal" must be "*" or a non-empty object',
        ),
        ("identity", doc({**_OBTAIN_ALL, "Sid": 5}), '"Sid" must be a string'),
        ("identity", doc({"Effect": "Allow", "Resource": "*"}), 'missing "Action" or "NotAction"'),
        (
            "identity",
            doc({"Effect": "Allow", "NotAction": [], "Resource": "*"}),
            '"NotAction" must be a string or a non-empty list of strings',
        ),
        (
            "identity",
            doc({"Effect": "Allow", "Action": OBTAIN, "NotResource": []}),
            '"NotResource" must be a string or a non-empty list of strings',
        ),
        (
            "identity",
            doc({**_OBTAIN_ALL, "Principal": "*"}),
            '"Principal" is not allowed in an identity policy',
        ),
    ],
    ids=[
        "principal-empty",
        "sid",
        "no-action",
        "not-action-empty",
        "not-resource-empty",
        "principal-in-identity",
    ],
)
def test_a_statement_is_refused_in_these_words(
    kind: PolicyKind, document: Any, message: str
) -> None:
    """Found by `make mutate`: the fragments above leave most words of a refusal unread."""
    with pytest.raises(PolicyError) as refused:
        parse_policy(document, kind=kind)
    assert str(refused.value) == f"policy Statement[0]: {message}"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"Statement": [_OBTAIN_ALL]}, 'missing "Version"'),
        ({"Version": 1, "Statement": [_OBTAIN_ALL]}, '"Version" must be the string "1"'),
        ({"Version": "1"}, 'missing "Statement"'),
        (doc(), '"Statement" must be an object or a non-empty list of objects'),
        ([_OBTAIN_ALL], "the document must be a JSON object"),
    ],
    ids=["no-version", "version-number", "no-statement", "statement-empty", "decoded-list"],
)
def test_a_document_is_refused_in_these_words(document: Any, message: str) -> None:
    with pytest.raises(PolicyError) as refused:
        parse_policy(document)
    assert str(refused.value) == f"policy: {message}"


def test_parse_error_names_the_policy() -> None:
    with pytest.raises(PolicyError, match=r'^policy "role vend" Statement\[0\]: missing "Effect"'):
        parse_policy(doc({"Action": OBTAIN, "Resource": "*"}), name="role vend")


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        parse_policy(doc(allow()), kind="session")  # type: ignore[arg-type]


# ----------------------------------------------------------------------- accepted documents

ACCEPTED = [
    pytest.param(json.dumps(doc(allow())), {}, id="json-text"),
    pytest.param(json.dumps(doc(allow())).encode(), {}, id="json-bytes"),
    pytest.param({"Version": "1", "Statement": allow()}, {}, id="single-statement-object"),
    pytest.param(
        doc(allow(), Recipients=["a@example.com"]),
        {"extra_top_level": frozenset({"Recipients"})},
        id="extra-top-level",
    ),
    pytest.param(
        doc({"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"RAM": ROLE}}),
        {"kind": "trust"},
        id="trust-without-resource",
    ),
]


@pytest.mark.parametrize(("document", "options"), ACCEPTED)
def test_accepted_documents_allow_obtain(document: Any, options: dict[str, Any]) -> None:
    policy = parse_policy(document, **options)
    action = "sts:AssumeRole" if options.get("kind") == "trust" else OBTAIN
    ctx = RequestContext(action, SCT_1, Principal("RAM", ROLE, ACCOUNT))
    assert evaluate([policy], ctx).decision is ALLOW
    assert evaluate([policy], RequestContext("kms:Decrypt", SCT_1)).decision is IMPLICIT


# --------------------------------------------------------------- actions, resources, effect


def ctx(action: str = OBTAIN, resource: str | None = SCT_1) -> RequestContext:
    return RequestContext(action, resource)


MATCHING = [
    pytest.param([doc(allow(OBTAIN))], ctx(OBTAIN.lower()), ALLOW, id="action-case-insensitive"),
    pytest.param([doc(allow("EIAM:obtain*"))], ctx(), ALLOW, id="action-pattern-case-insensitive"),
    pytest.param([doc(allow("eiam:Get*"))], ctx(), IMPLICIT, id="action-other-name"),
    pytest.param([doc(allow("eiam:*"))], ctx("kms:Decrypt"), IMPLICIT, id="action-other-service"),
    pytest.param([doc(allow("*"))], ctx("kms:Decrypt"), ALLOW, id="action-star"),
    pytest.param([doc(allow("kms:?ecrypt"))], ctx("kms:Decrypt"), ALLOW, id="action-?-one-char"),
    pytest.param([doc(allow("kms:?crypt"))], ctx("kms:Decrypt"), IMPLICIT, id="action-?-not-two"),
    pytest.param([doc(allow("kms:D?ecrypt"))], ctx("kms:Decrypt"), IMPLICIT, id="action-?-not-0"),
    pytest.param([doc(allow("kms:Decrypt"))], ctx("kms:DecryptX"), IMPLICIT, id="action-full"),
    pytest.param([doc(allow(["kms:Decrypt", OBTAIN]))], ctx(), ALLOW, id="action-list-any-of"),
    pytest.param([doc(allow(resource=SCT_1))], ctx(), ALLOW, id="resource-exact"),
    pytest.param(
        [doc(allow(resource=f"{SECRETS}/SCT_1"))], ctx(), IMPLICIT, id="resource-case-sensitive"
    ),
    pytest.param(
        [doc(allow(resource="acs:vend:*:*:secret/*"))],
        ctx(resource=f"{SECRETS}/team/a/sct_1"),
        ALLOW,
        id="resource-star-crosses-slash",
    ),
    pytest.param(
        [doc(allow(resource="acs:*/sct_1"))], ctx(), ALLOW, id="resource-star-crosses-colon"
    ),
    pytest.param(
        [doc(allow(resource=f"{SECRETS}/sct_1*"))], ctx(), ALLOW, id="resource-star-matches-empty"
    ),
    pytest.param([doc(allow(resource=f"{SECRETS}/sct_?"))], ctx(), ALLOW, id="resource-?-one-char"),
    pytest.param(
        [doc(allow(resource=f"{SECRETS}/sct_?"))],
        ctx(resource=f"{SECRETS}/sct_10"),
        IMPLICIT,
        id="resource-?-not-two",
    ),
    # A resource asked about may name every secret with a `*` of its own (create, current):
    # only a pattern that covers every ID in its place matches it.
    pytest.param(
        [doc(allow(resource=SCT_1))],
        ctx(resource=f"{SECRETS}/*"),
        IMPLICIT,
        id="every-secret-not-by-one",
    ),
    pytest.param(
        [doc(allow(resource=f"{SECRETS}/?"))],
        ctx(resource=f"{SECRETS}/*"),
        IMPLICIT,
        id="every-secret-not-by-?",
    ),
    pytest.param(
        [doc(allow(resource=f"{SECRETS}/sct_*"))],
        ctx(resource=f"{SECRETS}/*"),
        IMPLICIT,
        id="every-secret-not-by-a-prefix",
    ),
    pytest.param(
        [doc(allow(resource=f"{SECRETS}/*"))], ctx(resource=f"{SECRETS}/*"), ALLOW, id="every-*"
    ),
    pytest.param(
        [doc(allow(resource="acs:vend:*:secret*"))],
        ctx(resource=f"{SECRETS}/*"),
        ALLOW,
        id="every-secret-by-a-wider-*",
    ),
    pytest.param(
        [doc(allow(resource=f"{SECRETS}/sct_?"))],
        ctx(resource=f"{SECRETS}/sct_*"),
        IMPLICIT,
        id="a-values-*-not-by-?",
    ),
    pytest.param(
        [doc(allow(resource=f"{SECRETS}/sct.1"))], ctx(), IMPLICIT, id="resource-dot-is-literal"
    ),
    pytest.param(
        [doc(allow(resource=[f"{SECRETS}/sct_2", SCT_1]))], ctx(), ALLOW, id="resource-list"
    ),
    pytest.param(
        [doc({"Effect": "Allow", "NotAction": "kms:*", "Resource": "*"})],
        ctx(),
        ALLOW,
        id="notaction-other",
    ),
    pytest.param(
        [doc({"Effect": "Allow", "NotAction": "kms:*", "Resource": "*"})],
        ctx("KMS:Decrypt"),
        IMPLICIT,
        id="notaction-listed",
    ),
    pytest.param(
        [doc({"Effect": "Allow", "Action": "*", "NotResource": SCT_1})],
        ctx(resource=f"{SECRETS}/sct_2"),
        ALLOW,
        id="notresource-other",
    ),
    pytest.param(
        [doc({"Effect": "Allow", "Action": "*", "NotResource": SCT_1})],
        ctx(),
        IMPLICIT,
        id="notresource-listed",
    ),
    pytest.param([doc(allow("*"), deny(resource=SCT_1))], ctx(), EXPLICIT, id="deny-beats-allow"),
    pytest.param(
        [doc(deny(resource=SCT_1)), doc(allow("*"))],
        ctx(),
        EXPLICIT,
        id="deny-before-allow-policy",
    ),
    pytest.param(
        [doc(allow("*")), doc(deny("eiam:Obtain*"))],
        ctx(),
        EXPLICIT,
        id="deny-in-second-policy",
    ),
    pytest.param(
        [doc(allow("*")), doc(deny(resource=f"{SECRETS}/sct_2"))],
        ctx(),
        ALLOW,
        id="deny-elsewhere-keeps-allow",
    ),
    pytest.param(
        [doc({"Effect": "Deny", "NotAction": "eiam:*", "Resource": "*"}), doc(allow("*"))],
        ctx("kms:Decrypt"),
        EXPLICIT,
        id="deny-notaction",
    ),
    pytest.param([doc(allow("kms:Decrypt"))], ctx(), IMPLICIT, id="default-deny"),
    pytest.param([], ctx(), IMPLICIT, id="no-policies"),
    pytest.param(
        [doc(allow(resource=SCT_1))], ctx(resource=None), ALLOW, id="no-resource-ignores-resource"
    ),
]


@pytest.mark.parametrize(("documents", "context", "expected"), MATCHING)
def test_matching(documents: list[Any], context: RequestContext, expected: Decision) -> None:
    policies = [parse_policy(d) for d in documents]
    result = evaluate(policies, context)
    assert result.decision is expected
    assert result.allowed is (expected is ALLOW)
    assert (result.statement is None) is (expected is IMPLICIT)


def test_deciding_statement_is_first_deny_else_first_allow() -> None:
    first = parse_policy(doc(allow("*"), allow(OBTAIN)), name="first")
    second = parse_policy(doc(deny("eiam:*"), {"Sid": "no-obtain", **deny()}), name="second")
    denied = evaluate([first, second], ctx())
    assert denied.policy is second
    assert denied.statement is second.statements[0]
    assert denied.statement.label == "Statement[0]"
    assert second.statements[1].label == "no-obtain"
    allowed = evaluate([first], ctx())
    assert allowed.statement is first.statements[0]
    assert allowed.statement.effect is Effect.ALLOW
    assert first.matches(ctx()) == first.statements


# ------------------------------------------------------------------------------ principals

RAM_ROLE = Principal("RAM", ROLE, ACCOUNT)
RAM_USER = Principal("RAM", f"acs:ram::{ACCOUNT}:user/alice", ACCOUNT)
OTHER_ROLE = Principal("RAM", f"acs:ram::{OTHER_ACCOUNT}:role/billing", OTHER_ACCOUNT)
ROOT = f"acs:ram::{ACCOUNT}:root"
FC = Principal("Service", "fc.aliyuncs.com")
JWT_APP = Principal("JWT", "app_billing@idaas")

PRINCIPALS = [
    pytest.param({"RAM": ROLE}, RAM_ROLE, ALLOW, id="ram-exact-arn"),
    pytest.param({"RAM": ROLE}, RAM_USER, IMPLICIT, id="ram-other-arn"),
    pytest.param({"RAM": ROLE.upper()}, RAM_ROLE, IMPLICIT, id="ram-case-sensitive"),
    pytest.param({"RAM": f"acs:ram::{ACCOUNT}:role/bill*"}, RAM_ROLE, ALLOW, id="ram-wildcard"),
    pytest.param(
        {"RAM": f"acs:ram::{ACCOUNT}:role/bill*"}, RAM_USER, IMPLICIT, id="ram-wildcard-miss"
    ),
    pytest.param({"RAM": [ROLE, ROOT]}, RAM_USER, ALLOW, id="ram-list-any-of"),
    pytest.param({"RAM": ROOT}, RAM_ROLE, ALLOW, id="root-trusts-account-role"),
    pytest.param({"RAM": ROOT}, RAM_USER, ALLOW, id="root-trusts-account-user"),
    pytest.param(
        {"RAM": ROOT},
        Principal("RAM", f"acs:ram::{ACCOUNT}:role/audit"),
        ALLOW,
        id="root-account-from-arn",
    ),
    pytest.param({"RAM": ROOT}, OTHER_ROLE, IMPLICIT, id="root-other-account"),
    pytest.param(
        {"RAM": ROOT}, Principal("RAM", "not-an-arn"), IMPLICIT, id="root-no-account-known"
    ),
    pytest.param(
        {"RAM": ROLE}, Principal("RAM", "someone", ""), IMPLICIT, id="no-root-empty-account"
    ),
    pytest.param(
        {"Service": ROOT}, Principal("Service", ROOT, ACCOUNT), ALLOW, id="service-root-is-literal"
    ),
    pytest.param(
        {"RAM": ROOT}, Principal("Service", ROOT, ACCOUNT), IMPLICIT, id="root-not-service"
    ),
    pytest.param({"Service": "fc.aliyuncs.com"}, FC, ALLOW, id="service"),
    pytest.param(
        {"Service": "fc.aliyuncs.com"},
        Principal("RAM", "fc.aliyuncs.com"),
        IMPLICIT,
        id="service-type-must-match",
    ),
    pytest.param({"JWT": "app_*@idaas"}, JWT_APP, ALLOW, id="jwt-wildcard"),
    pytest.param({"JWT": "app_*@idaas"}, Principal("JWT", "x@idaas"), IMPLICIT, id="jwt-miss"),
    pytest.param({"RAM": ROLE, "JWT": "app_billing@idaas"}, JWT_APP, ALLOW, id="types-any-of"),
    pytest.param("*", JWT_APP, ALLOW, id="star-any-principal"),
    pytest.param("*", None, IMPLICIT, id="star-needs-a-principal"),
    pytest.param({"RAM": ROLE}, None, IMPLICIT, id="no-caller"),
]


@pytest.mark.parametrize("kind", ["trust", "resource"])
@pytest.mark.parametrize(("principal", "caller", "expected"), PRINCIPALS)
def test_principal(
    kind: PolicyKind, principal: Any, caller: Principal | None, expected: Decision
) -> None:
    statement: dict[str, Any] = {"Effect": "Allow", "Action": "*", "Principal": principal}
    if kind == "resource":
        statement["Resource"] = SCT_1
    policy = parse_policy(doc(statement), kind=kind)
    resource = None if kind == "trust" else SCT_1
    assert evaluate([policy], RequestContext("sts:AssumeRole", resource, caller)).decision is (
        expected
    )


# ------------------------------------------------------------------------------ conditions

T0 = "2026-01-01T00:00:00Z"
CONDITIONS = [
    # strings
    pytest.param({"StringEquals": {"k:env": "prod"}}, {"k:env": "prod"}, True, id="streq"),
    pytest.param({"StringEquals": {"k:env": "prod"}}, {"k:env": "dev"}, False, id="streq-no"),
    pytest.param({"StringEquals": {"k:env": "prod"}}, {"k:env": "PROD"}, False, id="streq-case"),
    pytest.param({"StringNotEquals": {"k:env": "prod"}}, {"k:env": "dev"}, True, id="strne"),
    pytest.param({"StringNotEquals": {"k:env": "prod"}}, {"k:env": "prod"}, False, id="strne-no"),
    pytest.param(
        {"StringEqualsIgnoreCase": {"k:env": "PROD"}}, {"k:env": "prod"}, True, id="streq-ic"
    ),
    pytest.param(
        {"StringEqualsIgnoreCase": {"k:env": "PROD"}}, {"k:env": "dev"}, False, id="streq-ic-no"
    ),
    pytest.param(
        {"StringNotEqualsIgnoreCase": {"k:env": "PROD"}}, {"k:env": "dev"}, True, id="strne-ic"
    ),
    pytest.param(
        {"StringNotEqualsIgnoreCase": {"k:env": "PROD"}},
        {"k:env": "prod"},
        False,
        id="strne-ic-no",
    ),
    pytest.param({"StringLike": {"k:team": "team-*"}}, {"k:team": "team-a"}, True, id="like"),
    pytest.param({"StringLike": {"k:team": "team-*"}}, {"k:team": "a-team-a"}, False, id="like-no"),
    pytest.param({"StringLike": {"k:team": "team-?"}}, {"k:team": "team-ab"}, False, id="like-?"),
    pytest.param({"StringLike": {"k:team": "Team-*"}}, {"k:team": "team-a"}, False, id="like-case"),
    pytest.param(
        {"StringLike": {"k:team": "team-?"}}, {"k:team": "team-*"}, True, id="like-?-star"
    ),
    pytest.param({"StringLike": {"k:team": "t**"}}, {"k:team": "team-a"}, True, id="like-stars"),
    pytest.param({"StringNotLike": {"k:team": "team-*"}}, {"k:team": "ops"}, True, id="notlike"),
    pytest.param(
        {"StringNotLike": {"k:team": "team-*"}}, {"k:team": "team-a"}, False, id="notlike-no"
    ),
    # numbers
    pytest.param({"NumericEquals": {"k:n": 10}}, {"k:n": "10"}, True, id="numeq-json-int"),
    pytest.param({"NumericEquals": {"k:n": "10"}}, {"k:n": "10.0"}, True, id="numeq-decimal"),
    pytest.param({"NumericEquals": {"k:n": 10}}, {"k:n": "11"}, False, id="numeq-no"),
    pytest.param({"NumericEquals": {"k:n": 10}}, {"k:n": "ten"}, False, id="numeq-garbage"),
    pytest.param(
        {"NumericLessThan": {"k:n": 10}}, {"k:n": "1e-99999999999999999999"}, False, id="num-huge"
    ),
    pytest.param({"NumericNotEquals": {"k:n": 10}}, {"k:n": "11"}, True, id="numne"),
    pytest.param({"NumericNotEquals": {"k:n": 10}}, {"k:n": "10"}, False, id="numne-no"),
    pytest.param({"NumericLessThan": {"k:n": 10}}, {"k:n": "9.5"}, True, id="numlt"),
    pytest.param({"NumericLessThan": {"k:n": 10}}, {"k:n": "10"}, False, id="numlt-no"),
    pytest.param({"NumericLessThanEquals": {"k:n": 10}}, {"k:n": "10"}, True, id="numle"),
    pytest.param({"NumericLessThanEquals": {"k:n": 10}}, {"k:n": "11"}, False, id="numle-no"),
    pytest.param({"NumericGreaterThan": {"k:n": 1.5}}, {"k:n": "2"}, True, id="numgt-float"),
    pytest.param({"NumericGreaterThan": {"k:n": 10}}, {"k:n": "10"}, False, id="numgt-no"),
    pytest.param({"NumericGreaterThanEquals": {"k:n": 10}}, {"k:n": "10"}, True, id="numge"),
    pytest.param({"NumericGreaterThanEquals": {"k:n": 10}}, {"k:n": "-11"}, False, id="numge-no"),
    # dates
    pytest.param(
        {"DateEquals": {"acs:CurrentTime": "2026-01-01T08:00:00+08:00"}},
        {"acs:CurrentTime": T0},
        True,
        id="dateeq-across-zones",
    ),
    pytest.param(
        {"DateEquals": {"acs:CurrentTime": T0}},
        {"acs:CurrentTime": "2026-01-01T00:00:01Z"},
        False,
        id="dateeq-no",
    ),
    pytest.param(
        {"DateNotEquals": {"acs:CurrentTime": T0}},
        {"acs:CurrentTime": "2026-01-01T00:00:01Z"},
        True,
        id="datene",
    ),
    pytest.param(
        {"DateNotEquals": {"acs:CurrentTime": T0}},
        {"acs:CurrentTime": "2025-12-31T19:00:00-05:00"},
        False,
        id="datene-no",
    ),
    pytest.param(
        {"DateLessThan": {"acs:CurrentTime": T0}},
        {"acs:CurrentTime": "2025-12-31T23:59:59.999Z"},
        True,
        id="datelt-fraction",
    ),
    pytest.param(
        {"DateLessThan": {"acs:CurrentTime": T0}}, {"acs:CurrentTime": T0}, False, id="datelt-no"
    ),
    pytest.param(
        {"DateLessThan": {"acs:CurrentTime": T0}},
        {"acs:CurrentTime": "yesterday"},
        False,
        id="datelt-garbage",
    ),
    pytest.param(
        {"DateLessThanEquals": {"acs:CurrentTime": T0}},
        {"acs:CurrentTime": T0},
        True,
        id="datele",
    ),
    pytest.param(
        {"DateLessThanEquals": {"acs:CurrentTime": T0}},
        {"acs:CurrentTime": "2026-01-01T08:00:01+08:00"},
        False,
        id="datele-no",
    ),
    pytest.param(
        {"DateGreaterThan": {"acs:CurrentTime": T0}},
        {"acs:CurrentTime": "2026-01-01T08:00:01+08:00"},
        True,
        id="dategt",
    ),
    pytest.param(
        {"DateGreaterThan": {"acs:CurrentTime": T0}}, {"acs:CurrentTime": T0}, False, id="dategt-no"
    ),
    pytest.param(
        {"DateGreaterThanEquals": {"acs:CurrentTime": T0}},
        {"acs:CurrentTime": T0},
        True,
        id="datege",
    ),
    pytest.param(
        {"DateGreaterThanEquals": {"acs:CurrentTime": T0}},
        {"acs:CurrentTime": "2025-12-31T23:59:59Z"},
        False,
        id="datege-no",
    ),
    # booleans
    pytest.param(
        {"Bool": {"acs:SecureTransport": "true"}}, {"acs:SecureTransport": "true"}, True, id="bool"
    ),
    pytest.param(
        {"Bool": {"acs:SecureTransport": True}},
        {"acs:SecureTransport": "TRUE"},
        True,
        id="bool-json-and-case",
    ),
    pytest.param(
        {"Bool": {"acs:SecureTransport": "TRUE"}},
        {"acs:SecureTransport": "false"},
        False,
        id="bool-no",
    ),
    pytest.param(
        {"Bool": {"acs:SecureTransport": False}},
        {"acs:SecureTransport": "false"},
        True,
        id="bool-json-false",
    ),
    # addresses
    pytest.param(
        {"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}}, {"acs:SourceIp": "10.1.2.3"}, True, id="ip"
    ),
    pytest.param(
        {"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}},
        {"acs:SourceIp": "11.0.0.1"},
        False,
        id="ip-no",
    ),
    pytest.param(
        {"IpAddress": {"acs:SourceIp": "192.168.1.5"}},
        {"acs:SourceIp": "192.168.1.5"},
        True,
        id="ip-single-address",
    ),
    pytest.param(
        {"IpAddress": {"acs:SourceIp": "192.168.1.5"}},
        {"acs:SourceIp": "192.168.1.6"},
        False,
        id="ip-single-address-no",
    ),
    pytest.param(
        {"IpAddress": {"acs:SourceIp": "2001:db8::/32"}},
        {"acs:SourceIp": "2001:db8:1::1"},
        True,
        id="ipv6",
    ),
    pytest.param(
        {"IpAddress": {"acs:SourceIp": "2001:db8::/32"}},
        {"acs:SourceIp": "2001:db9::1"},
        False,
        id="ipv6-no",
    ),
    pytest.param(
        {"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}},
        {"acs:SourceIp": "::ffff:10.1.2.3"},
        True,
        id="ipv4-mapped",
    ),
    pytest.param(
        {"IpAddress": {"acs:SourceIp": "::/0"}},
        {"acs:SourceIp": "10.1.2.3"},
        False,
        id="ipv4-not-in-ipv6-range",
    ),
    pytest.param(
        {"IpAddress": {"acs:SourceIp": "0.0.0.0/0"}},
        {"acs:SourceIp": "localhost"},
        False,
        id="ip-garbage",
    ),
    pytest.param(
        {"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}},
        {"acs:SourceIp": "11.0.0.1"},
        True,
        id="notip",
    ),
    pytest.param(
        {"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}},
        {"acs:SourceIp": "10.0.0.1"},
        False,
        id="notip-no",
    ),
    # absent keys: positive operators fail, negated ones hold
    pytest.param({"StringEquals": {"k:env": "prod"}}, {}, False, id="absent-streq"),
    pytest.param({"StringLike": {"k:env": "*"}}, {}, False, id="absent-like-star"),
    pytest.param({"NumericLessThan": {"k:n": 10}}, {}, False, id="absent-numlt"),
    pytest.param({"DateLessThan": {"acs:CurrentTime": T0}}, {}, False, id="absent-datelt"),
    pytest.param({"Bool": {"acs:SecureTransport": "true"}}, {}, False, id="absent-bool"),
    pytest.param({"IpAddress": {"acs:SourceIp": "0.0.0.0/0"}}, {}, False, id="absent-ip"),
    pytest.param({"StringNotEquals": {"k:env": "prod"}}, {}, True, id="absent-strne"),
    pytest.param({"StringNotLike": {"k:env": "*"}}, {}, True, id="absent-notlike"),
    pytest.param({"NumericNotEquals": {"k:n": 10}}, {}, True, id="absent-numne"),
    pytest.param({"DateNotEquals": {"acs:CurrentTime": T0}}, {}, True, id="absent-datene"),
    pytest.param({"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}}, {}, True, id="absent-notip"),
    pytest.param({"StringEquals": {"k:env": "prod"}}, {"k:env": []}, False, id="empty-ctx-list"),
    # keys, several values, several keys, several operators
    pytest.param(
        {"IpAddress": {"ACS:SOURCEIP": "10.0.0.0/8"}},
        {"acs:sourceIp": "10.0.0.1"},
        True,
        id="key-case-insensitive",
    ),
    pytest.param(
        {"StringEquals": {"k:env": ["dev", "prod"]}}, {"k:env": "prod"}, True, id="values-or"
    ),
    pytest.param(
        {"StringEquals": {"k:env": ["dev", "prod"]}}, {"k:env": "test"}, False, id="values-or-no"
    ),
    pytest.param(
        {"StringNotEquals": {"k:env": ["dev", "prod"]}},
        {"k:env": "prod"},
        False,
        id="negated-values-none-of",
    ),
    pytest.param(
        {"StringNotEquals": {"k:env": ["dev", "prod"]}},
        {"k:env": "test"},
        True,
        id="negated-values-none-of-ok",
    ),
    pytest.param(
        {"NotIpAddress": {"acs:SourceIp": ["10.0.0.0/8", "2001:db8::/32"]}},
        {"acs:SourceIp": "2001:db8::1"},
        False,
        id="notip-values-none-of",
    ),
    pytest.param(
        {"StringEquals": {"k:env": "prod", "k:team": "billing"}},
        {"k:env": "prod", "k:team": "billing"},
        True,
        id="keys-and",
    ),
    pytest.param(
        {"StringEquals": {"k:env": "prod", "k:team": "billing"}},
        {"k:env": "prod", "k:team": "ops"},
        False,
        id="keys-and-no",
    ),
    pytest.param(
        {"StringEquals": {"k:env": "prod"}, "IpAddress": {"acs:SourceIp": "10.0.0.0/8"}},
        {"k:env": "prod", "acs:SourceIp": "10.0.0.1"},
        True,
        id="operators-and",
    ),
    pytest.param(
        {"StringEquals": {"k:env": "prod"}, "IpAddress": {"acs:SourceIp": "10.0.0.0/8"}},
        {"k:env": "prod", "acs:SourceIp": "192.168.0.1"},
        False,
        id="operators-and-no",
    ),
    pytest.param(
        {"StringEquals": {"k:env": "prod"}}, {"k:env": ["dev", "prod"]}, True, id="ctx-values-any"
    ),
    pytest.param(
        {"StringNotEquals": {"k:env": "prod"}},
        {"k:env": ["dev", "prod"]},
        False,
        id="ctx-values-negated-none",
    ),
    pytest.param(
        {"StringEquals": {"k:env": "dev"}},
        {"k:Env": "dev", "K:ENV": "prod"},
        True,
        id="ctx-keys-differing-in-case-merge",
    ),
    # found by `make mutate` (infra/mutation/): parts of a date or an address that were not read
    pytest.param(
        {"DateEquals": {"acs:CurrentTime": "2026-01-01T05:30:00+05:30"}},
        {"acs:CurrentTime": "2026-01-01T00:00:00Z"},
        True,
        id="dateeq-offset-minutes",
    ),
    pytest.param(
        {"DateGreaterThan": {"acs:CurrentTime": "2026-01-01T00:00:00.45Z"}},
        {"acs:CurrentTime": "2026-01-01T00:00:00.5Z"},
        True,
        id="dategt-shorter-fraction",
    ),
    pytest.param(
        {"DateEquals": {"acs:CurrentTime": "2026-01-01T00:00:00.1234567Z"}},
        {"acs:CurrentTime": "2026-01-01T00:00:00.1234561Z"},
        True,
        id="dateeq-beyond-microseconds",
    ),
    pytest.param(
        {"DateEquals": {"acs:CurrentTime": "2026-01-01T00:00Z"}},
        {"acs:CurrentTime": "2026-01-01T00:00:00Z"},
        True,
        id="dateeq-without-seconds",
    ),
    pytest.param(
        {"IpAddress": {"acs:SourceIp": "10.1.2.3/8"}},
        {"acs:SourceIp": "10.200.0.1"},
        True,
        id="ip-network-with-host-bits",
    ),
    pytest.param(
        {"StringEquals": {"k:flag": True}}, {"k:flag": "true"}, True, id="streq-json-true"
    ),
    pytest.param(
        {"StringEquals": {"k:flag": False}}, {"k:flag": "false"}, True, id="streq-json-false"
    ),
]


@pytest.mark.parametrize(("condition", "values", "expected"), CONDITIONS)
def test_condition(condition: dict[str, Any], values: dict[str, Any], expected: bool) -> None:
    policy = parse_policy(doc(allow("*", Condition=condition)))
    result = evaluate([policy], RequestContext(OBTAIN, SCT_1, conditions=values))
    assert result.decision is (ALLOW if expected else IMPLICIT)


def test_deny_unless_from_network_denies_unknown_source() -> None:
    policy = parse_policy(
        doc(allow("*"), deny("*", Condition={"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}}))
    )
    inside = RequestContext(OBTAIN, SCT_1, conditions={"acs:SourceIp": "10.0.0.1"})
    assert evaluate([policy], inside).decision is ALLOW
    assert evaluate([policy], RequestContext(OBTAIN, SCT_1)).decision is EXPLICIT


@pytest.mark.parametrize(
    "condition",
    [
        {"IpAddress": {"acs:SourceIp": "0.0.0.0/0"}},
        {"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}},
        {"NotIpAddress": {"ACS:SOURCEIP": "10.0.0.0/8"}},
    ],
    ids=["ip", "notip", "notip-key-case"],
)
def test_a_condition_on_an_unknown_key_fails_closed(condition: dict[str, Any]) -> None:
    """A key the context marks unknown (an address nobody vouches for): whatever the operator,
    an Allow on it does not apply and a Deny on it does."""
    unknown = RequestContext(OBTAIN, SCT_1, unknown=frozenset({"acs:SourceIp"}))
    allowed = parse_policy(doc(allow("*", Condition=condition)))
    assert evaluate([allowed], unknown).decision is IMPLICIT
    denied = parse_policy(doc(allow("*"), deny("*", Condition=condition)))
    assert evaluate([denied], unknown).decision is EXPLICIT
    # A condition on another key is evaluated as usual.
    other = parse_policy(doc(allow("*", Condition={"StringEquals": {"k:env": "prod"}})))
    known = RequestContext(
        OBTAIN, SCT_1, conditions={"k:env": "prod"}, unknown=frozenset({"acs:SourceIp"})
    )
    assert evaluate([other], known).decision is ALLOW


# --------------------------------------------------------------------------- STS sessions

ROLE_OBTAIN_ALL = doc(allow("eiam:Obtain*", f"{SECRETS}/*"))
EVERYTHING = doc(allow("*", "*"))
ONLY_SCT_1 = doc(allow(OBTAIN, SCT_1))

SESSIONS = [
    pytest.param(ROLE_OBTAIN_ALL, None, ctx(), ALLOW, id="no-session-policy"),
    pytest.param(ROLE_OBTAIN_ALL, None, ctx("kms:Decrypt"), IMPLICIT, id="no-session-role-only"),
    pytest.param(EVERYTHING, ONLY_SCT_1, ctx(), ALLOW, id="narrowed-inside"),
    pytest.param(EVERYTHING, ONLY_SCT_1, ctx("eiam:GetApplication"), IMPLICIT, id="narrowed-out"),
    pytest.param(ROLE_OBTAIN_ALL, EVERYTHING, ctx(), ALLOW, id="wide-session-within-role"),
    pytest.param(
        ROLE_OBTAIN_ALL, EVERYTHING, ctx("kms:Decrypt"), IMPLICIT, id="wide-session-not-beyond"
    ),
    pytest.param(
        ROLE_OBTAIN_ALL,
        EVERYTHING,
        ctx(resource=f"acs:vend:cn-hangzhou:{ACCOUNT}:key/k1"),
        IMPLICIT,
        id="wide-session-not-other-resource",
    ),
    pytest.param(ROLE_OBTAIN_ALL, ONLY_SCT_1, ctx(), ALLOW, id="exact-arn"),
    pytest.param(
        ROLE_OBTAIN_ALL,
        ONLY_SCT_1,
        ctx(resource=f"{SECRETS}/sct_2"),
        IMPLICIT,
        id="exact-arn-not-sibling",
    ),
    pytest.param(
        ROLE_OBTAIN_ALL,
        ONLY_SCT_1,
        ctx(resource=f"{SECRETS}/sct_10"),
        IMPLICIT,
        id="exact-arn-not-prefix",
    ),
    pytest.param(
        ROLE_OBTAIN_ALL,
        doc(allow("*"), deny(resource=SCT_1)),
        ctx(),
        EXPLICIT,
        id="session-deny",
    ),
    pytest.param(
        doc(allow("*"), deny(resource=SCT_1)), EVERYTHING, ctx(), EXPLICIT, id="role-deny"
    ),
    pytest.param(doc(allow("kms:*")), ONLY_SCT_1, ctx(), IMPLICIT, id="role-does-not-allow"),
]


@pytest.mark.parametrize(("role", "session", "context", "expected"), SESSIONS)
def test_session(
    role: dict[str, Any],
    session: dict[str, Any] | None,
    context: RequestContext,
    expected: Decision,
) -> None:
    session_policy = None if session is None else parse_policy(session)
    result = evaluate_session([parse_policy(role)], session_policy, context)
    assert result.decision is expected


def test_session_deciding_statement() -> None:
    role = parse_policy(doc(allow("*"), deny("kms:*")), name="role")
    session = parse_policy(doc(allow(resource=SCT_1), deny("eiam:Delete*")), name="session")

    allowed = evaluate_session([role], session, ctx())
    assert (allowed.statement, allowed.policy) == (role.statements[0], role)

    role_deny = evaluate_session([role], session, ctx("kms:Decrypt"))
    assert (role_deny.statement, role_deny.policy) == (role.statements[1], role)

    session_deny = evaluate_session([role], session, ctx("eiam:DeleteApplication"))
    assert session_deny.decision is EXPLICIT
    assert (session_deny.statement, session_deny.policy) == (session.statements[1], session)

    narrowed = evaluate_session([role], session, ctx(resource=f"{SECRETS}/sct_2"))
    assert narrowed.decision is IMPLICIT
    assert narrowed.statement is None
    assert narrowed.policy is session


def test_policies_are_reusable_values() -> None:
    policy = parse_policy(ONLY_SCT_1)
    assert isinstance(policy, Policy)
    assert policy == parse_policy(json.dumps(ONLY_SCT_1))
    assert hash(policy) == hash(parse_policy(ONLY_SCT_1))


@pytest.mark.parametrize(
    ("element", "shown"),
    [("X" * 80, "X" * 80), ("X" * 81, "X" * 80 + "..."), (5, "5")],
    ids=["80-chars-whole", "81-chars-cut", "not-a-string"],
)
def test_a_refusal_quotes_what_it_names_cut_to_80_characters(element: Any, shown: str) -> None:
    """Found by `make mutate`: an element named in a refusal is quoted whole up to 80
    characters, cut after; one that is not a string (a YAML key) is quoted as text."""
    with pytest.raises(PolicyError) as refused:
        parse_policy(doc({**_OBTAIN_ALL, element: 1}))
    assert str(refused.value) == f'policy Statement[0]: unknown element "{shown}"'
