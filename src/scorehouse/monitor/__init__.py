"""Watching deployed models: mergeable drift sketches, drift statistics and input quality
against the training baseline, and the prediction log (`monitor.log`) (above `scorer` and
`registry`; imports no channel)."""

from .drift import (
    ColumnDrift,
    DatasetDrift,
    DriftOptions,
    Method,
    column_drift,
    dataset_drift,
    exact_numeric_drift,
)
from .log import (
    Channel,
    LogOptions,
    PredictionLogger,
    PredictionRecord,
    read_log,
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
    "CategorySketch", "Channel", "ColumnDrift", "DatasetDrift", "DriftOptions", "DriftState",
    "FeatureReference", "FeatureWindow", "LogOptions", "Method", "NumericSketch",
    "PredictionLogger", "PredictionRecord", "QualityCheck",
    "QualityReport", "QualityThresholds", "Reference", "Sketch", "baseline_reference",
    "column_drift", "dataset_drift", "empty_state", "exact_numeric_drift", "input_quality",
    "read_log", "sketch_from_json", "training_baseline", "window_reference",
]
