"""The pages of a model in operation: its monitoring (charts from the prediction log, the
alert rules), the deployments (roles, traffic split, history) and the model card.

The figures come from the calls the CLI makes: `monitor.log_windows` (what `monitor
check` and `monitor report` read), `monitor.alerts.check` (the rules over those windows,
delivering nothing) and the alert state `monitor check` keeps, `routing.registered.read`
and `Registry.deployment_history` (`deploy show|history`), and `reports.card`
(`scorehouse card`). Charts are `reports.plots`' (and `charts.py` for traffic).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING, Any

from markupsafe import Markup
from starlette.responses import Response

from ..errors import NotFoundError
from ..registry.refs import ModelRef
from .models import active_alias, keep
from .web import Ask

if TYPE_CHECKING:  # monitor, routing and the scorer load with the first page that reads them
    from ..monitor import Labels, LoggedWindow
    from ..scorer import Scorer

#: Models kept loaded for the monitoring pages (the most recently used).
SCORERS_KEPT = 8
#: The windows a monitoring page offers.
WINDOWS = ("15min", "hour", "6h", "day", "week", "1000rows", "all")


def _labels(ask: Ask, name: str) -> Labels | None:
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


def _charts(scorer: Scorer, windows: list[LoggedWindow], has_labels: bool) -> dict[str, Any]:
    from ..monitor.feedback import CLASSIFICATION, REGRESSION, reference_figures
    from ..reports import plots
    from .charts import traffic_plot

    labels = [_label(w) for w in windows]
    drift = [(lab, w.report.drift) for lab, w in zip(labels, windows, strict=True)
             if w.report.drift is not None]
    quality = [(lab, w.report.quality) for lab, w in zip(labels, windows, strict=True)
               if w.report.quality is not None]
    out: dict[str, Any] = {"traffic": Markup(traffic_plot(labels, [w.report.traffic
                                                                   for w in windows]))}
    out["drift"] = Markup(plots.drift_over_time(drift)) if drift else None
    out["quality"] = Markup(plots.quality_over_time(quality)) if quality else None
    out["decay"] = None
    if has_labels and any(w.metrics for w in windows):
        names = REGRESSION if scorer.task == "regression" else CLASSIFICATION
        line = {k: f.value for k, f in reference_figures(scorer.manifest, names).items()}
        out["decay"] = Markup(plots.performance_plot(
            [(lab, dict(w.metrics)) for lab, w in zip(labels, windows, strict=True)], line))
    return out


def _predictions(scorer: Scorer, newest: LoggedWindow) -> list[tuple[str, Markup]]:
    """The distribution of each prediction column in the newest window, against training."""
    from ..monitor import baseline_reference, training_baseline
    from ..reports import plots

    reference = baseline_reference(training_baseline(scorer), scorer.schema)
    state = newest.state
    state.flush()
    out = []
    for name, sketch in state.sketches.items():
        ref = reference.features.get(name)
        if name.startswith("prediction.") and ref is not None:
            out.append((name, Markup(plots.feature_plot(ref.sketch, sketch))))
    return out


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


def monitor_page(ask: Ask) -> Response:  # long: one page, many sections, each a call
    """GET /models/{name}/monitor?version=N&window=hour&since=7d: traffic, drift, quality,
    prediction distribution and decay over windows of the log, and the alert rules."""
    from ..monitor import log_windows, parse_time

    reg, name = ask.registry, ask.param("name")
    summary = {v.version: v for v in reg.versions(name)}
    active = active_alias(sorted({a for v in summary.values() for a in v.aliases}))
    version = ask.query("version")
    ref = f"{name}/{version}" if version.isdigit() else \
        (f"{name}@{active}" if active else f"{name}@latest")
    window = ask.query("window", ask.console.settings.window)
    since_text = ask.query("since", "7d")
    scorer = _scorer(ask, ref)
    labels = _labels(ask, name)
    context: dict[str, Any] = {
        "title": f"Monitoring {name}", "name": name, "ref": f"{name}/{scorer.version}",
        "versions": sorted(summary, reverse=True), "version": scorer.version,
        "window": window, "windows": WINDOWS if window in WINDOWS else (window, *WINDOWS),
        "since": since_text,
        "labels": labels, "rules": None, "empty": ""}
    try:
        since = parse_time(since_text) if since_text else None
        windows = log_windows(scorer, window=window, labels=labels,
                              source=ask.console.settings.log_source, since=since)
    except NotFoundError as e:
        context["empty"] = str(e)
        return ask.page("monitor.html.j2", **context, charts={}, predictions=[], table=[])
    context["rules"] = _alerts(ask, name, windows)
    return ask.page("monitor.html.j2", **context, charts=_charts(scorer, windows, labels is not None),
                    predictions=_predictions(scorer, windows[-1]),
                    table=[(_label(w), w) for w in windows][::-1])


def deployments_page(ask: Ask) -> Response:
    """GET /deployments: every deployment with its champion, revision and last change."""
    return ask.page("deployments.html.j2", title="Deployments",
                    rows=ask.registry.deployments())


def _traffic(ask: Ask, name: str, since: dt.datetime) -> tuple[Any, list[Any]]:
    """The deployment's traffic since `since` as `deploy compare` counts it (requests,
    answers per role, fallback answers, off-path and rejected rows) and its arms (role,
    model, version, rows); (None, []) when it logged nothing."""
    from ..evaluation.compare import arms, counts, deployment_rows

    try:
        rows = deployment_rows(name, source=ask.console.settings.log_source, since=since)
    except NotFoundError:
        return None, []
    return counts(rows), [arm for arm, _ in arms(rows)]


def deployment_page(ask: Ask) -> Response:
    """GET /deployments/{name}: roles (and what each reference resolves to now), the
    traffic split, rows logged per version since a day ago, and the history."""
    from ..routing import registered
    from .charts import split_plot

    reg, name = ask.registry, ask.param("name")
    stored, spec = registered.read(reg, name)
    roles = []
    for role, ref in spec.roles():
        try:
            now = reg.resolve(ref).ref
        except NotFoundError as e:
            now = f"unresolved: {e}"
        roles.append({"role": role.value, "ref": ref, "now": now})
    shares = [(f"champion {spec.champion}", spec.champion_weight)] + \
        [(f"challenger {c.model}", c.weight) for c in spec.challengers]
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
    traffic, arms = _traffic(ask, name, since)
    return ask.page("deployment.html.j2", title=f"Deployment {name}", stored=stored,
                    spec=spec, roles=roles, shares=shares, split=Markup(split_plot(shares)),
                    traffic=traffic, arms=arms, history=reg.deployment_history(name)[::-1])


def comparison_page(ask: Ask) -> Response:
    """GET /deployments/{name}/comparison: `deploy compare`'s page in this one."""
    name = ask.param("name")
    ask.registry.deployment(name)
    return ask.page("comparison.html.j2", title=f"Comparison of {name}", name=name,
                    since=ask.query("since", "24h"))


def comparison_file(ask: Ask) -> Response:
    """GET /deployments/{name}/comparison.html?since=24h: the page `scorehouse deploy
    compare NAME --since 24h -o FILE` writes (?download=1: as a file)."""
    from ..evaluation import compare_deployment
    from ..monitor import parse_time
    from ..reports import build_comparison_report

    name = ask.param("name")
    result = compare_deployment(name, source=ask.console.settings.log_source,
                                since=parse_time(ask.query("since", "24h")),
                                registry=ask.registry)
    response = Response(build_comparison_report(result), media_type="text/html; charset=utf-8")
    if ask.query("download"):
        response.headers["content-disposition"] = \
            f'attachment; filename="{name}-comparison.html"'
    return response


def _card_text(ask: Ask, kind: str) -> tuple[str, str]:
    from ..reports.card import LogOptions, build_card, card_input

    name, number = ask.param("name"), ask.param("version")
    labels = _labels(ask, name)
    s = ask.console.settings
    options = LogOptions(True, s.log_source, "day", labels.path if labels else None,
                         s.label_id if labels else None, s.label_target if labels else None)
    evidence = card_input(ModelRef.parse(f"{name}/{int(number)}"), registry=ask.registry,
                          log=options)
    return evidence.ref, build_card(evidence, None, kind)


def card_page(ask: Ask) -> Response:
    """GET /models/{name}/versions/{v}/card: the model card in the page, with downloads."""
    name, number = ask.param("name"), ask.param("version")
    ask.registry.resolve(f"{name}/{int(number)}")
    return ask.page("card.html.j2", title=f"Model card of {name}/{number}", name=name,
                    number=number)


def card_file(ask: Ask) -> Response:
    """GET /models/{name}/versions/{v}/card.html or card.md (?download=1: as a file)."""
    kind = "markdown" if ask.request.url.path.endswith(".md") else "html"
    ref, text = _card_text(ask, kind)
    media = "text/markdown" if kind == "markdown" else "text/html"
    response = Response(text, media_type=f"{media}; charset=utf-8")
    if ask.query("download"):
        filename = f"{ref.replace('/', '-')}-card.{'md' if kind == 'markdown' else 'html'}"
        response.headers["content-disposition"] = f'attachment; filename="{filename}"'
    return response


__all__ = ["card_file", "card_page", "comparison_file", "comparison_page", "deployment_page",
           "deployments_page", "monitor_page"]
