"""What every batch input and output looks like to the run loop: a `Source` of record
batches (with the malformed records it met) and a `Sink` that commits or aborts."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


@dataclass
class Malformed:
    """An input record that could not even be split into columns (counted as rejected)."""

    row: int
    reason: str
    text: str


@dataclass
class Source:
    """An input opened for streaming: record batches in order, and malformed records seen."""

    uri: str
    fmt: str
    batches: Iterator[pa.RecordBatch]
    malformed: list[Malformed] = field(default_factory=list)
    #: Size of the input in `unit` ('bytes' or 'rows'), when known, for progress and ETA.
    total: int | None = None
    unit: str = "rows"
    columns: list[str] | None = None
    done: Callable[[], int] | None = None
    checksum: Callable[[], str | None] = lambda: None

    def describe(self) -> dict[str, Any]:
        """Where the input came from and its checksum, for the run manifest."""
        return {"uri": self.uri, "format": self.fmt, "sha256": self.checksum()}


class Sink(ABC):
    """Where scored rows go; nothing is visible under the final name until `commit`."""

    rows: int = 0

    @abstractmethod
    def write(self, table: pa.Table) -> None:
        """Append scored rows (one chunk)."""

    @abstractmethod
    def commit(self, empty_schema: pa.Schema) -> None:
        """Make the output final (rename a file, commit a transaction)."""

    @abstractmethod
    def abort(self) -> None:
        """Undo what `write` did, where the target allows it."""

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """Where the output went, for the run manifest."""
