"""The resource names of contract section 1 (`shared.arns`, built by `shared.wire.arns`). The
request models refuse an ID that is not one before an ARN is built; the builders refuse it again,
so that no caller of theirs can widen an ARN or the session policy made from it."""

from __future__ import annotations

import re

import pytest

from shared.arns import application_arn, secret_arn

ACCOUNT = "1234567890123456"
APPLICATION = f"acs:eiam:cn-hangzhou:{ACCOUNT}:instance/idaas_x/application/app_y"


def test_the_arns_of_an_application_and_its_secrets() -> None:
    assert application_arn("cn-hangzhou", ACCOUNT, "idaas_x", "app_y") == APPLICATION
    assert secret_arn("cn-hangzhou", ACCOUNT, "idaas_x", "app_y", "sct_z") == (
        f"{APPLICATION}/secret/sct_z"
    )
    assert secret_arn("cn-hangzhou", ACCOUNT, "idaas_x", "app_y", None) == (
        f"{APPLICATION}/secret/*"  # a create's: no secret yet
    )


@pytest.mark.parametrize(
    "ids",
    [
        pytest.param(("*", "app_y", "sct_z"), id="instance"),
        pytest.param(("idaas_x", "app_y/secret/*", "sct_z"), id="application"),
        pytest.param(("idaas_x", "app_y", "*"), id="secret"),
        pytest.param(("idaas_x", "", "sct_z"), id="empty"),
        pytest.param(("idaas_x", "a" * 65, "sct_z"), id="65-characters"),
        pytest.param(("idaas_x", "app_y", "sct:z"), id="colon"),
    ],
)
def test_an_id_that_could_widen_an_arn_is_refused_by_name(ids: tuple[str, str, str]) -> None:
    """Found by `make mutate`: each ID is checked, and the refusal quotes the one that is not
    an ID."""
    instance, application, secret = ids
    bad = next(value for value in ids if value not in ("idaas_x", "app_y", "sct_z"))
    with pytest.raises(ValueError, match=f"^{re.escape(f'not a valid ID: {bad!r}')}$"):
        secret_arn("cn-hangzhou", ACCOUNT, instance, application, secret)
    if bad != secret:
        with pytest.raises(ValueError, match="not a valid ID"):
            application_arn("cn-hangzhou", ACCOUNT, instance, application)
