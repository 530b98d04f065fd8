"""Decay against late labels: the model's performance on logged predictions whose ground
truth arrived later, window by window and version by version, next to the figure the
model had at packaging (the artifact manifest's metrics).

    report = decay(monitored("churn@production"), "labels.parquet", id_column="customer_id",
                   target="churned", window="day")
    report.windows[-1].roc_auc, report.reference["roc_auc"].value

Metrics (scikit-learn's `sklearn.metrics`, on the rows of a window):

- classification: accuracy (`accuracy_score`, the logged label against the target, both as
  text), log loss (`log_loss`, logged class probabilities, labels = the model's classes),
  ROC AUC (`roc_auc_score`; binary: P(second class); more classes: one-vs-rest, None when
  the window lacks a class), expected calibration error (binary only): 10 equal-width
  bins of P(second class) on [0, 1], binned as `sklearn.calibration.calibration_curve(
  strategy="uniform")` bins them, ECE = sum over non-empty bins of (rows in bin / rows) *
  |share of positives - mean predicted probability|;
- regression: RMSE (`root_mean_squared_error`) and MAE (`mean_absolute_error`).

A metric a window cannot have is None with the reason in `notes` (one class only; targets
that are not among the model's classes, which log loss and AUC cannot score).
The reference line is the manifest's `holdout_<metric>`, `test_<metric>`,
`validation_<metric>` or `training_<metric>`, the first found (`scorehouse package
--metric` records the others; packaging computes the training ones on its sample).
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from ..artifact.manifest import Manifest
from ..scorer import Scorer
from .labels import TARGET, LabelAccounting, join_labels, read_labels
from .log.records import PREDICTION
from .windowing import WindowSpec, split_log
from .windows import logged_rows

#: Bins of the expected calibration error.
ECE_BINS = 10
#: Manifest metric prefixes tried for the reference line, best first.
REFERENCE_PREFIXES = ("holdout_", "test_", "validation_", "training_")
CLASSIFICATION = ("accuracy", "log_loss", "roc_auc", "ece")
REGRESSION = ("rmse", "mae")


@dataclass(frozen=True)
class ReferenceFigure:
    """A metric as packaging recorded it: `value`, and the manifest key (`source`)."""

    value: float
    source: str


@dataclass(frozen=True)
class FeedbackWindow:
    """One window of one version: `rows` labelled predictions, their metrics (None where
    not computable or not of the task) and why a metric is missing (`notes`)."""

    version: int | None
    start: dt.datetime
    end: dt.datetime
    rows: int
    accuracy: float | None = None
    log_loss: float | None = None
    roc_auc: float | None = None
    ece: float | None = None
    rmse: float | None = None
    mae: float | None = None
    notes: tuple[str, ...] = ()

    def metric(self, name: str) -> float | None:
        """One metric by name (accuracy, log_loss, roc_auc, ece, rmse, mae)."""
        value: float | None = getattr(self, name)
        return value

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        d = asdict(self)
        d.update(start=self.start.isoformat(), end=self.end.isoformat(), notes=list(self.notes))
        return d


@dataclass(frozen=True)
class DecayReport:
    """Performance over windows against the packaging figures, and the labels' accounting."""

    model: str
    version: int | None
    task: str
    window: str
    metrics: tuple[str, ...]
    reference: dict[str, ReferenceFigure]
    labels: LabelAccounting
    windows: tuple[FeedbackWindow, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {"model": self.model, "version": self.version, "task": self.task,
                "window": self.window, "metrics": list(self.metrics),
                "reference": {k: asdict(v) for k, v in self.reference.items()},
                "labels": self.labels.to_dict(),
                "windows": [w.to_dict() for w in self.windows]}


def reference_figures(manifest: Manifest, names: tuple[str, ...]) -> dict[str, ReferenceFigure]:
    """{metric: its packaging figure} from the manifest's lineage metrics (see the module
    docstring for the order of preference); metrics without one are left out."""
    recorded = manifest.metrics
    out = {}
    for name in names:
        for prefix in REFERENCE_PREFIXES:
            # Packaging calls a multi-class AUC roc_auc_ovr.
            for key in (prefix + name, prefix + name + "_ovr"):
                if key in recorded and name not in out:
                    out[name] = ReferenceFigure(float(recorded[key]), key)
    return out


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE of P(positive) `p` against 0/1 outcomes `y` on `bins` equal-width bins (the
    module docstring): `sklearn.calibration.calibration_curve` gives each non-empty bin's
    share of positives and mean probability; the same bin ids weight them by their rows."""
    from sklearn.calibration import calibration_curve

    share, mean_p = calibration_curve(y, p, n_bins=bins, strategy="uniform")
    # calibration_curve's own binning (sklearn/calibration.py), to count the rows per bin.
    ids = np.searchsorted(np.linspace(0.0, 1.0, bins + 1)[1:-1], p)
    counts = np.bincount(ids, minlength=bins)
    counts = counts[counts > 0]
    return float(np.sum(counts / len(p) * np.abs(share - mean_p)))


def _classification(rows: pa.Table, classes: list[Any]) -> tuple[dict[str, float], list[str]]:
    """Classification metrics of labelled rows, and notes on those left out."""
    from sklearn import metrics as skm

    y = np.array([str(v) for v in rows.column(TARGET).to_pylist()])
    names = [str(c) for c in classes]
    labels = np.array([str(v) for v in rows.column(PREDICTION + "label").to_pylist()])
    out = {"accuracy": float(skm.accuracy_score(y, labels))}
    notes: list[str] = []
    columns = [PREDICTION + f"probability_{c}" for c in names]
    if not all(c in rows.column_names for c in columns):
        return out, ["no logged probabilities: accuracy only"]
    if not set(y) <= set(names):
        unknown = sorted(set(y) - set(names))[:5]
        return out, [f"targets not among the model's classes ({', '.join(unknown)}): "
                     "accuracy only"]
    proba = np.column_stack([rows.column(c).to_numpy(zero_copy_only=False) for c in columns])
    out["log_loss"] = float(skm.log_loss(y, proba, labels=names))
    if len(set(y)) < len(names):
        notes.append("a class is missing from the window's targets: no ROC AUC or ECE")
        return out, notes
    if len(names) == 2:
        positive = y == names[1]
        out["roc_auc"] = float(skm.roc_auc_score(positive, proba[:, 1]))
        out["ece"] = expected_calibration_error(positive.astype(int), proba[:, 1])
    else:
        out["roc_auc"] = float(skm.roc_auc_score(y, proba, multi_class="ovr", labels=names))
    return out, notes


def _regression(rows: pa.Table) -> dict[str, float]:
    from sklearn import metrics as skm

    y = np.asarray(rows.column(TARGET).to_pylist(), np.float64)
    v = rows.column(PREDICTION + "value").to_numpy(zero_copy_only=False).astype(np.float64)
    return {"rmse": float(skm.root_mean_squared_error(y, v)),
            "mae": float(skm.mean_absolute_error(y, v))}


def window_metrics(rows: pa.Table, task: str, classes: list[Any] | None
                   ) -> tuple[dict[str, float], list[str]]:
    """The metrics of labelled logged rows (`join_labels`' table) and notes."""
    import sklearn

    # The parameters are ours (class lists, flags): skipping scikit-learn's check of them
    # (its data checks stay) saves a third of a window's cost, which a monitoring page pays
    # once per window (168 for a week of hours).
    with sklearn.config_context(skip_parameter_validation=True):
        if task == "regression":
            return _regression(rows), []
        return _classification(rows, classes or [])


def decay(scorer: Scorer, labels: str | os.PathLike[str], *, id_column: str, target: str,
          window: str | WindowSpec = "day", all_versions: bool = True,
          **select: Any) -> DecayReport:
    """Performance of `scorer`'s model over windows of its labelled logged predictions.

    Args:
        scorer: the model (`windows.monitored`); its manifest gives the reference line.
        labels: a Parquet or CSV file with `id_column` (the logged row id: request, event
            or row key) and `target` (the true value), rows in any order, possibly partial
            or repeated (see `monitor.labels` for what happens to each row).
        window: a `WindowSpec` or its text; windows are by prediction (logged) time.
        all_versions: every version of the model (default, each in windows of its own),
            or only the scorer's.
        **select: `source`, `since`, `until` of `windows.logged_rows`.

    Raises:
        NotFoundError: no labels file, or no logged row of the model.
        SchemaError: the labels file lacks the id or target column.
        UsageError: a labels file that is neither Parquet nor CSV; a bad window.
    """
    spec = window if isinstance(window, WindowSpec) else WindowSpec.parse(window)
    frame = read_labels(labels, id_column, target)
    joined, accounting = join_labels(frame, logged_rows(scorer, all_versions=all_versions,
                                                        **select))
    names = REGRESSION if scorer.task == "regression" else CLASSIFICATION
    windows = []
    for w in split_log(joined, spec) if joined.num_rows else []:
        figures, notes = window_metrics(w.rows, scorer.task, scorer.classes)
        windows.append(FeedbackWindow(w.version, w.start, w.end, w.rows.num_rows,
                                      **figures, notes=tuple(notes)))
    return DecayReport(scorer.name, scorer.version, scorer.task, spec.text, names,
                       reference_figures(scorer.manifest, names), accounting, tuple(windows))


__all__ = ["ECE_BINS", "DecayReport", "FeedbackWindow", "ReferenceFigure", "decay",
           "expected_calibration_error", "reference_figures", "window_metrics"]
