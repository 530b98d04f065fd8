"""What every batch input and output looks like to the run loop, and the hidden names
outputs are written under until they are complete."""

from __future__ import annotations

import logging
import os
import socket
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
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


log = logging.getLogger("scorehouse.batch")


def partial_path(target: Path) -> Path:
    """The hidden name `target` is written under until it is complete:
    `.NAME.partial-HOST-PID` in the same folder, so the final rename is atomic.

    A run killed with SIGKILL (or by the OOM killer) cannot remove its partials; so the
    partials of `target` left by processes of this host that no longer run are removed
    here, before the new one is made. A running job's partial, or one of another host
    (a shared folder), is never touched.
    """
    host = socket.gethostname()
    for stale in target.parent.glob(f".{_glob_escape(target.name)}.partial-*"):
        owner = stale.name[len(target.name) + len(".partial-") + 1:]
        where, _, pid = owner.rpartition("-")
        if where in ("", host) and pid.isdigit() and not _running(int(pid)):
            try:
                stale.unlink()
                log.info("removed %s, left by process %s that no longer runs", stale, pid)
            except FileNotFoundError:  # another run removed it first
                pass
    return target.with_name(f".{target.name}.partial-{host}-{os.getpid()}")


def _running(pid: int) -> bool:
    """True when a process `pid` exists (or we cannot tell): its partial stays."""
    if pid <= 0 or pid == os.getpid():
        return True  # not a pid of another process: keep it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs, as another user
        return True
    return True


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)
