"""A file in or out, whatever its format: the format from `--format` or the name, a Source
that reads it, a Sink that writes it under a hidden name until the run commits."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import pyarrow as pa

from ...errors import ScorehouseError
from ...scorer.runs import partial_path
from ..sources_sinks import Sink, Source
from .csv import CsvWriter, csv_batches
from .jsonl import JsonlWriter, jsonl_batches
from .parquet import ParquetFileWriter, is_glob, parquet_source
from .plumbing import HashingWriter, conform, text_stream, without_compression

FORMATS = ("csv", "parquet", "jsonl")


class FormatWriter(Protocol):
    """What a format's writer offers FileSink (`CsvWriter`, `ParquetFileWriter`, ...)."""

    def write(self, table: pa.Table) -> None: ...
    def close(self) -> None: ...


#: Format -> writer class, made with (byte stream, schema, the first table or None).
WRITERS: dict[str, Any] = {"csv": CsvWriter, "parquet": ParquetFileWriter,
                           "jsonl": JsonlWriter}


def format_of(path: str, given: str | None = None) -> str:
    """The file format ('csv', 'parquet' or 'jsonl') from `--format` or the path's extension.

    Raises:
        ScorehouseError: an unknown `given` format, stdin/stdout without one, or a name
            whose format cannot be told.
    """
    if given:
        if given not in FORMATS:
            raise ScorehouseError(f"unknown format {given!r}; choose one of {', '.join(FORMATS)}")
        return given
    if path == "-":
        raise ScorehouseError("reading stdin or writing stdout needs --format csv|parquet|jsonl "
                              "(--output-format for the output)")
    name = without_compression(path.lower())
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".parquet", ".pq")) or Path(path).is_dir() or is_glob(path):
        return "parquet"
    raise ScorehouseError(f"cannot tell the format of {path!r}: use a .csv, .parquet or .jsonl "
                          "name, or --format")


def open_file(path: str, fmt: str, chunk_rows: int, categorical: Sequence[str] = ()) -> Source:
    """Open `path` (or '-' for stdin) as a stream of record batches of about `chunk_rows`;
    Parquet text columns named in `categorical` arrive dictionary-encoded, as stored.

    Raises:
        NotFoundError: there is no such file (or no Parquet file in the folder or glob).
    """
    if fmt == "parquet":
        return parquet_source(path, chunk_rows, categorical)
    stream, hashing, size = text_stream(path)
    source = Source(uri=path, fmt=fmt, batches=iter(()), total=size, unit="bytes")
    source.done = lambda: hashing.bytes
    source.checksum = lambda: hashing.sha256.hexdigest()
    if fmt == "csv":
        source.batches = csv_batches(stream, source, chunk_rows, path)
    else:
        source.batches = jsonl_batches(stream, source, chunk_rows)
    return source


class FileSink(Sink):
    """Writes a CSV, Parquet or JSON Lines file under a temporary name, renamed on commit."""

    def __init__(self, path: str, fmt: str):
        self.path, self.fmt = path, fmt
        self.rows = 0
        self._writer: FormatWriter | None = None
        self._schema: pa.Schema | None = None
        if path == "-":
            self._partial = None
            self._raw: BinaryIO = sys.stdout.buffer
        else:
            target = Path(path)
            if target.is_dir():
                raise ScorehouseError(f"output {path} is a folder; give a file name")
            target.parent.mkdir(parents=True, exist_ok=True)
            # Same folder, so the rename on commit is atomic; hidden, so nobody picks it up.
            self._partial = partial_path(target)
            self._raw = open(self._partial, "wb")  # noqa: SIM115 - closed on commit/abort
        self._out = HashingWriter(self._raw)

    def write(self, table: pa.Table) -> None:
        """Append rows; later chunks are cast to the first chunk's column types."""
        if self._schema is None:
            self._schema = table.schema
        else:
            table = conform(table, self._schema)
        self.rows += table.num_rows
        if self._writer is None:
            self._writer = WRITERS[self.fmt](self._out, table.schema, table)
        self._writer.write(table)

    def commit(self, empty_schema: pa.Schema) -> None:
        """Finish the file (an empty CSV or Parquet result still gets its header) and move it
        into place."""
        if self._writer is None:
            self._writer = WRITERS[self.fmt](self._out, self._schema or empty_schema, None)
        self._writer.close()
        self._out.flush()
        if self._partial is not None:
            self._raw.close()
            os.replace(self._partial, self.path)

    def abort(self) -> None:
        """Drop the partial file; nothing appears under the final name."""
        if self._partial is not None:
            self._raw.close()
            self._partial.unlink(missing_ok=True)

    def describe(self) -> dict[str, Any]:
        """Where the output went, its format, rows and checksum, for the run manifest."""
        return {"uri": self.path, "format": self.fmt, "rows": self.rows,
                "sha256": self._out.sha256.hexdigest(), "bytes": self._out.bytes}
