"""The service signs with `alibabacloud-openapi-util`'s ACS3-HMAC-SHA256 signer, which imports in
a quarter of the time of tea-openapi's module (shared/upstream/transport.py). tea-openapi 0.4
carries the same function; this holds that the two sign every request alike, so the service's
requests are exactly what the SDK's `call_api` would send."""

from __future__ import annotations

from alibabacloud_openapi_util.client import Client as Signer
from alibabacloud_tea_openapi.utils import Utils
from darabonba.request import DaraRequest
from hypothesis import given, settings
from hypothesis import strategies as st
from Tea.request import TeaRequest

from shared.upstream.transport import SIGNATURE_ALGORITHM

_text = st.text(min_size=0, max_size=40)
_names = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-",
    min_size=1,
    max_size=20,
)


@settings(max_examples=200, deadline=None)
@given(
    query=st.dictionaries(_names, _text, max_size=6),
    extra=st.dictionaries(_names.map(lambda n: "x-acs-" + n.lower()), _text, max_size=3),
    secret=st.text(min_size=1, max_size=40),
)
def test_both_signers_sign_every_request_alike(
    query: dict[str, str], extra: dict[str, str], secret: str
) -> None:
    headers = {
        "host": "eiam.cn-hangzhou.aliyuncs.com",
        "x-acs-action": "ObtainApplicationClientSecret",
        "x-acs-version": "2021-12-01",
        "x-acs-date": "2026-12-02T00:00:00Z",
        "x-acs-signature-nonce": "n",
        "user-agent": "ignored by the canonical form",
        **extra,
    }
    ours, theirs = TeaRequest(), DaraRequest()
    for request in (ours, theirs):
        request.method, request.pathname = "POST", "/"
        request.query, request.headers = dict(query), dict(headers)
    payload = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert Signer.get_authorization(
        ours, SIGNATURE_ALGORITHM, payload, "LTAI5tTestOnly000001", secret
    ) == Utils.get_authorization(
        theirs, SIGNATURE_ALGORITHM, payload, "LTAI5tTestOnly000001", secret
    )
