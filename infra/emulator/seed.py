"""The seed file (contract section 12): validated once at start, so a typo stops the emulator."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_NAME = r"^[A-Za-z0-9._@-]{1,64}$"
_ID = r"^[A-Za-z0-9_-]{1,64}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PolicyDoc = dict[str, Any]


class User(_Model):
    name: str = Field(pattern=_NAME)
    access_key_id: str = Field(pattern=r"^[A-Za-z0-9]{8,64}$")
    access_key_secret: str = Field(min_length=8, max_length=128)
    policies: tuple[PolicyDoc, ...] = ()

    @field_validator("access_key_id")
    @classmethod
    def _not_sts(cls, value: str) -> str:
        if value.startswith("STS"):
            raise ValueError("the prefix STS is reserved for keys the emulator issues")
        return value


class Role(_Model):
    name: str = Field(pattern=_NAME)
    trust_policy: PolicyDoc
    policies: tuple[PolicyDoc, ...] = ()
    max_session_duration: int = Field(default=3600, ge=3600, le=43200)


class KmsKey(_Model):
    key_id: str = Field(pattern=_ID)
    aliases: tuple[str, ...] = ()

    @field_validator("aliases")
    @classmethod
    def _alias_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for alias in value:
            if not re.fullmatch(r"alias/[A-Za-z0-9:/_-]{1,255}", alias):
                raise ValueError(f"alias {alias!r} must look like alias/name")
        return value


class Secret(_Model):
    secret_id: str = Field(pattern=_ID)
    client_secret: str = Field(min_length=1, max_length=256)
    status: Literal["enabled", "disabled"] = "enabled"
    expiration_time: int | None = None
    last_used_time: int | None = None


class Application(_Model):
    application_id: str = Field(pattern=_ID)
    client_id: str | None = Field(default=None, pattern=_ID)
    secrets: tuple[Secret, ...] = Field(default=(), max_length=2)


class Instance(_Model):
    instance_id: str = Field(pattern=_ID)
    applications: tuple[Application, ...] = ()
    # The `expires_in` of the M2M access tokens the instance's token endpoint issues (3600 in
    # IDaaS's example answer; infra/ASSUMPTIONS.md T5). Short ones let tests see tokens expire.
    access_token_expires_in: int = Field(default=3600, ge=1, le=86400)


class Fault(_Model):
    """One injected fault. `phase` is ours: "before" answers in place of the action, which does
    not happen; "after" runs the action, then answers the fault, which is how an answer lost
    after the upstream acted is simulated.

    What is answered, besides `latency_ms` (slept first, alone or with one of these):
    - `status` (with `code`, `message`, `retry_after_s`): an Alibaba Cloud JSON error;
    - `status` with `body: html`: that status with an HTML page, as a gateway in front of the
      API answers it (no JSON, so no code nor message);
    - `reset: true`: no answer at all, the TCP connection is reset once the request is read;
    - `malformed: true`: a 200 whose JSON has only the RequestId, none of the action's fields;
      `malformed: not-json`: a 200 whose body is not JSON.
    """

    action: str = Field(pattern=r"^(\*|[A-Za-z]{1,64})$")
    latency_ms: int = Field(default=0, ge=0, le=120_000)
    status: int | None = Field(default=None, ge=400, le=599)
    code: str | None = Field(default=None, min_length=1, max_length=128)
    message: str | None = Field(default=None, max_length=512)
    rate: float = Field(default=1.0, ge=0.0, le=1.0)
    retry_after_s: int | None = Field(default=None, ge=1, le=3600)
    phase: Literal["before", "after"] = "before"
    times: int | None = Field(default=None, ge=1)
    body: Literal["json", "html"] = "json"
    reset: bool = False
    malformed: bool | Literal["not-json"] = False

    @model_validator(mode="after")
    def _one_answer(self) -> Fault:
        error_fields = [
            name
            for name in ("status", "code", "message", "retry_after_s")
            if getattr(self, name) is not None
        ]
        if self.body == "html":
            error_fields.append("body")
        if self.reset and (error_fields or self.malformed):
            extra = [*error_fields, *(["malformed"] if self.malformed else [])]
            raise ValueError(f"reset sends no answer: it takes none of {', '.join(extra)}")
        if self.malformed and error_fields:
            raise ValueError(f"malformed answers a 200: it takes none of {', '.join(error_fields)}")
        if self.body == "html":
            if self.status is None:
                raise ValueError("body: html is the page of an error status: give status")
            if self.code is not None or self.message is not None:
                raise ValueError("body: html carries no code nor message (it is not JSON)")
        return self


class Seed(_Model):
    account_id: str = Field(pattern=r"^[0-9]{16}$")
    region: str = Field(default="cn-hangzhou", pattern=r"^[a-z]{2,}-[a-z0-9-]+$")
    users: tuple[User, ...] = ()
    roles: tuple[Role, ...] = ()
    kms_keys: tuple[KmsKey, ...] = ()
    eiam_instances: tuple[Instance, ...] = ()
    faults: tuple[Fault, ...] = ()


def load_seed(path: str | Path) -> Seed:
    """Reads a seed from a JSON or YAML file (YAML is a superset, so one parser serves both)."""
    text = Path(path).read_text(encoding="utf-8")
    return parse_seed(text)


def parse_seed(text: str | dict[str, Any]) -> Seed:
    data = yaml.safe_load(text) if isinstance(text, str) else text
    if not isinstance(data, dict):
        raise ValueError("a seed must be a mapping at the top level")
    # Normalise YAML-only types (dates) the JSON way before validating.
    return Seed.model_validate(json.loads(json.dumps(data, default=str)))
