"""What drift compares against: the artifact's training baseline (built at packaging by
`packaging/baseline.py`), a reference window, or another version's baseline, turned into
the same sketches a live window holds.

The baseline stores fractions, not counts; since each fraction is count / non-null rows
and the baseline keeps the row count and null rate, the counts are recovered exactly
(rounded products). Input profiles cover every training row ('rows'); the prediction
profile covers the sample scored at packaging ('sample_rows').
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..artifact import Artifact
from ..errors import ArtifactError
from ..schema import Schema
from ..scorer import Scorer
from .sketch import OTHER, PREDICTION, CategorySketch, NumericSketch, Sketch
from .state import DriftState


def training_baseline(source: Scorer | Artifact | Mapping[str, Any]) -> dict[str, Any]:
    """The training baseline of a loaded model, an artifact, or a manifest (its
    'baseline' entry: {'rows', 'sample_rows', 'inputs': {...}, 'predictions': {...}}).

    The one place that knows where the baseline lives in a manifest.

    Raises:
        ArtifactError: the manifest has no baseline.
    """
    if isinstance(source, (Scorer, Artifact)):
        part = source.manifest.baseline
        name: Any = source.manifest.name
        baseline: Any = part.to_dict() if part is not None else None
    else:
        name, baseline = source.get("name"), source.get("baseline")
    if not isinstance(baseline, Mapping) or "inputs" not in baseline:
        raise ArtifactError(f"model {name!r} has no training baseline "
                            "(package it again with scorehouse >= 0.1)")
    return dict(baseline)


@dataclass(frozen=True)
class FeatureReference:
    """One feature's reference: its sketch, its kind, the std that normalises Wasserstein
    distances, and its number of distinct values (for choosing a method)."""

    sketch: Sketch
    numeric: bool
    std: float
    n_values: int


@dataclass(frozen=True)
class Reference:
    """The reference of every feature, and what it is (e.g. 'training baseline')."""

    features: dict[str, FeatureReference]
    label: str


def _profiles(baseline: Mapping[str, Any]) -> dict[str, tuple[dict[str, Any], int]]:
    """{feature: (profile, rows profiled)} for inputs and predictions."""
    rows = int(baseline.get("rows", 0))
    sample = int(baseline.get("sample_rows", rows))
    out = {name: (p, rows) for name, p in baseline["inputs"].items()}
    pred = baseline.get("predictions", {})
    if "value" in pred:
        out[PREDICTION + "value"] = (pred["value"], sample)
    if "label" in pred:
        out[PREDICTION + "label"] = (pred["label"], sample)
    for cls, p in pred.get("probability", {}).items():
        out[f"{PREDICTION}probability_{cls}"] = (p, sample)
    return out


def _sketch(profile: Mapping[str, Any], rows: int, boolean: bool) -> Sketch | None:
    """The training counts of one profile, or None for a profile without a distribution."""
    nulls = int(round(profile.get("null_rate", 0.0) * rows))
    present = rows - nulls
    s: Sketch
    if "histogram" in profile:
        h = profile["histogram"]
        num = NumericSketch.empty(h["edges"])
        num.counts[1:-1] = np.round(np.asarray(h["fractions"]) * present).astype(np.int64)
        num.low, num.high = float(h["edges"][0]), float(h["edges"][-1])
        s = num
    elif "frequencies" in profile:
        freq = {k: v for k, v in profile["frequencies"].items() if k != OTHER}
        cat = CategorySketch.empty(sorted(freq), boolean=boolean)
        cat.counts[:] = np.round(np.array([freq[k] for k in cat.categories]) * present)
        if OTHER in profile["frequencies"]:  # training's long tail, beyond MAX_FREQUENCIES
            cat.unseen[OTHER] = int(round(profile["frequencies"][OTHER] * present))
        s = cat
    else:
        return None
    s.nulls = nulls
    return s


def empty_state(baseline: Mapping[str, Any], schema: Schema) -> DriftState:
    """A window with no rows, one sketch per baseline feature on the baseline's own bins
    (inputs of `schema` with a distribution, and the prediction columns)."""
    ref = baseline_reference(baseline, schema)
    return DriftState({k: _cleared(f.sketch) for k, f in ref.features.items()})


def _cleared(s: Sketch) -> Sketch:
    if isinstance(s, NumericSketch):
        return NumericSketch.empty(s.edges)
    return CategorySketch.empty(s.categories, boolean=s.boolean, cap=s.cap)


def baseline_reference(baseline: Mapping[str, Any], schema: Schema,
                       label: str = "training baseline") -> Reference:
    """The training baseline as a reference: exact training counts per feature, the
    training std (normalises Wasserstein), distinct values from the schema's range."""
    types = {c.name: c for c in schema.columns}
    out: dict[str, FeatureReference] = {}
    for name, (profile, rows) in _profiles(baseline).items():
        col = types.get(name)
        if col is None and not name.startswith(PREDICTION):
            continue
        s = _sketch(profile, rows, boolean=col is not None and col.type == "boolean")
        if s is None:
            continue
        if isinstance(s, NumericSketch):
            n_values = len(s.edges)
            if col is not None and col.type == "integer":
                n_values = int(s.edges[-1] - s.edges[0]) + 1
            std = float(profile.get("std", _binned_std(s)))
            out[name] = FeatureReference(s, True, std, n_values)
        else:
            out[name] = FeatureReference(s, False, 0.0, int(profile.get("n_unique", len(s.counts))))
    return Reference(out, label)


def window_reference(state: DriftState, label: str = "reference window") -> Reference:
    """A window (e.g. last month's, or another version's traffic) as the reference; its
    std is estimated from the binned counts."""
    state.flush()
    out: dict[str, FeatureReference] = {}
    for name, s in state.sketches.items():
        if isinstance(s, NumericSketch):
            out[name] = FeatureReference(s, True, _binned_std(s), int((s.counts > 0).sum()))
        else:
            out[name] = FeatureReference(s, False, 0.0, int((s.counts > 0).sum()) + len(s.unseen))
    return Reference(out, label)


def _binned_std(s: NumericSketch) -> float:
    """The standard deviation of the binned distribution (values at cell midpoints)."""
    if s.n == 0:
        return 0.0
    w = s.counts / s.n
    x = s.points()
    mean = float((w * x).sum())
    return float(np.sqrt((w * (x - mean) ** 2).sum()))
