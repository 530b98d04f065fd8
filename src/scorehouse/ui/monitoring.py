"""A model's monitoring page: traffic, drift, quality, the prediction's distribution and
decay over windows of the prediction log, and the alert rules over those windows.

The figures are `monitor.log_windows`' (what `monitor check` and `monitor report` read)
and the charts `reports.plots`' (`charts.py` for traffic). Computing them costs about a
second per hundred windows of a few hundred rows, so a page's figures are kept
(`kept.MonitorView`, the most recent `kept.VIEWS_KEPT`) under what they were computed
from: the model's artifact, the window, the `since` text, the labels file and the log's
closed files (`monitor.log_stamp`). A view is computed again when any of those changes, or
after `kept.VIEW_SECONDS` (rows leave a relative `since` as time passes); the page says
when its figures were computed. Its charts are images (`monitor_chart`), each drawn once,
when the browser first asks for it, so the page answers without waiting for matplotlib.
The alert rules and the state `monitor check` keeps are read on every view.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.responses import Response

from ..errors import NotFoundError
from ..registry.refs import ModelRef
from .kept import MonitorView, keep
from .models import active_alias
from .web import Ask

if TYPE_CHECKING:  # monitor, routing and the scorer load with the first page that reads them
    from ..monitor import Labels, LoggedWindow
    from ..scorer import Scorer

#: Models kept loaded for the monitoring pages (the most recently used).
SCORERS_KEPT = 8
#: The windows a monitoring page offers.
WINDOWS = ("15min", "hour", "6h", "day", "week", "1000rows", "all")


def labels_for(ask: Ask, name: str) -> Labels | None:
    """The late labels of model `name` in the console's labels folder (None: none)."""
    from ..monitor import Labels

    folder = ask.console.settings.labels
    if not folder:
        return None
    for suffix in (".parquet", ".csv"):
        path = Path(folder) / f"{name}{suffix}"
        if path.is_file():
            s = ask.console.settings
            return Labels(path, s.label_id, s.label_target)
    return None


def _rules_path(ask: Ask, name: str) -> Path | None:
    rules = ask.console.settings.rules
    if not rules:
        return None
    path = Path(rules)
    if path.is_dir():
        path = path / f"{name}.toml"
    return path if path.is_file() else None


def _scorer(ask: Ask, ref: str) -> Scorer:
    """The model of `ref`, loaded once per artifact (a page view scores nothing)."""
    from ..monitor import monitored

    mv = ask.registry.resolve(ref)
    cache = ask.console.scorers
    found = cache.get(mv.manifest_sha256)
    if found is None:
        found = keep(cache, mv.manifest_sha256, monitored(ModelRef.parse(mv.ref),
                                                          registry=ask.registry), SCORERS_KEPT)
    return found


def _label(w: LoggedWindow) -> str:
    return w.report.start.strftime("%m-%d %H:%M")


#: What each chart of a monitoring page shows (its image's alt text and caption).
CAPTIONS = {
    "traffic": "Rows per second, latency per scoring call and the share of rows rejected, "
               "per window.",
    "drift": "Each input's drift score against the training baseline (1 = drift), and the "
             "share of drifted inputs.",
    "quality": "Highest rate over inputs per window: rejected rows, nulls, unseen categories "
               "and out-of-range values (the flags), absent columns.",
    "decay": "Metrics of the labelled rows per window; dashed: the figure at packaging.",
}


def _kinds(scorer: Scorer, windows: list[LoggedWindow], has_labels: bool) -> list[str]:
    """The charts there is something to draw for (see `kept.MonitorView.kinds`)."""
    from ..monitor import baseline_reference, training_baseline

    kinds = ["traffic"]
    kinds += ["drift"] if any(w.report.drift is not None for w in windows) else []
    kinds += ["quality"] if any(w.report.quality is not None for w in windows) else []
    kinds += ["decay"] if has_labels and any(w.metrics for w in windows) else []
    reference = baseline_reference(training_baseline(scorer), scorer.schema)
    state = windows[-1].state
    state.flush()
    return kinds + [name for name in state.sketches
                    if name.startswith("prediction.") and name in reference.features]


def _draw(scorer: Scorer, windows: list[LoggedWindow], kind: str) -> str:
    """The chart `kind` of `_kinds` as SVG text."""
    from ..monitor import baseline_reference, training_baseline
    from ..monitor.feedback import CLASSIFICATION, REGRESSION, reference_figures
    from ..reports import plots
    from .charts import traffic_plot

    labels = [_label(w) for w in windows]
    if kind == "traffic":
        return traffic_plot(labels, [w.report.traffic for w in windows])
    if kind == "drift":
        return plots.drift_over_time([(lab, w.report.drift) for lab, w in
                                      zip(labels, windows, strict=True) if w.report.drift])
    if kind == "quality":
        return plots.quality_over_time([(lab, w.report.quality) for lab, w in
                                        zip(labels, windows, strict=True) if w.report.quality])
    if kind == "decay":
        names = REGRESSION if scorer.task == "regression" else CLASSIFICATION
        line = {k: f.value for k, f in reference_figures(scorer.manifest, names).items()}
        return plots.performance_plot(
            [(lab, dict(w.metrics)) for lab, w in zip(labels, windows, strict=True)], line)
    # The distribution of a prediction column in the newest window, against training.
    reference = baseline_reference(training_baseline(scorer), scorer.schema)
    return plots.feature_plot(reference.features[kind].sketch, windows[-1].state.sketches[kind])


def _view(ask: Ask, scorer: Scorer, window: str, since_text: str,
          labels: Labels | None) -> MonitorView:
    """The page's figures: kept ones if nothing they came from changed, else computed
    (charts are drawn later, each when its image is asked for).

    Raises:
        NotFoundError: no logged row of the version since `since_text`.
        UsageError: a bad window or `since` text.
    """
    from ..monitor import log_stamp, log_windows, parse_time

    since = parse_time(since_text) if since_text else None
    source = ask.console.settings.log_source
    stamp = log_stamp(scorer, source=source, since=since)
    labelled = None
    if labels is not None:
        st = Path(labels.path).stat()
        labelled = (str(labels.path), st.st_size, st.st_mtime_ns)
    key = (scorer.artifact.manifest_sha256, scorer.version, window, since_text, labelled,
           source, stamp)
    views = ask.console.monitoring
    found = views.get(key)
    if found is not None:
        return found
    windows = log_windows(scorer, window=window, labels=labels, source=source, since=since)
    return views.put(key, MonitorView(dt.datetime.now(dt.timezone.utc), windows,
                                      _kinds(scorer, windows, labels is not None),
                                      time.monotonic()))


def _alerts(ask: Ask, name: str, windows: list[LoggedWindow]) -> dict[str, Any] | None:
    from ..monitor import AlertState, check, load_rules, rule_statuses
    from ..monitor.alerts import state_path

    path = _rules_path(ask, name)
    if path is None:
        return None
    rules = load_rules(path)
    result = check([w.figures() for w in windows], rules, AlertState(name))
    saved = AlertState.load(state_path(name), name)
    return {"path": str(path), "statuses": rule_statuses(rules, result),
            "alerts": result.alerts, "saved": saved}


def _asked(ask: Ask) -> tuple[str, Scorer, str, str, list[int]]:
    """(model name, its scorer, window, since) a monitoring page or chart asks for (the
    active version unless `version=N`), and the model's versions."""
    reg, name = ask.registry, ask.param("name")
    summary = {v.version: v for v in reg.versions(name)}
    active = active_alias(sorted({a for v in summary.values() for a in v.aliases}))
    version = ask.query("version")
    ref = f"{name}/{version}" if version.isdigit() else \
        (f"{name}@{active}" if active else f"{name}@latest")
    window = ask.query("window", ask.console.settings.window)
    since_text = ask.query("since", ask.console.settings.since)
    return name, _scorer(ask, ref), window, since_text, sorted(summary, reverse=True)


def monitor_page(ask: Ask) -> Response:
    """GET /models/{name}/monitor?version=N&window=hour&since=1d: traffic, drift, quality,
    prediction distribution and decay over windows of the log (charts as images, drawn
    when the browser asks for them), and the alert rules."""
    name, scorer, window, since_text, versions = _asked(ask)
    labels = labels_for(ask, name)
    context: dict[str, Any] = {
        "title": f"Monitoring {name}", "name": name, "ref": f"{name}/{scorer.version}",
        "versions": versions, "version": scorer.version,
        "window": window, "windows": WINDOWS if window in WINDOWS else (window, *WINDOWS),
        "since": since_text, "labels": labels, "rules": None, "empty": "", "computed": None,
        "captions": CAPTIONS, "kinds": [], "table": []}
    try:
        view = _view(ask, scorer, window, since_text, labels)
    except NotFoundError as e:
        context["empty"] = str(e)
        return ask.page("monitor.html.j2", **context)
    context["rules"] = _alerts(ask, name, view.windows)
    context["computed"] = view.computed.strftime("%Y-%m-%d %H:%M:%S UTC")
    context["kinds"] = view.kinds
    context["chart_query"] = urlencode({"version": scorer.version or "", "window": window,
                                        "since": since_text})
    context["table"] = [(_label(w), w) for w in view.windows][::-1]
    return ask.page("monitor.html.j2", **context)


def monitor_chart(ask: Ask) -> Response:
    """GET /models/{name}/monitor/charts/{kind}.svg?version=N&window=..&since=..: one chart
    of the monitoring page with the same query, as an SVG image (404: nothing to draw)."""
    _, scorer, window, since_text, _ = _asked(ask)
    view = _view(ask, scorer, window, since_text, labels_for(ask, ask.param("name")))
    kind = ask.param("kind")
    if kind not in view.kinds:
        raise NotFoundError(f"no {kind!r} chart: this page draws {', '.join(view.kinds)}")
    with view.lock:  # drawn once, however many ask at the same moment
        svg = view.charts.get(kind)
        if svg is None:
            svg = view.charts[kind] = _draw(scorer, view.windows, kind)
    return Response(svg, media_type="image/svg+xml",
                    headers={"Cache-Control": "private, max-age=600"})


__all__ = ["labels_for", "monitor_chart", "monitor_page"]
