"""The embedded sink: a Parquet dataset, `<root>/model=<name>/date=<YYYY-MM-DD>/*.parquet`.

Readers see whole files only. Rows of an open file go first to a journal next to it, an
Arrow IPC stream (`.<name>.arrows`, hidden) appended at every drain of the logger's queue,
so a kill -9 loses nothing the journal received. A file closes by size (`rotate_mb` of Arrow
data), by age (`rotate_seconds`), when the rows' columns change, or on `close()`: the
journal is rewritten as Parquet under a temporary name (`.<name>.parquet.tmp`) that is then
renamed to `<name>.parquet` (atomic on one file system), and deleted. Names start with
the UTC time the file opened (`20260101T120000123456Z-<pid>-<n>`), so they sort by time.

Each journal is held under an exclusive `flock` while its writer lives; a sink opening the
dataset turns every journal it can lock (its writer died) into Parquet (`recover`).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import itertools
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..records import FIXED
from .base import Sink

log = logging.getLogger("scorehouse.monitor.log")
_DAY_US = 86_400_000_000
_sequence = itertools.count()


@dataclass
class _Journal:
    """One open file: its Arrow IPC journal and where its Parquet file will go."""

    folder: Path
    stem: str
    schema: pa.Schema
    opened: float  # time.monotonic() seconds
    writer: Any = None
    out: Any = None
    lock: IO[bytes] | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.folder / f".{self.stem}.arrows"

    def open(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.out = pa.OSFile(str(self.path), "wb")  # unbuffered: each write reaches the OS
        self.lock = open(self.path, "rb")  # noqa: SIM115 - held for the journal's life
        fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.writer = pa.ipc.new_stream(self.out, self.schema)

    def write(self, batch: pa.RecordBatch) -> int:
        """Append `batch`; the journal's size in bytes."""
        self.writer.write_batch(batch)
        return int(self.out.tell())

    def close(self) -> None:
        """Close the journal, publish it as Parquet, delete it."""
        self.writer.close()
        self.out.close()
        publish(self.path)
        if self.lock is not None:
            self.lock.close()


def publish(journal: Path) -> Path | None:
    """Rewrite an IPC journal as `<stem>.parquet` (temporary name, then rename) and delete
    it; a truncated journal (its writer killed mid-write) keeps its whole batches. Returns
    the Parquet file, or None when the journal held no rows."""
    stem = journal.name[1:-len(".arrows")]
    batches: list[pa.RecordBatch] = []
    schema = None
    try:
        with pa.OSFile(str(journal), "rb") as f:
            reader = pa.ipc.open_stream(f)
            schema = reader.schema
            for batch in reader:
                batches.append(batch)
    except (pa.ArrowInvalid, OSError) as e:
        if schema is None:
            log.warning("prediction log journal %s unreadable (%s): removed", journal, e)
    target = None
    if batches and schema is not None:
        tmp = journal.with_name(f".{stem}.parquet.tmp")
        pq.write_table(pa.Table.from_batches(batches, schema), tmp, compression="zstd")
        target = journal.with_name(f"{stem}.parquet")
        os.replace(tmp, target)
    journal.unlink(missing_ok=True)
    return target


def recover(root: Path) -> list[Path]:
    """Publish the journals under `root` whose writer is gone (their lock is free)."""
    done = []
    for journal in sorted(root.glob("model=*/date=*/.*.arrows")):
        try:
            with open(journal, "rb") as f:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)  # fails while its writer lives
                published = publish(journal)
        except (BlockingIOError, FileNotFoundError):
            continue
        log.warning("recovered the prediction log journal %s of a process that did not "
                    "close it", journal)
        if published is not None:
            done.append(published)
    return done


class ParquetSink(Sink):
    """A Parquet dataset partitioned `model=<name>/date=<YYYY-MM-DD>` (UTC) under `root`.

    Raises (on open):
        OSError: `root` cannot be created.
    """

    kind = "parquet"

    def __init__(self, root: str | os.PathLike[str], *, rotate_mb: float = 128.0,
                 rotate_seconds: float = 3600.0) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.rotate_bytes = int(rotate_mb * 1024 * 1024)
        self.rotate_seconds = rotate_seconds
        self._open: dict[tuple[str, str], _Journal] = {}
        recover(self.root)

    def write(self, batch: pa.RecordBatch) -> None:
        for (model, date), part in _partitions(batch):
            key = (model, date)
            journal = self._open.get(key)
            if journal is not None and part.schema != journal.schema:
                conformed = _conform(part, journal.schema)
                if conformed is None:  # new columns or types: this file is done
                    self._close(key)
                    journal = None
                else:
                    part = conformed
            if journal is None:
                journal = self._open[key] = self._new(model, date, part.schema)
            if journal.write(part) >= self.rotate_bytes:
                self._close(key)

    def flush(self) -> None:
        now = time.monotonic()
        for key in [k for k, j in self._open.items() if now - j.opened >= self.rotate_seconds]:
            self._close(key)

    def close(self) -> None:
        for key in list(self._open):
            self._close(key)

    def _new(self, model: str, date: str, schema: pa.Schema) -> _Journal:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        stem = f"{stamp}-{os.getpid()}-{next(_sequence):06d}"
        folder = self.root / f"model={quote(model, safe='')}" / f"date={date}"
        journal = _Journal(folder, stem, schema, time.monotonic())
        journal.open()
        return journal

    def _close(self, key: tuple[str, str]) -> None:
        self._open.pop(key).close()


def _partitions(batch: pa.RecordBatch) -> list[tuple[tuple[str, str], pa.RecordBatch]]:
    """The batch split by model and UTC date of `time`."""
    days = pc.divide(batch.column("time").cast(pa.int64()), _DAY_US).to_numpy()
    models = batch.column("model").to_numpy(zero_copy_only=False)
    if len(batch) and (days == days[0]).all() and (models == models[0]).all():
        return [((str(models[0]), _date(int(days[0]))), batch)]
    out = []
    for model, day in sorted(set(zip(models.tolist(), days.tolist(), strict=True))):
        mask = (models == model) & (days == day)
        out.append(((str(model), _date(int(day))), batch.filter(pa.array(mask))))
    return out


def _date(day: int) -> str:
    return str(np.datetime64(day, "D"))


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch | None:
    """`batch` with `schema`'s columns (absent ones null, e.g. a call whose rows were all
    rejected has no predictions), or None if it has columns or types `schema` lacks."""
    if not set(batch.schema.names) <= set(schema.names):
        return None
    arrays = []
    for f in schema:
        if f.name not in batch.schema.names:
            arrays.append(pa.nulls(len(batch), f.type))
            continue
        column = batch.column(f.name)
        if column.type != f.type:
            if column.null_count != len(column):
                return None
            column = pa.nulls(len(batch), f.type)
        arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def read_log(where: str | os.PathLike[str] | None = None, *, model: str | None = None,
             since: dt.datetime | None = None) -> pa.Table:
    """The logged rows of a Parquet prediction log, oldest first.

    Args:
        where: the dataset's folder, a `parquet:` / `file://` URL, or None for
            $SCOREHOUSE_HOME/predictions.
        model: only this model's rows.
        since: only rows logged at or after this time (naive datetimes are taken as UTC).

    Returns a table of the layout of `monitor.log.records` (columns of files written with
    different inputs are unioned; absent values are null); empty with the fixed columns
    when nothing matches. Only closed files are read (open journals are not).
    """
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.timezone.utc)
    files = logged_files(where, model=model, since=since)
    if not files:
        return FIXED.empty_table()
    table = pa.concat_tables([pq.ParquetFile(f).read() for f in files], promote_options="permissive")
    if since is not None:
        table = table.filter(pc.greater_equal(table.column("time"), pa.scalar(
            since, pa.timestamp("us", tz="UTC"))))
    return table.sort_by("time") if table.num_rows else table


def logged_files(where: str | os.PathLike[str] | None = None, *, model: str | None = None,
                 since: dt.datetime | None = None) -> list[Path]:
    """The closed files of a Parquet prediction log that `read_log` reads for these
    filters (`read_log`'s arguments), in the order it reads them. A closed file never
    changes, so the same list (names, sizes) means the same logged rows."""
    from .urls import parquet_root

    root = parquet_root(str(where) if where is not None else "")
    models = f"model={quote(model, safe='')}" if model else "model=*"
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=dt.timezone.utc)
    first_day = since.astimezone(dt.timezone.utc).date().isoformat() if since else ""
    files = [f for f in root.glob(f"{models}/date=*/*.parquet")
             if f.parent.name[len("date="):] >= first_day]
    return sorted(files, key=lambda f: f.name)


__all__ = ["ParquetSink", "logged_files", "publish", "read_log", "recover"]
