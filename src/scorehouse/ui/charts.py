"""The console's charts of traffic, drawn like the reports' plots (`reports.plots`: one
matplotlib `Figure` each, no pyplot, inline SVG text, the same style and colours); the
drift, quality, decay and distribution charts are `reports.plots`' own."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from ..monitor import Traffic
from ..reports.plots import DRIFTED, NOW, STYLE, TRAINING, to_svg, window_ticks


def traffic_plot(labels: Sequence[str], traffic: Sequence[Traffic]) -> str:
    """Three panels over windows: scoring calls per second, latency p50 and p99 (ms), and
    the share of rows rejected."""
    x = np.arange(len(traffic))
    with matplotlib.rc_context(cast(Any, STYLE)):
        fig = Figure(figsize=(7.5, 4.6), layout="constrained")
        rate, latency, rejects = fig.subplots(3, 1, sharex=True)
        rate.plot(x, [t.rows_per_second or 0.0 for t in traffic], marker="o", color=NOW,
                  label="rows/s")
        rate.set_ylabel("rows / s")
        rate.set_title("request rate")
        latency.plot(x, [_nan(t.latency_p50_ms) for t in traffic], marker="o", color=NOW,
                     label="p50")
        latency.plot(x, [_nan(t.latency_p99_ms) for t in traffic], marker="o",
                     color=TRAINING, label="p99")
        latency.set_ylabel("ms")
        latency.set_title("latency per call")
        latency.legend(loc="upper left", fontsize=8, ncols=2)
        rejects.bar(x, [t.reject_rate for t in traffic], color=DRIFTED)
        rejects.set_ylim(0, max(0.05, max((t.reject_rate for t in traffic), default=0) * 1.2))
        rejects.set_ylabel("rejected")
        rejects.set_title("rows rejected (share)")
        window_ticks(rejects, labels)
        return to_svg(fig)


def split_plot(shares: Sequence[tuple[str, float]]) -> str:
    """One horizontal bar cut into each answering model's share of traffic."""
    with matplotlib.rc_context(cast(Any, STYLE)):
        fig = Figure(figsize=(7.5, 0.9), layout="constrained")
        ax = fig.add_subplot()
        left = 0.0
        colours = [NOW, "#bf8700", "#8250df", "#1a7f37", "#cf222e", "#57606a"]
        for i, (name, share) in enumerate(shares):
            ax.barh(0, share, left=left, color=colours[i % len(colours)], label=name)
            if share >= 0.08:
                ax.text(left + share / 2, 0, f"{share:.0%}", ha="center", va="center",
                        color="white", fontsize=9)
            left += share
        ax.set_xlim(0, 1)
        ax.set_yticks([])
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncols=3, fontsize=8)
        return to_svg(fig)


def _nan(v: float | None) -> float:
    return float("nan") if v is None else v


__all__ = ["split_plot", "traffic_plot"]
