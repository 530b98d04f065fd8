"""The report's plots, drawn with matplotlib and returned as inline SVG text.

No pyplot: each plot is a `matplotlib.figure.Figure` of its own (no global figure state,
safe in a server thread). Text stays text (`svg.fonttype: none`: selectable, small, and
escaped by matplotlib's SVG writer), and `$` in user text is not read as mathtext.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, cast

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..monitor import (
    CategorySketch,
    ColumnDrift,
    DatasetDrift,
    NumericSketch,
    QualityReport,
    drift_score,
)
from ..monitor.sketch import OTHER, Sketch

TRAINING = "#9aa5b1"
NOW = "#1f6feb"
DRIFTED = "#d1242f"
OK = "#1a7f37"
STYLE: dict[str, Any] = {"svg.fonttype": "none", "text.parse_math": False, "svg.hashsalt": "scorehouse",
         "font.size": 9, "axes.spines.top": False, "axes.spines.right": False,
         "axes.titlesize": 10, "legend.frameon": False}
#: Categories drawn per feature; the rest are summed into one bar.
MAX_CATEGORIES = 12
#: Drift scores beyond this are drawn at it (and labelled with their value).
MAX_SCORE = 4.0


def _style() -> AbstractContextManager[None]:
    """matplotlib settings for the report's plots (only inside this block)."""
    # rc_context's stubs type its keys as a Literal of every rcParam; ours are among them.
    return matplotlib.rc_context(cast(Any, STYLE))


def to_svg(fig: Figure) -> str:
    """The figure as an <svg> element (no XML prologue), sized by its viewBox."""
    buf = io.StringIO()
    with _style():
        # No date (the same input gives the same file) and no RDF block with outside URLs.
        fig.savefig(buf, format="svg", bbox_inches="tight",
                    metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    text = buf.getvalue()
    return text[text.index("<svg"):]


#: At most this many windows are named under a plot over windows (every window is drawn).
MAX_TICKS = 12


def window_ticks(ax: Axes, labels: Sequence[str], **text: Any) -> None:
    """Name windows on `ax`'s x axis (windows at 0, 1, ...): every one when there are at
    most MAX_TICKS, else MAX_TICKS evenly spaced ones ending with the newest. A week of
    hourly windows named one by one made 168 rotated labels per axis, most of a page's
    drawing time and unreadable anyway."""
    step = max(1, -(-len(labels) // MAX_TICKS))
    at = list(range(len(labels) - 1, -1, -step))[::-1]
    ax.set_xticks(at, [labels[i] for i in at], rotation=30, ha="right", **text)


def _figure(width: float, height: float) -> Figure:
    with _style():
        return Figure(figsize=(width, height), layout="constrained")


def feature_plot(reference: Sketch, current: Sketch) -> str:
    """One feature's distribution, training (grey, filled) vs now (blue): densities on the
    baseline's bins for numbers, shares per category for categories."""
    with _style():
        fig = _figure(4.4, 2.5)
        ax = fig.add_subplot()
        if isinstance(reference, NumericSketch) and isinstance(current, NumericSketch):
            _numeric(ax, reference, current)
        elif isinstance(reference, CategorySketch) and isinstance(current, CategorySketch):
            _categories(ax, reference, current)
        # Above the axes, where it never hides a bar.
        fig.legend(loc="outside upper right", ncols=2, fontsize=8)
        return to_svg(fig)


def _cells(s: NumericSketch) -> tuple[np.ndarray, np.ndarray]:
    """Cell edges (out-of-range cells reach the observed min/max) and densities."""
    e = s.edges
    low = s.low if np.isfinite(s.low) and s.low < e[0] else e[0]
    high = s.high if np.isfinite(s.high) and s.high > e[-1] else e[-1]
    x = np.concatenate([[low], e, [high]])
    width = np.diff(x)
    share = s.counts / max(s.n, 1)
    density = np.divide(share, width, out=np.zeros_like(share, dtype=float), where=width > 0)
    keep = np.concatenate([[True], width > 0])  # drop empty out-of-range cells
    return x[keep], density[width > 0]


def _numeric(ax: Axes, reference: NumericSketch, current: NumericSketch) -> None:
    x, d = _cells(reference)
    ax.stairs(d, x, fill=True, color=TRAINING, alpha=0.55, label="training")
    if current.n:
        x, d = _cells(current)
        ax.stairs(d, x, color=NOW, linewidth=2, label="now")
    for edge in (reference.edges[0], reference.edges[-1]):
        ax.axvline(edge, color="#57606a", linestyle=":", linewidth=1)
    ax.set_ylabel("density")
    ax.set_yticks([])


def _shares(s: CategorySketch) -> dict[str, float]:
    table = dict(zip(s.categories, s.counts.tolist(), strict=True))
    table.update(s.unseen)
    total = max(sum(table.values()), 1)
    return {k: v / total for k, v in table.items()}


def _categories(ax: Axes, reference: CategorySketch, current: CategorySketch) -> None:
    ref, cur = _shares(reference), _shares(current)
    seen = set(reference.categories)
    names = sorted(set(ref) | set(cur), key=lambda k: (-max(ref.get(k, 0), cur.get(k, 0)), k))
    shown, rest = names[:MAX_CATEGORIES], names[MAX_CATEGORIES:]
    r = [ref.get(k, 0.0) for k in shown]
    c = [cur.get(k, 0.0) for k in shown]
    labels = [_short(k) if k in seen or k == OTHER else f"{_short(k)} (unseen)" for k in shown]
    if rest:
        r.append(sum(ref.get(k, 0.0) for k in rest))
        c.append(sum(cur.get(k, 0.0) for k in rest))
        labels.append(f"{len(rest)} more")
    y = np.arange(len(labels))
    ax.barh(y - 0.2, r, height=0.4, color=TRAINING, label="training")
    ax.barh(y + 0.2, c, height=0.4, color=NOW, label="now")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("share of values")


def _short(text: str, most: int = 32) -> str:
    """A category label cut to `most` characters, so one long name cannot squeeze the plot."""
    return text if len(text) <= most else text[:most - 1] + "…"


def drift_bars(drift: DatasetDrift) -> str:
    """Every column's drift score (statistic over threshold; 1 = the verdict line), red
    where it drifted, longest first."""
    cols = sorted(drift.columns, key=drift_score, reverse=True)
    scores = [drift_score(c) for c in cols]
    with _style():
        fig = _figure(7.5, 0.8 + 0.26 * len(cols))
        ax = fig.add_subplot()
        y = np.arange(len(cols))
        ax.barh(y, np.minimum(scores, MAX_SCORE), color=[DRIFTED if c.drifted else OK
                                                         for c in cols])
        for i, (c, s) in enumerate(zip(cols, scores, strict=True)):
            ax.text(min(s, MAX_SCORE) + 0.03, i, f"{c.method} {c.statistic:.3g}",
                    va="center", fontsize=8, color="#57606a")
        ax.axvline(1.0, color="#24292f", linestyle="--", linewidth=1)
        ax.set_yticks(y, [c.column for c in cols])
        ax.invert_yaxis()
        ax.set_xlim(0, MAX_SCORE * 1.25)
        ax.set_xlabel("statistic / threshold (1 = drift; tests: log p / log threshold)")
        return to_svg(fig)


def drift_over_time(series: Sequence[tuple[str, DatasetDrift]], top: int = 6) -> str:
    """Drift score per input column over windows (the `top` highest named), and the share
    of drifted columns against the data set's line."""
    labels = [w for w, _ in series]
    x = np.arange(len(series))
    columns = series[-1][1].inputs
    scores = {c: [_score(d, c) for _, d in series] for c in columns}
    ranked = sorted(columns, key=lambda c: -np.nanmax(np.asarray(scores[c], float)))
    with _style():
        fig = _figure(7.5, 4.2)
        ax, share = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
        for i, c in enumerate(ranked):
            named = i < top
            ax.plot(x, np.minimum(scores[c], MAX_SCORE), marker="o" if named else None,
                    linewidth=1.8 if named else 0.8, color=None if named else "#d0d7de",
                    label=c if named else None, zorder=3 if named else 1)
        ax.axhline(1.0, color="#24292f", linestyle="--", linewidth=1)
        ax.set_ylabel("drift score")
        ax.legend(loc="upper left", fontsize=8, ncols=3)
        share.plot(x, [d.share for _, d in series], marker="o", color=DRIFTED)
        share.axhline(series[-1][1].drift_share, color="#24292f", linestyle="--", linewidth=1)
        share.set_ylim(0, 1)
        share.set_ylabel("drifted share")
        window_ticks(share, labels)
        return to_svg(fig)


def _score(d: DatasetDrift, column: str) -> float:
    try:
        return drift_score(d.column(column))
    except KeyError:
        return float("nan")


def quality_bars(quality: QualityReport) -> str | None:
    """Each non-zero or breached quality rate (bar) with its limit (black tick), red when
    breached; None when every rate is zero."""
    checks = sorted((c for c in quality.checks if c.value > 0 or c.breached),
                    key=lambda c: -c.value)
    if not checks:
        return None
    with _style():
        fig = _figure(7.5, 0.8 + 0.26 * len(checks))
        ax = fig.add_subplot()
        y = np.arange(len(checks))
        ax.barh(y, [c.value for c in checks], color=[DRIFTED if c.breached else OK
                                                     for c in checks])
        ax.scatter([c.limit for c in checks], y, marker="|", s=200, color="#24292f",
                   label="limit", zorder=3)
        ax.set_yticks(y, [f"{c.column or 'all rows'} · {c.measure}" for c in checks])
        ax.invert_yaxis()
        ax.set_xlabel("rate")
        fig.legend(loc="outside upper right", fontsize=8)
        return to_svg(fig)


def quality_over_time(series: Sequence[tuple[str, QualityReport]]) -> str:
    """Per measure, the highest rate over columns in each window."""
    measures = sorted({c.measure for _, q in series for c in q.checks})
    x = np.arange(len(series))
    with _style():
        fig = _figure(7.5, 2.8)
        ax = fig.add_subplot()
        for m in measures:
            ax.plot(x, [max((c.value for c in q.checks if c.measure == m), default=0.0)
                        for _, q in series], marker="o", label=m)
        window_ticks(ax, [w for w, _ in series])
        ax.set_ylabel("highest rate")
        ax.legend(loc="upper left", fontsize=8, ncols=3)
        return to_svg(fig)


def performance_plot(series: Sequence[tuple[str, Mapping[str, float]]],
                     reference: Mapping[str, float]) -> str:
    """One small plot per label metric over windows, with the training/holdout figure
    dashed."""
    names = sorted({k for _, m in series for k in m})
    x = np.arange(len(series))
    with _style():
        fig = _figure(7.5, 2.6)
        axes = np.atleast_1d(fig.subplots(1, len(names), squeeze=False)[0])
        for ax, name in zip(axes, names, strict=True):
            ax.plot(x, [m.get(name, np.nan) for _, m in series], marker="o", color=NOW,
                    label="window")
            if name in reference:
                ax.axhline(reference[name], color=TRAINING, linestyle="--", label="training")
            ax.set_title(name)
            window_ticks(ax, [w for w, _ in series], fontsize=7)
        axes[0].legend(loc="best", fontsize=8)
        return to_svg(fig)


def column_verdict(c: ColumnDrift) -> str:
    """A column's verdict in words, e.g. 'drifted: wasserstein 0.42 >= 0.1'."""
    test = c.method in ("ks", "chisquare")
    op = ("<" if c.drifted else ">=") if test else (">=" if c.drifted else "<")
    return f"{'drifted' if c.drifted else 'no drift'}: {c.method} {c.statistic:.3g} {op} " \
           f"{c.threshold:g}"
