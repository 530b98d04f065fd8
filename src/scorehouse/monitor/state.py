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
from .sketch import FLUSH_ROWS, FORMAT, PREDICTION, NumericSketch, Sketch, sketch_from_json

ABSENT = "absent_column"
_NAN = float("nan")


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
    #: Single rows not yet folded in: (input values, the call's Result or None).
    _rows: list[tuple[Mapping[str, Any], Any]] = field(default_factory=list, repr=False,
                                                       compare=False)

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
        self._rows.append((row, None))
        if len(self._rows) >= FLUSH_ROWS:
            self.flush()

    def flush(self) -> None:
        """Fold buffered single rows into the sketches (done by every reader)."""
        if not self._rows:
            return
        rows, self._rows = self._rows, []
        predictions = _prediction_rows(rows)
        for name, sketch in self.sketches.items():
            if name in predictions:
                values: Any = predictions[name]
            elif isinstance(sketch, NumericSketch):
                # One float array straight from the rows: no object array for pandas to parse.
                values = np.fromiter((_NAN if v is None else v for v in
                                      (r.get(name) for r, _ in rows)), np.float64, len(rows))
            else:
                values = np.array([r.get(name) for r, _ in rows], dtype=object)
            sketch.update(values)

    def observe(self, event: ScoreEvent) -> None:
        """The scorer hook (`scorer.add_hook(state.observe)`): counts the call's rows,
        rejects and absent columns, and sketches its accepted inputs and its predictions.

        A clean single-row call (scored, no flags) is only buffered: two list appends."""
        r, columns = event.result, event.columns
        if r.n_read == 1 and r.n_scored == 1 and not r.flags and type(columns) is dict:
            self.read += 1
            self._rows.append((columns, r))
            if len(self._rows) >= FLUSH_ROWS:
                self.flush()
            return
        self.read += r.n_read
        self.rejected += r.n_rejected
        for (kind, column), rows in r.flags.items():
            if kind == ABSENT:
                self.absent[column] = self.absent.get(column, 0) + len(rows)
        if not r.n_scored and not columns:
            return
        first = next(iter(columns.values()), None)
        if isinstance(first, np.ndarray) or r.n_read != 1:
            self.update(columns)
            self.update({PREDICTION + k: v for k, v in r.columns().items()})
        else:
            self._rows.append((dict(columns), r))
            if len(self._rows) >= FLUSH_ROWS:
                self.flush()

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


def _prediction_rows(rows: list[tuple[Mapping[str, Any], Any]]) -> dict[str, Any]:
    """{prediction feature: values} of buffered rows, from each row's Result; an empty dict
    when no row has one (rows given by `add_row` carry their own prediction values)."""
    results = [r for _, r in rows]
    if any(r is None for r in results):
        return {}
    first = results[0].output
    if first.labels is None:
        return {PREDICTION + "value": np.concatenate([r.output.values for r in results])}
    out: dict[str, Any] = {PREDICTION + "label": np.concatenate([r.output.labels
                                                                 for r in results])}
    if first.probabilities is not None:
        p = np.concatenate([r.output.probabilities for r in results])
        for j, c in enumerate(results[0].classes or []):
            out[f"{PREDICTION}probability_{c}"] = p[:, j]
    return out
