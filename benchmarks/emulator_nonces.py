"""The emulator's bookkeeping of nonces: what an authenticated call costs once tens of thousands
of nonces are remembered, as a ratio measured in one run.

50,000 GetCallerIdentity calls, each signed by the SDK's own signer (a fresh nonce, the
emulator's date) with STS credentials, go to the emulator's WSGI app in process, so every one
passes Account.authenticate: signature, security token, date and nonce. The emulator's clock
moves forward a little after each call (36 ms by default: 30 minutes in all), so the nonces of
the first half expire during the second, which keeps about 25,000 remembered and forgets about
one a call. Reported: the median time of one call to the app over the first and the last 1,000
calls, their ratio (target <= 1.2: the cost does not grow with the nonces held) and the total.

    .venv/bin/python benchmarks/emulator_nonces.py [--calls 50000] [--advance-ms 36]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import sdk_clients as sdk
from alibabacloud_tea_openapi.utils import Utils

from infra.emulator import Emulator, load_seed

STS_VERSION = "2015-04-01"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
WINDOW = 1_000


def signed_environ(
    emulator: Emulator,
    action: str,
    query: dict[str, str],
    key: tuple[str, str],
    token: str | None = None,
) -> dict[str, Any]:
    """A WSGI environ of an STS call signed as the SDK signs it (ACS3-HMAC-SHA256)."""
    headers = {
        "host": "sts.aliyuncs.com",
        "x-acs-action": action,
        "x-acs-version": STS_VERSION,
        "x-acs-date": emulator.clock.iso(),
        "x-acs-signature-nonce": Utils.get_nonce(),
        "x-acs-content-sha256": EMPTY_SHA256,
    }
    if token:
        headers["x-acs-security-token"] = token
    unsigned = SimpleNamespace(method="POST", pathname="/", query=query, headers=headers)
    headers["authorization"] = Utils.get_authorization(
        unsigned, "ACS3-HMAC-SHA256", EMPTY_SHA256, key[0], key[1]
    )
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "QUERY_STRING": urlencode(query, quote_via=quote),
        "REMOTE_ADDR": "127.0.0.1",
        "CONTENT_LENGTH": "0",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.url_scheme": "http",
    }
    environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()})
    return environ


def call(emulator: Emulator, environ: dict[str, Any]) -> tuple[str, dict[str, Any], float]:
    """Calls the app; (status line, JSON body, seconds the app took)."""
    seen: list[str] = []
    start = time.perf_counter()
    body = b"".join(emulator(environ, lambda status, headers: seen.append(status)))
    elapsed = time.perf_counter() - start
    answer: dict[str, Any] = json.loads(body)
    return seen[0], answer, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument(
        "--advance-ms",
        type=float,
        default=36.0,
        help="emulated time between two calls (0: no nonce expires during the run)",
    )
    args = parser.parse_args()
    if args.calls < 2 * WINDOW:
        parser.error(f"--calls must be at least {2 * WINDOW}")

    emulator = Emulator(load_seed(ROOT / "examples" / "seed.yaml"))
    status, body, _ = call(
        emulator,
        signed_environ(
            emulator,
            "AssumeRole",
            {"RoleArn": sdk.ROLE_ARN, "RoleSessionName": "bench", "DurationSeconds": "3600"},
            sdk.FUNCTION,
        ),
    )
    assert status.startswith("200"), body
    creds = body["Credentials"]
    key, token = (creds["AccessKeyId"], creds["AccessKeySecret"]), creds["SecurityToken"]

    times: list[float] = []
    started = time.perf_counter()
    for _ in range(args.calls):
        status, body, elapsed = call(
            emulator, signed_environ(emulator, "GetCallerIdentity", {}, key, token)
        )
        if not status.startswith("200"):
            raise SystemExit(f"call {len(times)} failed: {status} {body}")
        times.append(elapsed)
        emulator.clock.offset_s += args.advance_ms / 1000
    total = time.perf_counter() - started

    first = statistics.median(times[:WINDOW])
    last = statistics.median(times[-WINDOW:])
    _, nonces = emulator.account.held()
    print(
        f"{args.calls} authenticated GetCallerIdentity calls (STS credentials) to the app in "
        f"process, the clock {args.advance_ms:g} ms further after each; "
        f"Python {sys.version.split()[0]}"
    )
    print(f"  median of the first {WINDOW}: {first * 1e6:8.1f} us a call")
    print(f"  median of the last {WINDOW}:  {last * 1e6:8.1f} us a call, {nonces} nonces held")
    print(f"  ratio last / first:      {last / first:8.2f}   (target <= 1.2)")
    print(
        f"  total: {total:.1f} s, of which {sum(times):.1f} s in the app "
        f"(the rest signing the requests)"
    )


if __name__ == "__main__":
    main()
