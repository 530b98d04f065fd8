"""Two models' predictions as arrays (`Scored`), and their performance against late labels
with a bootstrap interval of the difference (`performance`).

Metrics (scikit-learn's `sklearn.metrics` for the figures, the vectorised replicates of
`evaluation.paired` for the intervals):

- classification: accuracy (the logged label against the target, both as text), log loss
  (every class's logged probability; None when a target is not among the model's
  classes), ROC AUC (two classes only: P(positive class); None when the rows hold one
  class);
- regression: RMSE and MAE.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn import metrics as skm

from .comparison import MetricDifference, Performance
from .metrics import HIGHER_IS_BETTER
from .paired import (
    REPLICATES,
    SEED,
    Replicated,
    bootstrap_differences,
    weighted_auc,
    weighted_mean,
    weighted_rmse,
)

Array = npt.NDArray[Any]
CLASSIFICATION = ("roc_auc", "log_loss", "accuracy")
REGRESSION = ("rmse", "mae")


@dataclass(frozen=True)
class Scored:
    """One model's scored requests, row i of each array for `ids[i]`: `labels` (text) and
    `proba` (rows x `classes`) for a classifier, `score` (P(positive) or the value; None
    for a classifier without probabilities)."""

    ids: Array
    score: Array | None
    labels: Array | None = None
    proba: Array | None = None
    classes: tuple[str, ...] = ()

    def take(self, rows: Array) -> Scored:
        """The requests at positions `rows`, in that order."""
        def pick(a: Array | None) -> Array | None:
            return None if a is None else a[rows]
        return Scored(self.ids[rows], pick(self.score), pick(self.labels), pick(self.proba),
                      self.classes)

    def __len__(self) -> int:
        return len(self.ids)


#: A metric's figure on all rows, and its replicated form (None: undefined, with why).
Measured = tuple[float | None, Replicated | None, str]


def _accuracy(s: Scored, y: Array) -> Measured:
    if s.labels is None:
        return None, None, "no logged labels"
    right = (s.labels == y).astype(np.float64)
    return float(skm.accuracy_score(y, s.labels)), weighted_mean(right), ""


def _log_loss(s: Scored, y: Array) -> Measured:
    if s.proba is None:
        return None, None, "no logged probabilities"
    where = {c: j for j, c in enumerate(s.classes)}
    if not set(y.tolist()) <= set(where):
        return None, None, "targets not among the model's classes"
    true = s.proba[np.arange(len(y)), [where[v] for v in y.tolist()]]
    eps = np.finfo(np.float64).eps
    terms = -np.log(np.clip(true, eps, 1 - eps))
    # scikit-learn takes the columns in the sorted order of `labels`.
    order = sorted(where)
    figure = skm.log_loss(y, s.proba[:, [where[c] for c in order]], labels=order)
    return float(figure), weighted_mean(terms), ""


def _auc(s: Scored, y: Array, positive: str | None) -> Measured:
    if s.score is None or len(s.classes) != 2 or positive is None:
        return None, None, "ROC AUC of two-class models only"
    y01 = (y == positive).astype(np.int64)
    if len(np.unique(y01)) < 2:
        return None, None, "only one class in the targets"
    return float(skm.roc_auc_score(y01, s.score)), weighted_auc(y01, s.score), ""


def _errors(s: Scored, y: Array, name: str) -> Measured:
    if s.score is None:
        return None, None, "no logged values"
    err = s.score - y
    if name == "rmse":
        return float(skm.root_mean_squared_error(y, s.score)), weighted_rmse(err), ""
    return float(skm.mean_absolute_error(y, s.score)), weighted_mean(np.abs(err)), ""


def _measure(name: str, s: Scored, y: Array, positive: str | None) -> Measured:
    fn: dict[str, Callable[[], Measured]] = {
        "accuracy": lambda: _accuracy(s, y), "log_loss": lambda: _log_loss(s, y),
        "roc_auc": lambda: _auc(s, y, positive), "rmse": lambda: _errors(s, y, "rmse"),
        "mae": lambda: _errors(s, y, "mae")}
    return fn[name]()


def targets(values: Array, task: str) -> Array:
    """Targets as the metrics compare them: text for a classifier (as the logged labels
    are read), float for a regressor."""
    if task == "regression":
        return np.asarray(values, np.float64)
    return np.array([str(v) for v in values], dtype=object)


def performance(a: Scored, b: Scored, y_a: Array, y_b: Array, *, task: str,
                positive: str | None, names: tuple[str, str], paired: bool,
                replicates: int = REPLICATES, seed: int = SEED,
                confidence: float = 0.95) -> Performance:
    """Both models' metrics against their targets (`y_a`, `y_b`: row for row; the same
    requests when `paired`), and the bootstrap interval of each difference B - A
    (`evaluation.paired.bootstrap_differences`: paired, or independent resamples).

    Raises:
        ValueError: `paired` with rows of different lengths.
    """
    if paired and len(a) != len(b):
        raise ValueError("paired performance needs the same requests for both models")
    figures, replicated, notes = [], [], []
    for name in REGRESSION if task == "regression" else CLASSIFICATION:
        va, ra, why_a = _measure(name, a, y_a, positive)
        vb, rb, why_b = _measure(name, b, y_b, positive)
        if ra is None or rb is None:
            notes.append(f"{name}: {why_a or why_b}")
        else:
            replicated.append((name, ra, rb))
        figures.append((name, va, vb))
    intervals = dict(zip([n for n, _, _ in replicated], bootstrap_differences(
        [(ra, rb) for _, ra, rb in replicated], len(a), None if paired else len(b),
        replicates=replicates, seed=seed, confidence=confidence), strict=True)) \
        if replicated and len(a) and len(b) else {}
    metrics = []
    for name, va, vb in figures:
        low, high = intervals.get(name, (None, None))
        diff = None if va is None or vb is None else vb - va
        higher = HIGHER_IS_BETTER[name]
        better = ""
        if low is not None and high is not None and np.isfinite(low) and (low > 0 or high < 0):
            better = names[1] if (low > 0) == higher else names[0]
        metrics.append(MetricDifference(name, va, vb, diff, _finite(low), _finite(high),
                                        higher, better))
    return Performance(len(a), len(b), paired, tuple(metrics), replicates, seed, confidence,
                       tuple(notes))


def _finite(v: float | None) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


__all__ = ["CLASSIFICATION", "REGRESSION", "Scored", "performance", "targets"]
