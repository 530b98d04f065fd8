"""The figures of an evaluation, all from scikit-learn (`sklearn.metrics`,
`sklearn.calibration`), never hand-written formulas, except the calibration error, which
scikit-learn does not compute and which is built here on its calibration curve.

Calibration error (ECE): the predicted probabilities are cut into `CALIBRATION_BINS`
equal-width bins on [0, 1], exactly as `calibration_curve(strategy="uniform")` cuts them
(`np.searchsorted` on the inner edges); ECE = sum over non-empty bins of
(rows in bin / rows) * |fraction positive in bin - mean predicted probability in bin|.
Binary: on P(positive class); multiclass: top-label (the highest probability against
whether the predicted label was right).

Binary metrics are for the positive class, the last of the model's classes (what
`Scorer.headline` scores); multiclass ones are macro averages over one-vs-rest.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn import metrics as skm
from sklearn.calibration import calibration_curve
from sklearn.preprocessing import label_binarize

from .result import MAX_POINTS, Curve, MetricSet

#: Equal-width probability bins of the calibration curve and error.
CALIBRATION_BINS = 10
#: Cells of the residual histogram, and the residual quantiles kept.
RESIDUAL_BINS = 30
RESIDUAL_QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
#: Which way each metric is better: True when higher is better.
HIGHER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True, "pr_auc": True, "log_loss": False, "brier": False, "accuracy": True,
    "f1": True, "ece": False, "rmse": False, "mae": False, "r2": True, "mape": False,
}
CLASSIFICATION_METRICS = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "f1", "ece")
REGRESSION_METRICS = ("rmse", "mae", "r2", "mape")

Array = npt.NDArray[Any]


class _Collector:
    """Metrics computed one by one; one that scikit-learn refuses is kept absent with why."""

    def __init__(self, rows: int):
        self.rows = rows
        self.values: dict[str, float] = {}
        self.absent: dict[str, str] = {}

    def add(self, name: str, fn: Callable[[], Any]) -> None:
        try:
            value = float(fn())
        except ValueError as e:  # one class only, a single row ...
            self.absent[name] = str(e).splitlines()[0]
            return
        if np.isfinite(value):
            self.values[name] = value
        else:
            self.absent[name] = "not a finite number on these rows"

    def result(self) -> MetricSet:
        return MetricSet(self.rows, self.values, self.absent)


def calibration(y01: Array, p: Array, bins: int = CALIBRATION_BINS
                ) -> tuple[float, Array, Array, Array]:
    """ECE and the calibration curve: (ece, fraction positive, mean predicted, rows) per
    non-empty bin, on `calibration_curve`'s uniform bins (see the module docstring)."""
    prob_true, prob_pred = calibration_curve(y01, p, n_bins=bins, strategy="uniform",
                                             pos_label=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    total = np.bincount(np.searchsorted(edges[1:-1], p), minlength=bins)
    counts = total[total != 0]
    ece = float(np.sum(counts / counts.sum() * np.abs(prob_true - prob_pred)))
    return ece, prob_true, prob_pred, counts


def _one_class(y01: Array) -> str | None:
    if len(np.unique(y01)) < 2:
        return "only one class in the target on these rows"
    return None


def binary_metrics(y: Array, proba: Array, labels: Array, classes: list[str]) -> MetricSet:
    """Metrics of a two-class model: `y` and `labels` as class text, `proba` (n, 2)."""
    pos = classes[-1]
    y01, p = (y == pos).astype(np.int64), proba[:, -1]
    m = _Collector(len(y))
    _ranking(m, y01, p)
    m.add("log_loss", lambda: skm.log_loss(y, proba, labels=classes))
    m.add("brier", lambda: skm.brier_score_loss(y01, p))
    m.add("accuracy", lambda: skm.accuracy_score(y, labels))
    m.add("f1", lambda: skm.f1_score(y01, (labels == pos).astype(np.int64), zero_division=0))
    m.add("ece", lambda: calibration(y01, p)[0])
    return m.result()


def multiclass_metrics(y: Array, proba: Array, labels: Array, classes: list[str]) -> MetricSet:
    """Macro one-vs-rest metrics of a model of more than two classes."""
    m = _Collector(len(y))
    onehot = label_binarize(y, classes=classes)
    m.add("roc_auc", lambda: skm.roc_auc_score(y, proba, multi_class="ovr", average="macro",
                                               labels=classes))
    m.add("pr_auc", lambda: skm.average_precision_score(onehot, proba, average="macro"))
    m.add("log_loss", lambda: skm.log_loss(y, proba, labels=classes))
    m.add("brier", lambda: skm.brier_score_loss(y, proba, labels=classes))
    m.add("accuracy", lambda: skm.accuracy_score(y, labels))
    m.add("f1", lambda: skm.f1_score(y, labels, labels=classes, average="macro",
                                     zero_division=0))
    correct = (labels == y).astype(np.int64)
    m.add("ece", lambda: calibration(correct, proba.max(axis=1))[0])
    return m.result()


def per_class_metrics(y: Array, proba: Array, labels: Array, classes: list[str]
                      ) -> dict[str, MetricSet]:
    """One-vs-rest metrics of each class: ROC AUC, PR AUC, Brier, F1, ECE (`rows`: the
    class's support)."""
    return {c: _one_vs_rest((y == c).astype(np.int64), proba[:, j],
                            (labels == c).astype(np.int64))
            for j, c in enumerate(classes)}


def _ranking(m: _Collector, y01: Array, p: Array) -> None:
    """ROC AUC and PR AUC (average precision) of scores `p` for 0/1 outcomes `y01`; absent,
    with the reason, when the rows hold one class only."""
    single = _one_class(y01)
    for name, fn in (("roc_auc", lambda: skm.roc_auc_score(y01, p)),
                     ("pr_auc", lambda: skm.average_precision_score(y01, p))):
        if single:
            m.absent[name] = single
        else:
            m.add(name, fn)


def _one_vs_rest(y01: Array, p: Array, pred01: Array) -> MetricSet:
    m = _Collector(int(y01.sum()))
    _ranking(m, y01, p)
    m.add("brier", lambda: skm.brier_score_loss(y01, p, pos_label=1))
    m.add("f1", lambda: skm.f1_score(y01, pred01, zero_division=0))
    m.add("ece", lambda: calibration(y01, p)[0])
    return m.result()


def regression_metrics(y: Array, pred: Array) -> MetricSet:
    """RMSE, MAE, R² and, when no target is zero, MAPE (as a fraction, not a percent)."""
    m = _Collector(len(y))
    m.add("rmse", lambda: skm.root_mean_squared_error(y, pred))
    m.add("mae", lambda: skm.mean_absolute_error(y, pred))
    if len(y) < 2:
        m.absent["r2"] = "R² needs at least two rows"
    else:
        m.add("r2", lambda: skm.r2_score(y, pred))
    zeros = int((y == 0).sum())
    if zeros:
        # sklearn divides by max(|y|, eps) and would answer a huge, meaningless number.
        m.absent["mape"] = f"{zeros} target(s) are zero: MAPE is undefined"
    else:
        m.add("mape", lambda: skm.mean_absolute_percentage_error(y, pred))
    return m.result()


def thin(*arrays: Array, most: int = MAX_POINTS) -> list[list[float]]:
    """The arrays (same length) cut to at most `most` points, evenly, ends kept."""
    n = len(arrays[0])
    idx = np.unique(np.round(np.linspace(0, n - 1, most)).astype(np.int64)) if n > most \
        else np.arange(n)
    return [[float(v) for v in a[idx]] for a in arrays]


def classification_curves(y: Array, proba: Array, labels: Array, classes: list[str]
                          ) -> list[Curve]:
    """ROC and precision-recall curves (binary: of the positive class; multiclass: one-vs-
    rest per class), and the calibration curve (multiclass: top-label)."""
    targets = [(classes[-1], -1)] if len(classes) == 2 else [(c, j) for j, c in enumerate(classes)]
    curves: list[Curve] = []
    for c, j in targets:
        y01, p = (y == c).astype(np.int64), proba[:, j]
        label = "" if len(classes) == 2 else c
        if _one_class(y01):
            continue
        fpr, tpr, _ = skm.roc_curve(y01, p)
        x, v = thin(fpr, tpr)
        curves.append(Curve("roc", label, "false_positive_rate", "true_positive_rate", x, v))
        precision, recall, _ = skm.precision_recall_curve(y01, p)
        x, v = thin(recall[::-1], precision[::-1])
        curves.append(Curve("pr", label, "recall", "precision", x, v))
    if len(classes) == 2:
        y01, p = (y == classes[-1]).astype(np.int64), proba[:, -1]
    else:
        y01, p = (labels == y).astype(np.int64), proba.max(axis=1)
    _, frac, mean, counts = calibration(y01, p)
    curves.append(Curve("calibration", "", "mean_predicted", "fraction_positive",
                        [float(v) for v in mean], [float(v) for v in frac],
                        [int(c) for c in counts]))
    return curves


def regression_curves(y: Array, pred: Array) -> list[Curve]:
    """The residual (target - prediction) histogram and quantiles, and the calibration of
    the predictions: mean target against mean prediction per decile of prediction."""
    residual = y - pred
    counts, edges = np.histogram(residual, bins=RESIDUAL_BINS)
    mids = (edges[:-1] + edges[1:]) / 2
    curves = [
        Curve("residuals", "", "residual", "fraction", [float(v) for v in mids],
              [float(v) for v in counts / max(1, len(y))], [int(c) for c in counts]),
        Curve("residual_quantiles", "", "quantile", "residual", list(RESIDUAL_QUANTILES),
              [float(v) for v in np.quantile(residual, RESIDUAL_QUANTILES)]),
    ]
    order = np.argsort(pred, kind="stable")
    deciles = [d for d in np.array_split(order, min(10, len(order))) if len(d)]
    curves.append(Curve("calibration", "", "mean_predicted", "mean_target",
                        [float(pred[d].mean()) for d in deciles],
                        [float(y[d].mean()) for d in deciles], [len(d) for d in deciles]))
    return curves
