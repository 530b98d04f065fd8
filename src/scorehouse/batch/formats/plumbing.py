"""I/O plumbing under every file format: compression by extension, byte streams that hash
and count what passes through them (for the run manifest's sha256 and the progress bar),
and casting later chunks to the column types of the first."""

from __future__ import annotations

import hashlib
import io
import os
import sys
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from ...errors import NotFoundError, ScorehouseError

#: Compressed-text extensions and the Arrow codec each names.
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd", ".zstd": "zstd"}


def without_compression(name: str) -> str:
    """`name` without a trailing .gz/.zst/.zstd."""
    for ext in COMPRESSIONS:
        name = name.removesuffix(ext)
    return name


def compression(path: str) -> str | None:
    """The codec a path's extension names ('gzip', 'zstd'), or None."""
    lower = path.lower()
    return next((codec for ext, codec in COMPRESSIONS.items() if lower.endswith(ext)), None)


class Hashing(io.RawIOBase):
    """A read-through stream that hashes and counts the bytes it passes on."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        # Files and stdin's buffer have readinto; typeshed's BinaryIO does not say so.
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]
        if n:
            self.sha256.update(memoryview(buffer)[:n])
            self.bytes += n
        return n or 0


class HashingWriter(io.RawIOBase):
    """A write-through stream that hashes and counts the bytes written."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self.raw.write(view)
        self.sha256.update(view)
        self.bytes += view.nbytes
        return view.nbytes

    def flush(self) -> None:
        self.raw.flush()


def text_stream(path: str) -> tuple[io.BufferedReader, Hashing, int | None]:
    """(decompressed buffered stream, the hasher of the bytes as stored, size on disk) of a
    text file, or of stdin for '-'.

    Raises:
        NotFoundError: `path` is not a file.
    """
    if path == "-":
        raw: BinaryIO = sys.stdin.buffer
        size = None
    else:
        if not Path(path).is_file():
            raise NotFoundError(f"input {path} does not exist")
        raw = open(path, "rb")  # noqa: SIM115 - closed with the stream
        size = os.path.getsize(path)
    hashing = Hashing(raw)
    codec = compression(path)
    if codec is None:
        return io.BufferedReader(hashing, 1 << 20), hashing, size
    stream = pa.input_stream(io.BufferedReader(hashing, 1 << 20), compression=codec)
    return io.BufferedReader(stream, 1 << 20), hashing, size


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` cast to `schema` (a file has one set of column types).

    Raises:
        ScorehouseError: a column cannot be cast; the message names it.
    """
    if table.schema.equals(schema):
        return table
    columns = []
    for field in schema:
        col = table.column(field.name)
        columns.append(cast(col, field, f"changed type from {field.type} to {col.type} part "
                                        "way through the input, and the output file needs "
                                        "one type"))
    return pa.Table.from_arrays(columns, schema=schema)


def cast(column: Any, field: pa.Field, problem: str) -> Any:
    """`column` as `field`'s type.

    Raises:
        ScorehouseError: it cannot be cast; the message names the column and `problem`.
    """
    try:
        return column.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise ScorehouseError(f"column {field.name!r} {problem}: {e}") from None
