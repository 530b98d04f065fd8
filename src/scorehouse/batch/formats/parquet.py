"""Parquet (a file, a folder of files or a glob, or stdin): the reader and the writer.

Reading goes a row group at a time, so memory stays bounded whatever the input's size; text
columns the model treats as categories arrive dictionary-encoded, as Parquet stores them.
Writing compresses with zstd and dictionary-encodes the repetitive columns only.
"""

from __future__ import annotations

import glob
import hashlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from ...errors import NotFoundError
from ..sources_sinks import Source
from .plumbing import cast


def is_glob(path: str) -> bool:
    """True when `path` holds a glob pattern character."""
    return any(ch in path for ch in "*?[")


def parquet_source(path: str, chunk_rows: int, categorical: Sequence[str]) -> Source:
    """A Source over the Parquet file, folder (every .parquet below it), glob or stdin ('-').

    Raises:
        NotFoundError: no Parquet file is there.
    """
    import pyarrow.dataset as ds

    if path == "-":
        return _stdin_source(chunk_rows, categorical)
    if is_glob(path):
        files = sorted(glob.glob(path))
    elif Path(path).is_dir():
        files = sorted(str(p) for p in Path(path).rglob("*.parquet"))
    else:
        files = [path] if Path(path).is_file() else []
    if not files:
        raise NotFoundError(f"input {path} does not exist or holds no .parquet files")
    dataset = ds.dataset(files, format="parquet")  # one schema for all files, and the count
    source = Source(uri=path, fmt="parquet", batches=iter(()), total=dataset.count_rows(),
                    unit="rows", columns=dataset.schema.names)
    source.batches = _parquet_batches(files, _with_dictionaries(dataset.schema, categorical),
                                      chunk_rows)
    source.checksum = lambda: _files_digest(files)
    return source


def _stdin_source(chunk_rows: int, categorical: Sequence[str]) -> Source:
    import pyarrow.parquet as pq

    data = pa.BufferReader(sys.stdin.buffer.read())
    digest = hashlib.sha256(data.read_buffer()).hexdigest()
    data.seek(0)
    schema = _with_dictionaries(pq.read_schema(data), categorical)
    pf = pq.ParquetFile(data, read_dictionary=_dictionary_names(schema))
    batches = (_as_schema(b, schema, "stdin") for b in pf.iter_batches(batch_size=chunk_rows))
    source = Source(uri="-", fmt="parquet", batches=batches,
                    total=pf.metadata.num_rows, unit="rows")
    source.checksum = lambda: digest
    return source


def _parquet_batches(files: list[str], schema: pa.Schema, chunk_rows: int
                     ) -> Iterator[pa.RecordBatch]:
    """The files' rows in order, a row group at a time, as `schema` (a column a file lacks
    is null, as the dataset reader makes it). Not the dataset scanner, nor pre-buffering:
    both kept what they had read, and a 10M-row file needed 2x the memory of a 1M-row one.
    """
    import pyarrow.parquet as pq

    dictionaries = _dictionary_names(schema)
    for name in files:
        with pq.ParquetFile(name, pre_buffer=False, read_dictionary=dictionaries) as pf:
            for batch in pf.iter_batches(batch_size=chunk_rows, use_threads=True):
                yield _as_schema(batch, schema, name)


def _with_dictionaries(schema: pa.Schema, categorical: Sequence[str]) -> pa.Schema:
    """`schema` with the text columns named in `categorical` as dictionaries of that text.

    Parquet stores such columns with a dictionary per row group; read as one, a column of
    labels costs no string per row here, nor a second encoding when the schema checks it.
    """
    for name in categorical:
        i = schema.get_field_index(name)
        t = schema.field(i).type if i >= 0 else None
        if t is not None and (pa.types.is_string(t) or pa.types.is_large_string(t)):
            schema = schema.set(i, schema.field(i).with_type(pa.dictionary(pa.int32(), t)))
    return schema


def _dictionary_names(schema: pa.Schema) -> list[str]:
    return [f.name for f in schema if pa.types.is_dictionary(f.type)]


def _as_schema(batch: pa.RecordBatch, schema: pa.Schema, name: str) -> pa.RecordBatch:
    if batch.schema.equals(schema):
        return batch
    names = batch.schema.names
    arrays = []
    for field in schema:
        if field.name not in names:
            arrays.append(pa.nulls(batch.num_rows, field.type))
            continue
        col = batch.column(names.index(field.name))
        arrays.append(cast(col, field, f"is {col.type} in {name}, which cannot be read as "
                                       f"the first file's {field.type}"))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _files_digest(files: list[str]) -> str:
    # One file: its sha256 (what `sha256sum` prints); several: the sha256 of their digests.
    digests = []
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        digests.append(h.hexdigest())
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


class ParquetFileWriter:
    """Writes tables of one schema as a zstd-compressed Parquet file to `out`; the columns
    that are repetitive in the `first` table get a dictionary."""

    def __init__(self, out: Any, schema: pa.Schema, first: pa.Table | None = None):
        import pyarrow.parquet as pq

        dictionary = _repetitive(first) if first is not None else []
        self._writer = pq.ParquetWriter(out, schema, compression="zstd",
                                        use_dictionary=dictionary or False)

    def write(self, table: pa.Table) -> None:
        """Append rows (a row group)."""
        self._writer.write_table(table)

    def close(self) -> None:
        """Write the footer."""
        self._writer.close()


def _repetitive(table: pa.Table) -> list[str]:
    """Columns worth a Parquet dictionary: fewer distinct values than half the first chunk's
    rows (labels, segments). Ids and probabilities are not: a dictionary for each of their
    row groups costs time (BENCHMARKS.md) and makes the file larger."""
    if table.num_rows == 0:
        return []
    import pyarrow.compute as pc

    def distinct(column: pa.ChunkedArray) -> int:
        try:
            return pc.count_distinct(column, mode="all").as_py()
        except pa.ArrowNotImplementedError:  # nested types: no dictionary either way
            return table.num_rows
    return [name for name, column in zip(table.column_names, table.columns, strict=True)
            if distinct(column) * 2 <= table.num_rows]
