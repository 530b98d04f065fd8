"""CSV files (plain, gzip, zstd; .tsv is tab-separated): the reader and the writer.

Columns are read as text so that one bad value rejects one row (the schema's rules parse
it), never the whole stream; a line that does not split into the header's fields is
recorded as malformed, with its position.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ...errors import InvalidInputError
from ..sources_sinks import Malformed, Source
from .plumbing import without_compression


def csv_batches(stream: io.BufferedReader, source: Source, chunk_rows: int,
                path: str) -> Iterator[pa.RecordBatch]:
    """Record batches of about `chunk_rows` rows of text columns from a CSV `stream`; sets
    `source.columns` from the header and appends malformed lines to `source.malformed`.

    Raises:
        InvalidInputError: Arrow cannot read the CSV at all (e.g. an unclosed quote).
    """
    import csv

    import pyarrow.csv as pv

    with stream:
        header = stream.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n")
        if not header.strip():
            return  # an empty file has no rows (and no columns)
        delimiter = "\t" if without_compression(path.lower()).endswith(".tsv") else ","
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


class CsvWriter:
    """Writes tables of one schema as CSV (a header first, even with no rows) to `out`."""

    def __init__(self, out: Any, schema: pa.Schema, first: pa.Table | None = None):
        import pyarrow.csv as pv

        self._writer = pv.CSVWriter(out, schema)

    def write(self, table: pa.Table) -> None:
        """Append rows."""
        self._writer.write(table)

    def close(self) -> None:
        """Finish the file."""
        self._writer.close()
