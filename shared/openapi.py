"""The OpenAPI 3.1 document of the HTTP API (`GET /v1/openapi.json`), built from the very models
the handlers validate with; imported on that route's first request only."""

from __future__ import annotations

from typing import Any

from pydantic.json_schema import models_json_schema

from shared.models import (
    IDEMPOTENCY_KEY_PATTERN,
    CreateRequest,
    CurrentRequest,
    ErrorResponse,
    Health,
    ObtainRequest,
    RotateRequest,
    RotationResponse,
    VendResponse,
)
from shared.readiness import Readiness

_REQUESTS = (ObtainRequest, CreateRequest, CurrentRequest, RotateRequest)


def openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 of the HTTP API, from the very models the handlers validate with."""
    _, defs = models_json_schema(
        [
            (m, "validation" if m in _REQUESTS else "serialization")
            for m in (*_REQUESTS, VendResponse, RotationResponse, ErrorResponse, Health, Readiness)
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

    def vend(
        model: str,
        summary: str,
        idempotent: bool,
        answer: str = "VendResponse",
        answered: str = "the secret, sealed for the caller",
    ) -> dict[str, Any]:
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
                    "description": answered,
                    "content": {
                        "application/json": {"schema": {"$ref": f"#/components/schemas/{answer}"}}
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
                    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
                }
            ]
        return {"post": op}

    return {
        "openapi": "3.1.0",
        "info": {"title": "secret-vending", "version": "1"},
        "paths": {
            "/v1/secrets/obtain": vend("ObtainRequest", "Obtain a client secret, sealed", False),
            "/v1/secrets/create": vend("CreateRequest", "Create a client secret, sealed", True),
            "/v1/secrets/current": vend(
                "CurrentRequest", "Obtain the application's current client secret, sealed", False
            ),
            "/v1/secrets/rotate": vend(
                "RotateRequest",
                "Take an application's next rotation step (create, disable, delete, or none)",
                False,
                "RotationResponse",
                "the step taken (with dry_run, the one that would be) and the state after it",
            ),
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
            "/v1/ready": {
                "get": {
                    "summary": "Readiness: the configuration and policy loaded, the idempotency "
                    "store answers, each JWT issuer's key set was fetched (no EIAM call)",
                    "responses": {
                        str(status): {
                            "description": description,
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Readiness"}
                                }
                            },
                        }
                        for status, description in (
                            (200, "ready"),
                            (503, "not ready: the failing checks' names"),
                        )
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
