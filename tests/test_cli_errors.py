"""What the command line says when something goes wrong: each expected failure is one line on
stderr, no traceback, and its exit status from the one table (`vend_client.cli.ExitStatus`,
README "The command line"). Every case runs the real `vend` as a user does, in its own process;
the service's and the caller's cloud failures come from one `vend local` and its emulator's
faults, shared by the module."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import requests
import sdk_clients as sdk
from processes import VEND, free_port, vend_local

from infra.local import cli
from infra.local.cli import DEMO_POLICY, DEMO_SEED, local_environment
from vend_client import cli as caller_cli
from vend_client.exit_status import ExitStatus

BILLING_SECRET = "CSdemoBillingSecretValue0000000000000001"
OBTAIN = ["--instance", "idaas_demo", "--application", "app_billing", "--secret", "sct_billing_1"]
BILLING_ARN = f"acs:ram::{sdk.ACCOUNT}:user/billing"
POLICY_QUESTION = ["--principal", "x", "--action", "a", "--resource", "r"]


def _clean_env() -> dict[str, str]:
    """This process's environment without anything of the service's or the caller's."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("VEND_", "ALIBABA_CLOUD_"))}


class Local:
    """`vend local` in its own process, and the demo caller billing's environment for it."""

    def __init__(self, port: int, emulator_port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.emulator = f"http://127.0.0.1:{emulator_port}"
        self.env = {
            **_clean_env(),
            "ALIBABA_CLOUD_ACCESS_KEY_ID": sdk.BILLING[0],
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": sdk.BILLING[1],
            "VEND_URL": self.url,
            "VEND_AUDIENCE": "vend-local",
            "VEND_STS_ENDPOINT": self.emulator,
            "VEND_KMS_ENDPOINT": self.emulator,
        }

    def as_reports(self) -> dict[str, str]:
        return {
            **self.env,
            "ALIBABA_CLOUD_ACCESS_KEY_ID": sdk.REPORTS[0],
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": sdk.REPORTS[1],
        }

    def faults(self, rules: list[dict[str, str | int]]) -> None:
        answer = requests.put(f"{self.emulator}/_emulator/faults", json=rules, timeout=5)
        answer.raise_for_status()


@pytest.fixture(scope="module")
def local() -> Iterator[Local]:
    server, port, emulator_port = vend_local(_clean_env())
    try:
        yield Local(port, emulator_port)
    finally:
        out, log = server.stop()
    assert BILLING_SECRET not in out + log


@pytest.fixture
def faults(local: Local) -> Iterator[Local]:
    """The shared stack, its faults cleared after the test whatever happens."""
    try:
        yield local
    finally:
        requests.delete(f"{local.emulator}/_emulator/faults", timeout=5)


@pytest.fixture(scope="module")
def saved(local: Local, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A vend response obtained by billing, saved (without the secret) for `vend decrypt`."""
    folder = tmp_path_factory.mktemp("saved")
    done = _vend(local.env, "obtain", *OBTAIN, "--json")
    assert done.returncode == 0, done.stderr
    response = json.loads(done.stdout)
    del response["client_secret"]
    path = folder / "response.json"
    path.write_text(json.dumps(response))
    return path


def _vend(
    env: dict[str, str], *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*VEND, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        input=stdin,
        cwd=cwd,
    )


def _fails(done: subprocess.CompletedProcess[str], status: ExitStatus, *said: str) -> str:
    """The run failed with `status`, in one line on stderr that says each of `said`, with
    nothing on stdout and no traceback; returns the line."""
    assert done.returncode == status, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert done.stdout == "", done.stdout
    for words in said:
        assert words in lines[0], (words, lines[0])
    assert BILLING_SECRET not in done.stderr
    return lines[0]


def _closed_port() -> int:
    return free_port()  # bound, then released: nothing listens there


# -- before any answer: credentials, the network ---------------------------------------------


def test_no_credentials_says_where_they_were_looked_for(tmp_path: Path) -> None:
    env = {
        **_clean_env(),
        "HOME": str(tmp_path),
        # Off ECS the chain's last stop is the instance metadata service: skipped, as the one
        # line advises, so the test does not wait on lookups that cannot answer.
        "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true",
    }
    url = f"http://127.0.0.1:{_closed_port()}"
    done = _vend(env, "obtain", *OBTAIN, "--url", url, "--audience", "vend-local")
    _fails(
        done,
        ExitStatus.NO_CREDENTIALS,
        "no Alibaba Cloud credentials",
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        f"{tmp_path}/.aliyun/config.json",
        f"{tmp_path}/.alibabacloud/credentials.ini",
    )
    assert "ECS" not in done.stderr  # it was not looked in
    # Where the metadata service is in the chain, the line names it.
    with_ecs = {k: v for k, v in env.items() if k != "ALIBABA_CLOUD_ECS_METADATA_DISABLED"}
    assert "ECS_METADATA_DISABLED" in no_credentials_line(with_ecs)


def no_credentials_line(env: dict[str, str]) -> str:
    code = "from vend_client.failures import no_credentials; print(no_credentials())"
    done = subprocess.run(
        [VEND[0], "-c", code], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


def test_an_unreachable_service_is_named(local: Local) -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    done = _vend(local.env, "obtain", *OBTAIN, "--url", url)
    _fails(done, ExitStatus.UNREACHABLE, f"cannot reach the service at {url}", "refused")


def test_a_service_that_never_answers_times_out(local: Local) -> None:
    with socket.socket() as silent:  # accepts connections (the backlog), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        done = _vend(local.env, "obtain", *OBTAIN, "--url", url, "--timeout", "0.5")
    _fails(done, ExitStatus.UNREACHABLE, url, "did not answer within 0.5 s")


def test_the_usage_error_is_argparses_in_one_line() -> None:
    done = _vend(_clean_env(), "obtain", "--instance", "idaas_demo")
    # --secret may be left out (the current secret): only --application is missing.
    _fails(done, ExitStatus.USAGE, "--application", "vend obtain --help")
    assert "--secret" not in done.stderr


def test_version_names_the_service_and_the_caller_package() -> None:
    """Not a usage error: both distributions' versions, as installed, on stdout."""
    done = _vend(_clean_env(), "--version")
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == (
        f"vend {version('secret-vending')} (secret-vending), "
        f"vend_client {version('secret-vending-client')} (secret-vending-client)\n"
    )


def test_a_ram_proof_without_an_audience_is_a_usage_error() -> None:
    done = _vend(_clean_env(), "obtain", *OBTAIN)
    _fails(done, ExitStatus.USAGE, "--audience or VEND_AUDIENCE")


# -- servers: a port in use ------------------------------------------------------------------


@pytest.fixture
def taken() -> Iterator[int]:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        yield held.getsockname()[1]


def test_vend_local_on_a_port_in_use(taken: int) -> None:
    done = _vend(_clean_env(), "local", "--port", str(taken), "--emulator-port", "0")
    _fails(done, ExitStatus.PORT_IN_USE, f"port {taken} on 127.0.0.1 is in use", "--port")
    done = _vend(_clean_env(), "local", "--port", "0", "--emulator-port", str(taken))
    _fails(done, ExitStatus.PORT_IN_USE, f"port {taken} ", "--emulator-port")


def test_vend_serve_on_a_port_in_use(taken: int) -> None:
    env = {**_clean_env(), **local_environment("http://127.0.0.1:1", DEMO_SEED, DEMO_POLICY)}
    done = _vend(env, "serve", "--port", str(taken))
    _fails(done, ExitStatus.PORT_IN_USE, f"port {taken} on 127.0.0.1 is in use")


def test_vend_emulator_on_a_port_in_use(taken: int) -> None:
    done = _vend(_clean_env(), "emulator", "--seed", str(DEMO_SEED), "--port", str(taken))
    _fails(done, ExitStatus.PORT_IN_USE, f"port {taken} on 127.0.0.1 is in use")


# -- files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["decrypt", "{missing}"],
        ["decrypt", "{folder}"],
        ["policy", "check", "--policy", "{missing}", *POLICY_QUESTION],
        ["emulator", "--seed", "{missing}", "--port", "0"],
        ["local", "--seed", "{missing}", "--port", "0"],
        ["local", "--policy", "{missing}", "--port", "0"],
    ],
    ids=["decrypt", "decrypt-a-folder", "policy-check", "emulator-seed", "local-seed", "policy"],
)
def test_an_unreadable_file_is_named(args: list[str], tmp_path: Path) -> None:
    missing, folder = tmp_path / "missing.json", tmp_path
    filled = [a.format(missing=missing, folder=folder) for a in args]
    named = str(folder) if "{folder}" in args else str(missing)
    done = _vend(_clean_env(), *filled)
    _fails(done, ExitStatus.FILE, f"cannot read {'' if 'decrypt' in args else 'the '}", named)


def test_decrypt_of_something_that_is_not_an_envelope(tmp_path: Path) -> None:
    env = _clean_env()  # decrypt asks no service: no audience needed
    done = _vend(env, "decrypt", "-", stdin="{not json")
    _fails(done, ExitStatus.ENVELOPE, "standard input is not JSON")
    (tmp_path / "x.json").write_text('{"hello": 1}')
    done = _vend(env, "decrypt", str(tmp_path / "x.json"))
    _fails(done, ExitStatus.ENVELOPE, "not a vend-envelope/1 envelope")


# -- the service's answers -------------------------------------------------------------------


def test_authentication_refused(local: Local) -> None:
    done = _vend(local.env, "obtain", *OBTAIN, "--audience", "another-audience")
    _fails(done, ExitStatus.AUTH_REFUSED, "401 Unauthenticated", "--audience", "(request ")


def test_denied(local: Local) -> None:
    ids = ["--instance", "idaas_demo", "--application", "app_reports", "--secret", "sct_reports_1"]
    done = _vend(local.env, "obtain", *ids)
    _fails(done, ExitStatus.DENIED, "403 AccessDenied", "(request ")


def test_not_found(local: Local) -> None:
    ids = ["--instance", "idaas_demo", "--application", "app_billing", "--secret", "sct_nope"]
    done = _vend(local.env, "obtain", *ids)
    _fails(done, ExitStatus.NOT_FOUND, "404 NotFound", "(request ")


def test_another_refusal(local: Local) -> None:
    ids = ["--instance", "idaas_demo", "--application", "app_billing", "--secret", "no/such"]
    done = _vend(local.env, "obtain", *ids)
    _fails(done, ExitStatus.REJECTED, "400 InvalidParameter")


def test_an_upstream_failure_names_the_services_request_id(faults: Local) -> None:
    faults.faults(
        [{"action": "ObtainApplicationClientSecret", "status": 503, "code": "ServiceUnavailable"}]
    )
    done = _vend(faults.env, "obtain", *OBTAIN)
    line = _fails(done, ExitStatus.UPSTREAM, "502 UpstreamError", "try again later")
    request_id = line.split("(request ")[1].split(")")[0]
    assert len(request_id) >= 8 and request_id != "None", line


# -- opening: the caller's own KMS and STS calls ---------------------------------------------


def test_decrypt_of_an_altered_context_says_so(local: Local, saved: Path, tmp_path: Path) -> None:
    response = json.loads(saved.read_text())
    response["envelope"]["encryption_context"]["vend:request_id"] = "altered"
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(response))
    done = _vend(local.env, "decrypt", str(altered))
    _fails(
        done,
        ExitStatus.ENVELOPE,
        "encryption context does not match",
        "InvalidParameter, KMS request ",
    )
    assert "UpstreamError" not in done.stderr


def test_decrypt_by_another_caller_is_refused_before_kms(local: Local, saved: Path) -> None:
    done = _vend(local.as_reports(), "decrypt", str(saved))
    _fails(done, ExitStatus.ENVELOPE, f"is for {BILLING_ARN}, not ")


def test_decrypt_with_a_key_that_is_not_yours(local: Local, saved: Path) -> None:
    """Told to skip the context check, reports asks KMS anyway: KMS (RAM) refuses the key."""
    done = _vend(local.as_reports(), "decrypt", str(saved), "--expect-principal", BILLING_ARN)
    _fails(done, ExitStatus.DENIED, "not yours to decrypt", "Forbidden.RAM, KMS request ")


def test_decrypt_with_kms_unreachable_names_its_url(local: Local, saved: Path) -> None:
    kms = f"http://127.0.0.1:{_closed_port()}"
    done = _vend(local.env, "decrypt", str(saved), "--kms-endpoint", kms)
    _fails(done, ExitStatus.UNREACHABLE, f"KMS unreachable at {kms}", "--kms-endpoint")


def test_decrypt_with_kms_failing_shows_kms_request_id(faults: Local, saved: Path) -> None:
    faults.faults([{"action": "Decrypt", "status": 503, "code": "ServiceUnavailable"}])
    done = _vend(faults.env, "decrypt", str(saved))
    _fails(done, ExitStatus.UPSTREAM, "KMS Decrypt failed", "ServiceUnavailable, KMS request ")


def test_unknown_credentials_are_refused_by_sts(local: Local, saved: Path) -> None:
    env = {**local.env, "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tNobodyAtAll0001"}
    done = _vend(env, "decrypt", str(saved))
    _fails(done, ExitStatus.AUTH_REFUSED, "STS refused your credentials", "STS request ")


# -- success: --output, create's SecretId, -v ------------------------------------------------


def test_output_is_private_and_never_overwritten_unasked(local: Local, tmp_path: Path) -> None:
    target = tmp_path / "vended.json"
    done = _vend(local.env, "obtain", *OBTAIN, "--json", "--output", str(target))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert json.loads(target.read_text())["client_secret"] == BILLING_SECRET
    # Refused without --force, before asking the service; the file is left as it was.
    target.write_text("keep me")
    done = _vend(local.env, "obtain", *OBTAIN, "--output", str(target))
    _fails(done, ExitStatus.FILE, f"{target} exists", "--force")
    assert target.read_text() == "keep me"
    # --force replaces it, and a file that was readable by others is 0600 afterwards.
    target.chmod(0o644)
    done = _vend(local.env, "obtain", *OBTAIN, "--output", str(target), "--force")
    assert done.returncode == 0, done.stderr
    assert target.read_text() == BILLING_SECRET + "\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["vended.json"]  # no temporary file left
    # What --output wrote, decrypt reads (and can write in turn).
    opened = tmp_path / "opened.txt"
    saved = json.loads(_vend(local.env, "obtain", *OBTAIN, "--json").stdout)
    del saved["client_secret"]
    target.write_text(json.dumps(saved))
    done = _vend(local.env, "decrypt", str(target), "--output", str(opened))
    assert done.returncode == 0, done.stderr
    assert opened.read_text() == BILLING_SECRET + "\n"
    assert stat.S_IMODE(opened.stat().st_mode) == 0o600


def test_create_shows_the_new_secret_id(local: Local, tmp_path: Path) -> None:
    ids = ["--instance", "idaas_demo", "--application", "app_empty"]
    done = _vend(local.env, "create", *ids, "--idempotency-key", "cli-errors-1")
    assert done.returncode == 0, done.stderr
    secret = done.stdout.strip()
    assert secret.startswith("CS") and len(done.stdout.splitlines()) == 1  # stdout: the secret
    (line,) = done.stderr.splitlines()
    assert line.startswith("vend: created secret_id sci_")
    secret_id = line.rsplit(" ", 1)[1]
    # The same key again: the same secret, its ID named again; --json carries it too.
    again = _vend(local.env, "create", *ids, "--idempotency-key", "cli-errors-1", "--json")
    assert again.stderr.strip() == line
    assert json.loads(again.stdout)["secret_id"] == secret_id
    assert json.loads(again.stdout)["client_secret"] == secret


def test_verbose_shows_each_step_with_its_time_and_no_secret(local: Local) -> None:
    done = _vend(local.env, "obtain", *OBTAIN, "-v")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == BILLING_SECRET
    steps = {line.split(":")[1].strip(): line for line in done.stderr.splitlines()}
    for step in ("authenticate", "request", "identify", "open"):
        assert step in steps and steps[step].endswith(" ms)"), done.stderr
    assert f"POST {local.url}/v1/secrets/obtain" in steps["request"]
    assert "KMS Decrypt at " in steps["open"]
    for secret in (BILLING_SECRET, sdk.BILLING[1], "RAM ey", "Authorization"):
        assert secret not in done.stderr
    # -v before the command does the same.
    before = _vend(local.env, "-v", "obtain", *OBTAIN)
    assert "vend: authenticate:" in before.stderr


# -- a bug -----------------------------------------------------------------------------------


class _BrokenInput:
    """A standard input whose read fails as nothing expects: a bug to the command reading it."""

    def read(self, size: int = -1) -> str:
        raise RuntimeError("a bug")


def test_an_unexpected_error_is_one_line_and_its_traceback_with_v(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", _BrokenInput())
    # The command silences the credentials library's own logger: only for this test.
    monkeypatch.setattr(logging.getLogger("credentials"), "disabled", False)
    argv = ["decrypt", "-"]
    assert cli.main(argv) == ExitStatus.UNEXPECTED
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "vend: unexpected error (a bug): RuntimeError: a bug; run with -v for the traceback"
    ]
    assert cli.main([*argv, "-v"]) == ExitStatus.UNEXPECTED
    err = capsys.readouterr().err
    assert "Traceback" in err and err.splitlines()[-1].endswith("RuntimeError: a bug")
    assert caller_cli.main(argv) == ExitStatus.UNEXPECTED  # `vend-client` alike


def test_the_exit_statuses_are_one_table_in_help_and_readme() -> None:
    done = _vend(_clean_env(), "--help")
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    table = readme[readme.index("### Exit statuses") :]
    for status in ExitStatus:
        assert f"\n  {int(status):>3}  " in done.stdout
        assert f"\n| {int(status)} | `{status.name}` |" in table, status
