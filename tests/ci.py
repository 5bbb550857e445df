"""Whether this run is CI's: CI sets `CI` (to `true`); there, what a developer may let pass
(a skipped check, a rewritten expectation file) fails instead."""

from __future__ import annotations

import os


def under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
