"""`vend obtain`, `vend create` and `vend decrypt`: the caller's commands, in the project's `vend`
and alone as `vend-client` (this package installed by itself)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .http import VendClient


def _common(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get
    parser.add_argument(
        "--url", default=env("VEND_URL", "http://127.0.0.1:9000"), help="the service (env VEND_URL)"
    )
    parser.add_argument(
        "--audience",
        default=env("VEND_AUDIENCE"),
        help="the audience RAM proofs name (env VEND_AUDIENCE)",
    )
    parser.add_argument("--token", default=None, help="a bearer JWT instead of a RAM proof")
    parser.add_argument("--region", default=env("VEND_REGION", "cn-hangzhou"))
    parser.add_argument(
        "--sts-endpoint",
        default=env("VEND_STS_ENDPOINT"),
        help="where RAM proofs are verified (env VEND_STS_ENDPOINT)",
    )
    parser.add_argument(
        "--kms-endpoint",
        default=env("VEND_KMS_ENDPOINT"),
        help="KMS for opening the envelope (env VEND_KMS_ENDPOINT)",
    )
    parser.add_argument(
        "--expect-principal",
        default=None,
        help="refuse an envelope sealed for anyone else (RAM callers: found out)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the whole response, secret added"
    )


def add_commands(sub: Any) -> None:
    obtain = sub.add_parser("obtain", help="get a client secret, opened with your own KMS key")
    _common(obtain)
    obtain.add_argument("--instance", required=True)
    obtain.add_argument("--application", required=True)
    obtain.add_argument("--secret", required=True)
    obtain.set_defaults(run=_obtain_or_create, action="obtain")

    create = sub.add_parser("create", help="create a client secret, opened with your own KMS key")
    _common(create)
    create.add_argument("--instance", required=True)
    create.add_argument("--application", required=True)
    create.add_argument("--expiration-time", type=int, default=None, help="ms since the epoch")
    create.add_argument("--idempotency-key", default=None)
    create.set_defaults(run=_obtain_or_create, action="create")

    decrypt = sub.add_parser("decrypt", help="open an envelope, or a whole vend response")
    _common(decrypt)
    decrypt.add_argument("file", nargs="?", default="-", help="a file, or - for standard input")
    decrypt.add_argument(
        "--expect-arn",
        default=None,
        help="the secret ARN it must be for (default: from the response)",
    )
    decrypt.set_defaults(run=_decrypt)


def _client(args: argparse.Namespace) -> VendClient:
    # Each command imports the client when it runs: the parser alone stays cheap to build.
    from .http import VendClient  # noqa: PLC0415
    from .wire.endpoint import parse_endpoint  # noqa: PLC0415

    region = args.region
    return VendClient(
        url=args.url,
        audience=args.audience,
        token=args.token,
        sts=parse_endpoint(args.sts_endpoint or "sts.aliyuncs.com"),
        kms=parse_endpoint(args.kms_endpoint or f"kms.{region}.aliyuncs.com"),
        region=region,
    )


def _fail(message: str) -> int:
    print(f"vend: {message}", file=sys.stderr)
    return 1


def _obtain_or_create(args: argparse.Namespace) -> int:
    from .errors import CloudError, EnvelopeError, VendApiError  # noqa: PLC0415

    client = _client(args)
    try:
        if args.action == "obtain":
            response = client.obtain(args.instance, args.application, args.secret)
            secret_id = args.secret
        else:
            response = client.create(
                args.instance, args.application, args.expiration_time, args.idempotency_key
            )
            secret_id = None
        secret = client.open(
            response,
            instance_id=args.instance,
            application_id=args.application,
            secret_id=secret_id,
            expected_principal=args.expect_principal,
        )
    except VendApiError as exc:
        return _fail(f"{exc.status} {exc.code}: {exc.message} (request {exc.request_id})")
    except (EnvelopeError, CloudError, ValueError) as exc:
        return _fail(str(exc))
    _print(response.to_dict(), secret, args.json)
    return 0


def _decrypt(args: argparse.Namespace) -> int:
    from .errors import CloudError, EnvelopeError  # noqa: PLC0415
    from .response import Envelope  # noqa: PLC0415
    from .wire.arns import expected_arn_for  # noqa: PLC0415

    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()  # noqa: SIM115
        data = json.loads(text)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot read an envelope: {exc}")
    whole = isinstance(data, dict) and "envelope" in data
    try:
        sealed = Envelope.from_dict(data["envelope"] if whole else data)
    except ValueError:
        return _fail("not a vend-envelope/1 envelope or vend response")
    client = _client(args)
    try:
        expected = args.expect_arn
        if expected is None and whole:
            context_arn = sealed.encryption_context.get("vend:arn", "")
            secret = None if context_arn.endswith("/secret/*") else str(data.get("secret_id"))
            expected = expected_arn_for(
                context_arn, str(data.get("instance_id")), str(data.get("application_id")), secret
            )
        if expected is None:
            return _fail("a bare envelope needs --expect-arn")
        principal = args.expect_principal
        if principal is None and not args.token:
            principal = client.whoami()
        secret_value = client.open_envelope(
            sealed, expected_arn=expected, expected_principal=principal
        )
    except (EnvelopeError, CloudError, ValueError) as exc:
        return _fail(str(exc))
    _print(data if whole else {"envelope": data}, secret_value, args.json)
    return 0


def _print(response: dict[str, Any], secret: str, as_json: bool) -> None:
    if as_json:
        print(json.dumps({**response, "client_secret": secret}, indent=2))
    else:
        print(secret)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vend-client", description="secret-vending's caller")
    add_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
