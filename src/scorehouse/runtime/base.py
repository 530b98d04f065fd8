"""The runtime interface: canonical columns in, labels/probabilities/values out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..artifact import Artifact
from ..schema import Schema


@dataclass
class Output:
    """What a runtime returns for n rows: labels and (n, k) probabilities, or values."""

    labels: np.ndarray | None = None
    probabilities: np.ndarray | None = None
    values: np.ndarray | None = None

    def take(self, idx: np.ndarray) -> Output:
        """The rows at `idx`."""
        pick = lambda a: None if a is None else a[idx]  # noqa: E731
        return Output(pick(self.labels), pick(self.probabilities), pick(self.values))

    @staticmethod
    def concat(parts: list[Output]) -> Output:
        """Rows of several outputs, in order."""
        def cat(attr: str) -> np.ndarray | None:
            arrays = [getattr(p, attr) for p in parts]
            return None if arrays[0] is None else np.concatenate(arrays)
        return Output(cat("labels"), cat("probabilities"), cat("values"))


class Runtime(ABC):
    """Turns an artifact into something that predicts; every channel reaches it via Scorer."""

    name = ""
    #: True when `predict` spreads a large batch over every core itself (callers then need
    #: no threads of their own).
    parallel_batches = False
    #: The recorded parity failure of a compiled graph the user chose to run anyway (see
    #: `runtime_for`), else None; results repeat it so no answer hides it.
    parity_accepted: str | None = None

    def __init__(self, artifact: Artifact, schema: Schema):
        self.artifact = artifact
        self.schema = schema
        m = artifact.manifest
        self.task: str = m.task
        self.classes = np.asarray(list(m.classes), dtype=object) if m.classes else None

    @abstractmethod
    def predict(self, columns: Mapping[str, np.ndarray], n: int) -> Output:
        """Predict n rows given as canonical columns (see `schema.validate`)."""

    def prepare(self) -> None:
        """Do now the one-time work of the first batch (compiling, caches): for servers."""
        return None  # the native runtime has none

    def use_one_thread(self) -> None:
        """Score every call on one thread, for hosts that run a process per core (Spark).

        A native model keeps the threading it was trained with (its own n_jobs).
        """
        return None  # the native runtime has nothing to change

    def predict_row(self, row: Mapping[str, Any]) -> Output:
        """Predict one row of already coerced scalars; runtimes may override for speed."""
        return self.predict({c.name: _one(c.type, row.get(c.name)) for c in self.schema.columns}, 1)

    def labels_from(self, proba: np.ndarray) -> np.ndarray:
        """Class labels for rows of probabilities (the most probable class)."""
        assert self.classes is not None  # only a classifier's runtime gives probabilities
        return self.classes[np.argmax(proba, axis=1)]


def _one(kind: str, v: Any) -> np.ndarray:
    if kind == "integer":
        return np.array([np.nan if v is None else v], dtype="float64" if v is None else "int64")
    if kind == "number":
        return np.array([np.nan if v is None else v], dtype="float64")
    if kind == "datetime":
        return np.array([np.datetime64("NaT") if v is None else np.datetime64(v)],
                        dtype="datetime64[ns]")
    if kind == "boolean" and v is not None:
        return np.array([v], dtype=bool)
    out = np.empty(1, dtype=object)
    out[0] = v
    return out


#: How far a row of probabilities may sum from 1 and still be returned untouched.
SUM_TOLERANCE = 1e-12


def proper_probabilities(proba: np.ndarray) -> np.ndarray:
    """(n, k) probabilities with every value in [0, 1] and every row summing to 1 (within
    SUM_TOLERANCE): the invariant every runtime's output is held to (by `Scorer`).

    Rows that already hold it are kept as they are, so native digits stay native. Others
    (float rounding: a tree kernel's 1 - 1.0000000000000002, a float32 graph's sums) are
    clipped to [0, 1] and divided by their sum, on a copy. Rows holding NaN, or nothing but
    zeros, cannot be repaired and come back non-finite, for the caller to reject.
    """
    if proba.ndim != 2 or not proba.size:
        return proba
    # Column by column: numpy's reductions along a short row axis are far slower (BENCHMARKS.md).
    columns = [proba[:, j] for j in range(proba.shape[1])]
    with np.errstate(invalid="ignore"):
        off = np.abs(sum(columns) - 1.0) > SUM_TOLERANCE  # NaN compares False: kept as is
        if (proba < 0.0).any() or (proba > 1.0).any():
            for c in columns:
                off |= (c < 0.0) | (c > 1.0)
    if not off.any():
        return proba
    out = np.array(proba, dtype=np.float64)
    rows = np.clip(out[off], 0.0, 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rows /= rows.sum(axis=1, keepdims=True)
    out[off] = rows
    return out


def binary_proba(p1: np.ndarray) -> np.ndarray:
    """(n, 2) probabilities from the positive-class probability."""
    p1 = np.asarray(p1, dtype="float64").reshape(-1)
    return np.column_stack([1.0 - p1, p1])
