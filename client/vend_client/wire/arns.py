"""Resource names of contract section 1, built only from IDs that cannot widen them: an ID is 1 to
64 of `[A-Za-z0-9_-]`, so it never carries a `*`, `?`, `/` or `:`."""

from __future__ import annotations

import re

from .envelope import EnvelopeError

ID_PATTERN = r"[A-Za-z0-9_-]{1,64}"
_ID = re.compile(ID_PATTERN)


def check_ids(*ids: str) -> None:
    for value in ids:
        if not _ID.fullmatch(value):
            raise ValueError(f"not a valid ID: {value!r}")


def application_arn(region: str, account: str, instance_id: str, application_id: str) -> str:
    check_ids(instance_id, application_id)
    return f"acs:eiam:{region}:{account}:instance/{instance_id}/application/{application_id}"


def secret_arn(
    region: str, account: str, instance_id: str, application_id: str, secret_id: str | None
) -> str:
    """The secret's ARN; for `create` (no secret yet) the contract's `.../secret/*`."""
    base = application_arn(region, account, instance_id, application_id)
    if secret_id is None:
        return f"{base}/secret/*"
    check_ids(secret_id)
    return f"{base}/secret/{secret_id}"


def expected_arn_for(
    context_arn: str, instance_id: str, application_id: str, secret_id: str | None
) -> str:
    """The envelope's ARN if it names exactly these IDs (region and account are the service's);
    EnvelopeError if it names another secret."""
    tail = f"instance/{instance_id}/application/{application_id}/secret/{secret_id or '*'}"
    if not re.fullmatch(r"acs:eiam:[a-z0-9-]+:[0-9]{16}:" + re.escape(tail), context_arn):
        raise EnvelopeError(f"the envelope is for {context_arn}, not for {tail}")
    return context_arn
