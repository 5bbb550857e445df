"""`vend`: the command line (contract section 11). Each command imports what it needs when it
runs, so `vend --help` stays fast and the deployed package never needs the emulator."""

from __future__ import annotations

import argparse
import contextlib
import errno
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared import __version__
from vend_client import __version__ as client_version
from vend_client.cli import Parser, add_verbose
from vend_client.exit_status import ExitStatus, Failure, exit_table, fail, unexpected

if TYPE_CHECKING:
    from functions.wsgi_server import WsgiServer
    from infra.emulator import Seed
    from infra.local.fc_invoke import KeyLookup

DEFAULT_EMULATOR_PORT = 9100
DEFAULT_API_PORT = 9000
ROOT = Path(__file__).resolve().parents[2]
DEMO_SEED = ROOT / "examples" / "seed.yaml"
DEMO_POLICY = ROOT / "examples" / "policy.json"
# The demo's VEND_ROTATION: app_billing, which `vend rotate plan` shows (README, Quick start).
DEMO_ROTATION = ROOT / "examples" / "rotation.json"


# -- emulator, serve, local ------------------------------------------------------------------


def _load_seed(path: str, command: str) -> Seed:
    """The seed: exit FILE when it cannot be read, USAGE when it does not parse."""
    from infra.emulator import load_seed

    try:
        return load_seed(path)
    except OSError as exc:
        raise Failure(
            ExitStatus.FILE, f"{command}: cannot read the seed {path}: {_why(exc)}"
        ) from None
    except ValueError as exc:
        raise Failure(ExitStatus.USAGE, f"{command}: the seed {path}: {exc}") from None


def _readable(path: str | None, what: str, command: str) -> None:
    """Exit FILE, naming the file, when it cannot be read (before anything starts)."""
    if path is None:
        return
    try:
        with open(path, "rb") as f:
            f.read(1)
    except OSError as exc:
        raise Failure(
            ExitStatus.FILE, f"{command}: cannot read {what} {path}: {_why(exc)}"
        ) from None


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def _cannot_listen(exc: OSError, host: str, port: int, flag: str, command: str) -> Failure:
    """A port the server cannot have, named with the option that chose it."""
    if exc.errno == errno.EADDRINUSE:
        why = f"port {port} on {host} is in use (another server? choose another with {flag})"
    elif exc.errno == errno.EACCES:
        why = f"cannot listen on {host}:{port}: permission denied ({flag})"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = f"cannot listen on {host}:{port}: not an address of this machine (--host)"
    else:
        why = f"cannot listen on {host}:{port}: {_why(exc)}"
    return Failure(ExitStatus.PORT_IN_USE, f"{command}: {why}")


def _emulator(args: argparse.Namespace) -> int:
    from infra.emulator import EmulatorServer
    from infra.emulator.oauth import issuer

    seed = _load_seed(args.seed, "emulator")
    if args.state is not None and os.path.exists(args.state):
        _readable(args.state, "the state file", "emulator")
    try:
        server = EmulatorServer(seed, host=args.host, port=args.port, state_path=args.state)
    except OSError as exc:
        if exc.filename is not None:  # the state file, not the socket
            raise Failure(ExitStatus.FILE, f"emulator: {exc.filename}: {_why(exc)}") from None
        raise _cannot_listen(exc, args.host, args.port, "--port", "emulator") from None
    except ValueError as exc:
        raise Failure(ExitStatus.USAGE, f"emulator: the state file {args.state}: {exc}") from None
    print(f"emulator: STS, EIAM and KMS at {server.url} (account {seed.account_id}, {seed.region})")
    print(f"emulator: point an SDK Config at endpoint={server.endpoint!r}, protocol='http'")
    for instance in seed.eiam_instances:
        token = f"{issuer(server.url, instance.instance_id)}/token"
        print(f"emulator: IDaaS instance {instance.instance_id}: M2M token endpoint {token}")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _start_api(host: str, port: int, keys: KeyLookup | None = None) -> WsgiServer:
    """Builds the service from the environment (failing here, not later) and returns the
    server of the HTTP API and of FC's invoke API for `vend-events`. `keys` verifies fc2
    signatures (None: `vend serve` knows no caller's keys, and does not check them)."""
    from functions import events, http
    from functions.wsgi_server import WsgiServer
    from infra.local.fc_bridge import LocalFc
    from shared.config import ConfigError

    app = LocalFc(
        http.handler, region=None, account_id=None, events_handler=events.handler, keys=keys
    )
    try:
        http.initializer(app.context("vend-http", "functions.http.initializer"))
    except ConfigError as exc:
        raise Failure(ExitStatus.USAGE, f"configuration: {exc}") from None
    try:
        return WsgiServer(app, host=host, port=port, threads=16)
    except OSError as exc:
        raise _cannot_listen(exc, host, port, "--port", "local") from None


def _serve(args: argparse.Namespace) -> int:
    """The custom runtime's server (functions.custom_runtime), on this machine; FC's invoke API
    for `vend-events` beside it only when asked, for local tests (its fc2 signatures are not
    checked: this server knows no caller's keys)."""
    from functions.custom_runtime import THREADS, build_app
    from functions.wsgi_server import WsgiServer
    from shared.config import ConfigError

    try:
        app: Any = build_app()
    except ConfigError as exc:
        raise Failure(ExitStatus.USAGE, f"configuration: {exc}") from None
    if args.fc_invoke_api:
        from functions import events
        from infra.local.fc_bridge import with_fc_invoke_api
        from infra.local.fc_invoke import FcInvokeApi

        app = with_fc_invoke_api(
            app, FcInvokeApi(events.handler, keys=None, region=None, account_id=None)
        )
    try:
        server = WsgiServer(app, host=args.host, port=args.port, threads=THREADS)
    except OSError as exc:
        raise _cannot_listen(exc, args.host, args.port, "--port", "serve") from None
    print(f"vend: HTTP API at http://{args.host}:{server.port}/v1/")
    if args.fc_invoke_api:
        print(
            f"vend: FC's invoke API for vend-events at http://{args.host}:{server.port}/2016-08-15/"
        )
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def local_environment(emulator_url: str, seed_path: Path, policy_path: Path) -> dict[str, str]:
    """The service's environment for the demo world: every endpoint is the emulator, and the
    function's own identity is the seed's `vend-function` user."""
    from infra.emulator import load_seed

    seed = load_seed(seed_path)
    function = next((u for u in seed.users if u.name == "vend-function"), None)
    if function is None:
        raise Failure(ExitStatus.USAGE, "local: the seed has no user named vend-function")
    return {
        "VEND_REGION": seed.region,
        "VEND_ACCOUNT_ID": seed.account_id,
        "VEND_ROLE_ARN": f"acs:ram::{seed.account_id}:role/vend-eiam",
        "VEND_KMS_KEY_ID": "key-default",
        "VEND_POLICY": str(policy_path),
        "VEND_AUDIENCE": "vend-local",
        "VEND_STS_ENDPOINT": emulator_url,
        "VEND_EIAM_ENDPOINT": emulator_url,
        "VEND_KMS_ENDPOINT": emulator_url,
        "VEND_IDEMPOTENCY_URL": "memory://",
        "VEND_ROTATION": str(DEMO_ROTATION),
        "ALIBABA_CLOUD_ACCESS_KEY_ID": function.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": function.access_key_secret,
    }


def local_jwt_issuers(emulator_url: str, seed: Seed) -> str:
    """`VEND_JWT_ISSUERS` for the demo world: the M2M token issuer of each IDaaS instance of the
    seed, served by the emulator (infra/emulator/oauth.py), so that its access tokens are Bearer
    callers. An issuer is named by its instance ID without the `idaas_` prefix (`idaas_demo` is
    `demo`, the name examples/policy.json gives: `jwt:app_reports@demo`), or the whole ID where
    that would name two; its audience is the service's (`vend-local`)."""
    import json

    from infra.emulator.oauth import issuer

    instances = [i.instance_id for i in seed.eiam_instances]
    short = [i.removeprefix("idaas_") or i for i in instances]
    issuers = []
    for instance_id, name in zip(instances, short, strict=True):
        iss = issuer(emulator_url, instance_id)
        issuers.append(
            {
                "name": name if short.count(name) == 1 else instance_id,
                "issuer": iss,
                "jwks_url": f"{iss}/jwks",
                "algorithms": ["RS256"],
            }
        )
    return json.dumps(issuers)


def _local(args: argparse.Namespace) -> int:
    from infra.emulator import EmulatorServer

    seed_path = Path(args.seed)
    seed = _load_seed(args.seed, "local")
    if not args.policy.lstrip().startswith("{"):  # a path, not the JSON itself
        _readable(args.policy, "the policy", "local")
    if seed_path.resolve() == DEMO_SEED.resolve():
        # The demo runs on the RAM policies that are deployed (infra/policies/).
        from infra.seed_from_policies import seed_with_infra_policies

        try:
            seed = seed_with_infra_policies(seed)
        except (OSError, ValueError) as exc:
            raise Failure(ExitStatus.USAGE, f"local: the deployed RAM policies: {exc}") from None
    emulator_port = args.emulator_port
    if emulator_port is None:
        emulator_port = args.port + 100 if args.port else 0
    try:
        emulator = EmulatorServer(seed, host=args.host, port=emulator_port)
    except OSError as exc:
        raise _cannot_listen(exc, args.host, emulator_port, "--emulator-port", "local") from None
    emulator.start()
    try:
        env = local_environment(emulator.url, seed_path, Path(args.policy))
        env["VEND_JWT_ISSUERS"] = local_jwt_issuers(emulator.url, seed)
        os.environ.update(env)
        server = _start_api(args.host, args.port, emulator.emulator.account.key_secret)
        print(_local_banner(f"http://{args.host}:{server.port}", emulator.url, seed))
        sys.stdout.flush()
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    finally:
        emulator.stop()
    return 0


def _local_banner(api: str, emulator: str, seed: Seed) -> str:
    users = {u.name: u for u in seed.users}
    billing = users.get("billing")
    caller = (
        f"export ALIBABA_CLOUD_ACCESS_KEY_ID={billing.access_key_id} "
        f"ALIBABA_CLOUD_ACCESS_KEY_SECRET={billing.access_key_secret}"
        if billing
        else "# (the seed has no user named billing)"
    )
    return f"""{_caller_banner(api, emulator, caller)}

{_bearer_banner(api, emulator, seed)}

Ctrl-C stops both."""


def _bearer_banner(api: str, emulator: str, seed: Seed) -> str:
    """How the demo M2M application app_reports calls the service with an access token from
    the emulator's IDaaS instance (a Bearer caller: no Alibaba Cloud credentials to ask)."""
    from infra.emulator.oauth import issuer

    instance = next((i for i in seed.eiam_instances if i.instance_id == "idaas_demo"), None)
    apps = instance.applications if instance is not None else ()
    app = next((a for a in apps if a.application_id == "app_reports"), None)
    if app is None or not app.secrets:
        return "(the seed has no application app_reports with a secret in idaas_demo)"
    client_id, secret = app.client_id or app.application_id, app.secrets[0]
    users = {u.name: u for u in seed.users}
    reports = users.get("reports")
    opener = (
        f"ALIBABA_CLOUD_ACCESS_KEY_ID={reports.access_key_id} "
        f"ALIBABA_CLOUD_ACCESS_KEY_SECRET={reports.access_key_secret} \\\n      "
        if reports
        else ""
    )
    body = (
        f'{{"instance_id": "idaas_demo", "application_id": "app_reports", '
        f'"secret_id": "{secret.secret_id}"}}'
    )
    return f"""As the demo M2M application app_reports, with an access token from the emulator's
IDaaS instance idaas_demo: the service knows this caller as jwt:{client_id}@demo, whom
examples/policy.json lets read app_reports' secrets (the last command opens the envelope with
the demo user reports' keys, as KMS lets only them decrypt with key-reports):

  TOKEN=$(curl -s -u {client_id}:{secret.client_secret} \\
      -d grant_type=client_credentials --data-urlencode 'scope=vend-local|obtain' \\
      {issuer(emulator, "idaas_demo")}/token \\
      | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
  curl -s -w '\\n' -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
      -d '{body}' \\
      {api}/v1/secrets/obtain
  {opener}.venv/bin/vend obtain --token "$TOKEN" --instance idaas_demo \\
      --application app_reports --secret {secret.secret_id}"""


def _caller_banner(api: str, emulator: str, caller: str) -> str:
    return f"""vend local: the service and a seeded emulator, no cloud account needed.

  API        {api}/v1/   (health: {api}/v1/health, OpenAPI: {api}/v1/openapi.json)
  emulator   {emulator}   (STS, EIAM, KMS; demo world from the seed)
  audience   vend-local

In another shell, as the demo caller "billing" (its demo keys are in the seed):

  {caller}
  export VEND_URL={api} VEND_AUDIENCE=vend-local
  export VEND_STS_ENDPOINT={emulator} VEND_KMS_ENDPOINT={emulator}
  .venv/bin/vend obtain --instance idaas_demo --application app_billing --secret sct_billing_1
  .venv/bin/vend create --instance idaas_demo --application app_empty --idempotency-key demo-1
  .venv/bin/vend obtain --instance idaas_demo --application app_billing \\
      --secret sct_billing_1 --json --output vended.json
  .venv/bin/vend decrypt vended.json
  .venv/bin/vend rotate plan --instance idaas_demo --application app_billing"""


# -- doctor --------------------------------------------------------------------------------


def _doctor(args: argparse.Namespace) -> int:
    import json

    from shared import doctor

    if (args.instance is None) != (args.application is None):
        raise Failure(ExitStatus.USAGE, "doctor: --instance and --application go together")
    application = (args.instance, args.application) if args.instance else None
    for value in application or ():
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise Failure(
                ExitStatus.USAGE, f"doctor: {value[:64]!r} is not an ID (1 to 64 of A-Za-z0-9_-)"
            )
    report = doctor.run(os.environ, application=application)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
        failed = sum(c.status != "ok" for c in report.checks)
        print(f"vend doctor: {'all checks pass' if not failed else f'{failed} check(s) failed'}")
    return 0 if report.ok else 1  # documented (README); a failed check is no bug


# -- policy check ----------------------------------------------------------------------------


def _checked_resource(action: str, resource: str | None) -> str:
    """The resource to ask about: the service's own actions (`vend:`) are decided on `*`, and
    a name in that namespace that the service does not know is a typo, refused."""
    from shared.arns import RUN_DOCTOR_RESOURCE, SERVICE_ACTIONS

    if not action.lower().startswith("vend:"):
        if resource is None:
            raise Failure(ExitStatus.USAGE, f"policy check: --resource is required for {action}")
        return resource
    known = {a.lower(): a for a in SERVICE_ACTIONS}
    if action.lower() not in known:
        raise Failure(
            ExitStatus.USAGE,
            f"policy check: {action[:64]!r} is no action of this service"
            f" (it knows {', '.join(SERVICE_ACTIONS)})",
        )
    if resource not in (None, RUN_DOCTOR_RESOURCE):
        raise Failure(
            ExitStatus.USAGE,
            f"policy check: {known[action.lower()]} is decided on resource"
            f" {RUN_DOCTOR_RESOURCE!r} (leave out --resource)",
        )
    return RUN_DOCTOR_RESOURCE


def _policy_check(args: argparse.Namespace) -> int:
    from shared.approval import load_approval_policy
    from shared.principal import Caller
    from shared.ram_policy import PolicyError

    resource = _checked_resource(args.action, args.resource)
    if not args.policy.lstrip().startswith("{"):  # a path, not the JSON itself
        _readable(args.policy, "the policy", "policy check")
    try:
        policy = load_approval_policy(args.policy)
    except PolicyError as exc:
        raise Failure(ExitStatus.USAGE, f"policy check: {exc}") from None
    principal: str = args.principal
    if principal.startswith("jwt:"):
        subject, _, issuer = principal[4:].rpartition("@")
        caller = Caller.jwt(subject, issuer)
    elif principal.startswith("service:"):  # the rotation schedule: service:vend-rotation
        caller = Caller.service(principal.removeprefix("service:"))
    else:
        account = principal.split(":")[3] if principal.count(":") >= 4 else None
        caller = Caller.ram(principal, account or "")
    verdict = policy.decide(caller, args.action, resource, source_ip=args.source_ip)
    print(f"decision: {'allow' if verdict.allowed else 'deny'} ({verdict.decision.value})")
    print(f"statement: {verdict.statement or '(none matched: default deny)'}")
    if verdict.allowed and not args.action.lower().startswith("vend:"):  # seals nothing
        print(f"recipient key: {verdict.recipient_key_id or '(the default key)'}")
    return ExitStatus.OK if verdict.allowed else ExitStatus.DENIED


def _seal_store_password(args: argparse.Namespace) -> int:
    from infra.local.seal import COMMAND, read_password, seal
    from shared.wire.credentials import DefaultChain
    from shared.wire.endpoint import parse_endpoint

    password = read_password(sys.stdin)
    where = args.kms_endpoint or os.environ.get("VEND_KMS_ENDPOINT")
    kms = parse_endpoint(where or f"kms.{args.region}.aliyuncs.com")
    try:
        creds = DefaultChain().current()
    except Exception as exc:  # the credential chain's many ways to find nothing
        raise Failure(
            ExitStatus.NO_CREDENTIALS, f"{COMMAND}: no credentials ({type(exc).__name__})"
        ) from None
    print(seal(password, args.key_id, kms, creds))
    return ExitStatus.OK


# -- the parser ------------------------------------------------------------------------------


def _sub(sub: Any, name: str, summary: str, description: str | None = None) -> Any:
    parser = sub.add_parser(
        name,
        help=summary,
        description=description or summary,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_verbose(parser, "log every request (servers)")
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="vend",
        description="secret-vending: the command line",
        epilog=exit_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="servers: log every request; callers: each step with its time; any command: the "
        "traceback of an unexpected error",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"vend {__version__} (secret-vending), vend_client {client_version} "
        "(secret-vending-client)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    local = _sub(
        sub,
        "local",
        "the service and a seeded emulator on localhost",
        "The service (HTTP API and FC's invoke API for vend-events) and the STS, EIAM and KMS\n"
        "emulator, on this machine, with the demo world: no cloud account needed. It sets the\n"
        "service's VEND_* itself (audience vend-local); the environment's are not read.",
    )
    local.add_argument(
        "--port",
        type=int,
        default=DEFAULT_API_PORT,
        help=f"the API's port (default: {DEFAULT_API_PORT}; 0: one the system chooses, printed)",
    )
    local.add_argument(
        "--host", default="127.0.0.1", help="the address both listen on (default: 127.0.0.1)"
    )
    local.add_argument(
        "--emulator-port",
        type=int,
        default=None,
        metavar="PORT",
        help="the emulator's port (default: --port + 100, or 0 with --port 0)",
    )
    local.add_argument(
        "--seed",
        default=str(DEMO_SEED),
        metavar="FILE",
        help="the emulator's world, JSON or YAML (default: examples/seed.yaml, with the RAM "
        "policies of infra/policies/)",
    )
    local.add_argument(
        "--policy",
        default=str(DEMO_POLICY),
        metavar="FILE",
        help="the approval policy, a path or the JSON itself (default: examples/policy.json)",
    )
    local.set_defaults(run=_local, server=True)

    emu = _sub(sub, "emulator", "the local STS, EIAM and KMS emulator alone")
    emu.add_argument("--seed", required=True, metavar="FILE", help="seed file, JSON or YAML")
    emu.add_argument(
        "--port",
        type=int,
        default=DEFAULT_EMULATOR_PORT,
        help=f"the port (default: {DEFAULT_EMULATOR_PORT}; 0: one the system chooses, printed)",
    )
    emu.add_argument("--host", default="127.0.0.1", help="the address (default: 127.0.0.1)")
    emu.add_argument(
        "--state",
        default=None,
        metavar="FILE",
        help="keep EIAM and KMS state in this file (default: none, in memory only)",
    )
    emu.set_defaults(run=_emulator, server=True)

    serve = _sub(
        sub,
        "serve",
        "the HTTP API on localhost, configured from VEND_*",
        "The custom runtime's server (functions/custom_runtime.py) on this machine, configured\n"
        "from the environment: VEND_REGION, VEND_ACCOUNT_ID, VEND_ROLE_ARN, VEND_KMS_KEY_ID,\n"
        "VEND_POLICY, VEND_AUDIENCE, VEND_JWT_ISSUERS, VEND_STS/EIAM/KMS_ENDPOINT,\n"
        "VEND_STS_PROOF_HOSTS, VEND_IDEMPOTENCY_URL (README, Configuration), and the function's\n"
        "credentials from ALIBABA_CLOUD_ACCESS_KEY_ID/_SECRET/_SECURITY_TOKEN or the default\n"
        "chain. A bad value stops it with exit status 2, naming the variable.",
    )
    serve.add_argument(
        "--port",
        type=int,
        default=DEFAULT_API_PORT,
        help=f"the port (default: {DEFAULT_API_PORT}; 0: one the system chooses, printed)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="the address (default: 127.0.0.1)")
    serve.add_argument(
        "--fc-invoke-api",
        action="store_true",
        help="also FC's invoke API for vend-events (default: off; local tests only, never in "
        "production: it checks no fc2 signature)",
    )
    serve.set_defaults(run=_serve, server=True)

    doctor = _sub(
        sub,
        "doctor",
        "check a deployment's configuration against the real services (no secret is read)",
        "Checks the VEND_* configuration of the environment (README, Configuration) against\n"
        "the real services, without reading or creating a secret; one line per check.",
    )
    doctor.add_argument(
        "--instance",
        default=None,
        metavar="ID",
        help="with --application: an IDaaS instance (default: none)",
    )
    doctor.add_argument(
        "--application",
        default=None,
        metavar="ID",
        help="also check that the vending role may list its secrets (default: none)",
    )
    doctor.add_argument(
        "--json", action="store_true", help="the report as JSON (default: one line per check)"
    )
    doctor.set_defaults(run=_doctor)

    from vend_client import cli as caller_cli

    caller_cli.add_commands(sub)

    policy = _sub(sub, "policy", "approval policy tools")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    check = _sub(
        policy_sub,
        "check",
        "the decision for one request, and why",
        "Prints the decision for one request and the statement that decided it: exit 0 for\n"
        "allow, 3 for deny.",
    )
    check.add_argument("--policy", required=True, help="a path, or the JSON itself")
    check.add_argument(
        "--principal",
        required=True,
        help="a RAM ARN, jwt:{sub}@{issuer}, or service:vend-rotation (the rotation schedule)",
    )
    check.add_argument(
        "--action",
        required=True,
        help="e.g. eiam:ObtainApplicationClientSecret, or vend:RunDoctor (the deployment checks "
        "over events)",
    )
    check.add_argument(
        "--resource",
        default=None,
        help="the secret ARN (default: none; vend:RunDoctor is decided on *)",
    )
    check.add_argument(
        "--source-ip", default=None, help="the caller's IP, for acs:SourceIp (default: none)"
    )
    check.set_defaults(run=_policy_check)

    seal = _sub(
        sub,
        "seal-store-password",
        "the Redis password as a KMS ciphertext, for the deployment",
        "Reads the Redis password from standard input (never an argument: ps shows those),\n"
        "encrypts it with KMS Encrypt under --key-id (terraform output store_password_key_id)\n"
        "and the encryption context the service decrypts with, and prints the CiphertextBlob:\n"
        "the value of DEPLOY_VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT. Your credentials (the\n"
        "default chain) must be allowed kms:Encrypt on that key.",
    )
    seal.add_argument("--key-id", required=True, help="the store-password key's id")
    seal.add_argument(
        "--region",
        default=os.environ.get("VEND_REGION") or "cn-hangzhou",
        help="KMS's region (default: VEND_REGION, else cn-hangzhou)",
    )
    seal.add_argument(
        "--kms-endpoint",
        default=None,
        metavar="HOST",
        help="host[:port] or http(s)://host[:port] (default: VEND_KMS_ENDPOINT, else "
        "kms.{region}.aliyuncs.com)",
    )
    seal.set_defaults(run=_seal_store_password)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    verbose = bool(args.verbose)
    level = logging.INFO if verbose else logging.WARNING
    if getattr(args, "server", False):
        # A server's log is JSON lines on stderr (shared.logs), its own and its libraries';
        # stdout keeps the banner, which is for a person.
        from shared import logs

        logs.install(sys.stderr, level)
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        code: int = args.run(args)
    except Failure as failure:
        return fail(failure)
    except KeyboardInterrupt:
        return int(ExitStatus.INTERRUPTED)
    except Exception as exc:
        return unexpected(exc, verbose)
    return int(code)


if __name__ == "__main__":
    sys.exit(main())
