"""`GET /v1/ready` (contract section 2): may this instance take requests? `/v1/health` says the
process is alive and checks nothing; this checks what a request needs and an instance can lose
or never get, without calling EIAM and without anything a caller could learn a secret from:

- `config` (and/or `policy`, when it is `VEND_POLICY` that fails): the service builds from the
  environment;
- `store`: the idempotency store answers a PING within STORE_TIMEOUT_S (Redis; the memory store
  always answers); `store:eviction`: its eviction policy may drop records at maxmemory;
  `store:lost`: it came back empty since this instance first looked (named on that probe);
- `jwks:{issuer name}`: each JWT issuer's key set was fetched at least once since start (one
  never fetched is fetched now, at most once a second).

The answer names the checks that fail, never why: the log says why (a Redis URL may hold a
password, a ConfigError quotes a value). The whole check stays within READY_BUDGET_S, under the
custom runtime's health check timeout (s.custom.yaml, 2 s). Imported on that route's first
request only."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from shared.config import ConfigError
from shared.idempotency.store import Forgetful, Pingable

if TYPE_CHECKING:
    from shared.vend import Vendor

log = logging.getLogger("vend.ready")

STORE_TIMEOUT_S = 0.5
READY_BUDGET_S = 1.5


class Readiness(BaseModel):
    """The body of `/v1/ready`: 200 with `ready`, or 503 with `not ready` and the failing
    checks' names."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ready", "not ready"]
    failing: list[str] | None = None


def failing_checks(vendor: Callable[[], Vendor]) -> list[str]:
    """The names of the checks that fail, in a fixed order; empty when ready."""
    started = time.monotonic()
    try:
        service = vendor()
    except ConfigError as exc:
        log.warning("ready: the configuration does not load: %s", exc)
        named = set(exc.variables)
        return [
            check
            for check, wrong in (
                ("config", named - {"VEND_POLICY"}),
                ("policy", named & {"VEND_POLICY"}),
            )
            if wrong
        ]
    except Exception:
        log.exception("ready: the service does not build")
        return ["config"]
    failing: list[str] = []
    store = service.store
    if isinstance(store, Pingable) and not store.ping(STORE_TIMEOUT_S):
        log.warning("ready: the idempotency store %r does not answer", store)
        failing.append("store")
    elif isinstance(store, Forgetful):
        # A store that may drop records breaks one-secret-per-key (README, Reliability); one
        # that forgot already is named once, when first seen. Persistence is vend doctor's.
        for risk in store.risks(STORE_TIMEOUT_S, persistence=False):
            kind = risk.split(":", 1)[0]
            if kind in ("eviction", "lost"):
                log.warning("ready: the idempotency store %r: %s", store, risk)
                failing.append(f"store:{kind}")
    jwt = service.authenticator.jwt
    if jwt is not None:
        left = max(0.1, READY_BUDGET_S - (time.monotonic() - started))
        failing.extend(f"jwks:{name}" for name, ok in jwt.fetched_once(left).items() if not ok)
    return failing


def readiness(vendor: Callable[[], Vendor]) -> tuple[int, Readiness]:
    failing = failing_checks(vendor)
    if failing:
        return 503, Readiness(status="not ready", failing=failing)
    return 200, Readiness(status="ready")
