"""`build_report`: one self-contained HTML file from a `ReportInput`.

Self-contained: the plots are inline SVG, the style an inline <style>, no script, and a
Content-Security-Policy that forbids loading anything (so a stray URL in user text can
never be fetched either); the file works offline and can be mailed. Every piece of user
text (model, column and category names) goes through Jinja2's autoescaping; the SVG comes
from matplotlib, whose writer escapes the text inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import jinja2
from markupsafe import Markup

from ..monitor import ColumnDrift, QualityCheck, drift_score
from ..monitor.sketch import PREDICTION, Sketch
from . import plots
from .inputs import ReportInput, window_text


@dataclass(frozen=True)
class FeatureView:
    """One feature's panel: its name, kind, verdict in words, null rates and plot."""

    name: str
    kind: str
    drifted: bool
    verdict: str
    null_training: float
    null_now: float
    svg: Markup


@dataclass(frozen=True)
class DriftRow:
    """One row of the drift table."""

    column: ColumnDrift
    score: float
    verdict: str


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("scorehouse.reports", "templates"),
    autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _mib(n: float | None) -> str:
    return "–" if n is None else f"{n / 2**20:,.1f} MiB"


def build_report(report: ReportInput, path: str | Path | None = None) -> str:
    """The report as HTML text, also written to `path` when given (UTF-8).

    Sections: summary, drift per column, drift over time (with `drift_series`), every
    feature's distribution training vs now, the prediction's distribution, input quality
    (and over time with `quality_series`), performance over time (with `performance`), the
    serving process's memory, CPU time and model loads (with `resources`).

    Raises:
        OSError: `path` cannot be written.
    """
    drift = report.drift
    rows = [DriftRow(c, drift_score(c), plots.column_verdict(c)) for c in drift.columns]
    features = _features(report)
    context = {
        "r": report,
        "mib": _mib,
        "generated": (report.generated or datetime.now(timezone.utc)).strftime(
            "%Y-%m-%d %H:%M UTC"),
        "rows": sorted(rows, key=lambda row: -row.score),
        "inputs": [f for f in features if not f.name.startswith(PREDICTION)],
        "predictions": [f for f in features if f.name.startswith(PREDICTION)],
        "breached": report.quality.breached,
        "quality_rows": _quality_rows(report.quality.checks),
        "quality_zero": sum(not c.breached and c.value == 0 for c in report.quality.checks),
        "svg": _series_plots(report) | {
            "drift": Markup(plots.drift_bars(drift)),
            "quality": _markup(plots.quality_bars(report.quality))},
    }
    html = _ENV.get_template("report.html.j2").render(context)
    if path is not None:
        Path(path).write_text(html, encoding="utf-8")
    return html


def _markup(svg: str | None) -> Markup | None:
    # The SVG is matplotlib's output, its text already escaped: safe to insert as is.
    return None if svg is None else Markup(svg)


def _series_plots(report: ReportInput) -> dict[str, Markup | None]:
    """The over-time plots, None where the report has no series (or one window only)."""
    drift = [(window_text(w), d) for w, d in report.drift_series]
    quality = [(window_text(w), q) for w, q in report.quality_series]
    perf = [(window_text(w), m) for w, m in report.performance]
    return {
        "drift_time": _markup(plots.drift_over_time(drift)) if len(drift) > 1 else None,
        "quality_time": _markup(plots.quality_over_time(quality)) if len(quality) > 1 else None,
        "performance": _markup(plots.performance_plot(perf, report.performance_reference))
        if perf and any(m for _, m in perf) else None,
    }


def _features(report: ReportInput) -> list[FeatureView]:
    """A panel per feature the window and the reference share, in the window's order."""
    out = []
    state = report.current
    state.flush()
    for name, sketch in state.sketches.items():
        ref = report.reference.features.get(name)
        if ref is None:
            continue
        try:
            c = report.drift.column(name)
        except KeyError:
            continue
        out.append(FeatureView(name, c.kind, c.drifted, plots.column_verdict(c),
                               _null_rate(ref.sketch), _null_rate(sketch),
                               Markup(plots.feature_plot(ref.sketch, sketch))))
    return out


def _null_rate(s: Sketch) -> float:
    total = s.n + s.nulls
    return s.nulls / total if total else 0.0


def _quality_rows(checks: tuple[QualityCheck, ...]) -> list[QualityCheck]:
    """The checks worth a table row (breached or non-zero), breached first, then by column."""
    return sorted((c for c in checks if c.breached or c.value > 0),
                  key=lambda c: (not c.breached, c.column or "", c.measure))
