"""Configuration from the environment (contract section 10), read and checked once at start.
A bad value stops the service with a message that names the variable."""

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


class ConfigError(ValueError):
    pass


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
        custom runtime has no context, but FC sets `FC_ACCOUNT_ID` in its environment."""
        region = _get(env, "VEND_REGION", region, r"[a-z]{2,}-[a-z0-9-]+")
        account = _get(env, "VEND_ACCOUNT_ID", account_id or env.get("FC_ACCOUNT_ID"), r"[0-9]{16}")
        role_arn = _get(
            env, "VEND_ROLE_ARN", None, r"acs:ram::[0-9]{16}:role/[A-Za-z0-9.@_-]{1,64}"
        )
        key = _get(env, "VEND_KMS_KEY_ID", None, r"[A-Za-z0-9:/_.-]{1,256}")
        audience = _get(env, "VEND_AUDIENCE", None, r"[\x21-\x7e]{1,256}")
        raw_policy = _get(env, "VEND_POLICY", None, None)
        try:
            policy = load_approval_policy(raw_policy)
        except PolicyError as exc:
            raise ConfigError(f"VEND_POLICY: {exc}") from None
        hosts = tuple(
            h.strip() for h in env.get("VEND_STS_PROOF_HOSTS", "").split(",") if h.strip()
        )
        for host in hosts:
            if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?", host):
                raise ConfigError(f"VEND_STS_PROOF_HOSTS: {host!r} is not host[:port]")
        idem = env.get("VEND_IDEMPOTENCY_URL", "").strip() or "memory://"
        if not re.fullmatch(r"memory://|rediss?://\S+", idem):
            raise ConfigError("VEND_IDEMPOTENCY_URL: must be memory:// or redis://host:port/db")
        return cls(
            region=region,
            account_id=account,
            role_arn=role_arn,
            kms_key_id=key,
            policy=policy,
            audience=audience,
            jwt_issuers_json=env.get("VEND_JWT_ISSUERS") or None,
            sts=_endpoint(env, "VEND_STS_ENDPOINT", f"sts.{region}.aliyuncs.com"),
            eiam=_endpoint(env, "VEND_EIAM_ENDPOINT", f"eiam.{region}.aliyuncs.com"),
            kms=_endpoint(env, "VEND_KMS_ENDPOINT", f"kms.{region}.aliyuncs.com"),
            proof_hosts=hosts,
            idempotency_url=idem,
            assume_role_rate=_rate(env, "VEND_ASSUME_ROLE_RATE"),
            rotation=_rotation(env, "VEND_ROTATION"),
            fc=_endpoint(env, "VEND_FC_ENDPOINT", default_fc_endpoint(account, region)),
        )


def _get(env: Mapping[str, str], name: str, default: str | None, pattern: str | None) -> str:
    value = (env.get(name) or "").strip() or default
    if not value:
        raise ConfigError(f"{name}: must be set")
    if pattern and not re.fullmatch(pattern, value):
        raise ConfigError(f"{name}: {value!r} is not valid")
    return value


def _endpoint(env: Mapping[str, str], name: str, default: str) -> Endpoint:
    value = (env.get(name) or "").strip() or default
    parts = urlsplit(value if "://" in value else f"https://{value}")
    if (
        parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or "@" in parts.netloc
    ):
        raise ConfigError(f"{name}: {value!r} must be host[:port] or http(s)://host[:port]")
    return Endpoint(parts.scheme, parts.netloc)


def _rotation(env: Mapping[str, str], name: str) -> Rotations:
    """The JSON itself, or (as VEND_POLICY) a path to it: FC's environment holds 4 KB in all,
    about 30 applications, and the package can carry a list of thousands."""
    raw = (env.get(name) or "").strip()
    if raw and not raw.startswith(("[", "{")):
        try:
            raw = Path(raw).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = getattr(exc, "strerror", None) or "not UTF-8 text"
            raise ConfigError(f"{name}: cannot read {raw[:256]}: {why}") from None
    try:
        return parse_rotation(raw)
    except RotationSettingsError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _rate(env: Mapping[str, str], name: str) -> tuple[float, int] | None:
    """`<calls a second>` or `<calls a second>,<burst>` (the burst defaults to the rate)."""
    value = (env.get(name) or "").strip()
    if not value:
        return None
    match = re.fullmatch(r"([0-9]{1,4}(?:\.[0-9]{1,3})?)(?:,([0-9]{1,4}))?", value)
    rate = float(match[1]) if match else 0.0
    burst = int(match[2] or max(1, int(rate))) if match else 0
    if not (0 < rate <= 1000 and 1 <= burst <= 1000):
        raise ConfigError(
            f"{name}: {value!r} must be <calls a second>[,<burst>], each from 1 to 1000"
        )
    return rate, burst
