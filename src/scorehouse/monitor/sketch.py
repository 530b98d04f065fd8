"""Mergeable per-feature sketches: the drift state a server, stream worker or Spark partition
keeps in constant memory and hands on as plain JSON.

A `NumericSketch` counts values on the training baseline's own bin edges (the deciles of
`packaging/baseline.py`), plus values below the first edge, above the last, and nulls/NaN;
a `CategorySketch` counts the training categories, the categories training never saw, and
nulls. Two sketches of one feature merge exactly: counts add, and the only non-additive
parts (observed min/max, the capped table of unseen categories) are chosen so that any
order of merges gives the same result (see `CategorySketch.merge`). A `DriftState` holds
one sketch per input column and per prediction column, built by `reference.empty_state`.

Updates are vectorised (numpy `searchsorted`/`bincount`, a pandas hash index for
categories); single rows are buffered and folded in `FLUSH_ROWS` at a time, so a row costs
a few list appends in the scoring path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SchemaError

#: Distinct unseen categories a sketch names; the rest are summed under OTHER.
MAX_UNSEEN = 64
OTHER = "__other__"
#: Single rows buffered before they are folded into the sketches in one vectorised update.
FLUSH_ROWS = 4096
#: Prefix of the prediction features in a `DriftState` (e.g. 'prediction.probability_yes').
PREDICTION = "prediction."
FORMAT = 1


def _as_float(values: Any) -> np.ndarray:
    """A float64 array of `values` (numpy, Arrow, list; None/NaN/non-numbers become NaN)."""
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        values = values.to_numpy(zero_copy_only=False) if _is_arrow(values) else values.to_numpy()
    arr = np.asarray(values)
    if arr.dtype.kind in "fiub":
        return arr.astype(np.float64, copy=False)
    # Object arrays (None for missing): pandas converts in C, not a Python loop per row.
    return pd.to_numeric(pd.Series(arr, dtype=object), errors="coerce").to_numpy(np.float64)


def _is_arrow(values: Any) -> bool:
    return type(values).__module__.startswith("pyarrow")


@dataclass
class NumericSketch:
    """Counts of a numeric feature on fixed bin edges.

    `counts` has len(edges) + 1 cells: [below edges[0], bin 1, ..., bin k, above edges[-1]];
    bin j holds edges[j-1] <= x < edges[j], the last bin also x == edges[-1] (numpy.histogram's
    rule, so training values all land in bins). `nulls` counts None/NaN/±inf; `low`/`high`
    are the smallest and largest finite value seen (NaN while empty).
    """

    edges: np.ndarray
    counts: np.ndarray
    nulls: int = 0
    low: float = float("nan")
    high: float = float("nan")

    @classmethod
    def empty(cls, edges: Any) -> NumericSketch:
        """A sketch with no values on `edges` (increasing, at least two).

        Raises:
            SchemaError: edges that are not increasing or fewer than two.
        """
        e = np.asarray(edges, dtype=np.float64)
        if e.ndim != 1 or len(e) < 2 or not np.all(np.diff(e) > 0):
            raise SchemaError(f"bin edges must be >= 2 increasing numbers, got {list(e)}")
        return cls(e, np.zeros(len(e) + 1, np.int64))

    @property
    def n(self) -> int:
        """Non-null values counted."""
        return int(self.counts.sum())

    def update(self, values: Any) -> None:
        """Count a column of values (numpy, Arrow, pandas or list), vectorised."""
        x = _as_float(values)
        finite = np.isfinite(x)
        self.nulls += int(len(x) - finite.sum())
        x = x[finite]
        if not len(x):
            return
        cell = np.searchsorted(self.edges, x, side="right")
        # searchsorted puts x == edges[-1] above the range; numpy.histogram keeps it in the
        # last bin, and so must we, or the training maximum would read as out of range.
        cell[x == self.edges[-1]] = len(self.edges) - 1
        self.counts += np.bincount(cell, minlength=len(self.counts)).astype(np.int64)
        self.low = float(np.fmin(self.low, x.min()))
        self.high = float(np.fmax(self.high, x.max()))

    def merge(self, other: NumericSketch) -> NumericSketch:
        """The sketch of both windows (exact: counts add, min/max combine).

        Raises:
            SchemaError: the sketches have different bin edges.
        """
        if not np.array_equal(self.edges, other.edges):
            raise SchemaError("cannot merge numeric sketches with different bin edges")
        return NumericSketch(self.edges, self.counts + other.counts, self.nulls + other.nulls,
                             float(np.fmin(self.low, other.low)),
                             float(np.fmax(self.high, other.high)))

    def points(self) -> np.ndarray:
        """A representative value per cell (bin midpoints; the out-of-range cells sit midway
        between the outer edge and the observed min/max), for Wasserstein distances."""
        e = self.edges
        low = self.low if np.isfinite(self.low) and self.low < e[0] else e[0]
        high = self.high if np.isfinite(self.high) and self.high > e[-1] else e[-1]
        return np.concatenate([[(low + e[0]) / 2], (e[:-1] + e[1:]) / 2, [(e[-1] + high) / 2]])

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data; `from_json` reads it back."""
        return {"kind": "numeric", "edges": self.edges.tolist(), "counts": self.counts.tolist(),
                "nulls": self.nulls, "low": _num(self.low), "high": _num(self.high)}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> NumericSketch:
        """The sketch `to_json` wrote."""
        counts = np.asarray(d["counts"])
        return cls(np.asarray(d["edges"], np.float64),
                   counts.astype(np.int64 if counts.dtype.kind in "iu" else np.float64),
                   int(d["nulls"]), _float(d.get("low")), _float(d.get("high")))


def _num(v: float) -> float | None:
    return None if np.isnan(v) else v


def _float(v: Any) -> float:
    return float("nan") if v is None else float(v)


@dataclass
class CategorySketch:
    """Counts of a categorical feature: the training categories, unseen ones, nulls.

    `unseen` names at most `cap` unseen categories, those first in sort order; the counts
    of the others are summed under '__other__'. Sort order (not frequency) decides, because
    it keeps merges exact: a category kept after any merge was kept in every part.
    `boolean` columns count True/False as the text 'True'/'False', as the baseline does.
    """

    categories: tuple[str, ...]
    counts: np.ndarray
    unseen: dict[str, int] = field(default_factory=dict)
    nulls: int = 0
    boolean: bool = False
    cap: int = MAX_UNSEEN
    _index: pd.Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index = pd.Index(list(self.categories), dtype=object)

    @classmethod
    def empty(cls, categories: Any, *, boolean: bool = False, cap: int = MAX_UNSEEN
              ) -> CategorySketch:
        """A sketch with no values over the training `categories` (texts)."""
        cats = tuple(str(c) for c in categories)
        return cls(cats, np.zeros(len(cats), np.int64), boolean=boolean, cap=cap)

    @property
    def n(self) -> int:
        """Non-null values counted, seen or not."""
        return int(self.counts.sum()) + sum(self.unseen.values())

    @property
    def n_unseen(self) -> int:
        """Values outside the training categories."""
        return sum(self.unseen.values())

    def update(self, values: Any) -> None:
        """Count a column of values (numpy, Arrow, pandas or list), vectorised."""
        arr = _as_keys(values, self.boolean)
        null = pd.isna(arr)
        self.nulls += int(null.sum())
        code = self._index.get_indexer(pd.Index(arr, dtype=object, copy=False))
        self.counts += np.bincount(code[code >= 0], minlength=len(self.categories))
        new = (code < 0) & ~null
        if new.any():
            keys, n = np.unique(arr[new].astype(str), return_counts=True)
            self._add_unseen(dict(zip(keys.tolist(), n.tolist(), strict=True)))

    def _add_unseen(self, more: Mapping[str, int]) -> None:
        table = dict(self.unseen)
        for k, v in more.items():
            table[k] = table.get(k, 0) + int(v)
        other = table.pop(OTHER, 0)
        names = sorted(table)
        for k in names[self.cap:]:
            other += table.pop(k)
        self.unseen = {k: table[k] for k in names[:self.cap]}
        if other:
            self.unseen[OTHER] = other

    def merge(self, other: CategorySketch) -> CategorySketch:
        """The sketch of both windows (exact and order-free, see the class docstring).

        Raises:
            SchemaError: the sketches have different training categories.
        """
        if self.categories != other.categories:
            raise SchemaError("cannot merge category sketches with different categories")
        out = CategorySketch(self.categories, self.counts + other.counts, dict(self.unseen),
                             self.nulls + other.nulls, self.boolean, min(self.cap, other.cap))
        out._add_unseen(other.unseen)
        return out

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data; `from_json` reads it back."""
        return {"kind": "category", "categories": list(self.categories),
                "counts": self.counts.tolist(), "unseen": dict(self.unseen),
                "nulls": self.nulls, "boolean": self.boolean, "cap": self.cap}

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CategorySketch:
        """The sketch `to_json` wrote."""
        counts = np.asarray(d["counts"])
        return cls(tuple(d["categories"]),
                   counts.astype(np.int64 if counts.dtype.kind in "iu" else np.float64),
                   {str(k): int(v) for k, v in d["unseen"].items()}, int(d["nulls"]),
                   bool(d.get("boolean", False)), int(d.get("cap", MAX_UNSEEN)))


def _as_keys(values: Any, boolean: bool) -> np.ndarray:
    """An object array of category texts (None for missing) from any column of values."""
    if _is_arrow(values):
        values = values.to_numpy(zero_copy_only=False)
    arr = np.asarray(values)
    if arr.dtype.kind == "b":
        return np.where(arr, "True", "False").astype(object)
    if boolean:
        # Python True/False among None: a hash map in C turns them into the baseline's texts.
        return pd.Series(arr, dtype=object).map({True: "True", False: "False"}).to_numpy()
    if arr.dtype.kind != "O":
        arr = arr.astype(str).astype(object)
    return arr


Sketch = NumericSketch | CategorySketch


def sketch_from_json(d: Mapping[str, Any]) -> Sketch:
    """A numeric or category sketch from its `to_json` data.

    Raises:
        SchemaError: an unknown sketch kind.
    """
    if d.get("kind") == "numeric":
        return NumericSketch.from_json(d)
    if d.get("kind") == "category":
        return CategorySketch.from_json(d)
    raise SchemaError(f"unknown sketch kind {d.get('kind')!r}")
