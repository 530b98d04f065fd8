"""Permutation importance on the holdout (`sklearn.inspection.permutation_importance`):
how much the headline metric drops when one input column's values are shuffled.

Computed at `evaluate` time and stored with the evaluation, not when a card is drawn: the
holdout is at hand then (a card may be drawn months later, where the file is gone), and
the figures then describe exactly the rows the stored metrics describe. Predictions go
through the `Scorer` (schema coercion, the version's runtime), as every other figure does.

The metric is ROC AUC (binary: the positive class; multiclass: macro one-vs-rest) or R²
for regression; at most `MAX_ROWS` evaluated rows (a seeded sample), `REPEATS` shuffles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.inspection import permutation_importance
from sklearn.metrics import r2_score, roc_auc_score

from ..errors import ModelError
from ..scorer import Scorer
from .result import FeatureImportance, Importance

MAX_ROWS = 2000
REPEATS = 5


class _ThroughScorer:
    """What `permutation_importance` calls an estimator: `fit` (never called, but
    required by its parameter check) and the scorer's predictions."""

    def __init__(self, scorer: Scorer):
        self.scorer = scorer

    def fit(self, X: Any, y: Any = None) -> _ThroughScorer:
        return self

    def outputs(self, X: pd.DataFrame) -> Any:
        result = self.scorer.predict(X)
        if result.n_rejected:  # shuffled values are the column's own: should never happen
            raise ModelError(f"{result.n_rejected} shuffled row(s) rejected")
        return result.output


def _metric(task: str, classes: list[str]) -> tuple[str, Any]:
    """(metric name, scoring function (estimator, X, y) -> float)."""
    if task == "regression":
        return "r2", lambda est, X, y: r2_score(y, est.outputs(X).values)
    if len(classes) == 2:
        return "roc_auc", lambda est, X, y: roc_auc_score(
            y == classes[-1], est.outputs(X).probabilities[:, -1])
    return "roc_auc", lambda est, X, y: roc_auc_score(
        y, est.outputs(X).probabilities, multi_class="ovr", labels=classes)


def permutation(scorer: Scorer, inputs: pd.DataFrame, y: np.ndarray) -> Importance:
    """Permutation importance of each input column of `scorer` on `inputs` (the evaluated
    rows, targets `y` as class text or numbers), largest drop first; `reason` says why
    nothing was measured (e.g. one class only) when `features` is empty."""
    classes = [str(c) for c in scorer.classes or []]
    name, score = _metric(scorer.task, classes)
    X = inputs[[c for c in scorer.schema.names if c in inputs.columns]].reset_index(drop=True)
    if len(X) > MAX_ROWS:
        keep = np.random.default_rng(0).choice(len(X), MAX_ROWS, replace=False)
        keep.sort()
        X, y = X.iloc[keep].reset_index(drop=True), y[keep]
    try:
        found = permutation_importance(_ThroughScorer(scorer), X, y, scoring=score,
                                       n_repeats=REPEATS, random_state=0, n_jobs=1)
    except (ValueError, ModelError) as e:
        return Importance(name, len(X), REPEATS, [], str(e).splitlines()[0])
    rows = [FeatureImportance(str(c), float(m), float(s)) for c, m, s in
            zip(X.columns, found.importances_mean, found.importances_std, strict=True)]
    return Importance(name, len(X), REPEATS, sorted(rows, key=lambda r: -r.mean))
