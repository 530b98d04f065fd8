"""What an evaluation holds: the holdout it ran on, row counts, metrics overall, per class
and per segment, the curves a model card plots, and the holdout's drift from training.

`Evaluation.to_dict()` is both the `--json` output and what the registry stores
(`Registry.record_evaluation`); `Evaluation.from_dict` reads it back. Every curve is kept
to at most `MAX_POINTS` points, so a stored evaluation stays small whatever the holdout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

#: Most points kept per curve (ROC, precision-recall); more are thinned evenly.
MAX_POINTS = 200


@dataclass(frozen=True)
class Holdout:
    """The file evaluated on: its path as given, the sha256 of its bytes, the target column."""

    path: str
    sha256: str
    target: str


@dataclass(frozen=True)
class Counts:
    """Rows of the holdout: `read == scored + rejected`; `excluded` scored rows were left
    out of the metrics (a missing target, or a class the model does not know), `evaluated`
    rows are the rest."""

    read: int
    scored: int
    rejected: int
    excluded: int
    evaluated: int
    #: {reason: rows} for the rejected rows ("tenure: not_a_number", "model error", ...).
    rejects: dict[str, int] = field(default_factory=dict)
    #: {reason: rows} for the excluded rows ("missing target", "unknown class").
    exclusions: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Curve:
    """One plotted curve: `kind` is 'roc', 'pr', 'calibration' or 'residuals'; `label` the
    class it is for (one-vs-rest) or '' for the model as a whole; `x` and `y` the points
    (named by `x_name`, `y_name`); `counts` the rows per point where that means something
    (calibration bins, residual histogram cells)."""

    kind: str
    label: str
    x_name: str
    y_name: str
    x: list[float]
    y: list[float]
    counts: list[int] | None = None


@dataclass(frozen=True)
class MetricSet:
    """Named metrics ({'roc_auc': 0.91, ...}) and, for each one that could not be computed,
    why ({'mape': 'the holdout has 3 zero targets: MAPE is undefined'})."""

    rows: int
    values: dict[str, float]
    absent: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> float | None:
        """The metric's value, or None when it is absent or unknown."""
        return self.values.get(name)


@dataclass(frozen=True)
class Segment:
    """The metrics of the rows whose `column` holds `value` ('<null>' for missing)."""

    column: str
    value: str
    metrics: MetricSet


@dataclass(frozen=True)
class HoldoutDrift:
    """The holdout's inputs against the training baseline (`monitor.dataset_drift`,
    default options): the share of input columns that drifted and which; `reason` says why
    drift was not measured (no baseline) when `share` is None."""

    share: float | None
    drifted_columns: list[str] = field(default_factory=list)
    method: str = ""
    reason: str = ""


@dataclass(frozen=True)
class FeatureImportance:
    """One input column's permutation importance: the mean drop of the metric over the
    shuffles (negative: shuffling helped, i.e. noise) and its standard deviation."""

    feature: str
    mean: float
    std: float


@dataclass(frozen=True)
class Importance:
    """Permutation importance on the holdout (`importance.permutation`): `metric` the one
    that drops, `rows` and `repeats` what was shuffled, `features` largest drop first;
    `reason` says why none was measured when `features` is empty."""

    metric: str
    rows: int
    repeats: int
    features: list[FeatureImportance] = field(default_factory=list)
    reason: str = ""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Importance:
        """The form `asdict` wrote."""
        return cls(d["metric"], d["rows"], d["repeats"],
                   [FeatureImportance(**f) for f in d.get("features", [])], d.get("reason", ""))


@dataclass(frozen=True)
class Evaluation:
    """A version's figures on one holdout.

    `metrics`: the model as a whole (binary: for the positive class, the last of `classes`;
    multiclass: macro averages over one-vs-rest); `per_class`: one-vs-rest per class
    (multiclass only); `segments`: per value of each `--segment` column; `curves`: see
    `Curve`; `seconds`: time spent scoring; `importance`: permutation importance.
    """

    model: str
    version: int | None
    task: str
    classes: list[str] | None
    runtime: str
    holdout: Holdout
    counts: Counts
    metrics: MetricSet
    per_class: dict[str, MetricSet] = field(default_factory=dict)
    segments: list[Segment] = field(default_factory=list)
    curves: list[Curve] = field(default_factory=list)
    drift: HoldoutDrift | None = None
    seconds: float = 0.0
    #: Permutation importance (None in evaluations stored before it was measured).
    importance: Importance | None = None

    @property
    def ref(self) -> str:
        """`name/version`, or the name alone for an artifact file."""
        return self.model if self.version is None else f"{self.model}/{self.version}"

    def curve(self, kind: str, label: str = "") -> Curve | None:
        """The curve of `kind` for `label` ('' the model as a whole), if kept."""
        return next((c for c in self.curves if c.kind == kind and c.label == label), None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what `--json` prints and the registry stores)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Evaluation:
        """The evaluation `to_dict` wrote (e.g. `EvaluationRecord.result`).

        Raises:
            KeyError, TypeError: `d` is not an evaluation's JSON form.
        """
        drift, importance = d.get("drift"), d.get("importance")
        return cls(
            model=d["model"], version=d["version"], task=d["task"], classes=d["classes"],
            runtime=d["runtime"], holdout=Holdout(**d["holdout"]), counts=Counts(**d["counts"]),
            metrics=MetricSet(**d["metrics"]),
            per_class={k: MetricSet(**v) for k, v in d.get("per_class", {}).items()},
            segments=[Segment(s["column"], s["value"], MetricSet(**s["metrics"]))
                      for s in d.get("segments", [])],
            curves=[Curve(**c) for c in d.get("curves", [])],
            drift=None if drift is None else HoldoutDrift(**drift),
            seconds=float(d.get("seconds", 0.0)),
            importance=None if importance is None else Importance.from_dict(importance))
