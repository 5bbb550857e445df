"""s.yaml and s.custom.yaml as Serverless Devs itself renders them: `s preview` of the pinned
`@serverless-devs/s` (infra/deploy-tools/, `npm ci` there; `.ci/run` installs it), offline, with
the documented example values of infra/deploy.example.env. Both files render; every resource's
rendered props pass the vendored fc3 schema; the optional blocks come out empty when their
variables are; and a Redis password in the operator's environment shows nowhere: not in what
`s preview` prints, not in its logs, not in the functions' environment.

Without `s` these tests skip locally, and fail under CI=true."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_s_yaml import FC3_NO_VPC, FILES, ROOT, schema_errors

S_BIN = ROOT / "infra" / "deploy-tools" / "node_modules" / ".bin" / "s"
EXAMPLE_ENV = ROOT / "infra" / "deploy.example.env"
MARKER = "MARKER-PW-7f3a"
# What `aliyun kms Encrypt` answers is base64; this one is not a real blob, and need not be:
# rendering only carries it (the service's decryption is tests/test_store_password.py's).
CIPHERTEXT = "ZXhhbXBsZS1jaXBoZXJ0ZXh0LWJsb2ItMDAwMDAwMDAwMDAwMDAwMA=="
OPTIONAL_BLOCKS = (
    "DEPLOY_FC_VPC_ID",
    "DEPLOY_FC_VSWITCH_IDS",
    "DEPLOY_FC_SECURITY_GROUP_ID",
    "DEPLOY_FC_EVENTS_ON_FAILURE",
)


def s_binary() -> Path:
    if S_BIN.is_file():
        return S_BIN
    why = "Serverless Devs is not installed: cd infra/deploy-tools && npm ci"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (.ci/run installs it; under CI this test may not skip)")
    pytest.skip(why)


_LINE = re.compile(r"([A-Z][A-Z0-9_]*)=(.*)")


def example_env() -> dict[str, str]:
    """infra/deploy.example.env as `set -a; . file` reads it: NAME=value lines, no quoting."""
    values = {}
    for line in EXAMPLE_ENV.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            m = _LINE.fullmatch(line)
            assert m, f"not NAME=value: {line!r}"
            values[m.group(1)] = m.group(2)
    return values


class Preview:
    def __init__(self, returncode: int, output: str, logs: str) -> None:
        self.returncode = returncode
        self.output = output
        self.logs = logs

    def document(self) -> dict[str, Any]:
        assert self.returncode == 0, self.output
        # a warning line (running as root) may come first
        start = self.output.index("{")
        loaded: dict[str, Any] = json.loads(self.output[start:])
        return loaded


def preview(file: str, deploy_env: dict[str, str], home: Path) -> Preview:
    """`s preview -t FILE -o json` in a shell whose environment is the deploying machine's:
    PATH, a HOME of its own (s writes its config and logs there), and `deploy_env`."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "NO_COLOR": "1", **deploy_env}
    done = subprocess.run(
        [str(s_binary()), "preview", "-t", file, "-o", "json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    logs = "\n".join(
        p.read_text(encoding="utf-8", errors="replace") for p in home.rglob("*") if p.is_file()
    )
    return Preview(done.returncode, done.stdout + done.stderr, logs)


def props(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: res["props"] for name, res in document["resources"].items()}


@pytest.mark.parametrize("file", FILES)
def test_the_example_values_render_and_pass_the_fc3_schema(file: str, tmp_path: Path) -> None:
    given = example_env()
    rendered = props(preview(file, given, tmp_path).document())
    assert rendered
    for name, p in rendered.items():
        errors = schema_errors(p)
        assert not errors, f"{file} {name}:\n  " + "\n  ".join(errors)
        # each VEND_X is the DEPLOY_VEND_X given, or the file's default where it is empty
        for key, value in p["environmentVariables"].items():
            if key.startswith("VEND_") and given.get(f"DEPLOY_{key}"):
                assert value == given[f"DEPLOY_{key}"], f"{name} {key}"
        assert p["role"] == given["DEPLOY_FC_ROLE_ARN"]
        assert p["region"] == given["DEPLOY_VEND_REGION"]
        assert p["vpcConfig"] == {
            "vpcId": given["DEPLOY_FC_VPC_ID"],
            "vSwitchIds": given["DEPLOY_FC_VSWITCH_IDS"].split(","),
            "securityGroupId": given["DEPLOY_FC_SECURITY_GROUP_ID"],
        }
    if file == "s.yaml":
        destination = rendered["vend-events"]["asyncInvokeConfig"]["destinationConfig"]
        assert destination == {"onFailure": {"destination": given["DEPLOY_FC_EVENTS_ON_FAILURE"]}}


@pytest.mark.parametrize("file", FILES)
def test_empty_optional_variables_leave_their_blocks_empty(file: str, tmp_path: Path) -> None:
    """No VPC and no on-failure destination: what fc3 sends for a function without them."""
    given = {**example_env(), **dict.fromkeys(OPTIONAL_BLOCKS, "")}
    rendered = props(preview(file, given, tmp_path).document())
    for name, p in rendered.items():
        assert not schema_errors(p), name
        assert p["vpcConfig"] == FC3_NO_VPC, name
    if file == "s.yaml":
        assert rendered["vend-events"]["asyncInvokeConfig"]["destinationConfig"] == {}


@pytest.mark.parametrize("file", FILES)
def test_a_missing_required_variable_stops_the_render_by_name(file: str, tmp_path: Path) -> None:
    given = {k: v for k, v in example_env().items() if k != "DEPLOY_FC_ROLE_ARN"}
    result = preview(file, given, tmp_path)
    assert result.returncode != 0
    assert "env('DEPLOY_FC_ROLE_ARN') not found" in result.output


@pytest.mark.parametrize("file", FILES)
def test_the_redis_password_shows_nowhere(file: str, tmp_path: Path) -> None:
    """The operator's shell holds the password (to encrypt it) and its ciphertext: the render,
    its logs and the functions' environment carry the ciphertext only."""
    given = {
        **example_env(),
        "REDIS_PASSWORD": MARKER,
        "DEPLOY_VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT": CIPHERTEXT,
    }
    result = preview(file, given, tmp_path)
    for name, p in props(result.document()).items():
        env = p["environmentVariables"]
        assert env["VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT"] == CIPHERTEXT, name
        assert MARKER not in json.dumps(env), name
    assert MARKER not in result.output
    assert MARKER not in result.logs


@pytest.mark.parametrize("file", FILES)
def test_a_redis_url_with_a_password_does_not_render(file: str, tmp_path: Path) -> None:
    given = {
        **example_env(),
        "DEPLOY_VEND_IDEMPOTENCY_URL": f"redis://:{MARKER}@r-bp1.redis.rds.aliyuncs.com:6379/0",
    }
    result = preview(file, given, tmp_path)
    assert result.returncode != 0
    assert "DEPLOY_VEND_IDEMPOTENCY_URL holds a password" in result.output
    assert MARKER not in result.output
    assert MARKER not in result.logs


# -- the example file itself ----------------------------------------------------------------

_REF = re.compile(r"env\('(DEPLOY_[A-Z0-9_]+)'(, '[^']*')?\)")


def deploy_variables() -> dict[str, bool]:
    """Every DEPLOY_* the two files read, and whether it is required: no reference to it has
    a default (`env('X').split(',')` after a test of `env('X', '')` is optional)."""
    found: dict[str, bool] = {}
    for file in FILES:
        for m in _REF.finditer((ROOT / file).read_text(encoding="utf-8")):
            found[m.group(1)] = found.get(m.group(1), True) and m.group(2) is None
    return found


def documented() -> dict[str, str]:
    """Each variable of the example file and the `required` or `optional` of its comment."""
    kinds: dict[str, str] = {}
    kind = ""
    for line in EXAMPLE_ENV.read_text(encoding="utf-8").splitlines():
        if m := re.match(r"# (required|optional): ", line):
            kind = m.group(1)
        elif m := _LINE.fullmatch(line):
            assert kind, f"{m.group(1)}: no `# required:` or `# optional:` comment above it"
            kinds[m.group(1)] = kind
        elif not line.strip():
            kind = ""
    return kinds


def test_the_example_file_names_every_deploy_variable_and_whether_it_is_required() -> None:
    read = deploy_variables()
    kinds = documented()
    assert set(kinds) == set(read), set(kinds) ^ set(read)
    for name, required in read.items():
        assert kinds[name] == ("required" if required else "optional"), name
        if required:
            assert example_env()[name], f"{name}: required, and empty in the example"


_README_ROW = re.compile(r"\| `(DEPLOY_[A-Z0-9_]+)` \| (required|optional) \|")


def readme_deploy_variables(readme: str) -> dict[str, str]:
    """The rows `| `DEPLOY_X` | required or optional | ... |` of README.md's `## Deploy`."""
    start = readme.index("\n## Deploy\n")
    end = readme.find("\n## ", start + 1)
    section = readme[start : end if end > 0 else None]
    return {m.group(1): m.group(2) for m in _README_ROW.finditer(section)}


def test_the_readmes_table_of_deploy_variables_is_the_example_files() -> None:
    listed = readme_deploy_variables((ROOT / "README.md").read_text(encoding="utf-8"))
    assert listed == documented()


def test_the_readme_table_reader_sees_each_row() -> None:
    readme = (
        "## Deploy\n\n| variable | | |\n| --- | --- | --- |\n"
        "| `DEPLOY_A` | required | a |\n| `DEPLOY_B` | optional | b |\n\n## Next\n"
        "| `DEPLOY_C` | required | c |\n"
    )
    assert readme_deploy_variables("x\n" + readme) == {
        "DEPLOY_A": "required",
        "DEPLOY_B": "optional",
    }
