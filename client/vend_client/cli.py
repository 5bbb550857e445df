"""`vend obtain`, `create`, `decrypt`, `rotate`, `agent` and `run`: the caller's commands, in the
project's `vend` and alone as `vend-client` (this package installed by itself).

Each expected failure is one line on stderr and an exit status of `ExitStatus`, the one table of
both commands (`vend` adds its own commands' failures to the same table). Nothing heavy is
imported until a command runs: `vend --help` builds this parser too."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from . import __version__, settings
from .exit_status import ExitStatus, Failure, exit_table, fail, unexpected
from .failures import explain, no_credentials
from .settings import DEFAULT_REGION, DEFAULT_STS, DEFAULT_TIMEOUT_S, VARIABLES

if TYPE_CHECKING:
    from .caching import CachingClient
    from .http import VendClient
    from .response import Envelope
    from .rotation import RotationState

# Re-exported: `vend` (infra/local/cli.py) builds its commands on these.
__all__ = [
    "ExitStatus",
    "Failure",
    "Parser",
    "add_commands",
    "add_verbose",
    "exit_table",
    "explain",
    "fail",
    "main",
    "no_credentials",
    "unexpected",
]

# The command's own default (`vend local`'s port); `from_env` has none: a library must be told.
DEFAULT_URL = "http://127.0.0.1:9000"
DEFAULT_AGENT_PORT = 2773


# -- the options -----------------------------------------------------------------------------


class Parser(argparse.ArgumentParser):
    """argparse, its usage error in one line (exit 2) that says where to read more."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitStatus.USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_verbose(
    parser: argparse.ArgumentParser,
    what: str = "each step on stderr with its time in ms (never a secret, token or proof)",
) -> None:
    """-v on a subcommand as well as before it (SUPPRESS: unset here keeps the outer value)."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=argparse.SUPPRESS,
        help=f"{what}; the traceback of an unexpected error",
    )


CREDENTIALS_CHAIN = """credentials (RAM proofs, and your own STS and KMS calls), as the Alibaba
Cloud SDKs find them: ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET (and
ALIBABA_CLOUD_SECURITY_TOKEN); else the CLI profile ~/.aliyun/config.json; else
~/.alibabacloud/credentials.ini (or $ALIBABA_CLOUD_CREDENTIALS_FILE); else the ECS instance's
RAM role from its metadata service (ALIBABA_CLOUD_ECS_METADATA_DISABLED=true skips it off ECS)."""

CREDENTIALS_HELP = f"""{CREDENTIALS_CHAIN}

On success stdout holds the secret alone (or, with --json, the response with client_secret
added), unless --output writes it to a file; `create` also prints the new secret's ID on stderr
("vend: created secret_id ..."), and `obtain` without --secret the current one's ("vend: current
secret_id ..."). A failure is one line on stderr; `vend --help` (or
`vend-client --help`) lists the exit statuses."""


def service_options(parser: argparse.ArgumentParser) -> None:
    """Where the service is and how to prove who you are: every caller command's."""
    parser.add_argument(
        "--url",
        default=None,
        help=f"the service (default: ${VARIABLES['url']}, else {DEFAULT_URL})",
    )
    parser.add_argument(
        "--audience",
        default=None,
        help=f"the audience RAM proofs name (default: ${VARIABLES['audience']}; needed unless "
        "--token)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help="a bearer JWT instead of a RAM proof (default: none, a RAM proof)",
    )
    parser.add_argument(
        "--region",
        default=None,
        help=f"the region of the default KMS endpoint (default: ${VARIABLES['region']}, else "
        f"{DEFAULT_REGION})",
    )
    parser.add_argument(
        "--sts-endpoint",
        default=None,
        help=f"STS, for RAM proofs and asking who you are (default: "
        f"${VARIABLES['sts_endpoint']}, else "
        f"{DEFAULT_STS})",
    )
    parser.add_argument(
        "--kms-endpoint",
        default=None,
        help=f"KMS, for opening the envelope (default: ${VARIABLES['kms_endpoint']}, else "
        f"{settings.default_kms('REGION')})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"for each call to the service, STS and KMS (default: "
        f"${VARIABLES['timeout_s']}, else "
        f"{DEFAULT_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--expect-principal",
        default=None,
        metavar="ARN",
        help="refuse an envelope sealed for anyone else (default: who STS says you are; "
        "none with --token)",
    )
    add_verbose(parser)


def _common(parser: argparse.ArgumentParser) -> None:
    service_options(parser)
    parser.add_argument(
        "--json",
        action="store_true",
        help="the whole response, client_secret added (default: the secret alone)",
    )
    parser.add_argument(
        "--output",
        default=None,
        metavar="FILE",
        help="write it to FILE, created with mode 0600, instead of stdout (default: stdout)",
    )
    parser.add_argument(
        "--force", action="store_true", help="with --output: replace an existing FILE"
    )


AGENT_HELP = f"""The agent serves, on localhost, to callers in any language that send its token in
the X-Vend-Agent-Token header:
  GET /v1/secret?instance_id=I&application_id=A&secret_id=S  the opened secret, as JSON
  GET /v1/token?instance_id=I&application_id=A&secret_id=S[&scope=...]
                                     an M2M access token got with that secret (--token-endpoint)
Without secret_id, either is the application's current secret's (its answer names it).
  GET /v1/health                     without a token
refresh_now=true skips the cache. One JSON line per request on stderr; never a secret or token.

{CREDENTIALS_CHAIN}"""

ROTATE_HELP = f"""Asks the service (POST /v1/secrets/rotate), so the approval policy decides: plan
needs you approved for any of eiam:CreateApplicationClientSecret,
eiam:DisableApplicationClientSecret and eiam:DeleteApplicationClientSecret on the application's
secrets (.../secret/*), and run for the one its step takes. The application must be listed in
the service's VEND_ROTATION. run asks the service for the plan first, then takes the step; if
another run took one in between, it takes the one due then and says so. Nothing secret is
printed: IDs, statuses and times (UTC). Declining the question exits 130, nothing changed.

{CREDENTIALS_CHAIN}"""

RUN_HELP = f"""COMMAND runs with NAME set to the secret and NAME_CLIENT_ID to its client id, for
each --env; every secret is got first, and if one cannot be, COMMAND does not run (one line on
stderr names which). The exit status is COMMAND's (128 + N when signal N killed it). Nothing is
written to disk.

{CREDENTIALS_CHAIN}"""


def add_commands(sub: Any) -> None:
    def command(name: str, summary: str, epilog: str = CREDENTIALS_HELP) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        return parser

    obtain = command("obtain", "get a client secret, opened with your own KMS key")
    _common(obtain)
    obtain.add_argument("--instance", required=True, help="the IDaaS instance ID")
    obtain.add_argument("--application", required=True, help="the application ID")
    obtain.add_argument(
        "--secret",
        default=None,
        help="the secret ID (default: the application's current secret, whichever it is)",
    )
    obtain.set_defaults(run=_command(_obtain_or_create), action="obtain")

    create = command("create", "create a client secret, opened with your own KMS key")
    _common(create)
    create.add_argument("--instance", required=True, help="the IDaaS instance ID")
    create.add_argument("--application", required=True, help="the application ID")
    create.add_argument(
        "--expiration-time",
        type=int,
        default=None,
        metavar="MS",
        help="ms since the epoch (default: none, EIAM's)",
    )
    create.add_argument(
        "--idempotency-key",
        default=None,
        metavar="KEY",
        help="the same KEY again gives the same secret, never a second (default: none)",
    )
    create.set_defaults(run=_command(_obtain_or_create), action="create")

    decrypt = command("decrypt", "open an envelope, or a whole vend response")
    _common(decrypt)
    decrypt.add_argument(
        "file", nargs="?", default="-", help="a file, or - for standard input (default: -)"
    )
    decrypt.add_argument(
        "--expect-arn",
        default=None,
        metavar="ARN",
        help="the secret ARN it must be for (default: from the response; a bare envelope needs it)",
    )
    decrypt.set_defaults(run=_command(_decrypt))

    agent = command(
        "agent", "serve secrets and M2M access tokens on localhost, to any language", AGENT_HELP
    )
    service_options(agent)
    _agent_options(agent)
    agent.set_defaults(run=_command(_agent))

    rotate = command(
        "rotate",
        "an application's rotation: its secrets and next step (plan), or take it (run)",
        ROTATE_HELP,
    )
    rotate_sub = rotate.add_subparsers(dest="rotate_command", required=True)
    for name, summary in (
        (
            "plan",
            "the secrets, which is current, the next step and when it is due; changes "
            "nothing (a dry run)",
        ),
        ("run", "take the next step, if one is due (asks first on a terminal, unless --yes)"),
    ):
        one: argparse.ArgumentParser = rotate_sub.add_parser(
            name,
            help=summary,
            description=summary,
            epilog=ROTATE_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        service_options(one)
        one.add_argument("--instance", required=True, help="the IDaaS instance ID")
        one.add_argument("--application", required=True, help="the application ID")
        one.add_argument(
            "--json", action="store_true", help="the service's answer as JSON (default: text)"
        )
        if name == "run":
            one.add_argument(
                "--yes",
                action="store_true",
                help="take the step without asking (needed when standard input is not a terminal)",
            )
        one.set_defaults(run=_command(_rotate), rotate_action=name)

    run = command("run", "run a command with client secrets in its environment", RUN_HELP)
    service_options(run)
    run.add_argument(
        "--env",
        action="append",
        required=True,
        metavar="NAME=INSTANCE/APPLICATION/SECRET_ID",
        help="put that secret in NAME (and its client id in NAME_CLIENT_ID); SECRET_ID current "
        "is the application's current secret; repeatable",
    )
    run.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS]", help="what to run"
    )
    run.set_defaults(run=_command(_run))


def _agent_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host", default="127.0.0.1", help="where to listen (default: 127.0.0.1, this host only)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_AGENT_PORT, help=f"(default: {DEFAULT_AGENT_PORT})"
    )
    parser.add_argument(
        "--token-file",
        default=None,
        metavar="PATH",
        help="read the agent token (what callers send in X-Vend-Agent-Token) from PATH, made "
        "with mode 0600 and a random token if absent (default: $VEND_AGENT_TOKEN; one of the "
        "two is needed)",
    )
    parser.add_argument(
        "--token-endpoint",
        default=None,
        metavar="URL",
        help="the IDaaS instance's OAuth token endpoint, for /v1/token; it may name "
        "{instance_id} and {application_id} (default: $VEND_TOKEN_ENDPOINT, else no /v1/token)",
    )
    parser.add_argument(
        "--token-auth-method",
        choices=("client_secret_basic", "client_secret_post"),
        default=None,
        help="how the agent authenticates there (default: $VEND_TOKEN_AUTH_METHOD, else "
        "client_secret_basic)",
    )
    parser.add_argument(
        "--threads", type=int, default=8, help="requests served at once (default: 8)"
    )
    parser.add_argument(
        "--max-connections",
        type=int,
        default=100,
        metavar="N",
        help="open connections at most; more wait to be accepted (default: 100)",
    )


# -- running a command -----------------------------------------------------------------------


class Steps:
    """-v: each step on stderr with its own time (a nested step's time is not counted twice).
    What a step prints is chosen by its caller: never a secret, a token, a proof or a key."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self._nested = 0.0

    def note(self, text: str) -> None:
        if self.verbose:
            print(f"vend: {text}", file=sys.stderr)

    @contextlib.contextmanager
    def __call__(self, name: str, what: str) -> Iterator[list[str]]:
        outer, self._nested = self._nested, 0.0
        start = time.perf_counter()
        outcome: list[str] = []
        ok = False
        try:
            yield outcome
            ok = True
        finally:
            spent = time.perf_counter() - start
            own, self._nested = spent - self._nested, outer + spent
            said = ", ".join(outcome) if ok else "failed"
            self.note(f"{name}: {what}: {said or 'ok'} ({own * 1000:.0f} ms)")


def _command(body: Callable[[argparse.Namespace, Steps], int]) -> Callable[..., int]:
    """A command as both dispatchers run it: an expected failure becomes one line and its status
    (a bug is left to the dispatcher's `unexpected`)."""

    def run(args: argparse.Namespace) -> int:
        steps = Steps(bool(getattr(args, "verbose", False)))
        if not steps.verbose:
            # The credentials library logs each provider it tries, with tracebacks, through
            # handlers of its own: what went wrong is the one line below.
            logging.getLogger("credentials").disabled = True
        try:
            return body(args, steps)
        except Failure as failure:
            return fail(failure)
        except Exception as exc:
            known = explain(exc, args)
            if known is None:
                raise
            return fail(known)

    return run


def _resolve(args: argparse.Namespace, *, asks: bool) -> None:
    """Each option's value: the flag, else its environment variable (`settings.VARIABLES`, as
    `from_env` reads them), else its default. `asks`: the command asks the service (a RAM proof
    then needs the audience)."""
    from .errors import ConfigurationError  # noqa: PLC0415

    flags = {name: name.removesuffix("_s") for name in VARIABLES}  # timeout_s: --timeout
    given = [name for name, flag in flags.items() if getattr(args, flag) is not None]
    try:
        env = settings.from_environment(given=given)  # a flag wins, whatever its variable holds
    except ConfigurationError as exc:
        raise Failure(ExitStatus.USAGE, str(exc)) from None
    defaults = {"url": DEFAULT_URL, "region": DEFAULT_REGION, "sts_endpoint": DEFAULT_STS}
    for name in ("url", "audience", "region", "sts_endpoint"):
        if getattr(args, name) is None:
            setattr(args, name, env.get(name, defaults.get(name)))
    if args.kms_endpoint is None:
        args.kms_endpoint = env.get("kms_endpoint", settings.default_kms(args.region))
    if args.timeout is None:
        args.timeout = env.get("timeout_s", DEFAULT_TIMEOUT_S)
    elif not args.timeout > 0:
        raise Failure(ExitStatus.USAGE, "--timeout must be more than 0 seconds")
    if asks and not args.token and not args.audience:
        raise Failure(
            ExitStatus.USAGE,
            "a RAM proof needs the service's audience: --audience or VEND_AUDIENCE "
            "(or --token for a JWT)",
        )
    if not str(args.url).startswith(("http://", "https://")):
        raise Failure(ExitStatus.USAGE, f"--url {args.url!r} is not an http:// or https:// URL")
    output = getattr(args, "output", None)  # the commands that print a secret
    if output is not None and not args.force and os.path.lexists(output):
        # Checked before asking: a create is not spent on a file that cannot be written.
        raise Failure(ExitStatus.FILE, f"{output} exists: --force to replace it")


def _client(args: argparse.Namespace, steps: Steps) -> VendClient:
    # Each command imports the client when it runs: the parser alone stays cheap to build.
    from .http import VendClient  # noqa: PLC0415

    class TimedClient(VendClient):
        """The client, each of its steps timed for -v."""

        def authorization(self) -> str:
            how = (
                "bearer token"
                if self.token
                else f"RAM proof for audience {self.audience!r}, with your credentials"
            )
            with steps("authenticate", how):
                return super().authorization()

        def whoami(self) -> str:
            with steps("identify", f"STS GetCallerIdentity at {self.sts_endpoint.url}") as said:
                principal = super().whoami()
                said.append(principal)
                return principal

        def open_envelope(
            self, envelope: Envelope, *, expected_arn: str, expected_principal: str | None
        ) -> str:
            with steps("open", f"KMS Decrypt at {self.kms_endpoint.url}, then AES-256-GCM"):
                return super().open_envelope(
                    envelope, expected_arn=expected_arn, expected_principal=expected_principal
                )

    if not args.token:
        if os.environ.get("ALIBABA_CLOUD_ACCESS_KEY_ID"):
            steps.note("credentials: ALIBABA_CLOUD_ACCESS_KEY_ID from the environment")
        else:
            steps.note(
                "credentials: the default chain (profile files, then ECS instance metadata: "
                "off ECS, ALIBABA_CLOUD_ECS_METADATA_DISABLED=true skips its lookups)"
            )
    return TimedClient(args.url, **_client_settings(args))


def caching_client(args: argparse.Namespace) -> CachingClient:
    """The cache `agent` and `run` ask through, configured as the other commands' client (the
    options resolved)."""
    from .caching import CachingClient  # noqa: PLC0415

    return CachingClient(
        args.url, expected_principal=args.expect_principal, **_client_settings(args)
    )


def _client_settings(args: argparse.Namespace) -> dict[str, Any]:
    """Both clients' settings from the resolved options; a token a header cannot carry is a
    usage error, said without the token."""
    from .http import bearer_token  # noqa: PLC0415

    if args.token:
        try:
            bearer_token(args.token)
        except ValueError as exc:
            raise Failure(ExitStatus.USAGE, f"--token: {exc}") from None
    return {
        "audience": args.audience,
        "token": args.token,
        "sts_endpoint": args.sts_endpoint,
        "kms_endpoint": args.kms_endpoint,
        "region": args.region,
        "timeout_s": args.timeout,
    }


def _agent(args: argparse.Namespace, steps: Steps) -> int:
    from .agent.command import run_agent  # noqa: PLC0415

    _resolve(args, asks=True)
    return run_agent(args)


def _run(args: argparse.Namespace, steps: Steps) -> int:
    from .run import run_command  # noqa: PLC0415

    _resolve(args, asks=True)
    return run_command(args)


def _obtain_or_create(args: argparse.Namespace, steps: Steps) -> int:
    _resolve(args, asks=True)
    client = _client(args, steps)
    current = args.action == "obtain" and args.secret is None
    path = "/v1/secrets/current" if current else f"/v1/secrets/{args.action}"
    with steps("request", f"POST {args.url.rstrip('/')}{path}") as said:
        if current:
            response = client.current(args.instance, args.application)
        elif args.action == "obtain":
            response = client.obtain(args.instance, args.application, args.secret)
        else:
            response = client.create(
                args.instance, args.application, args.expiration_time, args.idempotency_key
            )
        said.append(f"secret_id {response.secret_id}, request {response.request_id}")
    if args.action == "create" or current:
        # stdout stays the secret alone; which secret it is goes to stderr, labelled.
        which = "created" if args.action == "create" else "current"
        print(f"vend: {which} secret_id {response.secret_id}", file=sys.stderr)
    if current:
        secret = client.open_current(
            response,
            instance_id=args.instance,
            application_id=args.application,
            expected_principal=args.expect_principal,
        )
    else:
        secret = client.open(
            response,
            instance_id=args.instance,
            application_id=args.application,
            secret_id=args.secret if args.action == "obtain" else None,
            expected_principal=args.expect_principal,
        )
    _emit(args, response.to_dict(), secret, steps)
    return 0


def _rotate(args: argparse.Namespace, steps: Steps) -> int:
    _resolve(args, asks=True)
    if args.rotate_action == "run" and not args.yes and not sys.stdin.isatty():
        # Checked before asking anything: a script must say --yes.
        raise Failure(
            ExitStatus.USAGE,
            "rotate run: standard input is not a terminal to confirm on: --yes takes the step "
            "without asking",
        )
    client = _client(args, steps)
    where = f"POST {args.url.rstrip('/')}/v1/secrets/rotate"
    with steps("request", f"{where} (dry run)") as said:
        plan = client.rotate(args.instance, args.application, dry_run=True)
        said.append(f"step {plan.step}, request {plan.request_id}")
    if args.rotate_action == "plan" or plan.step == "none":
        _print_rotation(args, plan, taken=False)
        return 0
    if not args.yes:
        _print_rotation(args, plan, taken=False, out=sys.stderr)
        answer = _ask(f"take this step ({plan.step}) on {args.instance}/{args.application} now?")
        if answer not in ("y", "yes"):
            print("vend: not taken; nothing was changed", file=sys.stderr)
            return int(ExitStatus.INTERRUPTED)
    with steps("request", where) as said:
        done = client.rotate(args.instance, args.application)
        said.append(f"step {done.step}, request {done.request_id}")
    if done.step != plan.step:
        print(
            f"vend: the service took {done.step}, not {plan.step}: another run stepped in "
            "between; this is the step that was due when it asked",
            file=sys.stderr,
        )
    _print_rotation(args, done, taken=True)
    return 0


def _print_rotation(
    args: argparse.Namespace, state: RotationState, *, taken: bool, out: TextIO | None = None
) -> None:
    """The state on stdout (text, or --json); the plan shown before the question goes to
    stderr, as text, so that stdout holds the answer of what was done only."""
    import json  # noqa: PLC0415

    from .rotation import describe, describe_step  # noqa: PLC0415

    stream = out or sys.stdout
    if args.json and out is None:
        stream.write(json.dumps(state.to_dict(), indent=2) + "\n")
        return
    now_ms = int(time.time() * 1000)
    text = describe(
        state, instance_id=args.instance, application_id=args.application, now_ms=now_ms
    )
    stream.write(f"{text}\n{describe_step(state, now_ms=now_ms, taken=taken)}\n")


def _ask(question: str) -> str:
    print(f"vend: {question} [y/N] ", end="", file=sys.stderr, flush=True)
    try:
        return input().strip().lower()
    except EOFError:
        return ""


def _read_input(name: str) -> str:
    if name == "-":
        return sys.stdin.read()
    try:
        return Path(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise Failure(ExitStatus.FILE, f"cannot read {name}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise Failure(ExitStatus.ENVELOPE, f"{name} is not text: not an envelope") from None


def _decrypt(args: argparse.Namespace, steps: Steps) -> int:
    import json  # noqa: PLC0415

    from .response import Envelope  # noqa: PLC0415
    from .wire.arns import expected_arn_for  # noqa: PLC0415

    _resolve(args, asks=False)
    text = _read_input(args.file)
    where = "standard input" if args.file == "-" else args.file
    try:
        data = json.loads(text)
    except ValueError:
        raise Failure(ExitStatus.ENVELOPE, f"{where} is not JSON: not an envelope") from None
    whole = isinstance(data, dict) and "envelope" in data
    try:
        sealed = Envelope.from_dict(data["envelope"] if whole else data)
    except ValueError:
        raise Failure(
            ExitStatus.ENVELOPE, f"{where} is not a vend-envelope/1 envelope or vend response"
        ) from None
    expected = args.expect_arn
    if expected is None and whole:
        context_arn = sealed.encryption_context.get("vend:arn", "")
        secret = None if context_arn.endswith("/secret/*") else str(data.get("secret_id"))
        expected = expected_arn_for(
            context_arn, str(data.get("instance_id")), str(data.get("application_id")), secret
        )
    if expected is None:
        raise Failure(ExitStatus.USAGE, "a bare envelope needs --expect-arn")
    client = _client(args, steps)
    principal = args.expect_principal
    if principal is None and not args.token:
        principal = client.whoami()
    secret_value = client.open_envelope(sealed, expected_arn=expected, expected_principal=principal)
    _emit(args, data if whole else {"envelope": data}, secret_value, steps)
    return 0


def _emit(args: argparse.Namespace, response: dict[str, Any], secret: str, steps: Steps) -> None:
    import json  # noqa: PLC0415

    text = (
        json.dumps({**response, "client_secret": secret}, indent=2) if args.json else secret
    ) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return
    write_private(args.output, text, force=args.force)
    steps.note(f"wrote {args.output} (mode 0600)")


def write_private(name: str, text: str, *, force: bool) -> None:
    """Writes a new file only its owner can read (O_CREAT | O_EXCL, mode 0600). `force` replaces
    an existing one with a new 0600 file renamed over it, so it never keeps a wider mode."""
    import tempfile  # noqa: PLC0415

    target = Path(name)
    try:
        if force:
            fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")  # 0600
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
            fd, temp = os.open(target, flags, 0o600), str(target)
    except FileExistsError:
        raise Failure(ExitStatus.FILE, f"{name} exists: --force to replace it") from None
    except OSError as exc:
        raise Failure(ExitStatus.FILE, f"cannot create {name}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        if force:
            os.replace(temp, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise Failure(ExitStatus.FILE, f"cannot write {name}: {exc.strerror or exc}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = Parser(
        prog="vend-client",
        description="secret-vending's caller",
        epilog=exit_table(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="each step with its time; tracebacks"
    )
    parser.add_argument("--version", action="version", version=f"vend-client {__version__}")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    try:
        code: int = args.run(args)
    except KeyboardInterrupt:
        return int(ExitStatus.INTERRUPTED)
    except Exception as exc:
        return unexpected(exc, args.verbose)
    return code


if __name__ == "__main__":
    sys.exit(main())
