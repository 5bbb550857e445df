"""`VendedSecret`: an opened client secret with what a caller needs beside it (contract 13)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .response import VendResponse

__all__ = ["VendedSecret"]


@dataclass(frozen=True)
class VendedSecret:
    """What OAuth needs (`client_id` and `client_secret`) and what a rotation-aware caller reads
    (`secret_id`, `status`, `expiration_time` in epoch milliseconds, None when it has none).

    The secret is in neither `repr` nor `str`: a debugger's capture of locals, a crash report or
    an f-string in a log line must not carry it."""

    instance_id: str
    application_id: str
    secret_id: str
    client_id: str | None
    client_secret: str = field(repr=False)
    status: str | None
    expiration_time: int | None

    def __str__(self) -> str:
        return repr(self)

    @classmethod
    def of(cls, response: VendResponse, client_secret: str) -> VendedSecret:
        return cls(
            instance_id=response.instance_id,
            application_id=response.application_id,
            secret_id=response.secret_id,
            client_id=response.client_id,
            client_secret=client_secret,
            status=response.status,
            expiration_time=response.expiration_time,
        )
