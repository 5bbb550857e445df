"""`vend`: the command line (contract section 11). Each command imports what it needs when it
runs, so `vend --help` stays fast and the deployed package never needs the emulator."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from functions.wsgi_server import WsgiServer
    from infra.local.fc_invoke import KeyLookup

DEFAULT_EMULATOR_PORT = 9100
DEFAULT_API_PORT = 9000
ROOT = Path(__file__).resolve().parents[2]
DEMO_SEED = ROOT / "examples" / "seed.yaml"
DEMO_POLICY = ROOT / "examples" / "policy.json"


class CliError(Exception):
    """A failure to report in one line, with exit status 2 (usage or configuration) or 1."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


# -- emulator, serve, local ------------------------------------------------------------------


def _emulator(args: argparse.Namespace) -> int:
    from infra.emulator import EmulatorServer, load_seed

    try:
        seed = load_seed(args.seed)
        server = EmulatorServer(seed, host=args.host, port=args.port, state_path=args.state)
    except (OSError, ValueError) as exc:
        raise CliError(f"vend emulator: {exc}", 2) from None
    print(f"emulator: STS, EIAM and KMS at {server.url} (account {seed.account_id}, {seed.region})")
    print(f"emulator: point an SDK Config at endpoint={server.endpoint!r}, protocol='http'")
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
        raise CliError(f"vend: configuration: {exc}", 2) from None
    return WsgiServer(app, host=host, port=port, threads=16)


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
        raise CliError(f"vend: configuration: {exc}", 2) from None
    if args.fc_invoke_api:
        from functions import events
        from infra.local.fc_bridge import with_fc_invoke_api
        from infra.local.fc_invoke import FcInvokeApi

        app = with_fc_invoke_api(
            app, FcInvokeApi(events.handler, keys=None, region=None, account_id=None)
        )
    server = WsgiServer(app, host=args.host, port=args.port, threads=THREADS)
    print(f"vend: HTTP API at http://{args.host}:{args.port}/v1/")
    if args.fc_invoke_api:
        print(
            f"vend: FC's invoke API for vend-events at http://{args.host}:{args.port}/2016-08-15/"
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
        raise CliError("vend local: the seed has no user named vend-function", 2)
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
        "ALIBABA_CLOUD_ACCESS_KEY_ID": function.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": function.access_key_secret,
    }


def _local(args: argparse.Namespace) -> int:
    from infra.emulator import EmulatorServer, load_seed

    seed_path = Path(args.seed)
    try:
        seed = load_seed(seed_path)
        if seed_path.resolve() == DEMO_SEED.resolve():
            # The demo runs on the RAM policies that are deployed (infra/policies/).
            from infra.seed_from_policies import seed_with_infra_policies

            seed = seed_with_infra_policies(seed)
    except (OSError, ValueError) as exc:
        raise CliError(f"vend local: {exc}", 2) from None
    emulator_port = args.emulator_port if args.emulator_port is not None else args.port + 100
    emulator = EmulatorServer(seed, host=args.host, port=emulator_port).start()
    env = local_environment(emulator.url, seed_path, Path(args.policy))
    os.environ.update(env)
    server = _start_api(args.host, args.port, emulator.emulator.account.key_secret)
    print(_local_banner(f"http://{args.host}:{args.port}", emulator.url, seed))
    sys.stdout.flush()
    try:
        with contextlib.suppress(KeyboardInterrupt):
            server.serve_forever()
    finally:
        emulator.stop()
    return 0


def _local_banner(api: str, emulator: str, seed: object) -> str:
    users = {u.name: u for u in seed.users}  # type: ignore[attr-defined]
    billing = users.get("billing")
    caller = (
        f"export ALIBABA_CLOUD_ACCESS_KEY_ID={billing.access_key_id} "
        f"ALIBABA_CLOUD_ACCESS_KEY_SECRET={billing.access_key_secret}"
        if billing
        else "# (the seed has no user named billing)"
    )
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
      --secret sct_billing_1 --json > vended.json
  .venv/bin/vend decrypt vended.json

Ctrl-C stops both."""


# -- doctor --------------------------------------------------------------------------------


def _doctor(args: argparse.Namespace) -> int:
    import json

    from shared import doctor

    if (args.instance is None) != (args.application is None):
        raise CliError("vend doctor: --instance and --application go together", 2)
    application = (args.instance, args.application) if args.instance else None
    for value in application or ():
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", value):
            raise CliError(f"vend doctor: {value[:64]!r} is not an ID (1 to 64 of A-Za-z0-9_-)", 2)
    report = doctor.run(os.environ, application=application)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
        failed = sum(c.status != "ok" for c in report.checks)
        print(f"vend doctor: {'all checks pass' if not failed else f'{failed} check(s) failed'}")
    return 0 if report.ok else 1


# -- policy check ----------------------------------------------------------------------------


def _policy_check(args: argparse.Namespace) -> int:
    from shared.approval import load_approval_policy
    from shared.principal import Caller
    from shared.ram_policy import PolicyError

    try:
        policy = load_approval_policy(args.policy)
    except PolicyError as exc:
        raise CliError(f"vend policy check: {exc}", 2) from None
    principal: str = args.principal
    if principal.startswith("jwt:"):
        subject, _, issuer = principal[4:].rpartition("@")
        caller = Caller.jwt(subject, issuer)
    else:
        account = principal.split(":")[3] if principal.count(":") >= 4 else None
        caller = Caller.ram(principal, account or "")
    verdict = policy.decide(caller, args.action, args.resource, source_ip=args.source_ip)
    print(f"decision: {'allow' if verdict.allowed else 'deny'} ({verdict.decision.value})")
    print(f"statement: {verdict.statement or '(none matched: default deny)'}")
    if verdict.allowed:
        print(f"recipient key: {verdict.recipient_key_id or '(the default key)'}")
    return 0 if verdict.allowed else 3


# -- the parser ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vend", description="secret-vending: the command line")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    sub = parser.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="the service and a seeded emulator on localhost")
    local.add_argument("--port", type=int, default=DEFAULT_API_PORT)
    local.add_argument("--host", default="127.0.0.1")
    local.add_argument("--emulator-port", type=int, default=None, help="default: port + 100")
    local.add_argument("--seed", default=str(DEMO_SEED))
    local.add_argument("--policy", default=str(DEMO_POLICY))
    local.set_defaults(run=_local)

    emu = sub.add_parser("emulator", help="the local STS, EIAM and KMS emulator alone")
    emu.add_argument("--seed", required=True, help="seed file, JSON or YAML")
    emu.add_argument("--port", type=int, default=DEFAULT_EMULATOR_PORT)
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--state", default=None, help="keep EIAM and KMS state in this file")
    emu.set_defaults(run=_emulator)

    serve = sub.add_parser("serve", help="the HTTP API on localhost, configured from VEND_*")
    serve.add_argument("--port", type=int, default=DEFAULT_API_PORT)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument(
        "--fc-invoke-api",
        action="store_true",
        help="also FC's invoke API for vend-events (local tests only, never in production)",
    )
    serve.set_defaults(run=_serve)

    doctor = sub.add_parser(
        "doctor",
        help="check a deployment's configuration against the real services (no secret is read)",
    )
    doctor.add_argument("--instance", default=None, help="with --application: an IDaaS instance")
    doctor.add_argument(
        "--application", default=None, help="also check that the vending role may list its secrets"
    )
    doctor.add_argument("--json", action="store_true", help="the report as JSON")
    doctor.set_defaults(run=_doctor)

    from vend_client import cli as caller_cli

    caller_cli.add_commands(sub)

    policy = sub.add_parser("policy", help="approval policy tools")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True)
    check = policy_sub.add_parser("check", help="the decision for one request, and why")
    check.add_argument("--policy", required=True, help="a path, or the JSON itself")
    check.add_argument("--principal", required=True, help="a RAM ARN, or jwt:{sub}@{issuer}")
    check.add_argument("--action", required=True, help="e.g. eiam:ObtainApplicationClientSecret")
    check.add_argument("--resource", required=True, help="the secret ARN")
    check.add_argument("--source-ip", default=None)
    check.set_defaults(run=_policy_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    try:
        code: int = args.run(args)
    except CliError as exc:
        print(str(exc), file=sys.stderr)
        return exc.status
    return code


if __name__ == "__main__":
    sys.exit(main())
