"""`evaluate`: score a holdout through the `Scorer` and measure the version on it.

Every row is accounted for: rows read = scored + rejected (the scorer's rejects, counted
by reason, never dropped silently); of the scored rows, those whose target is missing or
not a class the model knows are `excluded` from the metrics, also counted by reason.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import ArtifactError, NotFoundError, UsageError
from ..monitor import baseline_reference, dataset_drift, empty_state, training_baseline
from ..scorer import Result, Scorer
from .importance import permutation
from .metrics import (
    Array,
    binary_metrics,
    classification_curves,
    multiclass_metrics,
    per_class_metrics,
    regression_curves,
    regression_metrics,
)
from .result import Counts, Evaluation, Holdout, HoldoutDrift, MetricSet, Segment

#: Segment values kept per column, the most frequent first; the rest are one '<other>'.
MAX_SEGMENTS = 20
NULL, OTHER = "<null>", "<other>"


def read_holdout(path: str | Path) -> pa.Table:
    """A Parquet or CSV file as an Arrow table (by extension: .parquet/.pq, else CSV).

    Raises:
        NotFoundError: no such file.
    """
    p = Path(path)
    if not p.is_file():
        raise NotFoundError(f"no holdout file {p}")
    if p.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        return pq.read_table(p)
    import pyarrow.csv as pacsv

    return pacsv.read_csv(p)


def file_sha256(path: str | Path) -> str:
    """The sha256 (hex) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def evaluate(scorer: Scorer, holdout: str | Path, target: str,
             segments: Sequence[str] = ()) -> Evaluation:
    """Score the holdout file and measure the model on it (see `evaluate_table`).

    Raises:
        NotFoundError: no such file.
        UsageError: `target` or a segment column is not in the file.
        ModelError: the model failed on every row.
    """
    table = read_holdout(holdout)
    return evaluate_table(scorer, table, target, segments,
                          Holdout(str(holdout), file_sha256(holdout), target))


def evaluate_table(scorer: Scorer, table: pa.Table, target: str, segments: Sequence[str],
                   holdout: Holdout) -> Evaluation:
    """Score `table` (inputs, `target` and the `segments` columns) and measure the model.

    Returns:
        An `Evaluation`: counts, metrics (see `metrics.py` for what each is), per class
        for multiclass, per segment value, curves, the holdout's drift from training,
        and permutation importance (`importance.py`).

    Raises:
        UsageError: `target` or a segment column is not in the table.
        ModelError: the model failed on every row.
    """
    for column in (target, *segments):
        if column not in table.column_names:
            raise UsageError(f"no column {column!r} in the holdout "
                             f"(its columns: {', '.join(table.column_names)})")
    started = time.perf_counter()
    result, drift = _score(scorer, table.drop_columns([target]))
    seconds = time.perf_counter() - started
    frame = table.select([target, *segments]).to_pandas()
    keep, y, reasons = _targets(scorer, result, frame[target])
    rows = result.rows[keep]
    counts = Counts(result.n_read, result.n_scored, result.n_rejected, int((~keep).sum()),
                    int(keep.sum()), _reject_reasons(result), reasons)
    measure = _measure(scorer, result, keep, y)
    segs = [Segment(column, value, measure(mask))
            for column in segments for value, mask in _groups(frame[column].to_numpy()[rows])]
    whole = np.ones(len(y), dtype=bool)
    per_class: dict[str, MetricSet] = {}
    if scorer.task == "regression":
        pred = _values(result)[keep]
        curves = regression_curves(y, pred) if len(y) else []
    else:
        classes, proba, labels = _class_outputs(scorer, result, keep)
        curves = classification_curves(y, proba, labels, classes) if len(y) else []
        if len(classes) > 2:
            per_class = per_class_metrics(y, proba, labels, classes)
    inputs = table.drop_columns([target]).to_pandas().iloc[rows]
    importance = permutation(scorer, inputs, y) if len(y) else None
    return Evaluation(scorer.name, scorer.version, scorer.task,
                      None if scorer.classes is None else [str(c) for c in scorer.classes],
                      result.runtime, holdout, counts, measure(whole), per_class, segs,
                      curves, drift, round(seconds, 6), importance)


def _score(scorer: Scorer, inputs: pa.Table) -> tuple[Result, HoldoutDrift]:
    """The scorer's result, and the accepted inputs' drift from the training baseline
    (sketched by the monitor's hook during the same call)."""
    try:
        baseline = training_baseline(scorer)
    except ArtifactError as e:
        return scorer.predict(inputs), HoldoutDrift(None, reason=str(e))
    state = empty_state(baseline, scorer.schema)
    scorer.add_hook(state.observe)
    try:
        result = scorer.predict(inputs)
    finally:
        scorer.hooks.remove(state.observe)
    d = dataset_drift(state, baseline_reference(baseline, scorer.schema))
    return result, HoldoutDrift(d.share, d.drifted_columns,
                                "monitor.dataset_drift, default DriftOptions")


def _reject_reasons(result: Result) -> dict[str, int]:
    return {f"{column}: {kind}": n for column, kinds in result.problem_counts().items()
            for kind, n in kinds.items()}


def class_text(values: Any) -> list[str | None]:
    """Target values as the text of a class label (what `str(class)` gives): 1.0 -> '1'
    (a CSV reader's floats for integer classes), missing -> None (an empty string too: a
    CSV reader's missing text)."""
    out: list[str | None] = []
    for v in values:
        if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or v == "":
            out.append(None)
        elif isinstance(v, (float, np.floating)) and float(v).is_integer():
            out.append(str(int(v)))
        elif isinstance(v, np.generic):
            out.append(str(v.item()))
        else:
            out.append(str(v))
    return out


def _targets(scorer: Scorer, result: Result, target: pd.Series[Any]
             ) -> tuple[Array, Array, dict[str, int]]:
    """(mask over scored rows kept for the metrics, their targets, {reason: rows left out})."""
    raw = target.to_numpy()[result.rows]
    reasons: Counter[str] = Counter()
    if scorer.task == "regression":
        y = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy(dtype=np.float64)
        keep = np.isfinite(y)
        if (~keep).any():
            reasons["missing or non-numeric target"] = int((~keep).sum())
        return keep, y[keep], dict(reasons)
    known = {str(c) for c in scorer.classes or []}
    text = class_text(raw)
    keep = np.array([t is not None and t in known for t in text], dtype=bool)
    for t in text:
        if t is None:
            reasons["missing target"] += 1
        elif t not in known:
            reasons["target not a class of the model"] += 1
    return keep, np.array([t for t in text if t is not None and t in known], dtype=object), \
        dict(reasons)


def _values(result: Result) -> Array:
    assert result.output.values is not None  # a regression runtime always gives values
    return result.output.values.astype(np.float64)


def _class_outputs(scorer: Scorer, result: Result, keep: Array) -> tuple[list[str], Array, Array]:
    classes = [str(c) for c in scorer.classes or []]
    o = result.output
    if o.probabilities is None or o.labels is None:
        raise UsageError(f"{scorer.ref} gives no class probabilities: it cannot be evaluated")
    labels = np.array(class_text(o.labels), dtype=object)
    return classes, o.probabilities[keep], labels[keep]


def _measure(scorer: Scorer, result: Result, keep: Array, y: Array) -> Any:
    """A function: mask over the evaluated rows -> their `MetricSet`."""
    if scorer.task == "regression":
        pred = _values(result)[keep]
        return lambda m: regression_metrics(y[m], pred[m])
    classes, proba, labels = _class_outputs(scorer, result, keep)
    fn = binary_metrics if len(classes) == 2 else multiclass_metrics
    return lambda m: fn(y[m], proba[m], labels[m], classes)


def _groups(values: Array) -> list[tuple[str, Array]]:
    """(segment value as text, mask) for the MAX_SEGMENTS most frequent values, then one
    '<other>' group for the rest; missing values are '<null>'."""
    text = np.array([NULL if t is None else t for t in class_text(values)], dtype=object)
    ranked = [v for v, _ in Counter(text.tolist()).most_common()]
    out = [(str(v), text == v) for v in ranked[:MAX_SEGMENTS]]
    if len(ranked) > MAX_SEGMENTS:
        out.append((OTHER, ~np.isin(text, ranked[:MAX_SEGMENTS])))
    return out
