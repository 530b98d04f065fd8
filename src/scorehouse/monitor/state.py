"""`DriftState`: one window of scored traffic as a sketch per input and prediction column,
plus the counts input quality needs (rows read, rejected, absent columns).

A state is built empty on the training baseline's bins (`reference.empty_state`), fed by
the scorer's hook (`observe`) or by whole columns (`update`, e.g. a Parquet log read in
chunks), merged with states of other workers or Spark partitions (`merge`), and handed on
as plain JSON (`to_json` / `from_json`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SchemaError
from ..scorer import ScoreEvent
from .sketch import FLUSH_ROWS, FORMAT, PREDICTION, Sketch, sketch_from_json

ABSENT = "absent_column"


@dataclass
class DriftState:
    """Sketches by feature name (input columns, and 'prediction.<output column>') for one
    window, with `read` (input rows seen), `rejected` (rows refused) and `absent`
    ({column: rows it was absent from}). Not thread-safe: keep one per worker and merge.
    """

    sketches: dict[str, Sketch]
    read: int = 0
    rejected: int = 0
    absent: dict[str, int] = field(default_factory=dict)
    _buffer: dict[str, list[Any]] = field(init=False, repr=False, compare=False)
    _buffered: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._buffer = {name: [] for name in self.sketches}

    @property
    def scored(self) -> int:
        """Rows whose inputs were sketched (the largest sketch count, nulls included)."""
        self.flush()
        return max((s.n + s.nulls for n, s in self.sketches.items()
                    if not n.startswith(PREDICTION)), default=0)

    def update(self, columns: Mapping[str, Any]) -> None:
        """Count whole columns ({feature: numpy/Arrow/pandas/list}); names without a sketch
        are ignored. Counts rows as read only through `count_rows` or `observe`."""
        for name, values in columns.items():
            sketch = self.sketches.get(name)
            if sketch is not None:
                sketch.update(values)

    def count_rows(self, read: int, rejected: int = 0,
                   absent: Mapping[str, int] | None = None) -> None:
        """Add rows read, rows rejected and {column: rows it was absent from}."""
        self.read += read
        self.rejected += rejected
        for column, n in (absent or {}).items():
            self.absent[column] = self.absent.get(column, 0) + n

    def add_row(self, row: Mapping[str, Any]) -> None:
        """Buffer one row's values ({feature: scalar}); folded in at FLUSH_ROWS rows."""
        for name, buf in self._buffer.items():
            buf.append(row.get(name))
        self._buffered += 1
        if self._buffered >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Fold buffered single rows into the sketches (done by every reader)."""
        if not self._buffered:
            return
        for name, buf in self._buffer.items():
            self.sketches[name].update(np.array(buf, dtype=object)
                                       if buf and isinstance(buf[0], str) else buf)
            buf.clear()
        self._buffered = 0

    def observe(self, event: ScoreEvent) -> None:
        """The scorer hook (`scorer.add_hook(state.observe)`): counts the call's rows,
        rejects and absent columns, and sketches its accepted inputs and its predictions."""
        r = event.result
        self.read += r.n_read
        self.rejected += r.n_rejected
        for (kind, column), rows in r.flags.items():
            if kind == ABSENT:
                self.absent[column] = self.absent.get(column, 0) + len(rows)
        if not r.n_scored and not event.columns:
            return
        first = next(iter(event.columns.values()), None)
        if isinstance(first, np.ndarray) or r.n_read != 1:
            self.update(event.columns)
            self.update({PREDICTION + k: v for k, v in r.columns().items()})
        else:
            self.add_row({**event.columns, **_prediction_row(r)})

    def merge(self, other: DriftState) -> DriftState:
        """The state of both windows: every count adds (see each sketch's `merge`).

        Raises:
            SchemaError: the states hold different features or bins.
        """
        if set(self.sketches) != set(other.sketches):
            raise SchemaError("cannot merge drift states of different features: "
                              f"{sorted(set(self.sketches) ^ set(other.sketches))}")
        self.flush()
        other.flush()
        absent = dict(self.absent)
        for column, n in other.absent.items():
            absent[column] = absent.get(column, 0) + n
        merged = {k: s.merge(other.sketches[k]) for k, s in self.sketches.items()}  # type: ignore[arg-type]
        return DriftState(merged, self.read + other.read, self.rejected + other.rejected, absent)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (buffered rows folded in first); `from_json` reads it back."""
        self.flush()
        return {"format": FORMAT, "read": self.read, "rejected": self.rejected,
                "absent": dict(self.absent),
                "sketches": {k: s.to_json() for k, s in self.sketches.items()}}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> DriftState:
        """The state `to_json` wrote.

        Raises:
            SchemaError: data of another format.
        """
        if d.get("format") != FORMAT:
            raise SchemaError(f"drift state format {d.get('format')!r} is not {FORMAT}")
        return cls({k: sketch_from_json(s) for k, s in d["sketches"].items()},
                   int(d["read"]), int(d["rejected"]),
                   {str(k): int(v) for k, v in d["absent"].items()})


#: The name the issue uses for a window of feature sketches.
FeatureWindow = DriftState


def _prediction_row(r: Any) -> dict[str, Any]:
    """One scored row's prediction columns as scalars, without building arrays."""
    o = r.output
    if o.values is not None and o.labels is None:
        return {PREDICTION + "value": o.values[0]}
    out: dict[str, Any] = {PREDICTION + "label": o.labels[0]}
    if o.probabilities is not None:
        for j, c in enumerate(r.classes or []):
            out[f"{PREDICTION}probability_{c}"] = o.probabilities[0, j]
    return out
