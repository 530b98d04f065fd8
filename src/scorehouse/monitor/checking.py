"""The prediction log's windows with every figure alert rules test and reports draw, and
the check `scorehouse monitor check` runs over them:

    scorer = monitored("churn@production")
    result = check_log(scorer, load_rules("alerts.toml"), window="all")
    for s in result.rules:
        print(s.rule.name, s.standing.value, s.value)
    sys.exit(result.exit_code)          # 0 ok, 1 a rule firing, 7 a webhook delivery failed

A window's figures (`monitor.figures.WindowFigures`): its drift against the reference and
input quality against the training baseline (as `analyse_log`), the late labels' metrics
of its labelled rows (as `decay`, when labels are given), the latency p99 of its calls
(`Traffic`), and the error rate, which stays None: the log holds rows scored or rejected,
and a call that failed at run time logs no row (a log of another layout with an `error`
column gives the share of its rows with one).

Consecutive windows across runs: the alert state (`alerts.AlertState`) keeps the time of
the newest logged row a check counted (`checked_until`), and the next check reads only rows
logged after it, so a window is never counted twice and a CI job that checks every hour
with `--window all` counts one window per run. Rows that reach the log late with an earlier
time (a logger writes every `flush` seconds, 1 s by default) are not counted.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import NotFoundError
from ..scorer import Scorer
from .alert_rules import AlertRule, RuleSet
from .alerts import AlertState, AlertStatus, CheckResult, run_check, state_path
from .drift import DriftOptions, dataset_drift
from .feedback import window_metrics
from .figures import WindowFigures
from .labels import join_labels, read_labels
from .quality import QualityThresholds, input_quality
from .reference import Reference, baseline_reference, training_baseline
from .state import DriftState
from .windowing import WindowSpec, parse_time, split_log, traffic, window_state
from .windows import WindowReport, logged_rows

#: How the log's `reject` column starts for a row the model itself failed on (a run-time
#: error, as opposed to input the schema refused): `Reject.reason` of the scorer.
MODEL_ERROR = "model error"


@dataclass(frozen=True)
class Labels:
    """Late labels to join to the logged rows: a Parquet or CSV file, the column holding
    the logged row id, and the column holding the true value (`monitor.labels`)."""

    path: str | os.PathLike[str]
    id_column: str
    target: str


@dataclass(frozen=True)
class LoggedWindow:
    """One window of the log with all it measured: `report` (traffic, drift, quality),
    `state` (its sketches, for plots), the label `metrics` of its `labelled` rows, the
    `error_rate` (rows the model failed on, of rows logged) and the time of its `newest` row."""

    report: WindowReport
    state: DriftState
    metrics: Mapping[str, float] = field(default_factory=dict)
    labelled: int = 0
    error_rate: float | None = None
    newest: dt.datetime | None = None

    def figures(self) -> WindowFigures:
        """The window as alert rules see it."""
        r = self.report
        return WindowFigures(r.start, r.drift, r.quality, dict(self.metrics), self.error_rate,
                             r.traffic.latency_p99_ms)


def log_windows(scorer: Scorer, *, window: str | WindowSpec = "day",
                reference: Reference | None = None, labels: Labels | None = None,
                options: DriftOptions | None = None,
                thresholds: QualityThresholds | None = None,
                **select: Any) -> list[LoggedWindow]:
    """Every window of `scorer`'s logged rows, oldest first, with its figures.

    Args:
        scorer: the model watched (`windows.monitored`).
        window: a `WindowSpec` or its text ('day', '6h', '5000rows', 'all').
        reference: what drift compares against (default: the training baseline).
        labels: late labels; each window then has the metrics of its labelled rows.
        options, thresholds: drift options and quality limits (their defaults otherwise).
        **select: `source`, `since`, `until`, `all_versions` of `windows.logged_rows`.

    Raises:
        NotFoundError: no logged row matches, or no labels file.
        SchemaError: the labels file lacks the id or target column.
        UsageError: a bad window text or labels file type.
        ArtifactError: the model has no training baseline.
    """
    spec = window if isinstance(window, WindowSpec) else WindowSpec.parse(window)
    baseline = training_baseline(scorer)
    training = baseline_reference(baseline, scorer.schema)
    against = reference or training
    rows = logged_rows(scorer, **select)
    joined = None
    if labels is not None:
        joined, _ = join_labels(read_labels(labels.path, labels.id_column, labels.target), rows)
    out = []
    for w in split_log(rows, spec):
        state = window_state(w.rows, baseline, scorer.schema)
        report = WindowReport(w.version, w.start, w.end, traffic(w),
                              dataset_drift(state, against, options),
                              input_quality(state, training, thresholds))
        metrics, labelled = _label_metrics(scorer, joined, w.rows)
        out.append(LoggedWindow(report, state, metrics, labelled, _error_rate(w.rows),
                                w.rows.column("time")[-1].as_py()))
    return out


def _label_metrics(scorer: Scorer, joined: pa.Table | None, rows: pa.Table
                   ) -> tuple[dict[str, float], int]:
    """The metrics of the labelled rows (of `join_labels`' table) that are in `rows`."""
    if joined is None or not joined.num_rows:
        return {}, 0
    mine = joined.filter(pc.is_in(joined.column("id"), value_set=rows.column("id")))
    if not mine.num_rows:
        return {}, 0
    metrics, _ = window_metrics(mine, scorer.task, scorer.classes)
    return metrics, mine.num_rows


def _error_rate(rows: pa.Table) -> float | None:
    """Rows the model failed on (raised, or gave no finite output), of rows logged."""
    if "reject" not in rows.column_names or not rows.num_rows:
        return None
    failed = pc.starts_with(rows.column("reject").fill_null(""), MODEL_ERROR)
    errors = int(pc.sum(failed).as_py() or 0)
    return float(errors / rows.num_rows)


class Standing(str, Enum):
    """Where a rule stands after a check."""

    FIRING = "firing"
    RESOLVED = "resolved"      # stopped firing in this check
    BREACHING = "breaching"    # breached, not yet for enough consecutive windows
    OK = "ok"
    NO_DATA = "no data"        # no window had its figure (no labels, no such column)


@dataclass(frozen=True)
class RuleStatus:
    """One rule after a check: its `standing`, the last `value` of its figure and the
    consecutive breaching windows so far (`breaching`, of `rule.windows` needed)."""

    rule: AlertRule
    standing: Standing
    value: float | None
    breaching: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        r = self.rule
        return {"rule": r.name, "figure": r.figure, "column": r.column, "op": r.op.value,
                "threshold": r.threshold, "windows": r.windows, "severity": r.severity,
                "state": self.standing.value, "value": self.value,
                "breaching": self.breaching}


def rule_statuses(rules: RuleSet, result: CheckResult) -> list[RuleStatus]:
    """Each rule's standing after `result` (a `run_check` of `rules`)."""
    resolved = {a.rule for a in result.alerts if a.status is AlertStatus.RESOLVED}
    out = []
    for rule in rules.rules:
        s = result.state.rules.get(rule.name)
        value, breaching = (s.value, s.breaching) if s else (None, 0)
        if rule.name in result.firing:
            standing = Standing.FIRING
        elif rule.name in resolved:
            standing = Standing.RESOLVED
        elif rule.name in result.no_data or value is None:
            standing = Standing.NO_DATA
        else:
            standing = Standing.BREACHING if breaching else Standing.OK
        out.append(RuleStatus(rule, standing, value, breaching))
    return out


@dataclass(frozen=True)
class LogCheck:
    """A check of a model's log: the `windows` counted (those logged since the previous
    check), the `result` of the rules over them, each rule's status, and `since`, the
    time rows were read from (None: the whole log)."""

    model: str
    windows: tuple[LoggedWindow, ...]
    result: CheckResult
    rules: tuple[RuleStatus, ...]
    since: dt.datetime | None = None

    @property
    def exit_code(self) -> int:
        """0 all clear, 1 a rule firing, 7 a failed webhook delivery."""
        return self.result.exit_code

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {"model": self.model, "since": self.since.isoformat() if self.since else None,
                "checked_until": self.result.state.checked_until,
                "windows": [w.report.start.isoformat() for w in self.windows],
                "rules": [s.to_dict() for s in self.rules], **self.result.to_dict()}


def check_log(scorer: Scorer, rules: RuleSet, *, window: str | WindowSpec = "all",
              labels: Labels | None = None, state: str | Path | None = None,
              backoff: float = 0.5, **select: Any) -> LogCheck:
    """Test `rules` on the windows of `scorer`'s rows logged since the previous check
    (and since `select['since']`), deliver the alerts (`alerts.run_check`) and keep the
    streaks and the newest row's time in the alert state (`state`, default
    $SCOREHOUSE_HOME/monitor/alerts/<model>.json).

    With no row logged since the previous check, no window is counted: rules keep their
    state (one firing still exits 1).

    Raises:
        NotFoundError: no logged row matches (and no check ran before), or no labels file.
        UsageError: a bad window, a rule naming a column the model lacks, a state file
            that is not one.
    """
    where = Path(state) if state is not None else state_path(scorer.name)
    before = AlertState.load(where, scorer.name).checked_until
    since: dt.datetime | None = select.pop("since", None)
    if before is not None:
        # Rows at exactly `checked_until` were counted: start one tick (1 µs) later.
        after = parse_time(before) + dt.timedelta(microseconds=1)
        since = after if since is None else max(since, after)
    try:
        windows = log_windows(scorer, window=window, labels=labels, since=since, **select)
    except NotFoundError:
        if before is None or (labels is not None and not Path(labels.path).exists()):
            raise
        windows = []  # nothing new since the previous check
    newest = max((w.newest for w in windows if w.newest), default=None)
    result = run_check([w.figures() for w in windows], rules, scorer.name, where, backoff,
                       until=newest.isoformat() if newest else None)
    return LogCheck(scorer.name, tuple(windows), result,
                    tuple(rule_statuses(rules, result)), since)


__all__ = ["MODEL_ERROR", "Labels", "LogCheck", "LoggedWindow", "RuleStatus", "Standing",
           "check_log", "log_windows", "rule_statuses"]
