"""Statistics of two models scored on the same requests (or on two random halves of the
traffic): what `compare.compare_deployment` reports for each pair of roles.

**McNemar's test** (McNemar 1947, Psychometrika 12:153) on a binary outcome per request,
of which only the discordant requests count: `b` requests where model A has the outcome
and B does not, `c` the reverse, `n = b + c`. The null hypothesis is that both models have
the outcome equally often (b and c are equally likely):

- `n < EXACT_BELOW`: the exact (binomial) test, `p = min(1, 2 * P[X <= min(b, c)])` with
  X ~ Binomial(n, 1/2) (`scipy.stats.binom.cdf`);
- otherwise the chi-squared test with Edwards' continuity correction (Edwards 1948,
  Psychometrika 13:185): `X2 = (|b - c| - 1)^2 / (b + c)`, `p = P[chi2(1) >= X2]`
  (`scipy.stats.chi2.sf`);
- `n = 0` (the models never disagree): p = 1.

The outcome is "predicts the positive class" (without late labels: do the models give the
positive class equally often?) or "is right" (with labels: Dietterich 1998, Neural
Computation 10:1895, for comparing two classifiers on one test set).

**Paired differences** of scores, `d_i = s_B,i - s_A,i` over the requests both scored:
their mean, standard deviation (ddof 1) and the Student t interval on the paired
differences, `mean ± t(1 - alpha/2, n - 1) * sd / sqrt(n)` (`scipy.stats.t.ppf`); by the
central limit theorem it holds for large n whatever the distribution of d.

**Quantiles** of each model's scores: numpy's default definition (linear interpolation,
Hyndman & Fan type 7), at `LEVELS` (the deciles and the 1/5/95/99% tails).

**Paired bootstrap** of a metric difference (Efron & Tibshirani 1993, ch. 13 percentile
interval): `replicates` resamples (default `REPLICATES` = 1000) of the labelled requests
with replacement, drawn by `numpy.random.default_rng(seed)` (default `SEED` = 0, so a run
is reproducible); both models are measured on the same resample and the interval is the
alpha/2 and 1 - alpha/2 percentiles of the B differences (replicates where a metric is
undefined, e.g. one class only, are left out). Two models that scored different requests
(an A/B split) are resampled independently instead. A replicate weights each row by how
often it was drawn, which is scikit-learn's metric with `sample_weight` = those counts:
log loss, accuracy, RMSE and MAE are weighted means of per-row terms, ROC AUC the weighted
Mann-Whitney statistic (ties count half), all vectorised over the replicates
(`tests/test_deploy_compare.py` checks each against scikit-learn).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import stats  # type: ignore[import-untyped]

#: Discordant pairs below which McNemar's test is exact (binomial).
EXACT_BELOW = 25
#: Quantile levels compared (the deciles, and the tails).
LEVELS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
#: Bootstrap resamples and the generator's seed.
REPLICATES = 1000
SEED = 0
#: Cells of a block of replicate weights (replicates x rows) held at once.
_BLOCK_CELLS = 4_000_000

Array = npt.NDArray[Any]


@dataclass(frozen=True)
class McNemar:
    """McNemar's test of one outcome (`outcome`, e.g. "predicts yes" or "is right"): `b`
    requests where A has it and B not, `c` the reverse, the `method` used ("exact
    binomial" or "chi-squared, continuity corrected"), its `statistic` (None when exact)
    and `p_value`."""

    outcome: str
    b: int
    c: int
    method: str
    statistic: float | None
    p_value: float

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return asdict(self)


def mcnemar(b: int, c: int, outcome: str = "") -> McNemar:
    """McNemar's test from the discordant counts (formulas in the module docstring).

    Raises:
        ValueError: a negative count.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b} c={c}")
    n = b + c
    if n == 0:
        return McNemar(outcome, b, c, "exact binomial", None, 1.0)
    if n < EXACT_BELOW:
        p = min(1.0, 2.0 * float(stats.binom.cdf(min(b, c), n, 0.5)))
        return McNemar(outcome, b, c, "exact binomial", None, p)
    x2 = (abs(b - c) - 1) ** 2 / n
    return McNemar(outcome, b, c, "chi-squared, continuity corrected", float(x2),
                   float(stats.chi2.sf(x2, 1)))


@dataclass(frozen=True)
class PairedDifference:
    """The paired differences B - A of a score over `rows` requests: `mean`, `std`, and
    the Student t interval [`low`, `high`] at `confidence` (module docstring)."""

    score: str
    rows: int
    mean: float
    std: float
    low: float
    high: float
    confidence: float
    method: str = "Student t interval on paired differences"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return asdict(self)


def paired_difference(a: Array, b: Array, score: str = "score",
                      confidence: float = 0.95) -> PairedDifference:
    """The mean of b - a (same requests, same order) with its t interval; for one row the
    interval is that row's difference (no spread to measure).

    Raises:
        ValueError: arrays of different lengths, or none.
    """
    if len(a) != len(b) or not len(a):
        raise ValueError(f"paired scores need equal, non-zero lengths ({len(a)}, {len(b)})")
    d = np.asarray(b, np.float64) - np.asarray(a, np.float64)
    n, mean = len(d), float(d.mean())
    if n < 2:
        return PairedDifference(score, n, mean, 0.0, mean, mean, confidence)
    sd = float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return PairedDifference(score, n, mean, sd, mean - half, mean + half, confidence)


@dataclass(frozen=True)
class QuantileComparison:
    """Each model's score quantiles at `levels`, and B - A at each; `paired` says whether
    they are of the same requests (else of each model's own requests: an A/B split);
    `ks` is the largest gap between the two empirical CDFs (Kolmogorov-Smirnov D)."""

    score: str
    paired: bool
    rows_a: int
    rows_b: int
    levels: tuple[float, ...]
    a: tuple[float, ...]
    b: tuple[float, ...]
    ks: float

    @property
    def differences(self) -> tuple[float, ...]:
        """B - A at each level."""
        return tuple(y - x for x, y in zip(self.a, self.b, strict=True))

    @property
    def largest(self) -> float:
        """The largest |B - A| over the levels."""
        return max((abs(d) for d in self.differences), default=0.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        d = asdict(self)
        d.update(levels=list(self.levels), a=list(self.a), b=list(self.b),
                 differences=list(self.differences), largest=self.largest)
        return d


def compare_quantiles(a: Array, b: Array, *, score: str = "score", paired: bool = True,
                      levels: tuple[float, ...] = LEVELS) -> QuantileComparison:
    """Quantiles of both score samples and the KS statistic (`scipy.stats.ks_2samp`).

    Raises:
        ValueError: an empty sample.
    """
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not len(x) or not len(y):
        raise ValueError("quantiles of an empty sample")
    qa, qb = np.quantile(x, levels), np.quantile(y, levels)
    ks = float(stats.ks_2samp(x, y).statistic)
    return QuantileComparison(score, paired, len(x), len(y), tuple(levels),
                              tuple(map(float, qa)), tuple(map(float, qb)), ks)


# --- the bootstrap --------------------------------------------------------------------------

#: A metric over replicates: (replicate weights (k, n), per-row data) -> k values.
Replicated = Callable[[Array], Array]


def weighted_mean(terms: Array) -> Replicated:
    """A metric that is the mean of per-row `terms` (accuracy, log loss, MAE)."""
    t = np.asarray(terms, np.float64)
    return lambda w: (w @ t) / w.sum(axis=1)


def weighted_rmse(errors: Array) -> Replicated:
    """The root mean squared error of per-row `errors`."""
    sq = np.asarray(errors, np.float64) ** 2
    return lambda w: np.sqrt((w @ sq) / w.sum(axis=1))


def weighted_auc(y01: Array, score: Array) -> Replicated:
    """ROC AUC of `score` for 0/1 outcomes `y01`: the weighted Mann-Whitney statistic, ties
    counting half (NaN for a replicate holding one class only). Each positive row adds its
    weight times the weight of the negatives below its score, plus half of those tied."""
    s = np.asarray(score, np.float64)
    y = np.asarray(y01).astype(bool)
    pos, neg = np.flatnonzero(y), np.flatnonzero(~y)
    neg = neg[np.argsort(s[neg], kind="stable")]
    below = np.searchsorted(s[neg], s[pos], "left")
    up_to = np.searchsorted(s[neg], s[pos], "right")

    def auc(w: Array) -> Array:
        cum = np.zeros((len(w), len(neg) + 1))
        np.cumsum(w[:, neg], axis=1, out=cum[:, 1:])
        wp = w[:, pos]
        with np.errstate(invalid="ignore", divide="ignore"):
            value: Array = (wp * (cum[:, below] + cum[:, up_to])).sum(axis=1) / 2 / (
                wp.sum(axis=1) * cum[:, -1])
        return value
    return auc


def _weights(rng: np.random.Generator, k: int, n: int) -> Array:
    """k bootstrap resamples of n rows as counts per row (k, n)."""
    draws = rng.integers(0, n, size=(k, n)) + (np.arange(k) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=k * n).reshape(k, n).astype(np.float64)


def bootstrap_differences(metrics: Sequence[tuple[Replicated, Replicated]], n_a: int,
                          n_b: int | None = None, *, replicates: int = REPLICATES,
                          seed: int = SEED, confidence: float = 0.95
                          ) -> list[tuple[float, float]]:
    """For each (metric of A, metric of B), the percentile interval of B - A over the same
    bootstrap resamples: paired (one resample of the same n_a rows for both models) when
    `n_b` is None, else independent resamples of each model's rows. (NaN, NaN) for a
    metric no replicate defines."""
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK_CELLS // max(n_a, n_b or 0, 1))
    out: list[list[Array]] = [[] for _ in metrics]
    for start in range(0, replicates, block):
        k = min(block, replicates - start)
        wa = _weights(rng, k, n_a)
        wb = wa if n_b is None else _weights(rng, k, n_b)
        for found, (metric_a, metric_b) in zip(out, metrics, strict=True):
            found.append(metric_b(wb) - metric_a(wa))
    alpha = 1 - confidence
    intervals = []
    for found in out:
        diffs = np.concatenate(found) if found else np.empty(0)
        diffs = diffs[np.isfinite(diffs)]
        if not len(diffs):
            intervals.append((math.nan, math.nan))
            continue
        low, high = np.percentile(diffs, [100 * alpha / 2, 100 * (1 - alpha / 2)])
        intervals.append((float(low), float(high)))
    return intervals


__all__ = ["EXACT_BELOW", "LEVELS", "REPLICATES", "SEED", "McNemar", "PairedDifference",
           "QuantileComparison", "bootstrap_differences", "compare_quantiles", "mcnemar",
           "paired_difference", "weighted_auc", "weighted_mean", "weighted_rmse"]
