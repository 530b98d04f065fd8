"""JSON Lines files (one JSON object a line; plain, gzip, zstd): the reader and the writer."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from ...schema.arrays import loose_array
from ...schema.policy import records_table
from ..sources_sinks import Malformed, Source


def jsonl_batches(stream: io.BufferedReader, source: Source,
                  chunk_rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches of `chunk_rows` records from a JSON Lines `stream`.

    A line that is not a JSON object is malformed at its position (appended to
    `source.malformed`); blank lines are skipped and do not count as rows.
    """
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


class JsonlWriter:
    """Writes tables as JSON Lines to `out` (nothing at all for no rows)."""

    def __init__(self, out: Any, schema: pa.Schema, first: pa.Table | None = None):
        self._out = out

    def write(self, table: pa.Table) -> None:
        """Append rows, one JSON object a line (values JSON cannot hold become text)."""
        lines = [json.dumps(rec, default=str) for rec in table.to_pylist()]
        if lines:
            self._out.write(("\n".join(lines) + "\n").encode())

    def close(self) -> None:
        """Nothing to finish: every line is complete."""
