"""`build_comparison_report`: a deployment comparison (`evaluation.compare_deployment`) as
one self-contained HTML page, what `scorehouse deploy compare -o report.html` writes.

The page holds one section, "Deployment comparison" (`<section id="deployment-comparison">`,
the macro of `_comparison.html.j2`, so another report can include it): traffic, the
models, every pair (agreement and McNemar, the paired difference with its interval, a
quantile-quantile plot of the scores, performance with late labels) and each canary's
drift over the windows with a verdict per window. Self-contained as `html.build_report`'s
page is: inline SVG, inline style, no script, a Content-Security-Policy that loads nothing,
user text autoescaped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from markupsafe import Markup

from ..evaluation.canary import CanaryReport
from ..evaluation.comparison import DeploymentComparison, PairComparison
from .comparison_plots import canary_plot, qq_plot
from .html import _ENV


@dataclass(frozen=True)
class PairView:
    """A pair and its quantile-quantile plot (None without scores)."""

    pair: PairComparison
    svg: Markup | None


@dataclass(frozen=True)
class CanaryView:
    """A canary's windows and their drift plot."""

    report: CanaryReport
    svg: Markup


def comparison_views(result: DeploymentComparison) -> tuple[list[PairView], list[CanaryView]]:
    """The pairs and canaries with their plots (matplotlib's SVG: its text escaped)."""
    pairs = [PairView(p, Markup(qq_plot(p.quantiles, p.a, p.b)) if p.quantiles else None)
             for p in result.pairs]
    canaries = [CanaryView(c, Markup(canary_plot(c))) for c in result.canaries if c.windows]
    return pairs, canaries


def build_comparison_report(result: DeploymentComparison, path: str | Path | None = None,
                            generated: datetime | None = None) -> str:
    """The comparison as HTML text, also written to `path` when given (UTF-8).

    Raises:
        OSError: `path` cannot be written.
    """
    pairs, canaries = comparison_views(result)
    html = _ENV.get_template("comparison.html.j2").render(
        c=result, pairs=pairs, canaries=canaries,
        generated=(generated or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC"))
    if path is not None:
        Path(path).write_text(html, encoding="utf-8")
    return html


__all__ = ["CanaryView", "PairView", "build_comparison_report", "comparison_views"]
