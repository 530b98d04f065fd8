"""Window analysis of the prediction log: for a model (and version), the logged rows since
a time, cut into windows (`windowing.WindowSpec`), each with its traffic, its drift against
the training baseline (or another reference) and its input quality. What `scorehouse
monitor log / quality / drift` print, callable from Python:

    scorer = monitored("churn@production")
    analysis = analyse_log(scorer, since=parse_time("7d"), window="day")
    for w in analysis.windows:
        print(w.start, w.drift.drifted_columns, w.quality.breached)
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import NotFoundError, UsageError
from ..scorer import Scorer
from .drift import DatasetDrift, DriftOptions, dataset_drift
from .log import read_log
from .log.records import PredictionRecord, records
from .log.sinks import logged_files
from .quality import QualityReport, QualityThresholds, input_quality
from .reference import Reference, baseline_reference, training_baseline, window_reference
from .windowing import (
    Traffic,
    WindowSpec,
    parse_time,
    select_version,
    split_log,
    traffic,
    window_state,
)

if TYPE_CHECKING:
    from ..registry import Registry
    from ..registry.refs import ModelRef

#: `--reference` naming the artifact's own training baseline.
TRAINING = "training"
#: `--reference window:START..END`: the model's own logged rows in that span.
WINDOW = "window:"


def monitored(ref: str | os.PathLike[str] | ModelRef, *, registry: Registry | None = None,
              trust: bool = False) -> Scorer:
    """The model a monitor command watches (`scorehouse.loading.load`): its manifest holds
    the training baseline, schema and training metrics; its version selects logged rows.

    Raises:
        NotFoundError: no such artifact, model, version or alias.
        ArtifactError: the artifact is refused (tampered, untrusted, bad signature).
    """
    from ..loading import load

    return load(ref, registry=registry, trust=trust)


def reference_for(scorer: Scorer, other: str = TRAINING, *,
                  registry: Registry | None = None, trust: bool = False,
                  source: str | os.PathLike[str] | None = None,
                  all_versions: bool = False) -> Reference:
    """What drift compares against: `scorer`'s training baseline ('training'); a window of
    its own log ('window:START..END', each end ISO 8601 or an age such as 14d, END empty
    for now: e.g. 'window:14d..7d' is the week before last, read from `source`); or the
    training baseline of another model reference (e.g. the version before, 'churn/2';
    `registry` resolves it, opened from the environment when None).

    Raises:
        NotFoundError: `other` names no model, or its window holds no logged row.
        ArtifactError: a model without a training baseline.
        UsageError: a window that is not START..END with START before END.
    """
    if other == TRAINING:
        return baseline_reference(training_baseline(scorer), scorer.schema)
    if other.startswith(WINDOW):
        since, until = parse_span(other[len(WINDOW):])
        rows = logged_rows(scorer, source=source, since=since, until=until,
                           all_versions=all_versions)
        state = window_state(rows, training_baseline(scorer), scorer.schema)
        return window_reference(state, label=f"logged window {since:%Y-%m-%d %H:%M}.."
                                             f"{until:%Y-%m-%d %H:%M} UTC")
    model = monitored(other, registry=registry, trust=trust)
    return baseline_reference(training_baseline(model), model.schema,
                              label=f"training baseline of {other}")


def parse_span(text: str, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime]:
    """(start, end) of 'START..END' (`windowing.parse_time` forms; END empty: now).

    Raises:
        UsageError: not two times joined by '..', or START not before END.
    """
    now = now or dt.datetime.now(dt.timezone.utc)
    start, sep, end = text.partition("..")
    if not sep or not start.strip():
        raise UsageError(f"reference window {text!r} is not START..END "
                         "(e.g. window:14d..7d or window:2026-11-01..2026-11-08)")
    since = parse_time(start, now)
    until = parse_time(end, now) if end.strip() else now
    if since >= until:
        raise UsageError(f"reference window {text!r} starts at {since.isoformat()}, "
                         f"not before its end {until.isoformat()}")
    return since, until


def logged_rows(scorer: Scorer, *, source: str | os.PathLike[str] | None = None,
                since: dt.datetime | None = None, until: dt.datetime | None = None,
                all_versions: bool = False) -> pa.Table:
    """The logged rows of `scorer`'s model, oldest first: of its version only (a registry
    model) unless `all_versions`; every row of the model's name for an artifact file.

    Raises:
        NotFoundError: no logged row matches (names the log and the filters).
    """
    table = read_log(source, model=scorer.name, since=since)
    if until is not None and table.num_rows:
        at = until if until.tzinfo else until.replace(tzinfo=dt.timezone.utc)
        table = table.filter(pc.less(table.column("time"),
                                     pa.scalar(at, pa.timestamp("us", tz="UTC"))))
    if scorer.version is not None and not all_versions:
        table = select_version(table, scorer.version)
    if not table.num_rows:
        which = scorer.name if scorer.version is None or all_versions else \
            f"{scorer.name}/{scorer.version}"
        when = f" since {since.isoformat()}" if since else ""
        raise NotFoundError(f"no logged predictions of {which}{when} in "
                            f"{source or '$SCOREHOUSE_HOME/predictions'}")
    return table


def log_stamp(scorer: Scorer, *, source: str | os.PathLike[str] | None = None,
              since: dt.datetime | None = None) -> tuple[tuple[str, int], ...]:
    """What `logged_rows(scorer, source=, since=)` reads, as (file name, size) pairs: the
    log's closed files never change, so an equal stamp means the same files (a cache of
    figures over the log keys on it; rows leaving the `since` bound are the caller's)."""
    return tuple((f.name, f.stat().st_size)
                 for f in logged_files(source, model=scorer.name, since=since))


def recent(scorer: Scorer, limit: int = 20, **select: Any) -> list[PredictionRecord]:
    """The `limit` most recent logged rows (`logged_rows`'s filters), newest first.

    Raises:
        NotFoundError: no logged row matches.
    """
    table = logged_rows(scorer, **select)
    tail = table.slice(max(0, table.num_rows - limit))
    return list(records(tail))[::-1]


@dataclass(frozen=True)
class WindowReport:
    """One window of one version: traffic, drift (None unless asked), quality."""

    version: int | None
    start: dt.datetime
    end: dt.datetime
    traffic: Traffic
    drift: DatasetDrift | None
    quality: QualityReport | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {"version": self.version, "start": self.start.isoformat(),
                "end": self.end.isoformat(), "traffic": self.traffic.to_dict(),
                "drift": self.drift.to_dict() if self.drift else None,
                "quality": self.quality.to_dict() if self.quality else None}


@dataclass(frozen=True)
class WindowAnalysis:
    """The windows of a model's log: `reference` says what drift compared against."""

    model: str
    version: int | None
    window: str
    reference: str
    windows: tuple[WindowReport, ...]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {"model": self.model, "version": self.version, "window": self.window,
                "reference": self.reference, "windows": [w.to_dict() for w in self.windows]}


def analyse_log(scorer: Scorer, *, window: str | WindowSpec = "day",
                reference: Reference | None = None, drift: bool = True, quality: bool = True,
                options: DriftOptions | None = None,
                thresholds: QualityThresholds | None = None,
                **select: Any) -> WindowAnalysis:
    """Traffic, drift and input quality of every window of `scorer`'s logged rows.

    Args:
        scorer: the model watched (`monitored`); its training baseline gives the bins of
            every window's sketches and, without `reference`, the drift reference.
        window: a `WindowSpec` or its text ('day', '6h', '5000rows', 'all').
        reference: what drift compares against (`reference_for`); quality is always
            against the training baseline.
        drift, quality: compute them (traffic is always computed).
        options, thresholds: drift options and quality limits (their defaults otherwise).
        **select: `source`, `since`, `until`, `all_versions` of `logged_rows`.

    Raises:
        NotFoundError: no logged row matches.
        UsageError: a window text of no known form.
        ArtifactError: the model has no training baseline.
    """
    spec = window if isinstance(window, WindowSpec) else WindowSpec.parse(window)
    baseline = training_baseline(scorer)
    training = baseline_reference(baseline, scorer.schema)
    against = reference or training
    reports = []
    for w in split_log(logged_rows(scorer, **select), spec):
        state = window_state(w.rows, baseline, scorer.schema) if drift or quality else None
        reports.append(WindowReport(
            w.version, w.start, w.end, traffic(w),
            dataset_drift(state, against, options) if drift and state else None,
            input_quality(state, training, thresholds) if quality and state else None))
    return WindowAnalysis(scorer.name, scorer.version, spec.text, against.label,
                          tuple(reports))


__all__ = ["TRAINING", "WindowAnalysis", "WindowReport", "analyse_log", "logged_rows",
           "monitored", "recent", "reference_for"]
