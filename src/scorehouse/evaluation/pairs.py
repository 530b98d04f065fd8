"""One pair of a deployment's models compared (`compare_pair`): paired on the requests both
scored, or, for the A/B split's models that share none, each on its own requests. The
statistics are `evaluation.paired`'s; the performance `evaluation.labelled`'s."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .comparison import SPLIT, Agreement, Arm, PairComparison, Performance
from .labelled import Scored, performance, targets
from .paired import (
    REPLICATES,
    SEED,
    PairedDifference,
    QuantileComparison,
    compare_quantiles,
    mcnemar,
    paired_difference,
)

#: Labelled requests each model needs before its performance is measured.
MIN_LABELLED = 2


def _agreement(a: Scored, b: Scored, positive: str | None, y: np.ndarray | None
               ) -> Agreement | None:
    """Label agreement of the same requests, McNemar on the positive class and, for the
    labelled ones (`y` with None where unlabelled), on being right."""
    if a.labels is None or b.labels is None or not len(a):
        return None
    agree = int((a.labels == b.labels).sum())
    pa, pb = a.labels == positive, b.labels == positive
    first = mcnemar(int((pa & ~pb).sum()), int((~pa & pb).sum()), f"predicts {positive}")
    correct = None
    if y is not None:
        known = np.array([v is not None for v in y], dtype=bool)
        if known.any():
            ra, rb = a.labels[known] == y[known], b.labels[known] == y[known]
            correct = mcnemar(int((ra & ~rb).sum()), int((~ra & rb).sum()), "is right")
    return Agreement(len(a), agree, first, correct)


def _labelled(s: Scored, target: pd.Series, task: str) -> tuple[Scored, np.ndarray]:
    """The requests of `s` with a late label, and their targets."""
    found = target.reindex(s.ids)
    rows = np.flatnonzero(found.notna().to_numpy())
    return s.take(rows), targets(found.to_numpy()[rows], task)


def _performance(a: Scored, b: Scored, names: tuple[str, str], *, paired: bool, task: str,
                 positive: str | None, target: pd.Series, confidence: float,
                 replicates: int, seed: int) -> Performance | None:
    la, ya = _labelled(a, target, task)
    lb, yb = _labelled(b, target, task)
    if len(la) < MIN_LABELLED or len(lb) < MIN_LABELLED:
        return None
    return performance(la, lb, ya, yb, task=task, positive=positive, names=names,
                       paired=paired, replicates=replicates, seed=seed, confidence=confidence)


def compare_pair(a_arm: Arm, a: Scored, b_arm: Arm, b: Scored, *, task: str,
                 positive: str | None, score: str, target: pd.Series | None = None,
                 confidence: float = 0.95, replicates: int = REPLICATES,
                 seed: int = SEED) -> PairComparison | None:
    """Model `b` against model `a` (differences B - A), or None when they share no
    request and are not both of the A/B split (nothing comparable).

    Args:
        a_arm, a, b_arm, b: each model and its scored requests (`compare.scored`).
        task: "classification" or "regression".
        positive: the positive class (classifiers).
        score: what the scores are (e.g. "probability_yes").
        target: late labels by request id (None without labels).
    """
    index = pd.Index(b.ids).get_indexer(pd.Index(a.ids))
    rows_a = np.flatnonzero(index >= 0)
    shared = len(rows_a)
    if not shared and not (a_arm.role in SPLIT and b_arm.role in SPLIT):
        return None
    names = (a_arm.name, b_arm.name)
    notes: list[str] = []
    same_a, same_b = a.take(rows_a), b.take(index[rows_a])
    agreement = difference = None
    quantiles: QuantileComparison | None = None
    if shared:
        y = None
        if target is not None:
            found = target.reindex(same_a.ids).to_numpy()
            y = np.array([None if pd.isna(v) else str(v) for v in found], dtype=object)
        agreement = _agreement(same_a, same_b, positive, y) if task == "classification" \
            else None
        difference, quantiles = _scores(same_a, same_b, score, confidence, True)
    else:
        notes.append("no shared requests (an A/B split): distributions and performance "
                     "each on the model's own requests")
        _, quantiles = _scores(a, b, score, confidence, False)
    if a.score is None or b.score is None:
        notes.append(f"no {score or 'score'} logged by both: no score comparison")
    perf = None
    if target is not None:
        pa_, pb_ = (same_a, same_b) if shared else (a, b)
        perf = _performance(pa_, pb_, names, paired=bool(shared), task=task,
                            positive=positive, target=target, confidence=confidence,
                            replicates=replicates, seed=seed)
        if perf is None:
            notes.append(f"fewer than {MIN_LABELLED} labelled requests: no performance")
    return PairComparison(names[0], names[1], shared, agreement, difference, quantiles, perf,
                          tuple(notes))


def _scores(a: Scored, b: Scored, score: str, confidence: float, paired: bool
            ) -> tuple[PairedDifference | None, QuantileComparison | None]:
    if a.score is None or b.score is None or not len(a) or not len(b):
        return None, None
    difference = paired_difference(a.score, b.score, score, confidence) if paired else None
    return difference, compare_quantiles(a.score, b.score, score=score, paired=paired)


__all__ = ["MIN_LABELLED", "compare_pair"]
