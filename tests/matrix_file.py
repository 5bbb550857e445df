"""A fault matrix's expectation file (tests/fault_matrix.tsv, tests/rotation_matrix.tsv): a
header, then one tab-separated row per cell, whose first columns are the cell's key.

Each cell checks its own row as it ends, so a partial run (`-k`) checks what it runs. With
VEND_UPDATE_FAULT_MATRIX=1 a cell writes its row instead (the file keeps the other cells' rows,
in the cells' order, and loses the rows of cells that no longer exist); nothing then compares
the file with itself. Under CI that variable fails the run: CI checks, it never rewrites.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from ci import under_ci

UPDATE = "VEND_UPDATE_FAULT_MATRIX"

Row = tuple[str, ...]


def updating() -> bool:
    """Whether this run rewrites the matrix files; refused under CI, at collection."""
    if UPDATE in os.environ and under_ci():
        raise pytest.UsageError(f"{UPDATE} is set under CI: CI checks the matrix files")
    return os.environ.get(UPDATE) == "1"


class MatrixFile:
    def __init__(self, path: Path, columns: Row, keys: Sequence[Row]) -> None:
        self.path = path
        self.columns = columns
        self.keys = list(keys)  # every cell's key, in the cells' order
        self.key_width = len(self.keys[0])
        self.update = updating()

    def rows(self) -> dict[Row, Row]:
        """The file's rows by key; the header must be `columns`."""
        if not self.path.exists():
            return {}
        header, *lines = self.path.read_text().splitlines()
        assert tuple(header.split("\t")) == self.columns, f"{self.path.name}: header {header!r}"
        rows = [tuple(line.split("\t")) for line in lines]
        return {row[: self.key_width]: row for row in rows}

    def check(self, observed: Row) -> None:
        """The cell's row is what it observed (or becomes it, when updating)."""
        assert len(observed) == len(self.columns), observed
        key = observed[: self.key_width]
        assert key in self.keys, f"{key} is not a cell"
        if self.update:
            self._write(key, observed)
            return
        expected = self.rows().get(key)
        assert expected is not None, f"{self.path.name} has no row for {key}: {UPDATE}=1 adds it"
        differ = {
            column: f"{want!r} in the file, {got!r} observed"
            for column, want, got in zip(self.columns, expected, observed, strict=True)
            if want != got
        }
        assert differ == {}, f"{self.path.name}, row {key}: {differ}"

    def _write(self, key: Row, row: Row) -> None:
        rows = {**self.rows(), key: row}
        lines = ["\t".join(self.columns)] + ["\t".join(rows[k]) for k in self.keys if k in rows]
        self.path.write_text("\n".join(lines) + "\n")

    def missing_and_extra(self) -> tuple[list[Row], list[Row]]:
        """Cells without a row, and rows of no cell: both empty when the file is whole."""
        rows = self.rows()
        return [k for k in self.keys if k not in rows], [k for k in rows if k not in self.keys]
