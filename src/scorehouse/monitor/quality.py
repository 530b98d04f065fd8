"""Input quality of a window against the training baseline: null rate, unseen-category
rate, out-of-range rate per column; reject rate and absent columns for the window.

Defaults (`QualityThresholds`), each a rate in [0, 1]; a check is breached when the rate
is above its limit:

- null rate: the training null rate + 0.05 (a column that was 2% empty in training
  breaches at more than 7%);
- unseen-category rate (values outside the training categories): 0.01;
- out-of-range rate (numbers outside the training min/max, i.e. outside the baseline's
  outer bin edges): 0.01;
- reject rate (rows refused by the schema or the model, of rows read): 0.01;
- absent rate (rows scored without a column of the schema): 0, any absence breaches.

Rates are of the rows the column was present in (null rate) or of its non-null values
(unseen, out of range). Caveats: a column constant in training has the edges
[value, value + 1], so values up to value + 1 read as in range; categories beyond the
baseline's 1,000 most frequent were summarised as '__other__' in training and read as
unseen here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .reference import Reference
from .sketch import OTHER, PREDICTION, CategorySketch, NumericSketch
from .state import DriftState


@dataclass(frozen=True)
class QualityThresholds:
    """Limits of each quality rate (see the module docstring)."""

    null_increase: float = 0.05
    unseen_rate: float = 0.01
    out_of_range_rate: float = 0.01
    reject_rate: float = 0.01
    absent_rate: float = 0.0


@dataclass(frozen=True)
class QualityCheck:
    """One rate of one column (`column` None: the whole window): `value` against `limit`,
    `training` the rate in the baseline, `count` the rows or values behind the rate."""

    column: str | None
    measure: str  # null_rate, unseen_rate, out_of_range_rate, reject_rate, absent_rate
    value: float
    limit: float
    training: float
    count: int
    breached: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return asdict(self)


@dataclass(frozen=True)
class QualityReport:
    """Every quality check of a window; `read`/`rejected` rows of the window."""

    checks: tuple[QualityCheck, ...]
    read: int
    rejected: int

    @property
    def breached(self) -> list[QualityCheck]:
        """The checks above their limit."""
        return [c for c in self.checks if c.breached]

    def rate(self, measure: str, column: str | None = None) -> float:
        """The value of one check.

        Raises:
            KeyError: no such check.
        """
        for c in self.checks:
            if c.measure == measure and c.column == column:
                return c.value
        raise KeyError((measure, column))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {"read": self.read, "rejected": self.rejected,
                "breached": [f"{c.measure}:{c.column or '*'}" for c in self.breached],
                "checks": [c.to_dict() for c in self.checks]}


def _check(column: str | None, measure: str, count: int, of: int, limit: float,
           training: float = 0.0) -> QualityCheck:
    value = count / of if of else 0.0
    return QualityCheck(column, measure, value, limit, training, count, value > limit)


def input_quality(state: DriftState, reference: Reference,
                  thresholds: QualityThresholds | None = None) -> QualityReport:
    """The quality checks of `state`'s window against the training `reference`
    (`reference.baseline_reference`)."""
    t = thresholds or QualityThresholds()
    state.flush()
    checks = [_check(None, "reject_rate", state.rejected, state.read, t.reject_rate)]
    for name, s in state.sketches.items():
        if name.startswith(PREDICTION):
            continue
        absent = state.absent.get(name, 0)
        present = s.n + s.nulls - absent
        ref = reference.features.get(name)
        training = _null_rate(ref.sketch) if ref is not None else 0.0
        checks.append(_check(name, "absent_rate", absent, present + absent, t.absent_rate))
        checks.append(_check(name, "null_rate", s.nulls - absent, present,
                             training + t.null_increase, training))
        if isinstance(s, CategorySketch):
            tail = ref.sketch.unseen.get(OTHER, 0) if ref is not None and isinstance(
                ref.sketch, CategorySketch) else 0
            checks.append(_check(name, "unseen_rate", s.n_unseen, s.n, t.unseen_rate,
                                 tail / ref.sketch.n if tail and ref is not None else 0.0))
        elif isinstance(s, NumericSketch):
            outside = int(s.counts[0] + s.counts[-1])
            checks.append(_check(name, "out_of_range_rate", outside, s.n, t.out_of_range_rate))
    return QualityReport(tuple(checks), state.read, state.rejected)


def _null_rate(s: NumericSketch | CategorySketch) -> float:
    total = s.n + s.nulls
    return s.nulls / total if total else 0.0
