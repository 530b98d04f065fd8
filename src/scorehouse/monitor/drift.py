"""Drift of every feature and of the prediction, from sketches against a reference.

Each column gets every statistic (PSI, Jensen-Shannon distance, normalised Wasserstein for
numbers, a p-value: Kolmogorov-Smirnov for numbers, chi-squared for categories), one of
them decides its verdict, and an effect size says how large the change is.

Defaults (`DriftOptions`), Evidently's per-type rules as the start
(evidently/legacy/calculations/stattests/registry.py `_get_default_stattest`, v0.7):

| reference rows | column | verdict method | drifted when |
|---|---|---|---|
| > 1000 | numeric, > 5 values | normalised Wasserstein | >= 0.1 |
| > 1000 | numeric <= 5 values, categorical | Jensen-Shannon distance | >= 0.1 |
| <= 1000 | numeric, > 5 values | Kolmogorov-Smirnov | BH-adjusted p < 0.05 |
| <= 1000 | numeric <= 5 values, categorical | chi-squared | BH-adjusted p < 0.05 |

The data set drifts when the share of drifted input columns is >= 0.5 (Evidently's
`drift_share`). Where we differ from Evidently, and why:

- Everything is computed on the training baseline's bins (deciles; values below/above
  the training range in cells of their own), not on raw values: that is what a sketch
  keeps. Evidently bins numbers by Sturges' rule over both samples for PSI/JS and uses raw
  values for Wasserstein/KS. Binned KS measures the CDF gap at the bin edges only, a lower
  bound of the exact statistic (`exact_numeric_drift` gives the exact one from raw values).
- Distinct values are counted from the schema (an integer column's training range) or
  the bins, because the baseline keeps no distinct count of numbers; Evidently counts
  distinct values of both samples.
- Chi-squared is the two-sample test of homogeneity (`scipy.stats.chi2_contingency`'s
  figures, no continuity correction, so a two-category column gives the z-test of proportions,
  which Evidently uses there); Evidently tests the current counts against the reference
  proportions taken as exact, which overstates significance when the reference is small.
- p-values are corrected over the columns of one comparison with Benjamini-Hochberg
  (`scipy.stats.false_discovery_control`); Evidently corrects nothing.
- Jensen-Shannon uses the natural logarithm (scipy's default, as Evidently), so the
  distance lies in [0, sqrt(ln 2) ~ 0.83] and Evidently's 0.1 threshold carries over.
- Zero cells in PSI are floored at 1e-4 (Evidently's usual replacement).
- Nulls are left out of every distribution (as Evidently does); null rates are input
  quality (`monitor.quality`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from enum import Enum
from typing import Any

import numpy as np
from scipy import special, stats  # type: ignore[import-untyped]
from scipy.spatial.distance import jensenshannon  # type: ignore[import-untyped]

from ..errors import SchemaError
from .reference import FeatureReference, Reference
from .sketch import PREDICTION, CategorySketch, NumericSketch, Sketch
from .state import DriftState

#: PSI's floor for an empty cell (ln(0) is undefined).
PSI_FLOOR = 1e-4
#: Evidently's floor of the std that normalises the Wasserstein distance.
MIN_STD = 1e-3


class Method(str, Enum):
    """A drift statistic; PSI, JS and Wasserstein are distances, KS and chi-squared tests."""

    PSI = "psi"
    JENSENSHANNON = "jensenshannon"
    WASSERSTEIN = "wasserstein"
    KS = "ks"
    CHISQUARE = "chisquare"

    @property
    def is_test(self) -> bool:
        """True for the methods whose statistic is a p-value."""
        return self in (Method.KS, Method.CHISQUARE)


#: Default threshold per method: distances drift at >= it, tests at adjusted p < it.
THRESHOLDS = {Method.PSI: 0.1, Method.JENSENSHANNON: 0.1, Method.WASSERSTEIN: 0.1,
              Method.KS: 0.05, Method.CHISQUARE: 0.05}


@dataclass(frozen=True)
class DriftOptions:
    """How verdicts are reached (defaults in the module docstring).

    `num_method` / `cat_method` None pick per column by type and reference size;
    `threshold` None takes the method's THRESHOLDS entry; `correction` 'bh'
    (Benjamini-Hochberg) or None.

    Raises:
        SchemaError: a numbers-only method (KS, Wasserstein) as `cat_method`.
    """

    num_method: Method | None = None
    cat_method: Method | None = None
    threshold: float | None = None
    correction: str | None = "bh"
    drift_share: float = 0.5
    small_reference: int = 1000
    discrete_values: int = 5

    def __post_init__(self) -> None:
        if self.cat_method in (Method.KS, Method.WASSERSTEIN):
            raise SchemaError(f"{self.cat_method.value} applies to numeric columns only")

    def method_for(self, ref: FeatureReference) -> Method:
        """The verdict method of a column with this reference (Evidently's rules)."""
        chosen = self.num_method if ref.numeric else self.cat_method
        if chosen is not None:
            return chosen
        discrete = not ref.numeric or ref.n_values <= self.discrete_values
        if ref.sketch.n <= self.small_reference:
            return Method.CHISQUARE if discrete else Method.KS
        return Method.JENSENSHANNON if discrete else Method.WASSERSTEIN


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift: the verdict `method`, its `statistic` (a p-value, BH-adjusted,
    for tests) and `threshold`, `drifted`, and the effect size (normalised Wasserstein for
    numbers, Cramér's V for categories); the other statistics alongside."""

    column: str
    kind: str  # "numeric" or "categorical"
    method: str
    statistic: float
    threshold: float
    drifted: bool
    effect_size: float
    effect: str
    psi: float
    jensenshannon: float
    wasserstein: float | None
    test: str
    p_value: float
    p_adjusted: float
    n_reference: int
    n_current: int
    approximate: bool = False  # current counts re-binned onto other edges

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return asdict(self)


@dataclass(frozen=True)
class DatasetDrift:
    """Every column's drift, and the data set's verdict: `share` of drifted input columns
    >= `drift_share`. Prediction columns ('prediction.*') are listed but not counted."""

    columns: tuple[ColumnDrift, ...]
    share: float
    drift_share: float
    drifted: bool
    reference: str
    correction: str | None = None
    n_current: int = 0
    inputs: tuple[str, ...] = field(default=())

    @property
    def drifted_columns(self) -> list[str]:
        """Names of the drifted input columns."""
        return [c.column for c in self.columns if c.drifted and c.column in self.inputs]

    def column(self, name: str) -> ColumnDrift:
        """One column's result.

        Raises:
            KeyError: no such column.
        """
        for c in self.columns:
            if c.column == name:
                return c
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {"drifted": self.drifted, "share": self.share, "drift_share": self.drift_share,
                "reference": self.reference, "correction": self.correction,
                "n_current": self.n_current, "drifted_columns": self.drifted_columns,
                "columns": [c.to_dict() for c in self.columns]}


def psi(reference: np.ndarray, current: np.ndarray) -> float:
    """Population stability index: sum over cells of (q - p) * ln(q / p), p and q the
    reference and current shares, empty cells floored at PSI_FLOOR (Siddiqi, Credit Risk
    Scorecards, 2006; Evidently's `psi` stattest)."""
    p = np.maximum(reference / reference.sum(), PSI_FLOOR)
    q = np.maximum(current / current.sum(), PSI_FLOOR)
    return float(((q - p) * np.log(q / p)).sum())


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log), `scipy.spatial.distance.jensenshannon`."""
    return float(jensenshannon(reference, current))


def ks_binned(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Kolmogorov-Smirnov statistic D (largest CDF gap at the cell boundaries) and its
    asymptotic two-sided p-value, `scipy.stats.kstwo` at n*m/(n+m), as `ks_2samp` does
    for large samples."""
    n, m = reference.sum(), current.sum()
    d = float(np.abs(np.cumsum(reference) / n - np.cumsum(current) / m).max())
    return d, float(stats.kstwo.sf(d, max(1, round(n * m / (n + m)))))


def chi_squared(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """p-value of the chi-squared test of homogeneity of the two count vectors and
    Cramér's V (on the counts rounded to whole rows).

    The same figures as `scipy.stats.chi2_contingency(table, correction=False).pvalue` and
    `scipy.stats.contingency.association(rounded, method="cramer")` (tests hold them to
    1e-12), written out with `scipy.special.chdtrc` for the tail: those two check their
    input for ~0.3 ms a call, and a monitoring page calls this once per column and window
    (168 hourly windows of 30 columns took 2.7 s).
    """
    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0, 0.0
    p = float(special.chdtrc(table.shape[1] - 1, _pearson(table)))
    rounded = np.round(table)
    rounded = rounded[:, rounded.sum(axis=0) > 0]
    if rounded.shape[1] < 2 or (rounded.sum(axis=1) == 0).any():
        return p, 0.0
    # A 2 x k table: V = sqrt(chi2 / (n * min(2 - 1, k - 1))) = sqrt(chi2 / n).
    return p, float(np.sqrt(_pearson(rounded) / rounded.sum()))


def _pearson(table: np.ndarray) -> float:
    """Pearson's chi-squared statistic of a contingency table with no empty row or column."""
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    return float(((table - expected) ** 2 / expected).sum())


def wasserstein_norm(points: np.ndarray, reference: np.ndarray, current: np.ndarray,
                     std: float) -> float:
    """Wasserstein-1 distance of the two binned distributions (`scipy.stats.
    wasserstein_distance`, cells at `points`) divided by the reference std floored at
    1e-3, Evidently's 'normed Wasserstein'."""
    return float(stats.wasserstein_distance(points, points, reference, current)
                 / max(std, MIN_STD))


def _cells(cur: Sketch, ref: Sketch) -> tuple[np.ndarray, np.ndarray, bool]:
    """The reference and current counts on common cells, and whether re-binned."""
    if isinstance(ref, NumericSketch) and isinstance(cur, NumericSketch):
        if np.array_equal(ref.edges, cur.edges):
            return ref.counts.astype(float), cur.counts.astype(float), False
        return ref.counts.astype(float), _rebin(cur, ref.edges), True
    if isinstance(ref, CategorySketch) and isinstance(cur, CategorySketch):
        r, c = _category_table(ref), _category_table(cur)
        keys = sorted(set(r) | set(c))
        return (np.array([r.get(k, 0) for k in keys], float),
                np.array([c.get(k, 0) for k in keys], float), False)
    raise SchemaError("a numeric feature compared with a categorical one")


def _category_table(s: CategorySketch) -> dict[str, float]:
    out = dict(zip(s.categories, s.counts.tolist(), strict=True))
    out.update(s.unseen)
    return out


def _rebin(s: NumericSketch, edges: np.ndarray) -> np.ndarray:
    """Counts of `s` on other edges, values spread evenly within each cell (approximate)."""
    x = np.concatenate([[min(s.low, s.edges[0])], s.edges, [max(s.high, s.edges[-1])]])
    cum = np.concatenate([[0.0], np.cumsum(s.counts, dtype=float)])
    at = np.interp(edges, x, cum)
    return np.concatenate([[at[0]], np.diff(at), [cum[-1] - at[-1]]])


def column_drift(name: str, current: Sketch, reference: FeatureReference,
                 options: DriftOptions | None = None) -> ColumnDrift:
    """One column's drift against its reference, p-value not yet corrected (see
    `dataset_drift`, which corrects over the columns).

    Raises:
        SchemaError: a numeric sketch compared with a categorical one.
    """
    options = options or DriftOptions()
    r, c, approximate = _cells(current, reference.sketch)
    method = options.method_for(reference)
    n_ref, n_cur = int(round(r.sum())), int(round(c.sum()))
    empty = n_ref == 0 or n_cur == 0
    stat: dict[Method, float] = {}
    if not empty:
        stat[Method.PSI], stat[Method.JENSENSHANNON] = psi(r, c), js_distance(r, c)
    wasserstein = None
    if reference.numeric:
        p_value = 1.0 if empty else ks_binned(r, c)[1]
        if not empty and isinstance(reference.sketch, NumericSketch):
            wasserstein = wasserstein_norm(reference.sketch.points(), r, c, reference.std)
        stat[Method.KS] = p_value
        chi_p, _ = (1.0, 0.0) if empty else chi_squared(r, c)
        stat[Method.CHISQUARE] = chi_p
        effect, effect_name = wasserstein or 0.0, "wasserstein_norm"
        test = Method.KS if method is not Method.CHISQUARE else Method.CHISQUARE
    else:
        p_value, effect = (1.0, 0.0) if empty else chi_squared(r, c)
        stat[Method.CHISQUARE], effect_name, test = p_value, "cramers_v", Method.CHISQUARE
    if wasserstein is not None:
        stat[Method.WASSERSTEIN] = wasserstein
    threshold = options.threshold if options.threshold is not None else THRESHOLDS[method]
    value = stat.get(method, 1.0 if method.is_test else 0.0)
    drifted = value < threshold if method.is_test else value >= threshold
    return ColumnDrift(name, "numeric" if reference.numeric else "categorical", method.value,
                       value, threshold, bool(drifted and not empty), float(effect), effect_name,
                       stat.get(Method.PSI, 0.0), stat.get(Method.JENSENSHANNON, 0.0),
                       wasserstein, test.value, stat[test], stat[test], n_ref, n_cur,
                       approximate)


def dataset_drift(state: DriftState, reference: Reference,
                  options: DriftOptions | None = None) -> DatasetDrift:
    """Drift of every feature the window and the reference share, p-values corrected
    over those columns (Benjamini-Hochberg by default), and the data set's verdict.

    Raises:
        SchemaError: a feature's sketches are of different kinds.
    """
    options = options or DriftOptions()
    state.flush()
    names = [n for n in state.sketches if n in reference.features]
    raw = [column_drift(n, state.sketches[n], reference.features[n], options) for n in names]
    adjusted = _adjust([c.p_value for c in raw], options.correction)
    columns = tuple(_with_adjusted(c, p) for c, p in zip(raw, adjusted, strict=True))
    inputs = tuple(n for n in names if not n.startswith(PREDICTION))
    drifted = sum(c.drifted for c in columns if c.column in inputs)
    share = drifted / len(inputs) if inputs else 0.0
    return DatasetDrift(columns, share, options.drift_share,
                        bool(inputs) and share >= options.drift_share, reference.label,
                        options.correction, state.scored, inputs)


def _adjust(p_values: list[float], correction: str | None) -> list[float]:
    """p-values corrected for testing many columns at once.

    Raises:
        SchemaError: an unknown correction.
    """
    if correction is None or not p_values:
        return list(p_values)
    if correction != "bh":
        raise SchemaError(f"unknown multiple-testing correction {correction!r} (use 'bh')")
    return [float(p) for p in stats.false_discovery_control(np.asarray(p_values), method="bh")]


def _with_adjusted(c: ColumnDrift, p: float) -> ColumnDrift:
    """`c` with its test's adjusted p-value, and the verdict redone if the test decides."""
    if c.method not in (Method.KS.value, Method.CHISQUARE.value):
        return replace(c, p_adjusted=p)
    return replace(c, p_adjusted=p, statistic=p, drifted=c.n_current > 0 and p < c.threshold)


def exact_numeric_drift(reference: np.ndarray, current: np.ndarray) -> dict[str, float]:
    """KS statistic and p-value (`scipy.stats.ks_2samp`) and Wasserstein distance normalised
    by the reference std (`scipy.stats.wasserstein_distance`) from raw values, when both
    samples are at hand (e.g. a reference window kept in full); NaN/inf left out."""
    ref = np.asarray(reference, np.float64)
    cur = np.asarray(current, np.float64)
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    ks = stats.ks_2samp(ref, cur)
    w = stats.wasserstein_distance(ref, cur) / max(float(np.std(ref)), MIN_STD)
    return {"ks": float(ks.statistic), "p_value": float(ks.pvalue), "wasserstein": float(w)}
