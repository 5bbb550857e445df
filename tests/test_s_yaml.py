"""s.yaml and s.custom.yaml (Serverless Devs v3, component fc3): every resource's props pass the
fc3 component's own schema (vendored in infra/fc3-schema/), the VEND_* variables are exactly
those the deployed code reads, the handlers exist, and no secret is written in the files."""

from __future__ import annotations

import ast
import copy
import hashlib
import importlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from functions import custom_runtime
from infra.local.fc_context import FunctionInfo, LocalContext
from shared import http_api, readiness
from shared.config import Settings
from shared.fc import DEFAULT_DEADLINE_S, deadline_for, deadline_of
from shared.lifecycle import schedule
from shared.lifecycle.settings import MIN_GRACE_MINUTES
from shared.upstream.sts import ASSUME_ROLE_BURST, ASSUME_ROLE_PER_S

ROOT = Path(__file__).resolve().parent.parent
SCHEMA_DIR = ROOT / "infra" / "fc3-schema"
FILES = ("s.yaml", "s.custom.yaml")
PACKAGE = "./dist/vend-fc.zip"
# The modules whose code runs in FC: the two handlers, and what `vend serve` puts around the
# HTTP one in the custom runtime. The caller commands of infra/local/cli.py (VEND_URL, ...) run on
# the caller's machine and are not followed.
SERVICE_ROOTS = (
    "functions.http",
    "functions.events",
    "functions.rotation",
    "infra.local.fc_bridge",
    "functions.wsgi_server",
)
CODE_DIRS = (ROOT / "shared", ROOT / "functions")

_REF = re.compile(r"\$\{([^}]*)\}")
_VAR = re.compile(r"vars\.([A-Za-z0-9_]+)")
_ENV = re.compile(r"env\(\s*'([A-Za-z_][A-Za-z0-9_]*)'\s*(?:,\s*'([^']*)'\s*)?\)")
_VEND_NAME = re.compile(r"VEND_[A-Z0-9_]+")
# The few JavaScript forms the files use where a value depends on whether a variable is set
# (Serverless Devs evaluates `${...}` as JavaScript; infra/ASSUMPTIONS.md F36).
_ENV_CALL = r"env\('[A-Za-z_][A-Za-z0-9_]*'(?:, '[^']*')?\)"
_CHOICE = re.compile(r"(?P<cond>.+?) \? (?P<then>.+?) : (?P<else>.+)")
_SPLIT = re.compile(rf"({_ENV_CALL})\.split\(','\)")
_NO_AT = re.compile(rf"({_ENV_CALL})\.indexOf\('@'\) < 0")


# -- loading and resolving ------------------------------------------------------------------


def _load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{name}: not a mapping"
    return data


def placeholder(env_name: str) -> str:
    """What a required `${env('NAME')}` (no default) stands for in these tests."""
    return f"<{env_name}>"


def resolve(value: Any, variables: dict[str, Any]) -> Any:
    """Serverless Devs' `${vars.x}` (from the file's own vars) and `${env('NAME', 'default')}`
    (the default, or a placeholder when there is none). A value that is one whole reference
    keeps the referenced type (a number stays a number); references inside a longer string are
    put in as text. Anything else in `${...}` fails: the test would not know what it means."""
    if isinstance(value, dict):
        return {k: resolve(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, variables) for v in value]
    if not isinstance(value, str):
        return value

    def one(expr: str) -> Any:
        expr = expr.strip()
        if m := _VAR.fullmatch(expr):
            assert m.group(1) in variables, f"${{{expr}}}: no such var"
            return resolve(variables[m.group(1)], variables)
        if m := _ENV.fullmatch(expr):
            return m.group(2) if m.group(2) is not None else placeholder(m.group(1))
        if m := _CHOICE.fullmatch(expr):
            return one(m.group("then") if _holds(m.group("cond")) else m.group("else"))
        if m := _SPLIT.fullmatch(expr):
            return str(one(m.group(1))).split(",")
        if expr == "[]":
            return []
        raise AssertionError(f"${{{expr}}}: not a reference these tests understand")

    def _holds(cond: str) -> bool:
        if m := _NO_AT.fullmatch(cond):
            return "@" not in str(one(m.group(1)))
        return bool(one(cond))

    whole = _REF.fullmatch(value)
    if whole:
        return one(whole.group(1))
    return _REF.sub(lambda m: str(one(m.group(1))), value)


def resources(name: str) -> dict[str, dict[str, Any]]:
    """Each resource's props, resolved."""
    data = _load(name)
    variables = data.get("vars") or {}
    return {rname: resolve(res["props"], variables) for rname, res in data["resources"].items()}


def raw_props(name: str) -> dict[str, dict[str, Any]]:
    """Each resource's props as written (anchors merged, `${...}` left alone)."""
    return {rname: res["props"] for rname, res in _load(name)["resources"].items()}


ALL = [(f, r) for f in FILES for r in _load(f)["resources"]]
IDS = [f"{f}:{r}" for f, r in ALL]


def props_of(file: str, resource: str) -> dict[str, Any]:
    return resources(file)[resource]


def is_custom(props: dict[str, Any]) -> bool:
    return str(props["runtime"]).startswith("custom")


# -- the schema -------------------------------------------------------------------------------


def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMA_DIR / "schema.json").read_text(encoding="utf-8"))
    return loaded


def schema_errors(props: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft7Validator(_schema())
    return [
        f"{'/'.join(str(p) for p in err.absolute_path) or '(props)'}: {err.message}"
        for err in sorted(validator.iter_errors(props), key=lambda e: list(e.absolute_path))
    ]


def test_the_vendored_schema_is_the_recorded_draft07_props_schema() -> None:
    schema = _schema()
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    assert {"functionName", "region", "runtime"} <= set(schema["required"])
    source = (SCHEMA_DIR / "SOURCE.md").read_text(encoding="utf-8")
    digest = hashlib.sha256((SCHEMA_DIR / "schema.json").read_bytes()).hexdigest()
    assert digest in source, f"schema.json changed: sha256 {digest} is not in SOURCE.md"
    assert re.search(r"\b[0-9a-f]{40}\b", source), "SOURCE.md names no commit"


@pytest.mark.parametrize(("file", "resource"), ALL, ids=IDS)
def test_props_pass_the_fc3_schema(file: str, resource: str) -> None:
    errors = schema_errors(props_of(file, resource))
    assert not errors, f"{file} {resource}:\n  " + "\n  ".join(errors)


@pytest.mark.parametrize(("file", "resource"), ALL, ids=IDS)
def test_the_schema_refuses_broken_props(file: str, resource: str) -> None:
    props = props_of(file, resource)
    wrong_runtime = {**props, "runtime": "python3.99"}
    assert any(e.startswith("runtime:") for e in schema_errors(wrong_runtime))
    no_name = {k: v for k, v in props.items() if k != "functionName"}
    assert any("'functionName' is a required property" in e for e in schema_errors(no_name))
    no_code = {k: v for k, v in props.items() if k != "code"}
    assert any("'code' is a required property" in e for e in schema_errors(no_code))
    bad_env = copy.deepcopy(props)
    bad_env["environmentVariables"]["VEND_REGION"] = 1  # FC takes strings only
    assert any(e.startswith("environmentVariables/VEND_REGION") for e in schema_errors(bad_env))
    if not is_custom(props):
        no_handler = {k: v for k, v in props.items() if k != "handler"}
        assert any("'handler' is a required property" in e for e in schema_errors(no_handler))


# -- the files' shape -------------------------------------------------------------------------


@pytest.mark.parametrize("file", FILES)
def test_file_layout(file: str) -> None:
    data = _load(file)
    assert data["edition"] == "3.0.0"
    assert data["name"]
    assert data["access"]
    assert all(res["component"] == "fc3" for res in data["resources"].values())
    for rname, props in resources(file).items():
        assert props["functionName"] == rname
        assert props["code"] == PACKAGE, f"{rname}: one code package, built by make package"
        assert props["region"] == props["environmentVariables"]["VEND_REGION"]
        assert props["logConfig"] == "auto" or {"project", "logstore"} <= set(props["logConfig"])
        assert props["role"], f"{rname}: the function role"


def test_s_yaml_declares_the_functions_of_the_contract() -> None:
    assert set(_load("s.yaml")["resources"]) == {"vend-http", "vend-events", "vend-rotation"}
    assert set(_load("s.custom.yaml")["resources"]) == {"vend-http-custom"}


_EVERY = re.compile(r"@every (\d+)m")


def test_the_rotation_runs_on_a_timer_inside_its_bounds() -> None:
    """vend-rotation: one enabled timer trigger, often enough that a step comes well inside the
    shortest grace period; its batches end inside its timeout even when every application of
    one creates (two new STS sessions each, at the instance's default rate past its burst); its
    instances together stay under half of STS's AssumeRole rate per account; a batch is never
    kept past the next run, which queues it again."""
    props = props_of("s.yaml", "vend-rotation")
    assert props["handler"] == "functions.rotation.handler"
    assert _http_triggers(props) == []
    (trigger,) = props["triggers"]
    assert trigger["triggerType"] == "timer"
    assert trigger["triggerConfig"]["enable"] is True
    every = _EVERY.fullmatch(trigger["triggerConfig"]["cronExpression"])
    assert every, trigger["triggerConfig"]["cronExpression"]
    period_s = int(every.group(1)) * 60
    assert period_s <= 2 * MIN_GRACE_MINUTES * 60
    assert props["asyncInvokeConfig"]["maxAsyncEventAgeInSeconds"] <= period_s
    worst_batch_s = (2 * schedule.BATCH_SIZE - ASSUME_ROLE_BURST) / ASSUME_ROLE_PER_S
    budget_s = props["timeout"] * 0.8
    assert worst_batch_s + deadline_for(props["timeout"]) <= budget_s / 2
    instances = props["concurrencyConfig"]["reservedConcurrency"]
    assert instances * ASSUME_ROLE_PER_S <= 100 / 2
    # vend-rotation invokes itself by the name FC gives it in its context.
    assert props["functionName"] == "vend-rotation"


def _http_triggers(props: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in props.get("triggers", []) if t["triggerType"] == "http"]


@pytest.mark.parametrize(
    ("file", "resource"), [("s.yaml", "vend-http"), ("s.custom.yaml", "vend-http-custom")]
)
def test_http_function_has_one_http_trigger_for_post_and_get(file: str, resource: str) -> None:
    props = props_of(file, resource)
    (trigger,) = _http_triggers(props)
    assert set(trigger["triggerConfig"]["methods"]) == {"POST", "GET"}
    # FC's `function` auth signs in the Authorization header the service's own auth needs.
    assert trigger["triggerConfig"]["authType"] == "anonymous"


def test_events_function_has_no_http_trigger_and_async_retries_to_a_destination() -> None:
    props = props_of("s.yaml", "vend-events")
    assert _http_triggers(props) == []
    config = props["asyncInvokeConfig"]
    assert isinstance(config["maxAsyncRetryAttempts"], int)
    assert 0 <= config["maxAsyncRetryAttempts"] <= 8
    # Idempotency records, and the RAM proofs noted for FC's retries, live 24 hours.
    assert 0 < config["maxAsyncEventAgeInSeconds"] < 24 * 3600
    # Optional: DEPLOY_FC_EVENTS_ON_FAILURE unset leaves the empty mapping fc3 sends for none.
    assert config["destinationConfig"] == {}
    variables = _load("s.yaml")["vars"]
    given = resolve(variables["eventsOnFailure"], variables)
    assert set(given["onFailure"]) == {"destination"}


# -- what `s deploy` ships, and where ---------------------------------------------------------


@pytest.mark.parametrize("file", FILES)
def test_every_resource_builds_the_package_before_it_deploys(file: str) -> None:
    """`s deploy` (or `s <resource> deploy`) runs `make package` first, so the zip it uploads
    is built from the code of this work tree, never one left from an older build."""
    data = _load(file)
    variables = data.get("vars") or {}
    for rname, res in data["resources"].items():
        steps = resolve(res.get("actions", {}).get("pre-deploy"), variables)
        assert steps == [{"run": "make package POLICY= ROTATION=", "path": "./"}], rname
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "$(if $(POLICY),--policy $(POLICY))" in makefile
    assert "$(if $(ROTATION),--rotation $(ROTATION))" in makefile


FC3_NO_VPC = {"vpcId": "", "vSwitchIds": [], "securityGroupId": ""}


@pytest.mark.parametrize(("file", "resource"), ALL, ids=IDS)
def test_without_a_vpc_the_function_gets_fc3s_own_empty_vpc_config(
    file: str, resource: str
) -> None:
    """DEPLOY_FC_VPC_ID and the others unset: the vpcConfig fc3 sends for a function that has
    none (devsapp/fc3 src/default/config.ts, FC_RESOURCES_EMPTY_CONFIG; ASSUMPTIONS F35)."""
    assert props_of(file, resource)["vpcConfig"] == FC3_NO_VPC
    raw = raw_props(file)[resource]["vpcConfig"]
    assert {m.group(1) for v in raw.values() for m in _ENV.finditer(v)} == {
        "DEPLOY_FC_VPC_ID",
        "DEPLOY_FC_VSWITCH_IDS",
        "DEPLOY_FC_SECURITY_GROUP_ID",
    }


# -- runtimes ---------------------------------------------------------------------------------


def _python_version(runtime: str) -> tuple[int, int]:
    m = re.fullmatch(r"python(\d+)\.(\d+)", runtime)
    assert m, f"{runtime}: not a pythonX.Y runtime"
    return int(m.group(1)), int(m.group(2))


def test_one_python_for_every_shape_and_the_project_supports_it() -> None:
    builtin = {props_of("s.yaml", r)["runtime"] for r in ("vend-http", "vend-events")}
    assert builtin == {"python3.10"}
    version = _python_version("python3.10")
    assert "python3.10" in _schema()["definitions"]["IRuntime"]["enum"]
    # The custom runtime runs FC's Python of the same version: the package's wheels fit both.
    command = props_of("s.custom.yaml", "vend-http-custom")["customRuntimeConfig"]["command"]
    m = re.fullmatch(r"/var/fc/lang/python(\d+)\.(\d+)/bin/python\1\.\2", command[0])
    assert m, f"{command[0]}: not FC's built-in Python of custom.debian10"
    assert (int(m.group(1)), int(m.group(2))) == version
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    low = re.search(r'^requires-python = ">=\s*(\d+)\.(\d+)"$', pyproject, re.MULTILINE)
    assert low, "pyproject.toml: requires-python >=X.Y not found"
    assert version >= (int(low.group(1)), int(low.group(2)))


@pytest.mark.parametrize(("file", "resource"), [a for a in ALL if a[0] == "s.yaml"])
def test_handler_and_initializer_exist(file: str, resource: str) -> None:
    props = props_of(file, resource)
    initializer = props["instanceLifecycleConfig"]["initializer"]
    assert initializer["timeout"] >= 1
    for dotted in (props["handler"], initializer["handler"]):
        module, _, attr = dotted.rpartition(".")
        assert module.startswith("functions."), dotted
        assert callable(getattr(importlib.import_module(module), attr, None)), dotted


def test_function_timeout_leaves_room_for_the_request_deadline() -> None:
    for file, resource in ALL:
        timeout = props_of(file, resource)["timeout"]
        ctx = LocalContext("r", FunctionInfo(resource, "h", timeout=timeout))
        assert deadline_of(ctx) < timeout, f"{resource}: timeout {timeout}"
        assert deadline_of(ctx) == DEFAULT_DEADLINE_S, f"{resource}: deadline below 10 s"


def test_custom_runtime_runs_the_api_server_on_the_port_fc_calls() -> None:
    props = props_of("s.custom.yaml", "vend-http-custom")
    assert props["runtime"] in _schema()["definitions"]["IRuntime"]["enum"]
    assert is_custom(props)
    config = props["customRuntimeConfig"]
    args = config["args"]
    assert args[:2] == ["-m", "functions.custom_runtime"], args
    assert importlib.util.find_spec("functions.custom_runtime") is not None
    assert args[2:] == ["--host", "0.0.0.0", "--port", str(config["port"])]
    # Readiness (the store, the JWKS, the configuration), served by the API's own router.
    assert config["healthCheckConfig"]["httpGetUrl"] == "/v1/ready"
    assert http_api._ROUTES["/v1/ready"] == ("GET", "ready")
    assert config["healthCheckConfig"]["timeoutSeconds"] > readiness.READY_BUDGET_S
    assert props["environmentVariables"]["PYTHONPATH"] == "/code"
    # Many requests per instance, but no more than the server has threads for.
    assert 1 < props["instanceConcurrency"] <= custom_runtime.THREADS
    # The server computes its deadline from the timeout it assumes, not from FC's.
    assert props["timeout"] == custom_runtime.FUNCTION_TIMEOUT_S


# -- VEND_* variables -------------------------------------------------------------------------


def _module_file(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file() and any(candidate.is_relative_to(d) for d in CODE_DIRS):
            return candidate
    return None


def service_modules() -> dict[str, Path]:
    """The modules of shared/ and functions/ that the deployed code can import: every import
    statement, also those inside functions (imported only when configured), followed from
    SERVICE_ROOTS."""
    found: dict[str, Path] = {}
    todo = list(SERVICE_ROOTS)
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in found or path is None:
            continue
        found[name] = path
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]
        package = parts if path.name == "__init__.py" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join([*base, *([node.module] if node.module else [])])
                todo.append(module)
                todo += [f"{module}.{a.name}" for a in node.names]
    return found


def vend_names_in(paths: list[Path]) -> set[str]:
    """Every string literal that is a whole VEND_* name. Docstrings, comments and messages
    ("VEND_POLICY: ...") are not names, so they do not count."""
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _VEND_NAME.fullmatch(node.value)
            ):
                names.add(node.value)
    return names


def parity_diff(code: set[str], deployed: set[str]) -> str:
    lines = [f"  read by the code, missing here: {n}" for n in sorted(code - deployed)]
    lines += [f"  set here, read by no code:     {n}" for n in sorted(deployed - code)]
    return "\n".join(lines)


def test_the_scan_follows_lazy_and_relative_imports() -> None:
    modules = service_modules()
    assert {"functions.http", "shared.config", "shared.composition_root"} <= set(modules)
    assert "shared.auth.jwt_bearer" in modules  # imported inside a function
    assert "shared.ram_policy.wildcard" in modules  # a relative import
    assert not any(m.startswith(("vend_client", "infra")) for m in modules)  # caller, laptop
    assert "infra.emulator" not in modules


def test_every_vend_variable_the_code_reads_is_set_and_no_other() -> None:
    code = vend_names_in(list(service_modules().values()))
    assert {"VEND_POLICY", "VEND_IDEMPOTENCY_URL"} <= code, f"the scan found too little: {code}"
    failures = []
    for file, resource in ALL:
        env = props_of(file, resource)["environmentVariables"]
        deployed = {k for k in env if k.startswith("VEND_")}
        if deployed != code:
            failures.append(f"{file} {resource}:\n{parity_diff(code, deployed)}")
    assert not failures, "\n".join(failures)


def test_parity_diff_names_both_sides() -> None:
    diff = parity_diff({"VEND_A", "VEND_B"}, {"VEND_B", "VEND_C"})
    assert "missing here: VEND_A" in diff
    assert "read by no code:     VEND_C" in diff
    assert "VEND_B" not in diff


def test_vend_names_ignore_messages_and_docstrings(tmp_path: Path) -> None:
    src = tmp_path / "m.py"
    src.write_text('"""Reads VEND_DOC."""\nX = env.get("VEND_READ")\nraise E("VEND_MSG: bad")\n')
    assert vend_names_in([src]) == {"VEND_READ"}


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def env_refs(data: Any) -> list[tuple[str, str | None]]:
    """Every `${env('NAME', 'default')}` in the file's values (comments are not values)."""
    return [(m.group(1), m.group(2)) for s in _strings(data) for m in _ENV.finditer(s)]


@pytest.mark.parametrize("file", FILES)
def test_each_vend_variable_comes_from_its_deploy_variable(file: str) -> None:
    """VEND_X is set from the deploying machine's DEPLOY_VEND_X, so that the VEND_* a local demo
    exports (emulator endpoints, audience vend-local) never reach FC."""
    refs = env_refs(_load(file))
    assert refs, "no ${env(...)} found"
    for name, default in refs:
        assert name.startswith(("DEPLOY_VEND_", "DEPLOY_FC_", "DEPLOY_PACKAGE_")), name
        if name == "DEPLOY_VEND_IDEMPOTENCY_URL":
            assert default is None, "the Redis store is shared: no default in the file"
    for resource, props in raw_props(file).items():
        for key, value in props["environmentVariables"].items():
            if not key.startswith("VEND_"):
                continue
            names = {m.group(1) for m in _ENV.finditer(str(value))}
            assert str(value).startswith("${") and str(value).endswith("}"), f"{resource} {key}"
            assert names == {f"DEPLOY_{key}"}, f"{resource} {key}: from {names}"


@pytest.mark.parametrize(("file", "resource"), ALL, ids=IDS)
def test_environment_fits_fc(file: str, resource: str) -> None:
    env = props_of(file, resource)["environmentVariables"]
    for key, value in env.items():
        assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", key), key
        assert not key.startswith("FC_"), f"{key}: FC_* is reserved by FC"
        assert isinstance(value, str), f"{key}: FC takes strings only"
    # FC's limit is 4 KB for all of them: an inline VEND_POLICY counts.
    assert sum(len(k) + len(v) for k, v in env.items()) < 4096


REQUIRED = {"VEND_ROLE_ARN", "VEND_KMS_KEY_ID", "VEND_AUDIENCE", "VEND_IDEMPOTENCY_URL"}


@pytest.mark.parametrize(("file", "resource"), ALL, ids=IDS)
def test_the_defaults_are_a_configuration_the_service_accepts(file: str, resource: str) -> None:
    """With the required variables given, the file's defaults pass the service's own check."""
    env = props_of(file, resource)["environmentVariables"]
    required = {k for k, v in env.items() if v.startswith("<DEPLOY_")}
    # A custom runtime has no FC context, but FC_ACCOUNT_ID in its environment.
    assert required == REQUIRED
    assert env["VEND_POLICY"] == "/code/policy.json"  # policy.json at the package's root
    given = {
        "VEND_ACCOUNT_ID": "1234567890123456",
        "VEND_ROLE_ARN": "acs:ram::1234567890123456:role/vend-eiam",
        "VEND_KMS_KEY_ID": "alias/vend-default",
        "VEND_AUDIENCE": "vend-prod",
        "VEND_IDEMPOTENCY_URL": "redis://r-example.redis.rds.aliyuncs.com:6379/0",
        "VEND_POLICY": str(ROOT / "examples" / "policy.json"),
    }
    settings = Settings.from_env({**env, **given}, account_id="1234567890123456")
    assert settings.region == "cn-hangzhou"
    assert settings.sts.url == "https://sts.cn-hangzhou.aliyuncs.com"
    assert settings.kms.url == "https://kms.cn-hangzhou.aliyuncs.com"
    assert settings.jwt_issuers_json is None
    assert settings.proof_hosts == ()
    assert settings.rotation == {}  # nothing is rotated until a list is given
    assert settings.fc is not None
    assert settings.fc.url == "https://1234567890123456.cn-hangzhou-internal.fc.aliyuncs.com"


# -- no secrets -------------------------------------------------------------------------------

_SECRET_PATTERNS = {
    "an AccessKey secret": re.compile(r"access_?key_?secret", re.IGNORECASE),
    "an AccessKey id": re.compile(r"\bLTAI[0-9A-Za-z]{8,}"),
    "a password in a Redis URL": re.compile(r"rediss?://[^\s@/'\"]*:[^\s@/'\"]+@"),
    "a security token": re.compile(r"security_?token", re.IGNORECASE),
}


def secrets_in(text: str) -> list[str]:
    return [what for what, pattern in _SECRET_PATTERNS.items() if pattern.search(text)]


@pytest.mark.parametrize("file", FILES)
def test_no_secret_in_the_file(file: str) -> None:
    text = (ROOT / file).read_text(encoding="utf-8")
    assert secrets_in(text) == [], file
    for resource, props in resources(file).items():
        url = props["environmentVariables"]["VEND_IDEMPOTENCY_URL"]
        assert url == placeholder("DEPLOY_VEND_IDEMPOTENCY_URL"), f"{resource}: {url!r}"


def test_the_secret_scan_finds_secrets() -> None:
    assert secrets_in("AccessKeySecret: abc") == ["an AccessKey secret"]
    assert secrets_in("ALIBABA_CLOUD_ACCESS_KEY_SECRET: x") == ["an AccessKey secret"]
    assert secrets_in("id: LTAI5tDemoBilling00001") == ["an AccessKey id"]
    assert secrets_in("url: redis://:hunter2@r-bp1.redis.rds.aliyuncs.com:6379/0") == [
        "a password in a Redis URL"
    ]
    assert secrets_in("url: rediss://user:pw@host:6380/0") == ["a password in a Redis URL"]
    assert secrets_in("url: redis://r-bp1.redis.rds.aliyuncs.com:6379/0") == []


# -- the resolver itself ----------------------------------------------------------------------


def test_resolve_follows_vars_and_env_defaults() -> None:
    variables = {"n": 3, "r": "${env('R', 'cn-hangzhou')}"}
    assert resolve("${vars.n}", variables) == 3
    assert resolve("${vars.r}", variables) == "cn-hangzhou"
    assert resolve("acs:fc:${vars.r}::x-${vars.n}", variables) == "acs:fc:cn-hangzhou::x-3"
    assert resolve("${env('X')}", variables) == placeholder("X")
    assert resolve("${env('X', '')}", variables) == ""
    with pytest.raises(AssertionError):
        resolve("${vars.missing}", variables)
    with pytest.raises(AssertionError):
        resolve("${file('./x')}", variables)
