"""The score of `make mutate` per module, from what mutmut saved in build/mutate/*/mutants (one
tree per group of infra/mutation/groups.py).

    python -m infra.mutation.score [--tree build/mutate] [--check]

One row per mutated file (under its path in the repository): killed (a test failed, or mypy
refused the mutant, or infra/mutation/equivalents.md says a test failed when it was switched on
by hand), timeout, survived, no tests (no selected test calls the function), equivalent (a
survivor the list explains: no test can tell it from the original), not run yet, and the
score: killed and timed out over all but the equivalent and the unrun. Then the survivors that
the list does not explain, each with the command that shows its diff; `--check` makes them an
error.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
EQUIVALENTS = Path(__file__).resolve().parent / "equivalents.md"
COLUMNS = ("killed", "timeout", "survived", "no tests", "equivalent", "not run")
MUTANT_NAME = re.compile(r"`([\w.ǁ]+__mutmut_\d+)`")

# mutmut's exit codes (mutmut/stats.py): a test's exit code, or one of its own for the others
STATUS_BY_EXIT_CODE: dict[int | None, str] = {
    1: "killed",
    3: "killed",  # pytest's internal error: the mutant broke the test run
    37: "killed",  # caught by the type checker
    0: "survived",
    5: "no tests",
    33: "no tests",
    36: "timeout",
    24: "timeout",
    -24: "timeout",
    152: "timeout",
    255: "timeout",
    None: "not run",
}


@dataclass
class ModuleScore:
    path: str
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def score(self) -> float | None:
        judged = sum(self.counts[c] for c in ("killed", "timeout", "survived", "no tests"))
        if judged == 0:
            return None
        return (self.counts["killed"] + self.counts["timeout"]) / judged


@dataclass(frozen=True)
class Explained:
    equivalent: frozenset[str]
    killed_at_import: frozenset[str]

    def __contains__(self, name: object) -> bool:
        return name in self.equivalent or name in self.killed_at_import


def explained(path: Path = EQUIVALENTS) -> Explained:
    """The mutant names the list explains, each in backquotes, under its section's heading."""
    sections: dict[str, set[str]] = {"equivalent": set(), "import": set()}
    current: set[str] | None = None
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    for line in text.splitlines():
        if line.startswith("## "):
            current = sections["import" if "killed" in line.lower() else "equivalent"]
        elif current is not None:
            current.update(m.group(1) for m in MUTANT_NAME.finditer(line))
    return Explained(frozenset(sections["equivalent"]), frozenset(sections["import"]))


def repository_path(staged: str) -> str:
    """The file's path in the repository: the caller's package is staged at the top."""
    return f"client/{staged}" if staged.startswith("vend_client/") else staged


def read_scores(tree: Path, known: Explained) -> tuple[list[ModuleScore], list[str], set[str]]:
    """Scores per module, the unexplained survivors and the names of every mutant seen."""
    scores: list[ModuleScore] = []
    unexplained: list[str] = []
    seen: set[str] = set()
    metas = {
        meta.relative_to(mutants).as_posix().removesuffix(".meta"): (mutants.parent.name, meta)
        for mutants in sorted(tree.glob("*/mutants"))
        for meta in mutants.rglob("*.py.meta")
    }
    for staged, (group, meta) in sorted(metas.items(), key=lambda i: repository_path(i[0])):
        row = ModuleScore(repository_path(staged))
        exit_codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
        for name, code in exit_codes.items():
            seen.add(name)
            status = STATUS_BY_EXIT_CODE.get(code, "suspicious")
            if status in ("survived", "no tests", "suspicious"):
                if name in known.killed_at_import:
                    status = "killed"
                elif name in known.equivalent:
                    status = "equivalent"
                else:
                    unexplained.append(f"{group}: {name}")
            row.counts[status] += 1
        if exit_codes:
            scores.append(row)
    return scores, unexplained, seen


def table(scores: list[ModuleScore]) -> str:
    total = ModuleScore("total")
    for row in scores:
        total.counts.update(row.counts)
    width = max(len(row.path) for row in [*scores, total])
    head = f"{'module':<{width}}  " + "  ".join(f"{c:>10}" for c in COLUMNS) + "       score"
    lines = [head, "-" * len(head)]
    for row in [*scores, total]:
        figures = "  ".join(f"{row.counts[c]:>10}" for c in COLUMNS)
        score = "-" if row.score is None else f"{row.score:.1%}"
        lines.append(f"{row.path:<{width}}  {figures}  {score:>10}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.mutation.score", description=__doc__)
    parser.add_argument("--tree", type=Path, default=ROOT / "build" / "mutate")
    parser.add_argument("--check", action="store_true", help="fail on an unexplained survivor")
    args = parser.parse_args(argv)
    known = explained()
    scores, unexplained, seen = read_scores(args.tree, known)
    if not scores:
        print(f"no mutmut results under {args.tree}/*/mutants: run `make mutate` first")
        return 1
    print(table(scores))
    stale = sorted((known.equivalent | known.killed_at_import) - seen)
    if stale:
        print(f"\n{len(stale)} listed as equivalent but no longer generated (update the list):")
        print("\n".join(f"  {name}" for name in stale))
    if unexplained:
        show = f"cd {args.tree}/GROUP && ../../../.venv/bin/mutmut show NAME"
        print(f"\n{len(unexplained)} unexplained, by group (the diff of one: {show}):")
        print("\n".join(f"  {name}" for name in unexplained))
    return 1 if args.check and unexplained else 0


if __name__ == "__main__":
    raise SystemExit(main())
