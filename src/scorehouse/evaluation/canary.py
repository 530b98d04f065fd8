"""The canary's story, window by window: has the input changed, or does the new model
behave differently?

A canary is a stable, old model that scores every request and never answers. Its scores
can only move when its input moves, so window by window (`monitor.WindowSpec`) its score
distribution is compared with a reference: its own first window (with at least
`MIN_ROWS` rows), or a given one (e.g. its training baseline's prediction profile,
`monitor.baseline_reference`). Each new model (challenger, shadow) is compared in the same
window with the champion on the same requests. Both comparisons are the monitor's drift of
one numeric column (`monitor.drift.column_drift` with `DriftOptions`' defaults: the
reference's deciles as bins, PSI, Jensen-Shannon, binned KS and normalised Wasserstein;
Wasserstein >= 0.1 decides above 1000 reference rows, KS p < 0.05 below). The verdict:

| canary drifted | a model differs from the champion | finding |
|---|---|---|
| yes | either | `input_changed`: the input changed (the canary moved) |
| no | yes | `model_differs`: the new model behaves differently (the input is steady) |
| no | no | `stable` |

The reference window is `reference`; a window with fewer than `MIN_ROWS` canary rows is
`too_few`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..monitor.drift import ColumnDrift, DriftOptions, column_drift
from ..monitor.reference import FeatureReference
from ..monitor.sketch import NumericSketch
from ..monitor.windowing import WindowSpec, split_log

#: Rows a window (and each model in it) needs before its drift is judged.
MIN_ROWS = 20


class Finding(str, Enum):
    """What one window of a canary says (see the module docstring's table)."""

    REFERENCE = "reference"
    INPUT_CHANGED = "input_changed"
    MODEL_DIFFERS = "model_differs"
    STABLE = "stable"
    TOO_FEW = "too_few"


@dataclass(frozen=True)
class ModelGap:
    """A model's scores against the champion's on the window's requests (`drift.drifted`:
    it differs)."""

    model: str
    drift: ColumnDrift

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {"model": self.model, "differs": self.drift.drifted,
                "drift": self.drift.to_dict()}


@dataclass(frozen=True)
class CanaryWindow:
    """One window: its canary rows (`requests`), the canary's drift against the reference
    (None for the reference window and windows of too few rows), each new model's gap to
    the champion, the `finding` and its `verdict` sentence."""

    index: int
    start: dt.datetime
    end: dt.datetime
    requests: int
    drift: ColumnDrift | None
    gaps: tuple[ModelGap, ...]
    finding: Finding
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {"index": self.index, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "requests": self.requests,
                "drift": self.drift.to_dict() if self.drift else None,
                "gaps": [g.to_dict() for g in self.gaps], "finding": self.finding.value,
                "verdict": self.verdict}


@dataclass(frozen=True)
class CanaryReport:
    """A canary's windows (`window`: their spec), compared with `reference` (what it is)."""

    canary: str
    score: str
    window: str
    reference: str
    windows: tuple[CanaryWindow, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {"canary": self.canary, "score": self.score, "window": self.window,
                "reference": self.reference, "windows": [w.to_dict() for w in self.windows]}


def score_reference(values: np.ndarray) -> FeatureReference:
    """Scores as a drift reference: counts on their own decile edges (as the training
    baseline bins a number, `packaging/baseline.py`), their std and distinct values."""
    x = np.asarray(values, np.float64)
    x = x[np.isfinite(x)]
    edges = np.unique(np.quantile(x, np.linspace(0, 1, 11))) if len(x) else np.array([0.0])
    if len(edges) < 2:
        edges = np.array([edges[0], edges[0] + 1.0])
    sketch = NumericSketch.empty(edges)
    sketch.update(x)
    return FeatureReference(sketch, True, float(np.std(x)) if len(x) else 0.0,
                            int(len(np.unique(x))))


def score_drift(reference: FeatureReference, values: np.ndarray, name: str = "score",
                options: DriftOptions | None = None) -> ColumnDrift:
    """The monitor's drift of `values` against `reference` (`column_drift`, on the
    reference's bins)."""
    edges = reference.sketch.edges if isinstance(reference.sketch, NumericSketch) else None
    current = NumericSketch.empty(edges)
    current.update(np.asarray(values, np.float64))
    return column_drift(name, current, reference, options)


def _scores(table: pa.Table, ids: pa.Array | None = None) -> np.ndarray:
    """The `score` column of `table` (rows whose id is in `ids`, when given)."""
    if ids is not None:
        table = table.filter(pc.is_in(table.column("id"), value_set=ids))
    return np.asarray(table.column("score").to_numpy(zero_copy_only=False), np.float64)


def said(c: ColumnDrift) -> str:
    """A drift verdict's figure in words: 'wasserstein 0.42 >= 0.1', 'ks p 0.003 < 0.05'."""
    test = c.method in ("ks", "chisquare")
    op = ("<" if c.drifted else ">=") if test else (">=" if c.drifted else "<")
    return f"{c.method}{' p' if test else ''} {c.statistic:.3g} {op} {c.threshold:g}"


def _verdict(index: int, drift: ColumnDrift, gaps: tuple[ModelGap, ...]
             ) -> tuple[Finding, str]:
    differing = [g for g in gaps if g.drift.drifted]
    named = "; ".join(f"{g.model} differs from the champion ({said(g.drift)})"
                      for g in differing)
    if drift.drifted:
        return Finding.INPUT_CHANGED, (
            f"window {index}: the input changed: the canary's scores drifted from the "
            f"reference ({said(drift)})" + (f"; {named}, which may come from the input too"
                                             if named else "") + ".")
    if differing:
        return Finding.MODEL_DIFFERS, (
            f"window {index}: the new model behaves differently: the canary is stable "
            f"({said(drift)}) while {named}.")
    return Finding.STABLE, (f"window {index}: stable: the canary is stable ({said(drift)}) "
                            "and no new model differs from the champion.")


def _gaps(ids: pa.Array, champion: pa.Table | None, others: Mapping[str, pa.Table],
          options: DriftOptions | None) -> tuple[ModelGap, ...]:
    if champion is None:
        return ()
    base = _scores(champion, ids)
    if len(base) < MIN_ROWS:
        return ()
    reference = score_reference(base)
    out = []
    for model, table in others.items():
        values = _scores(table, ids)
        if len(values) >= MIN_ROWS:
            out.append(ModelGap(model, score_drift(reference, values, "score", options)))
    return tuple(out)


def canary_windows(canary: str, rows: pa.Table, spec: WindowSpec, *, score: str,
                   champion: pa.Table | None = None,
                   others: Mapping[str, pa.Table] | None = None,
                   reference: FeatureReference | None = None, reference_label: str = "",
                   options: DriftOptions | None = None) -> CanaryReport:
    """The canary's windows with their findings (module docstring).

    Args:
        canary: the canary's name (e.g. "canary churn/1").
        rows: its scored rows: `id`, `time`, `version`, `score` (float), in time order.
        spec: how the rows are cut into windows.
        score: what the score is (e.g. "probability_yes"), for the report.
        champion: the champion's scored rows (`id`, `score`), any version.
        others: the new models' scored rows by name (challengers, shadows).
        reference: what the canary is compared with; None: its first window of at least
            MIN_ROWS rows.
        reference_label: what `reference` is (e.g. "training baseline of churn/1").
    """
    windows: list[CanaryWindow] = []
    against = reference
    label = reference_label if reference is not None else "the canary's first window"
    for i, w in enumerate(split_log(rows, spec) if rows.num_rows else [], start=1):
        ids = w.rows.column("id").combine_chunks()
        values = _scores(w.rows)
        n = len(values)
        if n < MIN_ROWS:
            windows.append(CanaryWindow(i, w.start, w.end, n, None, (), Finding.TOO_FEW,
                                        f"window {i}: too few canary rows to judge ({n} < "
                                        f"{MIN_ROWS})."))
            continue
        gaps = _gaps(ids, champion, others or {}, options)
        if against is None:
            against = score_reference(values)
            differing = "".join(f"; {g.model} differs from the champion ({said(g.drift)})"
                                for g in gaps if g.drift.drifted)
            windows.append(CanaryWindow(i, w.start, w.end, n, None, gaps, Finding.REFERENCE,
                                        f"window {i}: the reference: the canary's scores of "
                                        f"its first window ({n} requests){differing}."))
            continue
        drift = score_drift(against, values, score, options)
        finding, verdict = _verdict(i, drift, gaps)
        windows.append(CanaryWindow(i, w.start, w.end, n, drift, gaps, finding, verdict))
    return CanaryReport(canary, score, spec.text, label, tuple(windows))


__all__ = ["MIN_ROWS", "CanaryReport", "CanaryWindow", "Finding", "ModelGap",
           "canary_windows", "said", "score_drift", "score_reference"]
