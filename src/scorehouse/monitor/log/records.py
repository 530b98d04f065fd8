"""`PredictionRecord`: one logged row, scored or rejected, and its Arrow layout.

Every sink receives Arrow record batches of this layout, one row per logged row:

| column | Arrow type | meaning |
|---|---|---|
| `id` | string | request, event or row key; generated (uuid7, sortable by time) when absent |
| `time` | timestamp[us, UTC] | when the scoring call ended |
| `model`, `version` | string, int64 | the model and its registry version (null for a file) |
| `runtime`, `channel` | string | the runtime that scored; the `Channel` the row came from |
| `deployment`, `role` | string | the deployment, and the model's role in it; null outside one |
| `latency_ms` | float64 | the scoring call's latency in milliseconds (all its rows share it) |
| `reject` | string | why the row was refused ("; "-joined problems), null when scored |
| `flags` | list<struct<kind, column>> | unseen_category / out_of_range / absent_column |
| `input.<column>` | as coerced | the inputs as the schema coerced them (null for a rejected row) |
| `prediction.<column>` | float64 / label type | `label`, `probability_<class>` or `value` |

Every role's row for one request of a deployment (champion, challenger, shadow, canary,
decoy, fallback, default) shares the request's `id`.

Inputs and predictions stay typed columns (not JSON) so drift and quality read them as
whole columns; `prediction.<column>` is the name `monitor.state` gives prediction sketches.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

INPUT = "input."
PREDICTION = "prediction."
FLAG_TYPE = pa.list_(pa.struct([("kind", pa.string()), ("column", pa.string())]))
#: The fixed columns of every batch, before the `input.*` and `prediction.*` ones.
FIXED = pa.schema([
    ("id", pa.string()), ("time", pa.timestamp("us", tz="UTC")), ("model", pa.string()),
    ("version", pa.int64()), ("runtime", pa.string()), ("channel", pa.string()),
    ("deployment", pa.string()), ("role", pa.string()), ("latency_ms", pa.float64()),
    ("reject", pa.string()), ("flags", FLAG_TYPE),
])

# uuid7 (RFC 9562): 48-bit Unix milliseconds, version 7, 12 random bits, variant 0b10, then
# 62 bits of which we keep the top ROW_BITS zero, so that `row_id` can add a row number
# to a call's id without carrying out of the random field (46 random bits per millisecond).
ROW_BITS = 28
_TAIL = (1 << (62 - ROW_BITS)) - 1


class Channel(str, enum.Enum):
    """Where a logged row was scored."""

    SERVE = "serve"
    PREDICT = "predict"
    SCORE = "score"
    STREAM = "stream"
    SQL = "sql"
    SPARK = "spark"


def new_id(now_ns: int | None = None) -> str:
    """A fresh uuid7 string (sortable by time to the millisecond), usable as a call's id.

    The ids of a call's rows are `row_id(call_id, i)`; row 0's id is the call id itself.
    """
    ms = (time.time_ns() if now_ns is None else now_ns) // 1_000_000
    rand = int.from_bytes(os.urandom(8), "big")
    high = (ms << 16) | 0x7000 | (rand >> 52)
    low = (0b10 << 62) | (rand & _TAIL)
    return _format(high, low)


def _format(high: int, low: int) -> str:
    h, lo = f"{high:016x}", f"{low:016x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:]}-{lo[:4]}-{lo[4:]}"


def row_ids(call_id: str, n: int) -> list[str]:
    """The ids of rows 0..n-1 of a call whose id is `call_id` (a `new_id`): the call id plus
    the row number in its low bits. Raises ValueError for n >= 2**ROW_BITS."""
    if n >= 1 << ROW_BITS:
        raise ValueError(f"a call of {n} rows: row ids hold at most {1 << ROW_BITS} rows")
    prefix = call_id[:19]  # the high 64 bits and their dash: constant for the call
    low = int(call_id[19:].replace("-", ""), 16)
    return [f"{prefix}{x >> 48:04x}-{x & 0xFFFFFFFFFFFF:012x}" for x in range(low, low + n)]


_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
_SHIFTS = np.arange(60, -4, -4, dtype=np.uint64)


def row_id_array(call_id: str, positions: np.ndarray) -> pa.Array:
    """`row_ids(call_id, ...)` at `positions` as an Arrow string array, built without a
    Python string per row (the background thread's cost for a large call)."""
    n = len(positions)
    low = np.uint64(int(call_id[19:].replace("-", ""), 16)) + positions.astype(np.uint64)
    digits = _HEX[((low[:, None] >> _SHIFTS) & np.uint64(0xF)).astype(np.intp)]
    text = np.empty((n, 36), np.uint8)
    text[:, :19] = np.frombuffer(call_id[:19].encode(), np.uint8)
    text[:, 19:23], text[:, 23], text[:, 24:] = digits[:, :4], ord("-"), digits[:, 4:]
    offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def row_id(call_id: str, i: int) -> str:
    """The id of row `i` of the call `call_id` (what `row_ids` gives at position i)."""
    low = int(call_id[19:].replace("-", ""), 16) + i
    return f"{call_id[:19]}{low >> 48:04x}-{low & 0xFFFFFFFFFFFF:012x}"


@dataclass
class PredictionRecord:
    """One logged row: scored (`reject` None, `outputs` set) or rejected (`reject` says why).

    `time` is timezone-aware UTC; `inputs` maps input column -> value as coerced by the
    schema (hashed columns hold hex digests, excluded ones are absent); `outputs` maps
    `label` / `probability_<class>` / `value` -> value; `flags` lists (kind, column);
    `deployment` and `role` name the deployment the row was scored in and the model's role
    there (None outside a deployment).
    """

    id: str
    time: dt.datetime
    model: str
    version: int | None
    runtime: str
    channel: Channel
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    flags: list[tuple[str, str]] = field(default_factory=list)
    reject: str | None = None
    latency_ms: float = 0.0
    deployment: str | None = None
    role: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (time as ISO 8601 text): what the Kafka and Redis sinks send."""
        return {"id": self.id, "time": self.time.isoformat(), "model": self.model,
                "version": self.version, "runtime": self.runtime, "channel": self.channel.value,
                "deployment": self.deployment, "role": self.role,
                "latency_ms": self.latency_ms, "reject": self.reject,
                "flags": [{"kind": k, "column": c} for k, c in self.flags],
                "inputs": self.inputs, "outputs": self.outputs}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PredictionRecord:
        """The record `to_dict` gave (time from ISO text or a datetime)."""
        t = d["time"]
        when = dt.datetime.fromisoformat(t) if isinstance(t, str) else t
        return cls(d["id"], when, d["model"], d.get("version"), d.get("runtime", ""),
                   Channel(d["channel"]), dict(d.get("inputs") or {}),
                   dict(d.get("outputs") or {}),
                   [(f["kind"], f["column"]) for f in d.get("flags") or []],
                   d.get("reject"), float(d.get("latency_ms") or 0.0),
                   d.get("deployment"), d.get("role"))


def records(data: pa.RecordBatch | pa.Table) -> Iterator[PredictionRecord]:
    """The rows of a logged batch or table (`read_log`'s) as records; null inputs and
    predictions of a row are left out of its dicts."""
    names = data.schema.names
    inputs = [n for n in names if n.startswith(INPUT)]
    outputs = [n for n in names if n.startswith(PREDICTION)]
    for row in data.to_pylist():
        yield PredictionRecord(
            row["id"], row["time"], row["model"], row["version"], row["runtime"] or "",
            Channel(row["channel"]),
            {n[len(INPUT):]: row[n] for n in inputs if row[n] is not None},
            {n[len(PREDICTION):]: row[n] for n in outputs if row[n] is not None},
            [(f["kind"], f["column"]) for f in row["flags"] or []], row["reject"],
            row["latency_ms"] or 0.0, row.get("deployment"), row.get("role"))


def to_batch(rows: Iterable[PredictionRecord]) -> pa.RecordBatch:
    """The Arrow batch of `rows` (input and output types inferred from the values): for
    channels that build records themselves rather than through `PredictionLogger.log`."""
    rows = list(rows)
    cols: dict[str, list[Any]] = {n: [] for n in FIXED.names}
    extra: dict[str, list[Any]] = {}
    for i, r in enumerate(rows):
        for name, value in (("id", r.id), ("time", r.time), ("model", r.model),
                            ("version", r.version), ("runtime", r.runtime),
                            ("channel", Channel(r.channel).value),
                            ("deployment", r.deployment), ("role", r.role),
                            ("latency_ms", r.latency_ms),
                            ("reject", r.reject),
                            ("flags", [{"kind": k, "column": c} for k, c in r.flags])):
            cols[name].append(value)
        for prefix, values in ((INPUT, r.inputs), (PREDICTION, r.outputs)):
            for k, v in values.items():
                extra.setdefault(prefix + k, [None] * i).append(v)
        for column in extra.values():
            column.extend([None] * (i + 1 - len(column)))
    arrays = [pa.array(cols[f.name], f.type) for f in FIXED]
    arrays += [pa.array(v) for v in extra.values()]
    return pa.RecordBatch.from_arrays(arrays, names=[*FIXED.names, *extra])


__all__ = ["Channel", "FIXED", "INPUT", "PREDICTION", "PredictionRecord", "new_id", "records",
           "row_id", "row_id_array", "row_ids", "to_batch"]
