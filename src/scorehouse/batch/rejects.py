"""The rejects file: one CSV line per problem (row, column, reason, value), written as it goes."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

from ..scorer.runs import partial_path

HEADER = ("row", "column", "reason", "value")


class RejectsFile:
    """A CSV of rejected rows under a temporary name until `commit` renames it into place."""

    def __init__(self, path: Path):
        self.path = path
        self.rows = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._partial = partial_path(path)
        self._fh: io.TextIOWrapper = open(self._partial, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._csv = csv.writer(self._fh)
        self._csv.writerow(HEADER)

    def write(self, row: int, column: str | None, reason: str, value: str | None) -> None:
        """Record one problem with one row."""
        self._csv.writerow((row, column or "", reason, "" if value is None else value))
        self.rows += 1

    def commit(self) -> None:
        """Close the file and move it into place."""
        self._fh.close()
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        """Remove the partial file."""
        self._fh.close()
        self._partial.unlink(missing_ok=True)

    def describe(self) -> dict[str, Any]:
        """Where the rejects went, for the run manifest."""
        return {"uri": str(self.path), "problems": self.rows}
