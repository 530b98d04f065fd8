"""`compare_deployment`: what the prediction log says about the models of one deployment,
pair by pair (what `scorehouse deploy compare` prints):

    result = compare_deployment("churn-api", since=parse_time("24h"),
                                labels=Labels("labels.parquet", "id", "churned"))
    result.pair("champion churn/2", "shadow churn/3").difference   # B - A, with its CI
    result.canaries[0].windows[-1].verdict

Every role's row of one request carries the request's id (`monitor.log.records`), so two
models that scored the same requests are paired on it. The models (`Arm`s) are the
(role, model, version) groups of the deployment's rows; pairs are every two arms that
share requests, plus every two of the A/B split (champion, challengers), which score
random shares of the traffic and are compared on their own requests when they share none.
For each pair (statistics and their formulas in `evaluation.paired`):

- classifiers: label agreement, McNemar's test of "predicts the positive class" and, with
  late labels, of "is right";
- the paired difference of scores (P(positive class) or the value) with a t interval;
- score quantiles of both and their differences;
- with late labels (`monitor.labels`: the last label of an id wins), each model's
  metrics on the labelled requests and a bootstrap interval of the difference
  (`evaluation.labelled`);

and for each canary its windows' drift and verdicts (`evaluation.canary`). Imports no
channel: it reads the log (`monitor`) and computes.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import NotFoundError, UsageError
from ..monitor.drift import DriftOptions
from ..monitor.labels import LabelAccounting, join_labels, read_labels
from ..monitor.log import read_log
from ..monitor.log.records import PREDICTION
from ..monitor.reference import FeatureReference
from ..monitor.windowing import WindowSpec
from .canary import CanaryReport, canary_windows
from .comparison import (
    ANSWERING,
    FALLBACKS,
    OFF_PATH,
    ROLE_ORDER,
    Arm,
    DeploymentComparison,
    RequestCounts,
)
from .labelled import Scored
from .paired import REPLICATES, SEED
from .pairs import compare_pair

if TYPE_CHECKING:
    from ..monitor.checking import Labels
    from ..registry import Registry

PROBABILITY = PREDICTION + "probability_"
#: `canary_reference` values: the canary's first window, or its training baseline.
FIRST, TRAINING = "first", "training"


def deployment_rows(name: str, *, source: str | os.PathLike[str] | None = None,
                    since: dt.datetime | None = None,
                    until: dt.datetime | None = None) -> pa.Table:
    """The logged rows of deployment `name` (every role), oldest first.

    Raises:
        NotFoundError: no logged row of the deployment in the selection.
    """
    table = read_log(source, since=since)
    if "deployment" not in table.column_names:
        table = table.slice(0, 0)
    elif table.num_rows:
        table = table.filter(pc.fill_null(pc.equal(table.column("deployment"), name), False))
    if until is not None and table.num_rows:
        at = until if until.tzinfo else until.replace(tzinfo=dt.timezone.utc)
        table = table.filter(pc.less(table.column("time"),
                                     pa.scalar(at, pa.timestamp("us", tz="UTC"))))
    if not table.num_rows:
        when = (f" since {since.isoformat()}" if since else "") + \
            (f" until {until.isoformat()}" if until else "")
        raise NotFoundError(f"no logged rows of deployment {name!r}{when} in "
                            f"{source or '$SCOREHOUSE_HOME/predictions'}")
    return table


def _present(rows: pa.Table, column: str) -> bool:
    return column in rows.column_names and rows.column(column).null_count < rows.num_rows


def _arm(role: str, model: str, version: int | None, rows: pa.Table) -> Arm:
    scored = rows.filter(pc.is_null(rows.column("reject")))
    task = None
    if scored.num_rows and _present(scored, PREDICTION + "value"):
        task = "regression"
    elif scored.num_rows and _present(scored, PREDICTION + "label"):
        task = "classification"
    classes = tuple(c[len(PROBABILITY):] for c in rows.column_names
                    if c.startswith(PROBABILITY) and _present(scored, c))
    return Arm(role, model, version, rows.num_rows, scored.num_rows,
               rows.num_rows - scored.num_rows, task, classes)


def arms(rows: pa.Table) -> list[tuple[Arm, pa.Table]]:
    """The (role, model, version) groups of a deployment's rows, in `ROLE_ORDER` (unknown
    roles last), each with its rows (time order kept)."""
    keys = rows.select(["role", "model", "version"]).to_pandas()
    keys["role"] = keys["role"].fillna("unknown")
    keys["version"] = keys["version"].astype("Int64")
    out = []
    for (role, model, version), index in keys.groupby(
            ["role", "model", "version"], dropna=False, sort=False).indices.items():
        v = None if pd.isna(version) else int(version)
        part = rows.take(pa.array(index))
        out.append((_arm(str(role), str(model), v, part), part))
    rank = {r: i for i, r in enumerate(ROLE_ORDER)}
    out.sort(key=lambda x: (rank.get(x[0].role, len(rank)), x[0].model, x[0].version or 0))
    return out


def counts(rows: pa.Table) -> RequestCounts:
    """The deployment's traffic (see `RequestCounts`)."""
    role = pc.fill_null(rows.column("role"), "")
    answering = pc.is_in(role, value_set=pa.array(ANSWERING))
    answers = {str(r["values"]): int(r["counts"]) for r in
               pc.value_counts(role.filter(answering)).to_pylist()}
    return RequestCounts(
        rows.num_rows, int(pc.count_distinct(rows.column("id")).as_py()),
        int(pc.count_distinct(rows.column("id").filter(answering)).as_py()),
        {r: answers[r] for r in ROLE_ORDER if r in answers},
        int(pc.sum(pc.is_in(role, value_set=pa.array(FALLBACKS))).as_py() or 0),
        int(pc.sum(pc.is_in(role, value_set=pa.array(OFF_PATH))).as_py() or 0),
        rows.num_rows - int(pc.sum(pc.is_null(rows.column("reject"))).as_py() or 0))


def scored(arm: Arm, rows: pa.Table, positive: str | None) -> tuple[Scored, pa.Table]:
    """An arm's scored requests as arrays (an id logged twice: its last row), and as the
    table a canary reads (`id`, `time`, `version`, `score`)."""
    rows = rows.filter(pc.is_null(rows.column("reject")))
    ids = np.asarray(rows.column("id").to_pylist(), dtype=object)
    keep = ~pd.Index(ids).duplicated(keep="last")
    score_col = None
    if arm.task == "regression":
        score_col = PREDICTION + "value"
    elif positive is not None and positive in arm.classes:
        score_col = PROBABILITY + positive
    score = None if score_col is None else np.asarray(
        rows.column(score_col).to_numpy(zero_copy_only=False), np.float64)
    if score is not None:
        keep &= np.isfinite(score)
    labels = proba = None
    if arm.task == "classification":
        labels = np.array([str(v) for v in rows.column(PREDICTION + "label").to_pylist()],
                          dtype=object)
        if arm.classes:
            proba = np.column_stack([np.asarray(rows.column(PROBABILITY + c).to_numpy(
                zero_copy_only=False), np.float64) for c in arm.classes])
            keep &= np.isfinite(proba).all(axis=1)
    where = np.flatnonzero(keep)
    s = Scored(ids, score, labels, proba, arm.classes).take(where)
    table = pa.table({"id": rows.column("id").take(pa.array(where)),
                      "time": rows.column("time").take(pa.array(where)),
                      "version": rows.column("version").take(pa.array(where)),
                      "score": pa.array(s.score if s.score is not None
                                        else np.full(len(where), np.nan))})
    return s, table


def _positive(found: Sequence[Arm], positive: str | None) -> str | None:
    """The positive class: as given, else the last class of the first classifier (the
    champion when it logged probabilities), as `evaluation.metrics` takes it.

    Raises:
        UsageError: a `positive` no model has.
    """
    classes = [a.classes for a in found if a.classes]
    if positive is None:
        return classes[0][-1] if classes else None
    if classes and not any(positive in c for c in classes):
        raise UsageError(f"--positive {positive!r} is not a class of the deployment's models "
                         f"(classes: {', '.join(classes[0])})")
    return positive


def _targets(rows: pa.Table, labels: Labels) -> tuple[pd.Series, LabelAccounting]:
    """The late labels by request id, joined on one row per request (a scored one where a
    role scored it), and their accounting."""
    frame = read_labels(labels.path, labels.id_column, labels.target)
    keys = rows.select(["id", "reject"]).to_pandas()
    keys["_row"] = np.arange(len(keys))
    keys["_rejected"] = keys["reject"].notna()
    first = keys.sort_values(["_rejected", "_row"], kind="stable").drop_duplicates("id")
    one = rows.take(pa.array(np.sort(first["_row"].to_numpy())))
    joined, accounting = join_labels(frame, one)
    target = pd.Series(joined.column("target").to_pylist(),
                       index=joined.column("id").to_pylist(), dtype=object)
    return target, accounting


def _training_reference(arm: Arm, score: str, registry: Registry | None
                        ) -> tuple[FeatureReference, str]:
    """The canary's training baseline's profile of `score`, from the registry.

    Raises:
        UsageError: a canary scored from a file (no registry version), or a baseline
            without that prediction's profile.
        NotFoundError: the version is not in the registry.
    """
    from ..monitor.reference import baseline_reference, training_baseline
    from ..registry import Registry
    from ..schema import Schema

    if arm.version is None:
        raise UsageError(f"{arm.name} was scored from a file: no training baseline to read "
                         "(use the canary's first window)")
    art, _ = (registry or Registry()).load_artifact(f"{arm.model}/{arm.version}")
    reference = baseline_reference(training_baseline(art),
                                   Schema.from_dict(art.manifest.input_schema))
    found = reference.features.get(PREDICTION + score)
    if found is None or not found.numeric:
        raise UsageError(f"the training baseline of {arm.model}/{arm.version} has no "
                         f"profile of {score}")
    return found, f"training baseline of {arm.model}/{arm.version}"


def _canaries(groups: list[tuple[Arm, Scored, pa.Table]], spec: WindowSpec, score: str,
              reference: str, registry: Registry | None,
              options: DriftOptions | None) -> tuple[CanaryReport, ...]:
    champion = [t for a, s, t in groups if a.role == "champion" and s.score is not None]
    base = pa.concat_tables(champion) if champion else None
    others = {a.name: t for a, s, t in groups
              if a.role in ("challenger", "routed", "shadow") and s.score is not None}
    out = []
    for arm, s, table in groups:
        if arm.role != "canary" or s.score is None:
            continue
        against, label = (_training_reference(arm, score, registry) if reference == TRAINING
                          else (None, ""))
        out.append(canary_windows(arm.name, table, spec, score=score, champion=base,
                                  others=others, reference=against, reference_label=label,
                                  options=options))
    return tuple(out)


# long: the API's options, each documented, then one step per part of the result
def compare_deployment(name: str, *, source: str | os.PathLike[str] | None = None,
                       since: dt.datetime | None = None, until: dt.datetime | None = None,
                       window: str | WindowSpec = "hour", labels: Labels | None = None,
                       positive: str | None = None, confidence: float = 0.95,
                       replicates: int = REPLICATES, seed: int = SEED,
                       canary_reference: str = FIRST, registry: Registry | None = None,
                       options: DriftOptions | None = None) -> DeploymentComparison:
    """Every pair of the deployment's models, and its canaries' windows (module docstring).

    Args:
        name: the deployment (the log's `deployment` column).
        source, since, until: the Parquet log and the time selection (`deployment_rows`).
        window: how a canary's rows are cut (`monitor.WindowSpec` text: hour, 6h, 5000rows).
        labels: late labels (`monitor.Labels`: file, id column, target column).
        positive: the class whose probability is the score (default: the last class).
        confidence: of the t and bootstrap intervals.
        replicates, seed: the bootstrap's resamples and generator seed.
        canary_reference: "first" (the canary's first window) or "training" (its version's
            training baseline, read from `registry`).
        options: drift verdict rules (default `DriftOptions()`).

    Raises:
        NotFoundError: no logged row of the deployment; no labels file.
        UsageError: a bad window, `positive` or `canary_reference`.
        SchemaError: a labels file without the id or target column.
    """
    if canary_reference not in (FIRST, TRAINING):
        raise UsageError(f"canary reference {canary_reference!r} is neither 'first' nor "
                         "'training'")
    spec = window if isinstance(window, WindowSpec) else WindowSpec.parse(window)
    rows = deployment_rows(name, source=source, since=since, until=until)
    found = arms(rows)
    with_task = [a for a, _ in found if a.task]
    task = with_task[0].task if with_task else None
    chosen = _positive(with_task, positive) if task == "classification" else None
    score = "value" if task == "regression" else (f"probability_{chosen}" if chosen else None)
    target, accounting = _targets(rows, labels) if labels is not None else (None, None)
    groups = [(a, *scored(a, t, chosen)) for a, t in found if a.task]
    pairs = []
    notes = []
    for i, (a, sa, _) in enumerate(groups):
        for b, sb, _ in groups[i + 1:]:
            if a.task != b.task:
                notes.append(f"{a.name} and {b.name} are of different tasks: not compared")
                continue
            pair = compare_pair(a, sa, b, sb, task=str(a.task), positive=chosen,
                                score=score or "", target=target, confidence=confidence,
                                replicates=replicates, seed=seed)
            if pair is not None:
                pairs.append(pair)
    canaries = _canaries(groups, spec, score, canary_reference, registry, options) \
        if score else ()
    if not any(a.role == "canary" for a, _ in found):
        notes.append("no canary in the logged rows: no input-change verdicts")
    times = rows.column("time")
    return DeploymentComparison(
        name, pc.min(times).as_py(), pc.max(times).as_py(), task, score, chosen,
        tuple(a for a, _ in found), counts(rows), tuple(pairs), canaries, accounting,
        since, until, tuple(notes))


__all__ = ["FIRST", "TRAINING", "arms", "compare_deployment", "counts", "deployment_rows",
           "scored"]
