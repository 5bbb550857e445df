"""Configuration from the environment (contract section 10), read and checked once at start.

`VARIABLES` is the model: every variable the service reads, and nothing reads one that is not
in it (the README's Configuration table is checked against it, tests/test_config.py). Every
variable is checked even when another is wrong, and a bad configuration stops the service with
one ConfigError naming each wrong or missing variable and why; never a value that may hold a
secret (a Redis URL's password, an endpoint's user info)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from shared.approval import ApprovalPolicy, load_approval_policy
from shared.lifecycle.settings import Rotations, RotationSettingsError, parse_rotation
from shared.ram_policy import PolicyError
from shared.upstream.fc_invoke import default_endpoint as default_fc_endpoint
from shared.wire.endpoint import Endpoint


@dataclass(frozen=True)
class Variable:
    """One environment variable of the service. `required`: it must be set (VEND_REGION and
    VEND_ACCOUNT_ID may come from FC's context instead)."""

    name: str
    required: bool = False


REGION = Variable("VEND_REGION", required=True)
ACCOUNT_ID = Variable("VEND_ACCOUNT_ID", required=True)
ROLE_ARN = Variable("VEND_ROLE_ARN", required=True)
KMS_KEY_ID = Variable("VEND_KMS_KEY_ID", required=True)
POLICY = Variable("VEND_POLICY", required=True)
AUDIENCE = Variable("VEND_AUDIENCE", required=True)
JWT_ISSUERS = Variable("VEND_JWT_ISSUERS")
STS_ENDPOINT = Variable("VEND_STS_ENDPOINT")
EIAM_ENDPOINT = Variable("VEND_EIAM_ENDPOINT")
KMS_ENDPOINT = Variable("VEND_KMS_ENDPOINT")
STS_PROOF_HOSTS = Variable("VEND_STS_PROOF_HOSTS")
IDEMPOTENCY_URL = Variable("VEND_IDEMPOTENCY_URL")
IDEMPOTENCY_PASSWORD_CIPHERTEXT = Variable("VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT")
ASSUME_ROLE_RATE = Variable("VEND_ASSUME_ROLE_RATE")
ROTATION = Variable("VEND_ROTATION")
FC_ENDPOINT = Variable("VEND_FC_ENDPOINT")

VARIABLES: tuple[Variable, ...] = (
    REGION,
    ACCOUNT_ID,
    ROLE_ARN,
    KMS_KEY_ID,
    POLICY,
    AUDIENCE,
    JWT_ISSUERS,
    STS_ENDPOINT,
    EIAM_ENDPOINT,
    KMS_ENDPOINT,
    STS_PROOF_HOSTS,
    IDEMPOTENCY_URL,
    IDEMPOTENCY_PASSWORD_CIPHERTEXT,
    ASSUME_ROLE_RATE,
    ROTATION,
    FC_ENDPOINT,
)


@dataclass(frozen=True)
class Problem:
    """What is wrong with one variable (or, with `/`, with how several combine)."""

    variable: str
    why: str

    def __str__(self) -> str:
        return f"{self.variable}: {self.why}"


class ConfigError(ValueError):
    """Every problem of one configuration, in VARIABLES' order, in one message."""

    def __init__(self, *problems: Problem) -> None:
        self.problems = problems
        super().__init__("; ".join(str(p) for p in problems))

    @property
    def variables(self) -> tuple[str, ...]:
        return tuple(p.variable for p in self.problems)


class _Reader:
    """Reads the model's variables, keeping every problem instead of stopping at the first."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[Problem] = []

    def raw(self, var: Variable) -> str:
        return (self.env.get(var.name) or "").strip()

    def fail(self, var: Variable | str, why: str) -> None:
        self.problems.append(Problem(var if isinstance(var, str) else var.name, why))

    def text(self, var: Variable, default: str | None, pattern: str, what: str) -> str:
        """The value, or "" with a problem: missing (no default), or not `what`. The value is
        quoted: none of these holds a secret."""
        value = self.raw(var) or default
        if not value:
            self.fail(var, "missing: must be set")
            return ""
        if not re.fullmatch(pattern, value):
            self.fail(var, f"{bounded(value)} is not {what}")
            return ""
        return value

    def done(self) -> None:
        if self.problems:
            raise ConfigError(*self.problems)


def bounded(value: str, limit: int = 80) -> str:
    return repr(value if len(value) <= limit else value[:limit] + "…")


@dataclass(frozen=True)
class Settings:
    region: str
    account_id: str
    role_arn: str
    kms_key_id: str
    policy: ApprovalPolicy
    audience: str
    jwt_issuers_json: str | None
    sts: Endpoint
    eiam: Endpoint
    kms: Endpoint
    proof_hosts: tuple[str, ...]
    idempotency_url: str
    # VEND_IDEMPOTENCY_PASSWORD_CIPHERTEXT: the Redis password as KMS Encrypt sealed it, which
    # the composition root decrypts at start (shared.store_password); None: no password, or
    # one in the URL.
    idempotency_password_ciphertext: str | None = None
    # VEND_ASSUME_ROLE_RATE: (AssumeRole calls a second, burst); None: shared.upstream.sts's.
    assume_role_rate: tuple[float, int] | None = None
    # VEND_ROTATION: the applications rotation may step (shared.lifecycle.settings).
    rotation: Rotations = field(default_factory=dict)
    # VEND_FC_ENDPOINT: FC's API, where the rotation schedule queues its batches.
    fc: Endpoint | None = None

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str],
        *,
        region: str | None = None,
        account_id: str | None = None,
    ) -> Settings:
        """`region` and `account_id` are the FC context's, used when the variables are unset. A
        custom runtime has no context, but FC sets `FC_ACCOUNT_ID` in its environment. Raises
        one ConfigError naming every wrong or missing variable."""
        r = _Reader(env)
        region = r.text(REGION, region, r"[a-z]{2,}-[a-z0-9-]+", "a region id such as cn-hangzhou")
        account = r.text(
            ACCOUNT_ID,
            account_id or env.get("FC_ACCOUNT_ID"),
            r"[0-9]{16}",
            "an account id (16 digits)",
        )
        role_arn = r.text(
            ROLE_ARN,
            None,
            r"acs:ram::[0-9]{16}:role/[A-Za-z0-9.@_-]{1,64}",
            "a RAM role ARN (acs:ram::<account>:role/<name>)",
        )
        key = r.text(KMS_KEY_ID, None, r"[A-Za-z0-9:/_.-]{1,256}", "a KMS key id, alias or ARN")
        audience = r.text(
            AUDIENCE, None, r"[\x21-\x7e]{1,256}", "1 to 256 printable ASCII characters"
        )
        policy = _policy(r)
        jwt_issuers = r.raw(JWT_ISSUERS) or None
        if jwt_issuers:
            _check_issuers(r, jwt_issuers)
        sts = _endpoint(r, STS_ENDPOINT, region and f"sts.{region}.aliyuncs.com")
        eiam = _endpoint(r, EIAM_ENDPOINT, region and f"eiam.{region}.aliyuncs.com")
        kms = _endpoint(r, KMS_ENDPOINT, region and f"kms.{region}.aliyuncs.com")
        hosts = _proof_hosts(r)
        if region and sts and hosts is not None:
            _check_sts_targets(r, region, sts, hosts)
        idem = _idempotency_url(r)
        sealed = _idempotency_password(r, idem)
        rate = _rate(r)
        rotation = _rotation(r)
        fc = _endpoint(r, FC_ENDPOINT, region and account and default_fc_endpoint(account, region))
        r.done()
        # done() raised unless each of these was read
        assert policy is not None
        assert hosts is not None
        assert sts is not None
        assert eiam is not None
        assert kms is not None
        return cls(
            region=region,
            account_id=account,
            role_arn=role_arn,
            kms_key_id=key,
            policy=policy,
            audience=audience,
            jwt_issuers_json=jwt_issuers,
            sts=sts,
            eiam=eiam,
            kms=kms,
            proof_hosts=hosts,
            idempotency_url=idem,
            idempotency_password_ciphertext=sealed,
            assume_role_rate=rate,
            rotation=rotation,
            fc=fc,
        )


def _policy(r: _Reader) -> ApprovalPolicy | None:
    raw = r.raw(POLICY)
    if not raw:
        r.fail(POLICY, "missing: must be set")
        return None
    try:
        return load_approval_policy(raw)
    except PolicyError as exc:
        r.fail(POLICY, str(exc))
        return None


def _check_issuers(r: _Reader, raw: str) -> None:
    from shared.auth.jwt_bearer import parse_issuers  # noqa: PLC0415 - PyJWT, when there are any

    try:
        parse_issuers(raw)
    except ValueError as exc:
        # parse_issuers names the variable itself ("VEND_JWT_ISSUERS[0]: ...")
        why = str(exc).removeprefix(JWT_ISSUERS.name).lstrip(": ")
        r.fail(JWT_ISSUERS, why)


def _endpoint(r: _Reader, var: Variable, default: str | None) -> Endpoint | None:
    """None with a problem when the value is wrong; None without one when it is unset and has
    no default (the variable it defaults from is wrong, and named)."""
    value = r.raw(var) or default
    if not value:
        return None
    parts = urlsplit(value if "://" in value else f"https://{value}")
    has_user = "@" in parts.netloc
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        has_user = True  # not a port: perhaps user:password
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or has_user
    ):
        # user info may be a password: the value is quoted only without it
        shown = "the value" if has_user else bounded(value)
        r.fail(var, f"{shown} must be host[:port] or http(s)://host[:port]")
        return None
    return Endpoint(parts.scheme, parts.netloc)


def _proof_hosts(r: _Reader) -> tuple[str, ...] | None:
    hosts = tuple(h.strip() for h in r.raw(STS_PROOF_HOSTS).split(",") if h.strip())
    bad = [h for h in hosts if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?", h)]
    if bad:
        r.fail(STS_PROOF_HOSTS, ", ".join(bounded(h) for h in bad) + " not host[:port]")
        return None
    return hosts


def _check_sts_targets(r: _Reader, region: str, sts: Endpoint, hosts: tuple[str, ...]) -> None:
    from shared.auth.ram_proof import allowed_sts_targets  # noqa: PLC0415

    try:
        allowed_sts_targets(region, sts.url, hosts)
    except ValueError as exc:
        # each was fine alone; this is how they combine
        r.fail(f"{STS_ENDPOINT.name} / {STS_PROOF_HOSTS.name} / {REGION.name}", str(exc))


def _idempotency_url(r: _Reader) -> str:
    """Never quoted: a Redis URL may hold a password."""
    value = r.raw(IDEMPOTENCY_URL) or "memory://"
    if value == "memory://":
        return value
    scheme = value.partition("://")[0]
    if scheme not in ("redis", "rediss") or not re.fullmatch(r"rediss?://\S+", value):
        r.fail(IDEMPOTENCY_URL, "must be memory:// or redis://host:port/db (rediss:// for TLS)")
        return value
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018
    except ValueError:
        r.fail(IDEMPOTENCY_URL, "the port is not a number")
        return value
    if not parts.hostname:
        r.fail(IDEMPOTENCY_URL, "no host: must be redis://host:port/db")
    elif parts.path.strip("/") and not parts.path.strip("/").isdigit():
        r.fail(IDEMPOTENCY_URL, "the database (the path) is not a number")
    return value


def _idempotency_password(r: _Reader, url: str) -> str | None:
    """KMS's CiphertextBlob is base64 (it names its key inside). Not quoted either: a value
    put here by mistake may be the password itself."""
    value = r.raw(IDEMPOTENCY_PASSWORD_CIPHERTEXT)
    if not value:
        return None
    if not re.fullmatch(r"[A-Za-z0-9+/]{16,8192}={0,2}", value):
        r.fail(IDEMPOTENCY_PASSWORD_CIPHERTEXT, "not a KMS CiphertextBlob (base64)")
        return None
    if not url.startswith(("redis://", "rediss://")):
        r.fail(IDEMPOTENCY_PASSWORD_CIPHERTEXT, "a password for a redis:// VEND_IDEMPOTENCY_URL")
        return None
    if urlsplit(url).password is not None:
        r.fail(
            f"{IDEMPOTENCY_URL.name} / {IDEMPOTENCY_PASSWORD_CIPHERTEXT.name}",
            "the password is given twice: leave it out of the URL",
        )
        return None
    return value


def _rotation(r: _Reader) -> Rotations:
    """The JSON itself, or (as VEND_POLICY) a path to it: FC's environment holds 4 KB in all,
    about 30 applications, and the package can carry a list of thousands."""
    raw = r.raw(ROTATION)
    if raw and not raw.startswith(("[", "{")):
        try:
            raw = Path(raw).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            r.fail(ROTATION, f"cannot read {raw[:256]}: {why}")
            return {}
    try:
        return parse_rotation(raw)
    except RotationSettingsError as exc:
        r.fail(ROTATION, str(exc))
        return {}


def _rate(r: _Reader) -> tuple[float, int] | None:
    """`<calls a second>` or `<calls a second>,<burst>` (the burst defaults to the rate)."""
    value = r.raw(ASSUME_ROLE_RATE)
    if not value:
        return None
    match = re.fullmatch(r"([0-9]{1,4}(?:\.[0-9]{1,3})?)(?:,([0-9]{1,4}))?", value)
    rate = float(match[1]) if match else 0.0
    burst = int(match[2] or max(1, int(rate))) if match else 0
    if not match:
        r.fail(ASSUME_ROLE_RATE, f"{bounded(value)} is not a number: <calls a second>[,<burst>]")
        return None
    if not (0 < rate <= 1000 and 1 <= burst <= 1000):
        r.fail(ASSUME_ROLE_RATE, f"{bounded(value)}: rate and burst must each be 1 to 1000")
        return None
    return rate, burst
