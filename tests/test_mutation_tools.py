"""`make mutate`'s own tools (infra/mutation/): the tree mutmut runs in, and the score it prints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from infra.mutation.groups import GROUPS
from infra.mutation.score import explained, read_scores, table
from infra.mutation.stage import ROOT, stage


def test_the_staged_tree_has_one_wire_for_both_sides(tmp_path: Path) -> None:
    """The caller's package is staged at the top, so its modules keep their names; the service's
    shared.wire.X is the very module vend_client.wire.X, so one mutant of a wire file is live for
    both sides; the group's settings are in the staged pyproject.toml."""
    into = tmp_path / "policy"
    stage(ROOT, into, GROUPS["policy"])
    assert (into / "vend_client" / "wire" / "envelope.py").read_bytes() == (
        ROOT / "client" / "vend_client" / "wire" / "envelope.py"
    ).read_bytes()
    assert (into / "shared" / "wire").is_symlink()
    pyproject = (into / "pyproject.toml").read_text()
    assert 'only_mutate = ["shared/approval.py", "shared/ram_policy/*"]' in pyproject
    mutants = into / "mutants"
    (mutants / "vend_client").symlink_to(into / "vend_client", target_is_directory=True)
    same = subprocess.run(
        [
            sys.executable,
            "-c",
            "import shared.wire.envelope as s, vend_client.wire.envelope as c; print(s is c)",
        ],
        cwd=mutants,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(mutants)},
        check=True,
    )
    assert same.stdout == "True\n"


def test_the_score_counts_what_the_list_explains(tmp_path: Path) -> None:
    meta = tmp_path / "policy" / "mutants" / "shared" / "approval.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {
        "m__mutmut_1": 1,
        "m__mutmut_2": 0,
        "m__mutmut_3": 0,
        "m__mutmut_4": 0,
        "m__mutmut_5": 33,
    }
    meta.write_text(json.dumps({"exit_code_by_key": codes}))
    listed = tmp_path / "equivalents.md"
    listed.write_text(
        "## Killed when switched on by hand\n| `m__mutmut_2` | why |\n"
        "## Equivalent\n| `m__mutmut_3` | why |\n| `gone__mutmut_9` | why |\n"
    )
    scores, unexplained, seen = read_scores(tmp_path, explained(listed))
    (row,) = scores
    assert (row.path, dict(row.counts)) == (
        "shared/approval.py",
        {"killed": 2, "equivalent": 1, "survived": 1, "no tests": 1},
    )
    assert row.score == 0.5
    assert unexplained == ["policy: m__mutmut_4", "policy: m__mutmut_5"]
    assert "gone__mutmut_9" not in seen
    assert table(scores).splitlines()[2].split()[-1] == "50.0%"
