"""`vend`: the command line (contract section 11). Each command imports what it needs only when
it runs, so `vend --help` stays fast and the deployed package never needs the emulator."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Sequence

DEFAULT_EMULATOR_PORT = 9100


def _emulator(args: argparse.Namespace) -> int:
    from infra.emulator import EmulatorServer, load_seed

    try:
        seed = load_seed(args.seed)
        server = EmulatorServer(seed, host=args.host, port=args.port, state_path=args.state)
    except (OSError, ValueError) as exc:
        print(f"vend emulator: {exc}", file=sys.stderr)
        return 2
    print(f"emulator: STS, EIAM and KMS at {server.url} (account {seed.account_id}, {seed.region})")
    print(f"emulator: point an SDK Config at endpoint={server.endpoint!r}, protocol='http'")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vend", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every request")
    sub = parser.add_subparsers(dest="command", required=True)

    emu = sub.add_parser("emulator", help="run the local STS, EIAM and KMS emulator alone")
    emu.add_argument("--seed", required=True, help="seed file, JSON or YAML")
    emu.add_argument("--port", type=int, default=DEFAULT_EMULATOR_PORT)
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--state", default=None, help="keep EIAM and KMS state in this file")
    emu.set_defaults(run=_emulator)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    code: int = args.run(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
