"""The models at the service's edges (contract sections 1, 2 and 4). Unknown fields are refused,
and every ID is checked here, before anything else sees it."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, field_validator
from pydantic.json_schema import models_json_schema

DAY_MS = 24 * 3600 * 1000
MAX_EXPIRATION_MS = 3 * 365 * DAY_MS

Id = Annotated[StrictStr, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
IdempotencyKey = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ObtainRequest(_Strict):
    """POST /v1/secrets/obtain"""

    instance_id: Id
    application_id: Id
    secret_id: Id


class CreateRequest(_Strict):
    """POST /v1/secrets/create"""

    instance_id: Id
    application_id: Id
    expiration_time: StrictInt | None = Field(
        default=None, description="ms since the epoch, 1 day to 3 years from now"
    )

    @field_validator("expiration_time")
    @classmethod
    def _bounded(cls, value: int | None) -> int | None:
        # Checked here, against the clock at validation; the error code is set by the caller.
        if value is None:
            return None
        now = int(time.time() * 1000)
        if not now + DAY_MS <= value <= now + MAX_EXPIRATION_MS:
            raise ValueError("expiration_time must be 1 day to 3 years from now, in milliseconds")
        return value


class Envelope(_Strict):
    format: Literal["vend-envelope/1"] = "vend-envelope/1"
    alg: Literal["AES-256-GCM"] = "AES-256-GCM"
    key_id: str
    encrypted_data_key: str
    iv: str
    ciphertext: str
    encryption_context: dict[str, str]


class VendResponse(_Strict):
    request_id: str
    upstream_request_id: str | None
    instance_id: str
    application_id: str
    client_id: str | None
    secret_id: str
    status: Literal["enabled", "disabled"] | None
    expiration_time: int | None
    last_used_time: int | None
    envelope: Envelope


class ErrorDetail(_Strict):
    code: str
    message: str
    request_id: str


class ErrorResponse(_Strict):
    error: ErrorDetail


class Health(_Strict):
    status: Literal["ok"] = "ok"


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 of the HTTP API, from the very models the handlers validate with."""
    _, defs = models_json_schema(
        [
            (m, "validation" if m in (ObtainRequest, CreateRequest) else "serialization")
            for m in (ObtainRequest, CreateRequest, VendResponse, ErrorResponse, Health)
        ],
        ref_template="#/components/schemas/{model}",
    )
    errors = {
        str(status): {
            "description": desc,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
            },
        }
        for status, desc in (
            (400, "invalid input"),
            (401, "not authenticated"),
            (403, "not approved"),
            (404, "not found"),
            (409, "quota exceeded, or the idempotency key is in use"),
            (413, "body over 64 KiB"),
            (422, "idempotency key reused with another request"),
            (429, "throttled upstream"),
            (502, "upstream error"),
            (504, "upstream timeout"),
        )
    }

    def vend(model: str, summary: str, idempotent: bool) -> dict[str, Any]:
        op: dict[str, Any] = {
            "summary": summary,
            "security": [{"bearer": []}, {"ram": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}
                },
            },
            "responses": {
                "200": {
                    "description": "the secret, sealed for the caller",
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/VendResponse"}
                        }
                    },
                },
                **errors,
            },
        }
        if idempotent:
            op["parameters"] = [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,128}$"},
                }
            ]
        return {"post": op}

    return {
        "openapi": "3.1.0",
        "info": {"title": "secret-vending", "version": "1"},
        "paths": {
            "/v1/secrets/obtain": vend("ObtainRequest", "Obtain a client secret, sealed", False),
            "/v1/secrets/create": vend("CreateRequest", "Create a client secret, sealed", True),
            "/v1/health": {
                "get": {
                    "summary": "Liveness",
                    "responses": {
                        "200": {
                            "description": "ok",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Health"}
                                }
                            },
                        }
                    },
                }
            },
            "/v1/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {"200": {"description": "OpenAPI 3.1"}},
                }
            },
        },
        "components": {
            "schemas": defs["$defs"],
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "ram": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "RAM <proof>: a signed, unsent STS GetCallerIdentity request",
                },
            },
        },
    }
