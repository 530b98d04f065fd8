"""Batch files: CSV (plain, gzip, zstd), Parquet (a file, folder or glob) and JSON Lines.

Readers yield Arrow record batches of bounded size. CSV columns are read as text so that
one bad value rejects one row (the schema's rules parse it), never the whole stream; a line
that does not split into the header's fields is recorded as malformed, with its position.
"""

from __future__ import annotations

import glob
import hashlib
import io
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import pyarrow as pa

from ..errors import InvalidInputError, NotFoundError, ScorehouseError
from ..schema.arrays import loose_array
from ..schema.policy import records_table
from .streams import Malformed, Sink, Source, partial_path

FORMATS = ("csv", "parquet", "jsonl")


def format_of(path: str, given: str | None = None) -> str:
    """The file format from `--format` or the path's extension."""
    if given:
        if given not in FORMATS:
            raise ScorehouseError(f"unknown format {given!r}; choose one of {', '.join(FORMATS)}")
        return given
    if path == "-":
        raise ScorehouseError("reading stdin or writing stdout needs --format csv|parquet|jsonl "
                              "(--output-format for the output)")
    name = _without_compression(path.lower())
    if name.endswith((".csv", ".tsv")):
        return "csv"
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return "jsonl"
    if name.endswith((".parquet", ".pq")) or Path(path).is_dir() or _is_glob(path):
        return "parquet"
    raise ScorehouseError(f"cannot tell the format of {path!r}: use a .csv, .parquet or .jsonl "
                          "name, or --format")


def _is_glob(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def _without_compression(name: str) -> str:
    for ext in (".gz", ".zst", ".zstd"):
        name = name.removesuffix(ext)
    return name


def _compression(path: str) -> str | None:
    lower = path.lower()
    if lower.endswith(".gz"):
        return "gzip"
    if lower.endswith((".zst", ".zstd")):
        return "zstd"
    return None


class _Hashing(io.RawIOBase):
    """A read-through stream that hashes and counts the bytes it passes on."""

    def __init__(self, raw: BinaryIO):
        self.raw = raw
        self.sha256 = hashlib.sha256()
        self.bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)  # type: ignore[attr-defined]  # typing.BinaryIO omits it
        if n:
            self.sha256.update(memoryview(buffer)[:n])
            self.bytes += n
        return n or 0


def _text_stream(path: str) -> tuple[io.BufferedReader, _Hashing, int | None]:
    """(decompressed buffered stream, the hasher of the bytes as stored, size on disk)."""
    if path == "-":
        raw: BinaryIO = sys.stdin.buffer
        size = None
    else:
        if not Path(path).is_file():
            raise NotFoundError(f"input {path} does not exist")
        raw = open(path, "rb")  # noqa: SIM115 - closed with the stream
        size = os.path.getsize(path)
    hashing = _Hashing(raw)
    compression = _compression(path)
    if compression is None:
        return io.BufferedReader(hashing, 1 << 20), hashing, size
    stream = pa.input_stream(io.BufferedReader(hashing, 1 << 20), compression=compression)
    return io.BufferedReader(stream, 1 << 20), hashing, size


def open_file(path: str, fmt: str, chunk_rows: int, categorical: Sequence[str] = ()) -> Source:
    """Open `path` (or '-' for stdin) as a stream of record batches of about `chunk_rows`;
    Parquet text columns named in `categorical` arrive dictionary-encoded, as stored."""
    if fmt == "parquet":
        return _parquet_source(path, chunk_rows, categorical)
    stream, hashing, size = _text_stream(path)
    source = Source(uri=path, fmt=fmt, batches=iter(()), total=size, unit="bytes")
    source.done = lambda: hashing.bytes
    source.checksum = lambda: hashing.sha256.hexdigest()
    if fmt == "csv":
        source.batches = _csv_batches(stream, source, chunk_rows, path)
    else:
        source.batches = _jsonl_batches(stream, source, chunk_rows)
    return source


def _csv_batches(stream: io.BufferedReader, source: Source, chunk_rows: int,
                 path: str) -> Iterator[pa.RecordBatch]:
    import csv

    import pyarrow.csv as pv

    with stream:
        header = stream.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
        if not header.strip():
            return  # an empty file has no rows (and no columns)
        delimiter = "\t" if _without_compression(path.lower()).endswith(".tsv") else ","
        names = next(csv.reader([header], delimiter=delimiter))
        source.columns = names
        if not stream.peek(1):
            return  # a header and no rows

        def invalid(row: Any) -> str:
            # With the header consumed, line numbers count data lines from 1.
            line = row.number if row.number is not None else 0
            source.malformed.append(Malformed(
                line - 1, f"line {line + 1}: expected {row.expected_columns} fields, found "
                          f"{row.actual_columns}", row.text[:200]))
            return "skip"

        # Blocks of about chunk_rows rows, from the row size of the first lines. Parsing on
        # one thread keeps the line numbers of malformed rows; scoring uses every core.
        head = stream.peek(1 << 16)
        row_bytes = len(head) / max(head.count(b"\n"), 1)
        open_reader = lambda: pv.open_csv(  # noqa: E731
            stream,
            read_options=pv.ReadOptions(column_names=names, use_threads=False,
                                        block_size=max(1 << 16, int(row_bytes * chunk_rows))),
            parse_options=pv.ParseOptions(delimiter=delimiter, invalid_row_handler=invalid),
            convert_options=pv.ConvertOptions(
                column_types={n: pa.string() for n in names},
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
        try:
            yield from open_reader()
        except pa.ArrowInvalid as e:
            raise InvalidInputError(f"cannot read the CSV input: {e}") from None


def _jsonl_batches(stream: io.BufferedReader, source: Source,
                   chunk_rows: int) -> Iterator[pa.RecordBatch]:
    # A line that is not a JSON object is malformed at its position; blank lines are skipped
    # and do not count as rows.
    records: list[dict[str, Any]] = []
    position = 0
    with stream:
        for number, raw in enumerate(stream, start=1):
            text = raw.strip()
            if not text:
                continue
            try:
                rec = json.loads(text)
            except ValueError as e:
                rec = e
            if isinstance(rec, dict):
                records.append(rec)
            else:
                why = f"not valid JSON ({rec})" if isinstance(rec, ValueError) \
                    else f"a JSON {type(rec).__name__}, not an object"
                source.malformed.append(Malformed(position, f"line {number}: {why}",
                                                  text[:200].decode("utf-8", "replace")))
            position += 1
            if len(records) >= chunk_rows:
                yield records_batch(records)
                records = []
    if records:
        yield records_batch(records)


def records_batch(records: list[dict[str, Any]]) -> pa.RecordBatch:
    """An Arrow batch from JSON records; a column of mixed JSON types becomes text."""
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(r))
    columns = {}
    for n in names:
        arr = loose_array([r.get(n) for r in records], text=json.dumps)
        # An all-null column has no type; a later chunk may have values, and text takes any.
        columns[n] = arr.cast(pa.string()) if pa.types.is_null(arr.type) else arr
    # A key some records lack is absent there, not null (the column policy flags it).
    return records_table(records, pa.RecordBatch.from_pydict(columns))


def _parquet_source(path: str, chunk_rows: int, categorical: Sequence[str]) -> Source:
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    if path == "-":
        data = pa.BufferReader(sys.stdin.buffer.read())
        digest = hashlib.sha256(data.read_buffer()).hexdigest()
        data.seek(0)
        schema = _with_dictionaries(pq.read_schema(data), categorical)
        pf = pq.ParquetFile(data, read_dictionary=_dictionary_names(schema))
        batches = (_as_schema(b, schema, "stdin") for b in pf.iter_batches(batch_size=chunk_rows))
        source = Source(uri=path, fmt="parquet", batches=batches,
                        total=pf.metadata.num_rows, unit="rows")
        source.checksum = lambda: digest
        return source
    if _is_glob(path):
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
        arrays.append(_cast(col, field, f"is {col.type} in {name}, which cannot be read as "
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


class _HashingWriter(io.RawIOBase):
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


class FileSink(Sink):
    """Writes a CSV, Parquet or JSON Lines file under a temporary name, renamed on commit."""

    def __init__(self, path: str, fmt: str):
        self.path, self.fmt = path, fmt
        self.rows = 0
        self._writer: Any = None
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
        self._out = _HashingWriter(self._raw)

    def write(self, table: pa.Table) -> None:
        """Append rows; later chunks are cast to the first chunk's column types."""
        if self._schema is None:
            self._schema = table.schema
        else:
            table = conform(table, self._schema)
        self.rows += table.num_rows
        if self.fmt == "jsonl":
            lines = [json.dumps(rec, default=str) for rec in table.to_pylist()]
            if lines:
                self._out.write(("\n".join(lines) + "\n").encode())
            return
        if self._writer is None:
            self._writer = self._open(table.schema, _repetitive(table))
        if self.fmt == "parquet":
            self._writer.write_table(table)
        else:
            self._writer.write(table)

    def _open(self, schema: pa.Schema, dictionary: list[str] | None = None) -> Any:
        if self.fmt == "parquet":
            import pyarrow.parquet as pq
            return pq.ParquetWriter(self._out, schema, compression="zstd",
                                    use_dictionary=dictionary or False)
        import pyarrow.csv as pv
        return pv.CSVWriter(self._out, schema)

    def commit(self, empty_schema: pa.Schema) -> None:
        """Finish the file (an empty result still gets a header) and move it into place."""
        if self._writer is None and self.fmt != "jsonl":
            self._writer = self._open(self._schema or empty_schema)
        if self._writer is not None:
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


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` cast to `schema` (a file has one set of column types); says which column cannot."""
    if table.schema.equals(schema):
        return table
    columns = []
    for field in schema:
        col = table.column(field.name)
        columns.append(_cast(col, field, f"changed type from {field.type} to {col.type} part "
                                         "way through the input, and the output file needs "
                                         "one type"))
    return pa.Table.from_arrays(columns, schema=schema)


def _cast(column: Any, field: pa.Field, problem: str) -> Any:
    """`column` as `field`'s type, or an error naming the column and `problem`."""
    try:
        return column.cast(field.type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise ScorehouseError(f"column {field.name!r} {problem}: {e}") from None
