"""Watching deployed models: mergeable drift sketches, drift statistics and input quality
against the training baseline (above `scorer` and `registry`; imports no channel)."""

from .drift import (
    ColumnDrift,
    DatasetDrift,
    DriftOptions,
    Method,
    column_drift,
    dataset_drift,
    exact_numeric_drift,
)
from .quality import QualityCheck, QualityReport, QualityThresholds, input_quality
from .reference import (
    FeatureReference,
    Reference,
    baseline_reference,
    empty_state,
    training_baseline,
    window_reference,
)
from .sketch import CategorySketch, NumericSketch, Sketch, sketch_from_json
from .state import DriftState, FeatureWindow

__all__ = [
    "CategorySketch", "ColumnDrift", "DatasetDrift", "DriftOptions", "DriftState",
    "FeatureReference", "FeatureWindow", "Method", "NumericSketch", "QualityCheck",
    "QualityReport", "QualityThresholds", "Reference", "Sketch", "baseline_reference",
    "column_drift", "dataset_drift", "empty_state", "exact_numeric_drift", "input_quality",
    "sketch_from_json", "training_baseline", "window_reference",
]
