"""Identifiers in the shapes Alibaba Cloud uses; random where they must not be guessed."""

from __future__ import annotations

import hashlib
import secrets
import string
import uuid

_ALNUM = string.ascii_letters + string.digits
_LOWER = string.ascii_lowercase + string.digits


def request_id() -> str:
    return str(uuid.uuid4()).upper()


def random_string(length: int, alphabet: str = _ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def numeric_id(name: str, digits: int) -> str:
    """A stable numeric id for a seeded entity (RAM user and role ids are numeric)."""
    value = int.from_bytes(hashlib.sha256(name.encode()).digest()[:12], "big")
    return str(value % 10 ** (digits - 1) + 10 ** (digits - 1))


def secret_id() -> str:
    return "sci_" + random_string(26, _LOWER)


def client_secret() -> str:
    return "CS" + random_string(40)


def key_version_id() -> str:
    return str(uuid.uuid4())
