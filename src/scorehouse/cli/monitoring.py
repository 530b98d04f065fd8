"""The `monitor` group: what the prediction log says about a deployed model.

    monitor log REF        the most recent logged rows
    monitor quality REF    traffic and input quality per window (null, unseen, out-of-range,
                           reject and absent rates against the training baseline)
    monitor drift REF      drift of every column per window against the training baseline
                           (or another version's); exit 0 whatever drifts: `check` gates
    monitor feedback REF LABELS --id ID --target COL
                           performance over windows once the true labels arrived
    monitor check REF --rules alerts.toml
                           alert rules over the windows logged since the last check; exit
                           0 ok, 1 a rule firing, 7 a webhook delivery failed
    monitor report REF -o report.html
                           one self-contained HTML file: drift, quality, performance

Each is a thin layer over `scorehouse.monitor` (`recent`, `analyse_log`, `decay`,
`check_log`) or `scorehouse.reports` (`log_report`, `build_report`). Exit codes: 2 bad
window/time/file type or bad rules, 3 no model or no logged rows or no labels or rules
file, 4 a labels file without the id or target column, 5 artifact refused.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import JsonOpt, open_registry
from .output import console, emit, figure, table

#: Added to the root app as `scorehouse monitor` by `cli/app.py`.
group = typer.Typer(help="Watch deployed models: the prediction log, quality, drift, decay.",
                    no_args_is_help=True)

RefArg = Annotated[str, typer.Argument(help="Model: churn@production, churn/3 or an artifact.")]
SinceOpt = Annotated[str | None, typer.Option(
    help="Only rows logged since then: ISO time (UTC if naive) or an age such as 6h, 7d.")]
WindowOpt = Annotated[str, typer.Option(
    help="Window: all, hour, day, week, a width (15min, 6h, 2d) or a row count (5000rows).")]
SourceOpt = Annotated[str | None, typer.Option(
    help="The Parquet prediction log (folder or parquet: URL; default "
         "$SCOREHOUSE_HOME/predictions).")]
AllVersionsOpt = Annotated[bool, typer.Option(
    "--all-versions", help="Rows of every version of the model, not only REF's.")]
ReferenceOpt = Annotated[str, typer.Option(
    help="What drift compares with: training (REF's training baseline); window:START..END, "
         "a span of REF's own log (e.g. window:14d..7d, window:2026-11-01..2026-11-08); "
         "or another model reference, e.g. churn/2, whose training baseline to use.")]
TrustOpt = Annotated[bool, typer.Option(help="Trust pickled code in an artifact file.")]
LabelsOpt = Annotated[Path | None, typer.Option(
    help="Late labels (Parquet or CSV: id + target) for performance figures.")]
IdOpt = Annotated[str | None, typer.Option("--id", help="The labels' column of the row id.")]
TargetOpt = Annotated[str | None, typer.Option(
    help="The labels' column of the true value.")]


def _model(ref: str, trust: bool) -> Any:
    from ..monitor import monitored
    from ..registry.refs import ModelRef

    model = ModelRef.parse(ref)
    return monitored(model, registry=None if model.is_path else open_registry(), trust=trust)


def _resources(url: str) -> Any:
    """The resources of the server whose /metrics is at `url` (`monitor.resources`)."""
    import urllib.error
    import urllib.request

    from ..errors import ConnectionFailedError
    from ..monitor.resources import parse_resources

    try:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 - a user's URL
            text = answer.read().decode()
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise ConnectionFailedError(f"cannot read metrics from {url}: {e}") from None
    return parse_resources(text, source=url)


def _reference(scorer: Any, reference: str, trust: bool, source: str | None,
               all_versions: bool) -> Any:
    """`monitor.reference_for`, with the registry opened only for a registry reference."""
    from ..monitor import reference_for
    from ..monitor.windows import TRAINING, WINDOW
    from ..registry.refs import ModelRef

    registry = None
    if reference != TRAINING and not reference.startswith(WINDOW) and \
            not ModelRef.parse(reference).is_path:
        registry = open_registry()
    return reference_for(scorer, reference, registry=registry, trust=trust, source=source,
                         all_versions=all_versions)


def _select(since: str | None, source: str | None, all_versions: bool) -> dict[str, Any]:
    from ..monitor import parse_time

    return {"since": parse_time(since) if since else None, "source": source,
            "all_versions": all_versions}


def _when(w: Any) -> str:
    version = "file" if w.version is None else f"v{w.version}"
    return f"{version} {w.start:%Y-%m-%d %H:%M:%S} .. {w.end:%Y-%m-%d %H:%M:%S}"


@group.command("log")
def monitor_log(ref: RefArg, since: SinceOpt = None,
                limit: Annotated[int, typer.Option(min=1, help="Rows shown.")] = 20,
                source: SourceOpt = None, all_versions: AllVersionsOpt = False,
                trust: TrustOpt = False, as_json: JsonOpt = False) -> None:
    """The most recent logged rows of a model, newest first.

    Example:

        scorehouse monitor log churn@production --since 1h --limit 5
    """
    from ..monitor import recent

    rows = recent(_model(ref, trust), limit, **_select(since, source, all_versions))
    emit([r.to_dict() for r in rows], as_json, lambda: table(
        ["time", "id", "version", "channel", "ms", "prediction", "flags", "reject"],
        [(f"{r.time:%Y-%m-%d %H:%M:%S}", r.id, r.version, r.channel.value,
          figure(r.latency_ms, 3), " ".join(f"{k}={figure(v, 3)}" for k, v in r.outputs.items()),
          " ".join(f"{k}:{c}" for k, c in r.flags), r.reject) for r in rows],
        title=f"{len(rows)} most recent logged rows"))


@group.command("quality")
def monitor_quality(ref: RefArg, since: SinceOpt = None, window: WindowOpt = "day",
                    source: SourceOpt = None, all_versions: AllVersionsOpt = False,
                    trust: TrustOpt = False, as_json: JsonOpt = False) -> None:
    """Traffic and input quality per window against the training baseline.

    Example:

        scorehouse monitor quality churn@production --since 7d --window day
    """
    from ..monitor import analyse_log

    result = analyse_log(_model(ref, trust), window=window, drift=False,
                         **_select(since, source, all_versions))
    emit(result, as_json, lambda: _print_quality(result))


def _print_quality(result: Any) -> None:
    for w in result.windows:
        t, q = w.traffic, w.quality
        console.print(f"{_when(w)}: {t.rows} rows, {t.calls} calls, reject rate "
                      f"{t.reject_rate:.2%}, {figure(t.rows_per_second, 3)} rows/s, latency p50 "
                      f"{figure(t.latency_p50_ms, 3)} ms p99 {figure(t.latency_p99_ms, 3)} ms")
        shown = [c for c in q.checks if c.value > 0 or c.breached]
        table(["column", "measure", "value", "limit", "training", "breached"],
              [(c.column or "*", c.measure, f"{c.value:.2%}", f"{c.limit:.2%}",
                f"{c.training:.2%}", "yes" if c.breached else "") for c in shown])
        console.print(f"{len(q.breached)} of {len(q.checks)} checks breached "
                      f"({len(q.checks) - len(shown)} at 0 not shown; --json for all)\n")


@group.command("drift")
def monitor_drift(ref: RefArg, since: SinceOpt = None, window: WindowOpt = "day",
                  reference: ReferenceOpt = "training",
                  source: SourceOpt = None, all_versions: AllVersionsOpt = False,
                  trust: TrustOpt = False, as_json: JsonOpt = False) -> None:
    """Drift of every input and prediction column per window. Exits 0 whatever drifted:
    drift is information; `scorehouse monitor check` is the gate.

    Example:

        scorehouse monitor drift churn@production --since 7d --window day --json
    """
    from ..monitor import analyse_log

    scorer = _model(ref, trust)
    against = _reference(scorer, reference, trust, source, all_versions)
    result = analyse_log(scorer, window=window, reference=against, quality=False,
                         **_select(since, source, all_versions))
    emit(result, as_json, lambda: _print_drift(result))


def _print_drift(result: Any) -> None:
    for w in result.windows:
        d = w.drift
        table(["column", "method", "statistic", "threshold", "drifted", "effect"],
              [(c.column, c.method, figure(c.statistic), figure(c.threshold), "yes" if c.drifted
                else "", f"{c.effect}={figure(c.effect_size, 3)}") for c in d.columns],
              title=f"{_when(w)}: {d.n_current} rows against the {d.reference}")
        verdict = "data set drifted" if d.drifted else "no data set drift"
        console.print(f"{verdict}: {len(d.drifted_columns)} of {len(d.inputs)} input columns "
                      f"({d.share:.0%}; drifts at {d.drift_share:.0%})"
                      + (f": {', '.join(d.drifted_columns)}" if d.drifted_columns else "") + "\n")


@group.command("feedback")
def monitor_feedback(ref: RefArg,
                     labels: Annotated[Path, typer.Argument(
                         help="Parquet or CSV file of late labels (id + target).")],
                     id_column: Annotated[str, typer.Option(
                         "--id", help="The labels' column holding the logged row id.")],
                     target: Annotated[str, typer.Option(
                         help="The labels' column holding the true value.")],
                     since: SinceOpt = None, window: WindowOpt = "day",
                     source: SourceOpt = None, trust: TrustOpt = False,
                     as_json: JsonOpt = False) -> None:
    """Performance over windows of logged predictions whose labels arrived, per version,
    against the figures recorded at packaging.

    Example:

        scorehouse monitor feedback churn@production labels.parquet --id id --target churned
    """
    from ..monitor import decay

    report = decay(_model(ref, trust), labels, id_column=id_column, target=target,
                   window=window, since=_select(since, None, True)["since"], source=source)
    emit(report, as_json, lambda: _print_feedback(report))


def _print_feedback(report: Any) -> None:
    a = report.labels
    console.print(f"labels: {a.read} read, {a.matched} matched ({a.scored} scored, "
                  f"{a.matched_rejected} rejected when scored), {a.unmatched} unmatched, "
                  f"{a.duplicate_rows} duplicate rows ({a.conflicting_ids} ids with "
                  f"conflicting targets, last kept), {a.null_id} without id, "
                  f"{a.null_target} without target")
    if a.unmatched_ids:
        more = a.unmatched - len(a.unmatched_ids)
        console.print("unmatched: " + ", ".join(a.unmatched_ids)
                      + (f" and {more} more" if more else ""))
    names = list(report.metrics)
    ref = report.reference
    rows = [("packaging", "", "", *(figure(ref[m].value) if m in ref else "-" for m in names))]
    rows += [("file" if w.version is None else f"v{w.version}", f"{w.start:%m-%d %H:%M}", w.rows,
              *(figure(w.metric(m)) for m in names)) for w in report.windows]
    table(["version", "from", "rows", *names], rows,
          title=f"{report.model}: {report.task}, windows of {report.window}")
    if ref:
        console.print("packaging figures: " + ", ".join(f.source for f in ref.values()))
    for w in report.windows:
        for note in w.notes:
            console.print(f"{_when(w)}: {note}")


def _labels(path: Path | None, id_column: str | None, target: str | None) -> Any:
    from ..errors import UsageError
    from ..monitor import Labels

    if path is None:
        if id_column or target:
            raise UsageError("--id and --target go with --labels FILE")
        return None
    if not id_column or not target:
        raise UsageError("--labels needs --id (the row id column) and --target")
    return Labels(path, id_column, target)


@group.command("check")
def monitor_check(ref: RefArg,
                  rules: Annotated[Path, typer.Option(
                      help="The alert rules (TOML; see scorehouse.monitor.alert_rules).")],
                  since: SinceOpt = None,
                  window: WindowOpt = "all", labels: LabelsOpt = None, id_column: IdOpt = None,
                  target: TargetOpt = None, source: SourceOpt = None, trust: TrustOpt = False,
                  as_json: JsonOpt = False) -> None:
    """Test alert rules on the windows logged since the previous check (its state is kept
    under $SCOREHOUSE_HOME/monitor/alerts), deliver alerts to the log and the rules'
    webhook, and exit 0 (all clear), 1 (a rule firing) or 7 (a webhook delivery failed):
    a gate for CI and cron jobs.

    Example:

        scorehouse monitor check churn@production --rules alerts.toml --since 1d
    """
    from ..monitor import check_log, load_rules

    rule_set = load_rules(rules)
    select = _select(since, source, False)
    del select["all_versions"]
    result = check_log(_model(ref, trust), rule_set, window=window,
                       labels=_labels(labels, id_column, target), **select)
    emit(result, as_json, lambda: _print_check(result))
    raise typer.Exit(result.exit_code)


def _print_check(result: Any) -> None:
    table(["rule", "test", "value", "windows", "state", "severity"],
          [(s.rule.name, s.rule.describe(), figure(s.value),
            f"{s.breaching}/{s.rule.windows}", s.standing.value, s.rule.severity)
           for s in result.rules],
          title=f"{result.model}: {len(result.windows)} new window(s)"
          + (f" since {result.since:%Y-%m-%d %H:%M:%S}" if result.since else ""))
    for a in result.result.alerts:
        console.print(a.message)
    for d in result.result.deliveries:
        if not d.ok:
            console.print(f"delivery to {d.target} failed after {d.attempts} tries: {d.error}")
    firing = result.result.firing
    console.print(f"{len(firing)} rule(s) firing" + (f": {', '.join(firing)}" if firing else "")
                  + f"; exit {result.exit_code}")


@group.command("report")
def monitor_report(ref: RefArg,
                   output: Annotated[Path, typer.Option("-o", "--output",
                                                        help="The HTML file to write.")],
                   since: SinceOpt = None, window: WindowOpt = "day",
                   reference: ReferenceOpt = "training",
                   labels: LabelsOpt = None, id_column: IdOpt = None, target: TargetOpt = None,
                   source: SourceOpt = None, trust: TrustOpt = False,
                   metrics: Annotated[str | None, typer.Option(
                       help="A serving process's /metrics URL: its memory, CPU time and "
                            "model loads go in the report.")] = None,
                   as_json: JsonOpt = False) -> None:
    """Write one self-contained HTML report (works offline): each feature's distribution,
    training vs the newest window; drift and quality over the windows; the prediction's
    distribution; performance over time with --labels.

    Example:

        scorehouse monitor report churn@production -o report.html --since 14d
    """
    from ..reports import build_report, log_report

    scorer = _model(ref, trust)
    against = _reference(scorer, reference, trust, source, False)
    select = _select(since, source, False)
    report = log_report(scorer, window=window, reference=against,
                        labels=_labels(labels, id_column, target), **select)
    if metrics:
        report = dataclasses.replace(report, resources=_resources(metrics))
    build_report(report, output)
    drifted = list(report.drift.drifted_columns)
    windows = len(report.drift_series)
    emit({"report": str(output), "model": report.model, "version": report.version,
          "windows": windows, "drifted_columns": drifted}, as_json,
         f"wrote {output}: {windows} window(s) of {window}; drifted now: "
         + (", ".join(drifted) or "none"))
