"""A report straight from the prediction log: the windows of a model's logged rows
(`monitor.checking.log_windows`) as a `ReportInput`, the newest window as "now" and every
window in the over-time plots. What `scorehouse monitor report` and `scorehouse demo
--drift` write:

    scorer = monitored("churn@production")
    build_report(log_report(scorer, window="day", since=parse_time("14d")), "report.html")
"""

from __future__ import annotations

from typing import Any

from ..monitor import Labels, Reference, baseline_reference, log_windows, training_baseline
from ..monitor.feedback import CLASSIFICATION, REGRESSION, reference_figures
from ..scorer import Scorer
from .inputs import ReportInput, report_input, window_text


def log_report(scorer: Scorer, *, window: str = "day", reference: Reference | None = None,
               labels: Labels | None = None, **select: Any) -> ReportInput:
    """The report of `scorer`'s logged rows cut into `window`s: distributions of the newest
    window against `reference` (default: the training baseline), drift and quality over
    the windows, and with `labels` the label metrics per window under the figures
    recorded at packaging.

    Args:
        scorer: the model watched (`monitor.monitored`).
        window: 'day', '6h', '5000rows', 'all' (`monitor.WindowSpec`).
        reference: what drift compares against (`monitor.reference_for`).
        labels: late labels (`monitor.Labels`) for performance over time.
        **select: `source`, `since`, `until`, `all_versions` of `monitor.logged_rows`.

    Raises:
        NotFoundError: no logged row matches, or no labels file.
        SchemaError: the labels file lacks the id or target column.
        UsageError: a bad window text or labels file type.
        ArtifactError: the model has no training baseline.
    """
    against = reference or baseline_reference(training_baseline(scorer), scorer.schema)
    windows = log_windows(scorer, window=window, reference=against, labels=labels, **select)
    now = windows[-1]
    performance: list[tuple[Any, dict[str, float]]] = []
    line: dict[str, float] = {}
    if labels is not None:
        performance = [(w.report.start, dict(w.metrics)) for w in windows]
        names = REGRESSION if scorer.task == "regression" else CLASSIFICATION
        line = {k: f.value for k, f in reference_figures(scorer.manifest, names).items()}
    return report_input(scorer.name, scorer.version, against, now.state,
                        windows=[(w.report.start, w.state) for w in windows],
                        performance=performance, performance_reference=line,
                        window=f"{window}, newest from {window_text(now.report.start)}")


__all__ = ["log_report"]
