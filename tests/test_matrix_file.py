"""tests/matrix_file.py, what the fault matrices check their rows with: a cell's row is compared
column by column, VEND_UPDATE_FAULT_MATRIX=1 writes the row instead (keeping the others, in the
cells' order), and CI refuses to rewrite."""

from __future__ import annotations

from pathlib import Path

import pytest
from matrix_file import UPDATE, MatrixFile, updating

COLUMNS = ("upstream", "fault", "status", "code")
KEYS = [("sts", "503"), ("sts", "reset"), ("kms", "503")]
TEXT = "upstream\tfault\tstatus\tcode\nsts\t503\t502\tUpstreamError\nkms\t503\t502\tUpstreamError\n"


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(UPDATE, raising=False)
    monkeypatch.delenv("CI", raising=False)
    file = tmp_path / "matrix.tsv"
    file.write_text(TEXT)
    return file


def test_a_cell_whose_row_differs_fails_naming_the_column(path: Path) -> None:
    matrix = MatrixFile(path, COLUMNS, KEYS)
    matrix.check(("sts", "503", "502", "UpstreamError"))
    with pytest.raises(AssertionError, match=r"\('sts', '503'\).*'status': \"'502' in the file"):
        matrix.check(("sts", "503", "503", "UpstreamError"))
    with pytest.raises(AssertionError, match="has no row for"):
        matrix.check(("sts", "reset", "502", "UpstreamError"))
    assert matrix.missing_and_extra() == ([("sts", "reset")], [])


def test_updating_writes_the_cells_row_and_keeps_the_others_in_order(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPDATE, "1")
    matrix = MatrixFile(path, COLUMNS, KEYS)
    matrix.check(("sts", "reset", "502", "UpstreamError"))
    matrix.check(("sts", "503", "503", "ServiceUnavailable"))
    assert path.read_text().splitlines() == [
        "upstream\tfault\tstatus\tcode",
        "sts\t503\t503\tServiceUnavailable",
        "sts\treset\t502\tUpstreamError",
        "kms\t503\t502\tUpstreamError",
    ]
    assert matrix.missing_and_extra() == ([], [])


@pytest.mark.parametrize("value", ["1", "0", ""])
def test_the_update_variable_under_ci_fails_the_run(
    path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv(UPDATE, value)
    with pytest.raises(pytest.UsageError, match="under CI"):
        updating()
    with pytest.raises(pytest.UsageError):
        MatrixFile(path, COLUMNS, KEYS)
    monkeypatch.delenv(UPDATE)
    assert updating() is False
