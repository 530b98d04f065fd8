"""The plots of a deployment comparison, inline SVG like every report plot (`plots.py`):
a quantile-quantile plot per pair of models, and a canary's drift over its windows."""

from __future__ import annotations

import math

import numpy as np

from ..evaluation.canary import CanaryReport, Finding
from ..evaluation.paired import QuantileComparison
from ..monitor import drift_score
from .plots import DRIFTED, MAX_SCORE, NOW, OK, TRAINING, _figure, _style, to_svg, window_ticks


def qq_plot(q: QuantileComparison, a: str, b: str) -> str:
    """B's score quantiles against A's at the same levels (the median marked), over the
    line y = x where the two distributions would agree."""
    x, y = np.asarray(q.a), np.asarray(q.b)
    low, high = float(min(x.min(), y.min())), float(max(x.max(), y.max()))
    pad = (high - low) * 0.05 or 0.05
    with _style():
        fig = _figure(3.8, 3.4)
        ax = fig.add_subplot()
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color=TRAINING,
                linestyle="--", linewidth=1, label="equal")
        ax.plot(x, y, marker="o", markersize=3.5, color=NOW, linewidth=1.2,
                label="quantiles")
        if 0.5 in q.levels:
            i = q.levels.index(0.5)
            ax.plot([x[i]], [y[i]], marker="s", markersize=6, color=DRIFTED, linestyle="",
                    label="median")
        ax.set_xlim(low - pad, high + pad)
        ax.set_ylim(low - pad, high + pad)
        ax.set_xlabel(f"{a}: {q.score}", fontsize=8)
        ax.set_ylabel(f"{b}: {q.score}", fontsize=8)
        ax.legend(loc="upper left", fontsize=7)
        return to_svg(fig)


def canary_plot(report: CanaryReport) -> str:
    """Per window, the canary's drift score against its reference (red points where it
    drifted) and each new model's gap to the champion (dashed), on the monitor's common
    scale (`monitor.drift_score`: 1 is the verdict's line)."""
    x = np.arange(1, len(report.windows) + 1)
    canary = [drift_score(w.drift) if w.drift else math.nan for w in report.windows]
    models = sorted({g.model for w in report.windows for g in w.gaps})
    with _style():
        fig = _figure(7.5, 3.0)
        ax = fig.add_subplot()
        ax.plot(x, np.minimum(canary, MAX_SCORE), marker="o", color=OK, linewidth=2,
                label=f"{report.canary} vs {report.reference}")
        hot = [(i, v) for i, v, w in zip(x, canary, report.windows, strict=True)
               if w.finding is Finding.INPUT_CHANGED]
        if hot:
            ax.plot([i for i, _ in hot], [min(v, MAX_SCORE) for _, v in hot], marker="o",
                    markersize=9, color=DRIFTED, linestyle="", label="input changed")
        for model in models:
            gap = [next((drift_score(g.drift) for g in w.gaps if g.model == model), math.nan)
                   for w in report.windows]
            ax.plot(x, np.minimum(gap, MAX_SCORE), marker=".", linestyle="--", linewidth=1.2,
                    label=f"{model} vs champion")
        ax.axhline(1.0, color="#24292f", linestyle=":", linewidth=1)
        window_ticks(ax, [w.start.strftime("%m-%d %H:%M") for w in report.windows], fontsize=7)
        ax.set_ylabel("drift score (1 = verdict)")
        ax.set_ylim(bottom=0)
        fig.legend(loc="outside upper left", fontsize=7, ncols=2)
        return to_svg(fig)


__all__ = ["canary_plot", "qq_plot"]
