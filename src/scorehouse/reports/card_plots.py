"""The model card's plots, in the monitoring report's style (`plots.py`: its colours, its
matplotlib settings, inline SVG): a training distribution per feature, the holdout curves
(ROC, precision-recall, calibration, residuals) and permutation importance.

Each returns SVG text, or None when the evaluation has nothing to draw.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..evaluation import Curve, Evaluation, Importance
from ..monitor import CategorySketch, NumericSketch
from ..monitor.sketch import Sketch
from .plots import MAX_CATEGORIES, NOW, OK, TRAINING, _cells, _figure, _shares, _short, _style, to_svg

#: Most features drawn in the importance plot (the rest are in its table).
MAX_IMPORTANCE = 25


def training_plot(sketch: Sketch) -> str:
    """One feature's training distribution: density on the baseline's bins for numbers,
    shares of the most frequent categories for categories."""
    with _style():
        fig = _figure(4.4, 2.3)
        ax = fig.add_subplot()
        if isinstance(sketch, NumericSketch):
            x, d = _cells(sketch)
            ax.stairs(d, x, fill=True, color=TRAINING, alpha=0.8)
            ax.set_ylabel("density")
            ax.set_yticks([])
        elif isinstance(sketch, CategorySketch):
            shares = sorted(_shares(sketch).items(), key=lambda kv: (-kv[1], kv[0]))
            shown, rest = shares[:MAX_CATEGORIES], shares[MAX_CATEGORIES:]
            labels = [_short(k) for k, _ in shown] + ([f"{len(rest)} more"] if rest else [])
            values = [v for _, v in shown] + ([sum(v for _, v in rest)] if rest else [])
            y = np.arange(len(labels))
            ax.barh(y, values, color=TRAINING)
            ax.set_yticks(y, labels)
            ax.invert_yaxis()
            ax.set_xlabel("share of values")
        return to_svg(fig)


def _lines(curves: Sequence[Curve], title: str, diagonal: bool) -> str:
    """Curves of one kind on one axes (one line per class for multiclass)."""
    with _style():
        fig = _figure(3.6, 3.2)
        ax = fig.add_subplot()
        for c in curves:
            ax.plot(c.x, c.y, linewidth=1.8, color=NOW if len(curves) == 1 else None,
                    marker="o" if len(c.x) <= 20 else None, markersize=3,
                    label=c.label or None)
        if diagonal:
            low = min(min(c.x + c.y) for c in curves)
            high = max(max(c.x + c.y) for c in curves)
            ax.plot([low, high], [low, high], color=TRAINING, linestyle="--", linewidth=1)
        ax.set_xlabel(curves[0].x_name.replace("_", " "))
        ax.set_ylabel(curves[0].y_name.replace("_", " "))
        ax.set_title(title)
        if any(c.label for c in curves):
            ax.legend(loc="best", fontsize=7)
        return to_svg(fig)


def _residuals(curve: Curve) -> str:
    with _style():
        fig = _figure(3.6, 3.2)
        ax = fig.add_subplot()
        x = np.asarray(curve.x)
        width = float(x[1] - x[0]) if len(x) > 1 else 1.0
        ax.bar(x, curve.y, width=width * 0.95, color=NOW)
        ax.axvline(0.0, color="#24292f", linestyle="--", linewidth=1)
        ax.set_xlabel("residual (target - prediction)")
        ax.set_ylabel("share of rows")
        ax.set_title("Residuals")
        return to_svg(fig)


def curve_plots(evaluation: Evaluation) -> dict[str, str]:
    """{title: SVG} for each curve kind the evaluation kept, in reading order."""
    out: dict[str, str] = {}
    by_kind = {kind: [c for c in evaluation.curves if c.kind == kind]
               for kind in ("roc", "pr", "calibration", "residuals")}
    if by_kind["roc"]:
        out["ROC"] = _lines(by_kind["roc"], "ROC", diagonal=True)
    if by_kind["pr"]:
        out["Precision-recall"] = _lines(by_kind["pr"], "Precision-recall", diagonal=False)
    if by_kind["calibration"]:
        out["Calibration"] = _lines(by_kind["calibration"], "Calibration", diagonal=True)
    if by_kind["residuals"]:
        out["Residuals"] = _residuals(by_kind["residuals"][0])
    return out


def importance_plot(importance: Importance) -> str | None:
    """Each feature's mean drop of the metric with its standard deviation, largest first;
    None when nothing was measured."""
    rows = importance.features[:MAX_IMPORTANCE]
    if not rows:
        return None
    with _style():
        fig = _figure(7.5, 0.8 + 0.24 * len(rows))
        ax = fig.add_subplot()
        y = np.arange(len(rows))
        ax.barh(y, [r.mean for r in rows], xerr=[r.std for r in rows], color=OK,
                error_kw={"ecolor": "#57606a", "capsize": 2, "linewidth": 1})
        ax.axvline(0.0, color="#24292f", linewidth=1)
        ax.set_yticks(y, [_short(r.feature) for r in rows])
        ax.invert_yaxis()
        ax.set_xlabel(f"drop in {importance.metric} when the column is shuffled")
        return to_svg(fig)
