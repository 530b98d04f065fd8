"""From queued scoring calls to Arrow record batches, in the logger's background thread.

The scoring thread only queues a `Call` (the event as the scorer made it, whole columns,
nothing copied); everything per row happens here: ids, sampling, hashing, the alignment
of inputs, predictions and rejects by input position, and one Arrow array per column for
all the calls of a drain (one-row calls are gathered column-wise: `gather.Run`).
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa

from ...scorer import ScoreEvent
from .gather import Run, names, scalar, shape, single
from .options import LogOptions
from .records import FIXED, INPUT, PREDICTION, Channel, row_id_array

#: A column's values for one call: a Python list (None = null) or an Arrow array.
Piece: TypeAlias = "list[Any] | pa.Array"


@dataclass
class Call:
    """One scoring call waiting in the queue."""

    event: ScoreEvent
    channel: Channel
    call_id: str
    ids: Sequence[str] | None
    latency_ms: float
    time_us: int
    deployment: str | None = None
    role: str | None = None

    @property
    def rows(self) -> int:
        """Rows the call read (scored + rejected): what the queue's bound counts."""
        return int(self.event.result.n_read)


def batches(calls: Sequence[Call], options: LogOptions) -> tuple[list[pa.RecordBatch], int]:
    """(record batches of the `calls`' logged rows, one per model and set of columns;
    rows sampling left out)."""
    groups: dict[tuple[str, ...], list[dict[str, Piece] | Run]] = {}
    shapes: dict[Hashable, tuple[str, ...]] = {}  # a one-row call's shape -> its columns
    skipped = 0
    for call in calls:
        if single(call, options):  # gathered into a run, converted column-wise below
            key = shape(call)
            columns = shapes.get(key) or shapes.setdefault(key, names(call, options))
            parts = groups.setdefault((call.event.model, *columns), [])
            run = parts[-1] if parts else None
            if not isinstance(run, Run):
                run = Run()
                parts.append(run)
            run.calls.append(call)
            continue
        frame, n_out = _frame(call, options)
        skipped += n_out
        if frame is not None:
            groups.setdefault((call.event.model, *frame), []).append(frame)
    out = []
    for (_, *logged), parts in groups.items():
        frames = [p.frame(logged, options) if isinstance(p, Run) else p for p in parts]
        arrays = [_column([f[n] for f in frames], _TYPES.get(n)) for n in logged]
        out.append(pa.RecordBatch.from_arrays(arrays, names=logged))
    return out, skipped


def kept_rows(call: Call, options: LogOptions) -> int:
    """How many of the call's logged rows sampling keeps (to count a dropped call exactly)."""
    if options.sample >= 1.0:
        return len(_positions(call.event)[0])
    return int(options.keep(_ids(call, _positions(call.event)[0], True)).sum())


_TYPES = {f.name: f.type for f in FIXED}


def _positions(event: ScoreEvent) -> tuple[np.ndarray, dict[int, str]]:
    """(input positions logged, in order; {position: reject reason} of rejected rows)."""
    r = event.result
    problems: dict[int, list[str]] = {}
    for reject in r.rejects:
        problems.setdefault(reject.row, []).append(reject.problem)
    reasons = {row: "; ".join(p) for row, p in problems.items()}
    rows = np.asarray(r.rows, np.int64)
    if reasons:
        rows = np.union1d(rows, np.fromiter(reasons, np.int64, len(reasons)))
    return rows, reasons


def _ids(call: Call, positions: np.ndarray, sampled: bool) -> Piece:
    """The rows' ids: given, or the call's id plus the row's position; as a list when
    sampling will hash them or for one row, else as an Arrow array."""
    if call.ids is not None:
        return [str(call.ids[p]) for p in positions.tolist()]
    if len(positions) == 1 and positions[0] == 0:
        return [call.call_id]
    ids = row_id_array(call.call_id, positions)
    return ids.to_pylist() if sampled else ids


def _frame(call: Call, options: LogOptions) -> tuple[dict[str, Piece] | None, int]:
    """The call's columns ({name: piece}) and how many rows sampling left out."""
    event, r = call.event, call.event.result
    positions, reasons = _positions(event)
    ids = _ids(call, positions, options.sample < 1.0)
    if options.sample < 1.0:
        keep = options.keep(ids)
        skipped = int((~keep).sum())
        positions, ids = positions[keep], [i for i, k in zip(ids, keep, strict=True) if k]
    else:
        skipped = 0
    n = len(positions)
    if not n:
        return None, skipped
    frame: dict[str, Piece] = {
        "id": ids, **{name: _same(value, name, n) for name, value in (
            ("time", call.time_us), ("model", event.model), ("version", event.version),
            ("runtime", r.runtime), ("channel", call.channel.value),
            ("deployment", call.deployment), ("role", call.role),
            ("latency_ms", call.latency_ms))},
        "reject": [reasons.get(p) for p in positions.tolist()] if reasons else
        _same(None, "reject", n),
        "flags": _flags(r.flags, positions) if r.flags else _same([], "flags", n),
    }
    frame.update(_inputs(event, positions, options))
    frame.update(_outputs(event, positions))
    return frame, skipped


def _same(value: Any, name: str, n: int) -> Piece:
    """A column of one value: a list for one row (gathered with other calls' rows into one
    array), an Arrow array repeating it for more."""
    if n == 1:
        return [value]
    if name == "flags":  # pa.repeat of a list scalar is slow: offsets of empty lists
        return pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)),
                                        pa.array([], _TYPES[name].value_type))
    return pa.repeat(pa.scalar(value, _TYPES[name]), n)


def _outputs(event: ScoreEvent, positions: np.ndarray) -> dict[str, Piece]:
    """The `prediction.*` pieces, null for rejected rows."""
    r = event.result
    scored = np.asarray(r.rows, np.int64)
    if not len(scored):
        return {}
    columns = {k: v for k, v in r.columns().items() if v is not None}
    if len(positions) == 1 and len(scored) == 1:  # a single-row call: plain values
        return {PREDICTION + k: [scalar(np.asarray(v)[0])] for k, v in columns.items()}
    at, present = _lookup(scored, positions)
    return {PREDICTION + k: _piece(np.asarray(v), at, present) for k, v in columns.items()}


def _flags(flags: dict[tuple[str, str], np.ndarray], positions: np.ndarray) -> list[Any]:
    per_row: dict[int, list[dict[str, str]]] = {}
    for (kind, column), rows in flags.items():
        for row in np.asarray(rows).tolist():
            per_row.setdefault(row, []).append({"kind": kind, "column": column})
    return [per_row.get(p, []) for p in positions.tolist()]


def _inputs(event: ScoreEvent, positions: np.ndarray, options: LogOptions
            ) -> dict[str, Piece]:
    """The `input.*` pieces: the accepted rows' coerced values, null for rejected rows."""
    columns = {k: v for k, v in event.columns.items() if k not in options.exclude}
    if not columns:
        return {}
    first = next(iter(columns.values()))
    if not isinstance(first, np.ndarray):  # a single-row call: {column: scalar}
        first_row = positions.tolist() == [0]
        out: dict[str, Piece] = {INPUT + k: [scalar(v) if first_row else None]
                                 for k, v in columns.items()}
    else:
        accepted = _accepted(event, len(first))
        at, present = _lookup(accepted, positions)
        out = {INPUT + k: _piece(np.asarray(v), at, present) for k, v in columns.items()}
    for name in options.hash:
        key = INPUT + name
        if key in out:
            piece = out[key]
            values = piece.to_pylist() if isinstance(piece, pa.Array) else piece
            out[key] = options.digest(values)
    return out


def _accepted(event: ScoreEvent, n_columns: int) -> np.ndarray:
    """The input positions the event's columns are aligned with: the rows that passed the
    schema (scored, or rejected by the model itself afterwards)."""
    r = event.result
    scored = np.asarray(r.rows, np.int64)
    if n_columns == len(scored):
        return scored
    if n_columns == r.n_read:
        return np.arange(r.n_read)
    by_model = [j.row for j in r.rejects if j.column is None and j.reason.startswith("model")]
    return np.union1d(scored, np.asarray(by_model, np.int64))


def _lookup(sorted_rows: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(index into `sorted_rows` of each position, whether it is there)."""
    if len(sorted_rows) == len(positions) and np.array_equal(sorted_rows, positions):
        return np.arange(len(positions)), np.ones(len(positions), bool)
    at = np.searchsorted(sorted_rows, positions)
    at = np.minimum(at, max(len(sorted_rows) - 1, 0))
    present = sorted_rows[at] == positions if len(sorted_rows) else np.zeros(len(positions), bool)
    return at, present


def _piece(values: np.ndarray, at: np.ndarray, present: np.ndarray) -> pa.Array:
    if len(values) == 0:
        return pa.nulls(len(at))
    taken = values if len(at) == len(values) and present.all() and \
        np.array_equal(at, np.arange(len(at))) else values[at]
    mask = None if present.all() else ~present
    return pa.array(taken, mask=mask, from_pandas=True)


def _column(pieces: list[Piece], type_: pa.DataType | None) -> pa.Array:
    """One Arrow array of a column's pieces, of a common type."""
    if all(isinstance(p, list) for p in pieces):
        return pa.array(list(itertools.chain.from_iterable(pieces)), type=type_, from_pandas=True)
    arrays = [p if isinstance(p, pa.Array) else pa.array(p, type=type_, from_pandas=True)
              for p in pieces]
    types = {a.type for a in arrays if a.type != pa.null()}
    if len(types) > 1:  # e.g. ints in one call, floats in another: let Arrow infer
        return pa.array(list(itertools.chain.from_iterable(a.to_pylist() for a in arrays)))
    target = types.pop() if types else pa.null()
    return pa.concat_arrays([a if a.type == target else a.cast(target) for a in arrays])


__all__ = ["Call", "batches", "kept_rows"]
