"""The idempotency record (contract section 8): what a store keeps under one key.

Under an idempotency key, a record is either `in_progress` (an attempt owns the key until
`lapse_at_ms`) or `created` (EIAM created `secret_id`; every retry re-obtains that secret).
Under an application, a `lease` record serializes creates (shared.create_lease): it names the
attempt that holds the application (`holder`, its key's store key, or None for a create without
a key, and that request's `request_hash`) and, while a create it sent has an unknown outcome,
the application's secrets listed just before (`before_secret_ids`). `token` identifies the
attempt that owns the record, for the stores' compare-and-set primitives. Records travel
between the stores and their backends as compact JSON."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

HexSha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
EpochMs = Annotated[int, Field(ge=0)]


class IdempotencyRecord(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    status: Literal["in_progress", "created", "lease"]
    request_hash: HexSha256  # hex sha256 of the request (lower case, as hashlib's hexdigest)
    token: Annotated[str, StringConstraints(min_length=1)]  # the owning attempt's random id
    lapse_at_ms: EpochMs  # in_progress: when the mark lapses (the request's deadline), epoch ms
    before_secret_ids: tuple[str, ...] | None = None  # lease: the secrets before a create was sent
    secret_id: str | None = None  # set once EIAM created the secret (status "created")
    created_at_ms: EpochMs
    holder: str | None = None  # lease: the holding attempt's key record, if it has a key

    @model_validator(mode="after")
    def _status_matches_secret(self) -> IdempotencyRecord:
        if self.status == "created" and self.secret_id is None:
            raise ValueError("a created record names its secret_id")
        if self.status != "created" and self.secret_id is not None:
            raise ValueError("only a created record has a secret_id")
        if self.status != "lease" and self.holder is not None:
            raise ValueError("only an application's lease has a holder")
        return self

    def to_json(self) -> str:
        """Compact JSON, every field present (None as null)."""
        return self.model_dump_json()

    @classmethod
    def from_json(cls, data: str | bytes) -> IdempotencyRecord:
        """The record `to_json` wrote; raises pydantic's ValidationError (a ValueError) else."""
        return cls.model_validate_json(data)
