"""The emulator against Alibaba Cloud's own API metadata (vendored in infra/api-metadata/).

- Every action the emulator serves is called through the real SDK client over real HTTP, and the
  body it answers (as the SDK parsed it, before any model drops a field) must fit the
  metadata's 200 response schema: every field declared, with its declared type, recursively.
  Which declared fields it leaves out is pinned per case and explained in DEVIATIONS.md.
- The error codes each action may answer are the `ERRORS` tables of infra/emulator/{sts,eiam,
  kms}.py plus the gateway-level `GATEWAY_CODES` of infra/emulator/errors.py. A scan of the
  emulator's source (every `ApiError(status, "Code", ...)`, followed through the calls each
  handler can make) must find exactly those, with those statuses; every tabled code must be
  listed by the metadata for that action with that status, or be a documented deviation; and
  every tabled code is provoked once through the SDK.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sdk_clients as sdk
from alibabacloud_eiam20211201 import models as eiam_models
from alibabacloud_kms20160120 import models as kms_models
from alibabacloud_sts20150401 import models as sts_models
from alibabacloud_tea_openapi.exceptions import ClientException

from infra.emulator import EmulatorServer, Seed, eiam, kms, sts
from infra.emulator.errors import GATEWAY_CODES
from infra.emulator.seed import Application, Instance, Secret, User

pytestmark = pytest.mark.contract("12")

ROOT = Path(__file__).resolve().parent.parent
META_DIR = ROOT / "infra" / "api-metadata"
EMULATOR_DIR = ROOT / "infra" / "emulator"
DEVIATIONS = (META_DIR / "DEVIATIONS.md").read_text(encoding="utf-8")

# product -> (emulator module, vendored metadata file, SDK client factory, SDK models)
PRODUCTS: dict[str, tuple[ModuleType, str, Callable[..., Any], ModuleType]] = {
    "sts": (sts, "sts-2015-04-01.json", sdk.sts, sts_models),
    "eiam": (eiam, "eiam-2021-12-01.json", sdk.eiam, eiam_models),
    "kms": (kms, "kms-2016-01-20.json", sdk.kms, kms_models),
}
# Actions the metadata describes that the emulator does not serve (DEVIATIONS.md).
NOT_SERVED = {"sts": set[str](), "eiam": set[str](), "kms": {"DescribeKey"}}


def _metadata(product: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((META_DIR / PRODUCTS[product][1]).read_text("utf-8"))
    return data


def _product_of(action: str) -> str:
    for product, (module, *_) in PRODUCTS.items():
        if action in module.ERRORS:
            return product
    raise KeyError(action)


# -- the fidelity world: the demo world, plus what makes every response field show --------------

KMS_USER = ("LTAI5tFidelityKms00001", "fidelity-kms-secret-0001")
FIDELITY_INSTANCE, FIDELITY_APP, FIDELITY_SECRET = "idaas_fidelity", "app_fidelity", "sct_used_1"
LAST_USED_MS, EXPIRES_MS = 1_700_000_000_000, 4_102_444_800_000


@pytest.fixture
def world(demo_seed: Seed) -> Iterator[EmulatorServer]:
    """The demo world with a user allowed every KMS action (nobody there may Encrypt or
    GenerateDataKeyWithoutPlaintext) and a secret that has been used and expires, so that
    LastUsedTime and ExpirationTime are answered too."""
    kms_user = User(
        name="fidelity-kms",
        access_key_id=KMS_USER[0],
        access_key_secret=KMS_USER[1],
        policies=(sdk.allow("kms:*", sdk.key_arn("*")),),
    )
    used = Secret(
        secret_id=FIDELITY_SECRET,
        client_secret="CSfidelitySecretValue000000000000000001",
        last_used_time=LAST_USED_MS,
        expiration_time=EXPIRES_MS,
    )
    instance = Instance(
        instance_id=FIDELITY_INSTANCE,
        applications=(Application(application_id=FIDELITY_APP, secrets=(used,)),),
    )
    seed = demo_seed.model_copy(
        update={
            "users": (*demo_seed.users, kms_user),
            "eiam_instances": (*demo_seed.eiam_instances, instance),
        }
    )
    with EmulatorServer(seed) as server:
        yield server


# -- calling through the SDK, keeping the body as the emulator sent it --------------------------


def _snake(action: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", action).lower()


def call(
    endpoint: str,
    action: str,
    key: tuple[str, str] = sdk.OPERATOR,
    token: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """`action` through its product's SDK client method (which builds, signs and sends the
    request), returning the JSON body the SDK parsed, before its response model drops what it
    does not know."""
    product = _product_of(action)
    _, _, client_of, models = PRODUCTS[product]
    client = client_of(endpoint, key, token)
    answers: list[dict[str, Any]] = []
    send = client.call_api

    def recording(params: Any, request: Any, runtime: Any) -> Any:
        answer = send(params, request, runtime)
        answers.append(answer)
        return answer

    client.call_api = recording  # the product method calls self.call_api
    method = getattr(client, _snake(action))
    request_type = getattr(models, f"{action}Request", None)
    if request_type is None:
        assert not fields, f"{action} takes no request"
        method()
    else:
        method(request_type(**fields))
    assert len(answers) == 1
    assert answers[0]["statusCode"] == 200
    body: dict[str, Any] = answers[0]["body"]
    return body


def _assume(endpoint: str) -> tuple[tuple[str, str], str]:
    creds = call(
        endpoint,
        "AssumeRole",
        sdk.FUNCTION,
        role_arn=sdk.ROLE_ARN,
        role_session_name="fidelity",
        duration_seconds=900,
    )["Credentials"]
    return (creds["AccessKeyId"], creds["AccessKeySecret"]), creds["SecurityToken"]


CONTEXT = {"vend:arn": "acs:eiam:cn-hangzhou:1:instance/i/application/a/secret/s"}
DEMO_SECRET: dict[str, Any] = {
    "instance_id": sdk.INSTANCE,
    "application_id": "app_billing",
    "secret_id": "sct_billing_1",
}
USED_SECRET: dict[str, Any] = {
    "instance_id": FIDELITY_INSTANCE,
    "application_id": FIDELITY_APP,
    "secret_id": FIDELITY_SECRET,
}


def _decrypt(endpoint: str) -> dict[str, Any]:
    made = call(endpoint, "GenerateDataKey", sdk.FUNCTION, key_id="key-billing")
    blob = made["CiphertextBlob"]
    return call(endpoint, "Decrypt", sdk.BILLING, ciphertext_blob=blob, encryption_context=None)


def _caller_identity_of_a_role(endpoint: str) -> dict[str, Any]:
    key, token = _assume(endpoint)
    return call(endpoint, "GetCallerIdentity", key, token)


# -- 1. every success body fits the metadata's 200 schema ---------------------------------------


@dataclass(frozen=True)
class Success:
    action: str
    run: Callable[[str], dict[str, Any]]
    # Declared fields this call does not answer (paths as `A.B`, `List[].Field`): DEVIATIONS.md.
    omitted: frozenset[str] = frozenset()
    variant: str = ""

    @property
    def id(self) -> str:
        return f"{self.action}-{self.variant}" if self.variant else self.action


SUCCESSES = [
    Success(
        "AssumeRole",
        lambda e: call(
            e,
            "AssumeRole",
            sdk.FUNCTION,
            role_arn=sdk.ROLE_ARN,
            role_session_name="fidelity",
            policy=json.dumps(sdk.allow("eiam:ObtainApplicationClientSecret", "*")),
        ),
        frozenset({"SourceIdentity"}),
    ),
    Success(
        "GetCallerIdentity",
        lambda e: call(e, "GetCallerIdentity", sdk.BILLING),
        frozenset({"RoleId"}),
        "user",
    ),
    Success("GetCallerIdentity", _caller_identity_of_a_role, frozenset({"UserId"}), "role"),
    Success(
        "ObtainApplicationClientSecret",
        lambda e: call(e, "ObtainApplicationClientSecret", **USED_SECRET),
    ),
    Success(
        "CreateApplicationClientSecret",
        lambda e: call(
            e,
            "CreateApplicationClientSecret",
            instance_id=sdk.INSTANCE,
            application_id="app_empty",
            expiration_time=int(time.time() * 1000) + 30 * 86_400_000,
        ),
    ),
    Success(
        "ListApplicationClientSecrets",
        lambda e: call(
            e,
            "ListApplicationClientSecrets",
            instance_id=FIDELITY_INSTANCE,
            application_id=FIDELITY_APP,
        ),
    ),
    Success(
        "DeleteApplicationClientSecret",
        lambda e: call(e, "DeleteApplicationClientSecret", **DEMO_SECRET),
    ),
    Success(
        "EnableApplicationClientSecret",
        lambda e: call(e, "EnableApplicationClientSecret", **DEMO_SECRET),
    ),
    Success(
        "DisableApplicationClientSecret",
        lambda e: call(e, "DisableApplicationClientSecret", **DEMO_SECRET),
    ),
    Success(
        "GenerateDataKey",
        lambda e: call(
            e, "GenerateDataKey", sdk.FUNCTION, key_id="key-billing", encryption_context=CONTEXT
        ),
    ),
    Success(
        "GenerateDataKey",
        lambda e: call(e, "GenerateDataKey", sdk.FUNCTION, key_id="key-billing", dry_run="true"),
        omitted=frozenset({"Plaintext", "CiphertextBlob"}),
        variant="dry-run",
    ),
    Success(
        "GenerateDataKeyWithoutPlaintext",
        lambda e: call(e, "GenerateDataKeyWithoutPlaintext", KMS_USER, key_id="alias/vend-billing"),
    ),
    Success(
        "Encrypt",
        lambda e: call(e, "Encrypt", KMS_USER, key_id="key-default", plaintext="SGVsbG8="),
    ),
    Success("Decrypt", _decrypt),
]


def schema_errors(value: Any, schema: Mapping[str, Any], path: str = "") -> list[str]:
    """Where `value` does not fit `schema`: an undeclared field, or a value of another type.
    An int64 may come as a JSON number; null is no declared type."""
    where = path or "(body)"
    kind = schema.get("type", "object" if "properties" in schema else None)
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: {type(value).__name__}, declared an object"]
        declared = schema.get("properties", {})
        errors: list[str] = []
        for name, item in value.items():
            inner = f"{path}.{name}" if path else name
            if name not in declared:
                errors.append(f"{inner}: not declared")
            else:
                errors += schema_errors(item, declared[name], inner)
        return errors
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: {type(value).__name__}, declared an array"]
        return [e for item in value for e in schema_errors(item, schema["items"], f"{path}[]")]
    expected: dict[str, Callable[[Any], bool]] = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    if kind not in expected:
        return [f"{where}: the schema's type {kind!r} is not one this test knows"]
    if not expected[kind](value):
        return [f"{where}: {type(value).__name__} {value!r:.40}, declared {kind}"]
    return []


def declared_paths(schema: Mapping[str, Any], path: str = "") -> set[str]:
    if schema.get("type") == "array":
        return declared_paths(schema["items"], f"{path}[]")
    paths: set[str] = set()
    for name, inner in schema.get("properties", {}).items():
        here = f"{path}.{name}" if path else name
        paths |= {here, *declared_paths(inner, here)}
    return paths


def answered_paths(value: Any, path: str = "") -> set[str]:
    if isinstance(value, list):
        return {p for item in value for p in answered_paths(item, f"{path}[]")}
    if not isinstance(value, dict):
        return set()
    paths: set[str] = set()
    for name, inner in value.items():
        here = f"{path}.{name}" if path else name
        paths |= {here, *answered_paths(inner, here)}
    return paths


def _response_schema(action: str) -> dict[str, Any]:
    schema: dict[str, Any] = _metadata(_product_of(action))["apis"][action]["responses"]["200"][
        "schema"
    ]
    return schema


@pytest.mark.parametrize("case", SUCCESSES, ids=lambda c: c.id)
def test_success_body_fits_the_metadata(world: EmulatorServer, case: Success) -> None:
    body = case.run(world.endpoint)
    schema = _response_schema(case.action)
    assert schema_errors(body, schema) == []
    assert body["RequestId"]
    omitted = declared_paths(schema) - answered_paths(body)
    assert omitted == case.omitted, "declared but not answered (DEVIATIONS.md lists these)"
    for path in case.omitted:
        assert f"`{path}`" in DEVIATIONS, f"{case.id}: {path} is left out without a word"


def test_every_served_action_has_a_success_case(emulator: EmulatorServer) -> None:
    app = emulator.emulator
    served = {*app.sts.actions, *app.eiam.actions, *app.kms.actions}
    assert {c.action for c in SUCCESSES} == served


def test_the_schema_check_catches_what_it_should() -> None:
    schema = _response_schema("ListApplicationClientSecrets")
    good = {
        "RequestId": "r",
        "TotalCount": 1,
        "ApplicationClientSecrets": [{"SecretId": "s", "ExpirationTime": 1}],
    }
    assert schema_errors(good, schema) == []
    assert schema_errors({**good, "Extra": 1}, schema) == ["Extra: not declared"]
    assert schema_errors({**good, "TotalCount": "1"}, schema) == [
        "TotalCount: str '1', declared integer"
    ]
    assert schema_errors({**good, "TotalCount": True}, schema) != []
    null_time = {**good, "ApplicationClientSecrets": [{"ExpirationTime": None}]}
    assert schema_errors(null_time, schema) == [
        "ApplicationClientSecrets[].ExpirationTime: NoneType None, declared integer"
    ]
    assert schema_errors({**good, "ApplicationClientSecrets": {}}, schema) != []
    assert "ApplicationClientSecrets[].LastUsedTime" in declared_paths(schema) - answered_paths(
        good
    )


# -- 2. the vendored metadata is the one SOURCE.md describes ------------------------------------


@pytest.mark.parametrize("product", sorted(PRODUCTS))
def test_vendored_metadata_is_unchanged(product: str) -> None:
    source = (META_DIR / "SOURCE.md").read_text(encoding="utf-8")
    file = PRODUCTS[product][1]
    digest = hashlib.sha256((META_DIR / file).read_bytes()).hexdigest()
    assert re.search(rf"`{re.escape(file)}`.*`{digest}`", source), (
        f"{file} changed: sha256 {digest} is not beside its name in SOURCE.md"
    )
    assert re.search(r"\b[0-9a-f]{40}\b", source), "SOURCE.md names no commit"
    assert _metadata(product)["info"]["version"] == PRODUCTS[product][0].VERSION


@pytest.mark.parametrize("product", sorted(PRODUCTS))
def test_served_actions_are_the_metadatas(product: str) -> None:
    module = PRODUCTS[product][0]
    apis = set(_metadata(product)["apis"])
    assert set(module.ERRORS) == apis - NOT_SERVED[product]
    assert set(_handlers()[product]) == set(module.ERRORS)
    for action in NOT_SERVED[product]:
        assert f"`{action}`" in DEVIATIONS


# -- 3. error codes: the source, the tables and the metadata agree ------------------------------

Raise = tuple[int | None, str]  # (HTTP status, or None when the fault decides; code)


@dataclass
class _Function:
    cls: str | None
    name: str
    params: list[str]
    node: ast.FunctionDef
    raises: set[Raise] = field(default_factory=set)
    # (status, index of the parameter that is the code): a factory such as call.not_found
    code_params: list[tuple[int | None, int]] = field(default_factory=list)


@dataclass
class _Scan:
    functions: dict[str, _Function]  # "module.Class.name" or "module.name"
    unreadable: list[str]

    def by_name(self, name: str, *, methods: bool, functions: bool) -> list[str]:
        return [
            q
            for q, f in self.functions.items()
            if f.name == name and ((f.cls is not None and methods) or (f.cls is None and functions))
        ]


def _callee_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _scan() -> _Scan:
    functions: dict[str, _Function] = {}
    unreadable: list[str] = []
    for file in sorted(EMULATOR_DIR.glob("*.py")):
        tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
        for top in tree.body:
            defs: list[tuple[str | None, ast.stmt]] = [(None, top)]
            if isinstance(top, ast.ClassDef):
                defs = [(top.name, inner) for inner in top.body]
            for cls, node in defs:
                if isinstance(node, ast.FunctionDef):
                    args = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
                    if cls is not None:
                        args = args[1:]  # self
                    qual = ".".join(p for p in (file.stem, cls, node.name) if p)
                    functions[qual] = _Function(cls, node.name, args, node)
    for qual, fn in functions.items():
        for found in ast.walk(fn.node):
            if not (isinstance(found, ast.Call) and _callee_name(found) == "ApiError"):
                continue
            status_arg, code_arg = found.args[0], found.args[1]
            status = (
                status_arg.value
                if isinstance(status_arg, ast.Constant) and isinstance(status_arg.value, int)
                else None
            )
            where = f"{qual} line {found.lineno}"
            if isinstance(code_arg, ast.Constant) and isinstance(code_arg.value, str):
                fn.raises.add((status, code_arg.value))
            elif isinstance(code_arg, ast.Name) and code_arg.id in fn.params:
                fn.code_params.append((status, fn.params.index(code_arg.id)))
            elif isinstance(code_arg, ast.BoolOp):  # `fault.code or "ServiceUnavailable"`
                fn.raises |= {
                    (status, c.value)
                    for c in ast.walk(code_arg)
                    if isinstance(c, ast.Constant) and isinstance(c.value, str)
                }
            else:
                unreadable.append(where)
    return _Scan(functions, unreadable)


def _callees(scan: _Scan, caller: _Function, node: ast.Call) -> list[str]:
    """The emulator functions a call may reach, by name (more rather than fewer)."""
    func = node.func
    if isinstance(func, ast.Name):
        return scan.by_name(func.id, methods=False, functions=True)
    if not isinstance(func, ast.Attribute):
        return []
    receiver = func.value
    if isinstance(receiver, ast.Name) and receiver.id == "self":
        own = scan.by_name(func.attr, methods=True, functions=False)
        return [q for q in own if scan.functions[q].cls == caller.cls]
    if isinstance(receiver, ast.Call):  # AESGCM(key).encrypt(...): not ours
        return []
    return scan.by_name(func.attr, methods=True, functions=True)


def _reach(scan: _Scan) -> dict[str, set[Raise]]:
    """Every (status, code) each function can raise, itself or through what it calls."""
    edges: dict[str, set[str]] = {q: set() for q in scan.functions}
    for qual, fn in scan.functions.items():
        for node in ast.walk(fn.node):
            if not isinstance(node, ast.Call):
                continue
            for callee in _callees(scan, fn, node):
                edges[qual].add(callee)
                for status, index in scan.functions[callee].code_params:
                    arg = node.args[index] if index < len(node.args) else None
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                        fn.raises.add((status, arg.value))  # not_found("EntityNotExists.X", ...)
                    else:
                        scan.unreadable.append(f"{qual} line {node.lineno}: code of {callee}")
    reach = {q: set(f.raises) for q, f in scan.functions.items()}
    changed = True
    while changed:
        changed = False
        for qual, callees in edges.items():
            before = len(reach[qual])
            for callee in callees:
                reach[qual] |= reach[callee]
            changed |= len(reach[qual]) != before
    return reach


def _handlers() -> dict[str, dict[str, str]]:
    """product -> action -> the handler's qualified name, read from `self.actions = {...}`."""
    found: dict[str, dict[str, str]] = {}
    for product in PRODUCTS:
        tree = ast.parse((EMULATOR_DIR / f"{product}.py").read_text(encoding="utf-8"))
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            for node in ast.walk(cls):
                if (
                    isinstance(node, ast.AnnAssign)
                    and isinstance(node.target, ast.Attribute)
                    and node.target.attr == "actions"
                    and isinstance(node.value, ast.Dict)
                ):
                    found[product] = {
                        k.value: f"{product}.{cls.name}.{v.attr}"
                        for k, v in zip(node.value.keys, node.value.values, strict=True)
                        if isinstance(k, ast.Constant)
                        and isinstance(k.value, str)
                        and isinstance(v, ast.Attribute)
                    }
    return found


def _status_fits(table: int | None, raised: int | None) -> bool:
    return table is None or table == raised


def test_every_raised_code_is_tabled() -> None:
    """(a) Each `ApiError` a handler can reach is in its action's ERRORS, with that status, or
    a gateway code that handlers may answer; every other one is a gateway code; and no ERRORS
    entry is one its handler cannot reach."""
    scan = _scan()
    reach = _reach(scan)
    assert scan.unreadable == [], "error codes the scan cannot read"
    problems: list[str] = []
    reached: set[Raise] = set()
    for product, handlers in _handlers().items():
        table = PRODUCTS[product][0].ERRORS
        for action, handler in handlers.items():
            reached |= reach[handler]
            for status, code in sorted(reach[handler], key=str):
                gateway = GATEWAY_CODES.get(code)
                if code in table[action]:
                    if table[action][code] != status:
                        problems.append(
                            f"{action} {code}: raised {status}, tabled {table[action][code]}"
                        )
                elif gateway is not None and gateway.in_handlers:
                    if not _status_fits(gateway.status, status):
                        problems.append(
                            f"{action} {code}: raised {status}, gateway {gateway.status}"
                        )
                else:
                    problems.append(f"{action} may answer {status} {code}: not in its ERRORS")
            for code in set(table[action]) - {c for _, c in reach[handler]}:
                problems.append(f"{action}: ERRORS has {code}, which its handler never raises")
    everywhere = {r for f in scan.functions.values() for r in f.raises}
    for status, code in sorted(everywhere - reached, key=str):
        gateway = GATEWAY_CODES.get(code)
        if gateway is None:
            problems.append(f"{status} {code}: raised outside any action, not a gateway code")
        elif not _status_fits(gateway.status, status):
            problems.append(f"{code}: raised {status}, gateway {gateway.status}")
    assert problems == []


@pytest.mark.parametrize("product", sorted(PRODUCTS))
def test_tabled_codes_are_the_metadatas(product: str) -> None:
    """(b) Each ERRORS code is listed by the metadata for that action with that status; the
    exceptions (UNLISTED) are not listed there at all, and DEVIATIONS.md explains each."""
    module = PRODUCTS[product][0]
    apis = _metadata(product)["apis"]
    problems: list[str] = []
    for action, codes in module.ERRORS.items():
        listed = {
            (int(status), entry["errorCode"])
            for status, entries in apis[action].get("errorCodes", {}).items()
            for entry in entries
        }
        unlisted = module.UNLISTED.get(action, frozenset())
        assert unlisted <= set(codes), f"{action}: UNLISTED names a code ERRORS lacks"
        for code, status in codes.items():
            if code in unlisted:
                if code in {c for _, c in listed}:
                    problems.append(f"{action} {code}: listed by the metadata, not UNLISTED")
                if f"`{code}`" not in DEVIATIONS:
                    problems.append(f"{action} {code}: unlisted, and DEVIATIONS.md is silent")
            elif (status, code) not in listed:
                problems.append(f"{action} {status} {code}: not in the metadata's errorCodes")
    assert problems == []
    if product == "eiam":  # what DEVIATIONS.md says of EIAM holds while this does
        assert not any("errorCodes" in api for api in apis.values())


def test_gateway_codes_say_where_they_come_from() -> None:
    for code, gateway in GATEWAY_CODES.items():
        assert gateway.raised_by and gateway.source, code
        assert "https://" in gateway.source or "unverified" in gateway.source, code
        assert f"`{code}`" in DEVIATIONS, f"{code} is not in DEVIATIONS.md's gateway table"


# -- 4. every tabled code, provoked through the SDK ---------------------------------------------


def _quota(endpoint: str) -> None:
    # app_billing has one secret; a second is the most an application may have.
    call(
        endpoint,
        "CreateApplicationClientSecret",
        instance_id=sdk.INSTANCE,
        application_id="app_billing",
    )


def _blob_of_unknown_key() -> str:
    key_id = b"key-gone"
    raw = b"EKB1" + bytes([len(key_id)]) + key_id + b"0" * 36 + b"\0" * (12 + 32)
    return base64.b64encode(raw).decode()


@dataclass(frozen=True)
class Refusal:
    action: str
    code: str
    key: tuple[str, str]
    fields: dict[str, Any]
    prepare: Callable[[str], None] | None = None

    @property
    def id(self) -> str:
        return f"{self.action}-{self.code}"


ROLE = {"role_arn": sdk.ROLE_ARN, "role_session_name": "fidelity"}
_EIAM_SECRET_ACTIONS = [
    "ObtainApplicationClientSecret",
    "DeleteApplicationClientSecret",
    "EnableApplicationClientSecret",
    "DisableApplicationClientSecret",
]
_KMS: dict[str, Any] = {"key_id": "key-billing"}
# (code, the request fields that provoke it)
_SECRET_REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("EntityNotExists.Instance", {"instance_id": "idaas_nope"}),
    ("EntityNotExists.Application", {"application_id": "app_nope"}),
    ("EntityNotExists.Secret", {"secret_id": "sct_nope"}),
    ("InvalidParameter", {"secret_id": "not an id"}),
]
_APP_REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("EntityNotExists.Instance", {"instance_id": "idaas_nope", "application_id": "a"}),
    ("EntityNotExists.Application", {"application_id": "app_nope"}),
    ("InvalidParameter", {"application_id": "not an id"}),
]
_DATA_KEY_REFUSED: list[tuple[str, dict[str, Any]]] = [
    ("Forbidden.KeyNotFound", {"key_id": "key-nope"}),
    ("InvalidParameter", {**_KMS, "number_of_bytes": 2000}),
]

REFUSALS = [
    Refusal("AssumeRole", "InvalidParameter.RoleArn", sdk.FUNCTION, {**ROLE, "role_arn": "role"}),
    Refusal(
        "AssumeRole",
        "InvalidParameter.RoleSessionName",
        sdk.FUNCTION,
        {**ROLE, "role_session_name": "x"},
    ),
    Refusal(
        "AssumeRole",
        "InvalidParameter.DurationSeconds",
        sdk.FUNCTION,
        {**ROLE, "duration_seconds": 899},
    ),
    Refusal(
        "AssumeRole",
        "InvalidParameter.PolicySize",
        sdk.FUNCTION,
        {**ROLE, "policy": json.dumps(sdk.allow("eiam:*", ["x" * 2100]))},
    ),
    Refusal("AssumeRole", "InvalidParameter.PolicyGrammar", sdk.FUNCTION, {**ROLE, "policy": "{"}),
    Refusal("AssumeRole", "NoPermission", sdk.OPERATOR, ROLE),
    Refusal(
        "AssumeRole",
        "EntityNotExist.Role",
        sdk.FUNCTION,
        {**ROLE, "role_arn": f"acs:ram::{sdk.ACCOUNT}:role/nobody"},
    ),
    *(
        Refusal(action, code, sdk.OPERATOR, {**DEMO_SECRET, **change})
        for action in _EIAM_SECRET_ACTIONS
        for code, change in _SECRET_REFUSED
    ),
    *(
        Refusal(action, code, sdk.OPERATOR, {"instance_id": sdk.INSTANCE, **change})
        for action in ["CreateApplicationClientSecret", "ListApplicationClientSecrets"]
        for code, change in _APP_REFUSED
    ),
    Refusal(
        "CreateApplicationClientSecret",
        "InvalidParameter.ExpirationTime",
        sdk.OPERATOR,
        {"instance_id": sdk.INSTANCE, "application_id": "app_empty", "expiration_time": 1},
    ),
    Refusal(
        "CreateApplicationClientSecret",
        "QuotaExceeded.ApplicationClientSecret",
        sdk.OPERATOR,
        {"instance_id": sdk.INSTANCE, "application_id": "app_billing"},
        _quota,
    ),
    *(
        Refusal(action, code, KMS_USER, change)
        for action in ["GenerateDataKey", "GenerateDataKeyWithoutPlaintext"]
        for code, change in _DATA_KEY_REFUSED
    ),
    Refusal("Encrypt", "Forbidden.KeyNotFound", KMS_USER, {"key_id": "key-nope", "plaintext": "x"}),
    Refusal("Encrypt", "InvalidParameter", KMS_USER, {**_KMS, "plaintext": "x" * 6145}),
    Refusal(
        "Decrypt", "Forbidden.KeyNotFound", KMS_USER, {"ciphertext_blob": _blob_of_unknown_key()}
    ),
    Refusal("Decrypt", "InvalidParameter", KMS_USER, {"ciphertext_blob": "not a blob"}),
]


def test_every_tabled_code_is_provoked() -> None:
    tabled = {
        (action, code)
        for module, *_ in PRODUCTS.values()
        for action, codes in module.ERRORS.items()
        for code in codes
    }
    assert {(r.action, r.code) for r in REFUSALS} == tabled


@pytest.mark.parametrize("case", REFUSALS, ids=lambda r: r.id)
def test_tabled_code_is_answered(world: EmulatorServer, case: Refusal) -> None:
    if case.prepare is not None:
        case.prepare(world.endpoint)
    with pytest.raises(ClientException) as info:
        call(world.endpoint, case.action, case.key, **case.fields)
    status = PRODUCTS[_product_of(case.action)][0].ERRORS[case.action][case.code]
    assert (info.value.status_code, info.value.code) == (status, case.code)
