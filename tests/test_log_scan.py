"""The session's log check (log_scan.py, hooked in by conftest.py) fails a run in which any line
is not JSON or holds a secret, whichever test wrote it and wherever that test ran in the order,
and names where the line came from without printing it. Shown on a session of its own, run as
a separate pytest process with this suite's conftest.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
SECRET = "demo-billing-secret-0001"  # billing's access key secret, examples/seed.yaml

PLANTED = f'''
import logging
import sys

from processes import Server


def test_a_process_logs_plain_text() -> None:
    code = "import sys, time; print('plain text, not JSON', file=sys.stderr, flush=True); "
    code += "print('up', flush=True); time.sleep(60)"
    server = Server([sys.executable, "-c", code], "a planted process")
    try:
        server.wait_for("^up$")  # its log line is written
    finally:
        server.stop()


def test_a_record_holds_a_secret() -> None:
    logging.getLogger("vend").warning("the key is %s", "{SECRET}")


def test_and_the_last_test_is_clean() -> None:
    logging.getLogger("vend").info("nothing to see")
'''

CLEAN = """
import logging


def test_clean() -> None:
    logging.getLogger("vend").warning("a plain message, written as JSON")
"""


def _session(tmp_path: Path, tests: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    (tmp_path / "test_planted.py").write_text(tests)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_line_that_is_not_json_or_holds_a_secret_fails_the_run(tmp_path: Path) -> None:
    done = _session(tmp_path, PLANTED)
    assert "3 passed" in done.stdout, done.stdout
    assert done.returncode == 1, done.stdout
    assert "a planted process (stderr), line 1: not JSON" in done.stdout
    assert "logger vend: holds the access key secret of billing" in done.stdout
    assert SECRET not in done.stdout + done.stderr
    assert "plain text, not JSON" not in done.stdout + done.stderr


def test_a_clean_session_passes(tmp_path: Path) -> None:
    done = _session(tmp_path, CLEAN)
    assert done.returncode == 0, done.stdout
    assert "log lines checked: 1 (service)" in done.stdout
