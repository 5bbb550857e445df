"""Every numbered section of the contract has a test marked `@pytest.mark.contract("N")` that
proves one of its rules where a caller (or an operator, for the configuration and the command
line) meets it: over HTTP, through FC's invoke API, or by running `vend` as a user does.

The contract lives beside the project (../shared/CONTRACT.md). Its section numbers and titles
are also written below, so that a clone without it still checks the marks, and a contract that
gains or renumbers a section fails here until the list (and a marked test) follows it."""

from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONTRACT = Path(os.environ.get("VEND_CONTRACT", ROOT.parent / "shared" / "CONTRACT.md"))
TEST_DIRS = (ROOT / "tests", ROOT / "client" / "tests")

SECTIONS = {
    "1": "Operations",
    "2": "HTTP API (FC HTTP trigger, and `vend local`)",
    "3": "Authentication",
    "4": "The envelope",
    "5": "The approval policy",
    "6": "Events (other functions invoke the function)",
    "7": "Errors",
    "8": "Idempotent create",
    "9": "Audit",
    "10": "Configuration (environment)",
    "11": "The command line: `vend`",
    "12": "The emulator",
    "13": "The caller's package and agent",
    "14": "A secret's life: current, rotation, retirement",
}
# Sections with no rule a caller meets at the service, and why. None today: the emulator's
# (12) is met by every test that drives the real SDK against it, and is marked where its own
# fidelity is checked.
EXEMPT: dict[str, str] = {}

_HEADING = re.compile(r"^## (\d+)\. (.+?)\s*$", re.M)


def contract_sections(text: str) -> dict[str, str]:
    return dict(_HEADING.findall(text))


def marked_sections(source: str) -> set[str]:
    """The sections named by `pytest.mark.contract("N")` anywhere in a module's source: as a
    decorator, in `pytestmark`, or in a parameter's `marks`."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        func = node.func
        if func.attr != "contract" or not (
            isinstance(func.value, ast.Attribute) and func.value.attr == "mark"
        ):
            continue
        for arg in node.args:
            assert isinstance(arg, ast.Constant) and isinstance(arg.value, str), ast.dump(node)
            found.add(arg.value)
    return found


def marks_by_section() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for directory in TEST_DIRS:
        for path in sorted(directory.glob("test_*.py")):
            for section in marked_sections(path.read_text(encoding="utf-8")):
                found.setdefault(section, []).append(path.name)
    return found


def test_the_section_list_is_the_contracts() -> None:
    if not CONTRACT.is_file():
        # A clone without the contract beside it: the list below is what is checked.
        return
    assert contract_sections(CONTRACT.read_text(encoding="utf-8")) == SECTIONS


def test_every_section_has_a_marked_test() -> None:
    marks = marks_by_section()
    missing = sorted(set(SECTIONS) - set(EXEMPT) - set(marks), key=int)
    assert missing == [], f"no test is marked @pytest.mark.contract(...) for sections {missing}"


def test_every_mark_names_a_section() -> None:
    marks = marks_by_section()
    unknown = {s: files for s, files in marks.items() if s not in SECTIONS}
    assert unknown == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param('@pytest.mark.contract("5")\ndef test_x(): pass\n', {"5"}, id="decorator"),
        pytest.param('pytestmark = pytest.mark.contract("6")\n', {"6"}, id="module"),
        pytest.param('P = [pytest.param(1, marks=pytest.mark.contract("7"))]\n', {"7"}, id="param"),
        pytest.param('@pytest.mark.slow("5")\ndef test_x(): pass\n', set(), id="other-mark"),
        pytest.param('"pytest.mark.contract(\\"5\\")"\n', set(), id="in-a-string"),
    ],
)
def test_marks_are_read_from_the_code_not_its_text(source: str, expected: set[str]) -> None:
    assert marked_sections(source) == expected


def test_headings_are_read_as_the_contract_writes_them() -> None:
    text = "# title\n## 1. Operations\ntext\n### 1.1 not a section\n## 12. The emulator\n"
    assert contract_sections(text) == {"1": "Operations", "12": "The emulator"}
