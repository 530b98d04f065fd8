"""The figures of one monitoring window that alert rules test and reports plot: the
window's drift and input quality, decay metrics from late labels, error rate and latency.

A figure is named by a short text (the `figure` of an alert rule):

| figure | column | value |
|---|---|---|
| `drift.share` | none | share of drifted input columns (`DatasetDrift.share`) |
| `drift.drifted` | optional | 1.0/0.0 for a column; without one, drifted input columns |
| `drift.score` | optional | `drift_score`: statistic over threshold, 1.0 = the verdict's line |
| `drift.psi`, `.jensenshannon`, `.wasserstein`, `.effect_size` | optional | largest of inputs |
| `drift.p_adjusted` | optional | the column's; without one, the smallest over input columns |
| `drift.statistic` | required | the verdict statistic (a p-value for KS/chi-squared) |
| `quality.reject_rate` | none | rows refused, of rows read |
| `quality.null_rate`, `.unseen_rate`, `.out_of_range_rate`, `.absent_rate` | optional | largest |
| `metric.<name>` | none | a named figure of the window's label metrics, e.g. `metric.roc_auc` |
| `error_rate` | none | rows the model failed on (raised or gave no finite output), of rows (a fraction) |
| `latency_p99_ms` | none | 99th percentile latency, milliseconds |

"largest"/"smallest": with a column, that column's value; without one, the largest
(smallest) over the input columns. A figure the window does not have (no labels yet, no
latency figures) is None: "no data".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import UsageError
from .drift import ColumnDrift, DatasetDrift, Method
from .quality import QualityReport

DRIFT_FIELDS = ("share", "drifted", "score", "psi", "jensenshannon", "wasserstein",
                "effect_size", "p_adjusted", "statistic")
QUALITY_FIELDS = ("reject_rate", "null_rate", "unseen_rate", "out_of_range_rate",
                  "absent_rate")
SCALARS = ("error_rate", "latency_p99_ms")
#: Figures that take no column.
WHOLE_WINDOW = ("drift.share", "quality.reject_rate", *SCALARS)
#: Figures that need a column.
NEEDS_COLUMN = ("drift.statistic",)
#: p-values below this are taken as this in `drift_score` (log of 0 is undefined).
MIN_P = 1e-300


@dataclass(frozen=True)
class WindowFigures:
    """What one window measured; every part is optional.

    `start` is when the window began (a datetime or ISO text, shown in alerts);
    `metrics` are label metrics from a feedback step ({'roc_auc': 0.81, ...});
    `error_rate` is a fraction in [0, 1]; `latency_p99_ms` in milliseconds.
    """

    start: datetime | str | None = None
    drift: DatasetDrift | None = None
    quality: QualityReport | None = None
    metrics: Mapping[str, float] = field(default_factory=dict)
    error_rate: float | None = None
    latency_p99_ms: float | None = None

    @property
    def label(self) -> str:
        """The window's start as text ('' when unknown)."""
        if isinstance(self.start, datetime):
            return self.start.isoformat()
        return self.start or ""


def drift_score(c: ColumnDrift) -> float:
    """A column's verdict statistic on one scale for every method: 1.0 at the threshold,
    above 1.0 drifted. Distances give statistic / threshold; tests give
    log(p) / log(threshold), so p = threshold reads 1.0 and p = threshold**2 reads 2.0."""
    if c.method in (Method.KS.value, Method.CHISQUARE.value):
        return math.log(max(c.statistic, MIN_P)) / math.log(c.threshold)
    return c.statistic / c.threshold if c.threshold else math.inf


def check_figure(figure: str, column: str | None) -> str | None:
    """Why `figure` (with `column`) is not a known figure, or None when it is."""
    kind, _, name = figure.partition(".")
    if figure in SCALARS:
        pass
    elif kind == "drift" and name in DRIFT_FIELDS:
        pass
    elif kind == "quality" and name in QUALITY_FIELDS:
        pass
    elif kind == "metric" and name:
        pass
    else:
        return (f"unknown figure {figure!r}: use drift.<{'|'.join(DRIFT_FIELDS)}>, "
                f"quality.<{'|'.join(QUALITY_FIELDS)}>, metric.<name>, error_rate or "
                "latency_p99_ms")
    if column is not None and (figure in WHOLE_WINDOW or kind == "metric"):
        return f"figure {figure!r} is of the whole window and takes no column"
    if column is None and figure in NEEDS_COLUMN:
        return f"figure {figure!r} needs a column (its meaning differs by method)"
    return None


def figure_value(window: WindowFigures, figure: str, column: str | None = None
                 ) -> float | None:
    """The value of `figure` in `window` (the table in the module docstring), or None when
    the window has no data for it.

    Raises:
        UsageError: an unknown figure, or a column the window's drift/quality lacks.
    """
    problem = check_figure(figure, column)
    if problem:
        raise UsageError(problem)
    kind, _, name = figure.partition(".")
    if kind == "metric":
        value = window.metrics.get(name)
        return None if value is None else float(value)
    if kind == "drift":
        return None if window.drift is None else _drift_value(window.drift, name, column)
    if kind == "quality":
        return None if window.quality is None else _quality_value(window.quality, name, column)
    scalar = window.error_rate if figure == "error_rate" else window.latency_p99_ms
    return None if scalar is None else float(scalar)


def _drift_value(d: DatasetDrift, name: str, column: str | None) -> float | None:
    if name == "share":
        return d.share
    if column is not None:
        try:
            c = d.column(column)
        except KeyError:
            raise UsageError(f"column {column!r} is not among the drift columns "
                             f"{[x.column for x in d.columns]}") from None
        return _column_figure(c, name)
    inputs = [c for c in d.columns if c.column in d.inputs]
    if name == "drifted":
        return float(sum(c.drifted for c in inputs))
    values = [v for v in (_column_figure(c, name) for c in inputs) if v is not None]
    if not values:
        return None
    return min(values) if name == "p_adjusted" else max(values)


def _column_figure(c: ColumnDrift, name: str) -> float | None:
    if name == "drifted":
        return 1.0 if c.drifted else 0.0
    if name == "score":
        return drift_score(c)
    if name == "effect_size":
        return c.effect_size
    value = getattr(c, name)
    return None if value is None else float(value)


def _quality_value(q: QualityReport, name: str, column: str | None) -> float | None:
    if column is not None:
        try:
            return q.rate(name, column)
        except KeyError:
            raise UsageError(f"column {column!r} has no {name} check") from None
    values = [c.value for c in q.checks if c.measure == name]
    return max(values) if values else None
