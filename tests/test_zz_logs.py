"""Runs last (files run in name order): everything the service and the emulator logged during
the whole suite holds no secret, key, token or proof."""

from __future__ import annotations

import re

from conftest import DEMO_SEED, SESSION_LOG

from infra.emulator import load_seed

LEAKS = {
    # Standalone, as a created secret stands in JSON or text; not a run inside a base64 blob.
    "a created client secret": re.compile(
        r"(?<![A-Za-z0-9+/%=])CS[A-Za-z0-9]{40}(?![A-Za-z0-9+/%=])"
    ),
    "an STS security token": re.compile(r"CAIS[A-Za-z0-9]{40,}"),
    "a JWT": re.compile(r"eyJ(hbGci|0eXAi|raWQi)[A-Za-z0-9_-]{10,}"),
    "a RAM proof": re.compile(r"eyJtZXRob2Qi"),
    "an ACS3 signature": re.compile(r"Signature=[0-9a-f]{64}"),
    "a KMS plaintext": re.compile(r'"Plaintext"'),
    "STS credentials": re.compile(r'"AccessKeySecret"'),
}


def test_nothing_secret_was_logged_during_the_suite() -> None:
    text = "\n".join(SESSION_LOG.lines)
    # The suite did log: vend.audit records and the emulator's request lines are in here.
    assert '"decision":"allow"' in text and "vend.emulator" in text
    seed = load_seed(DEMO_SEED)
    seeded = [u.access_key_secret for u in seed.users] + [
        s.client_secret for i in seed.eiam_instances for a in i.applications for s in a.secrets
    ]
    assert [value for value in seeded if value in text] == []
    found = {
        name: sorted({line.split(" ", 1)[0] for line in SESSION_LOG.lines if p.search(line)})
        for name, p in LEAKS.items()
        if p.search(text)
    }
    assert found == {}  # what leaked, and the loggers that logged it
