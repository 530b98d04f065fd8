"""Watching deployed models: mergeable drift sketches, drift statistics and input quality
against the training baseline, the prediction log (`monitor.log`), alert rules and their
check (above `scorer` and `registry`; imports no channel)."""

from .alert_rules import AlertRule, Op, RuleSet, Webhook, load_rules, parse_rules
from .alerts import Alert, AlertState, AlertStatus, CheckResult, check, run_check
from .drift import (
    ColumnDrift,
    DatasetDrift,
    DriftOptions,
    Method,
    column_drift,
    dataset_drift,
    exact_numeric_drift,
)
from .figures import WindowFigures, drift_score, figure_value
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
    "Alert", "AlertRule", "AlertState", "AlertStatus", "CheckResult", "Op", "RuleSet",
    "Webhook", "WindowFigures", "check", "drift_score", "figure_value", "load_rules",
    "parse_rules", "run_check",
    "CategorySketch", "Channel", "ColumnDrift", "DatasetDrift", "DriftOptions", "DriftState",
    "FeatureReference", "FeatureWindow", "LogOptions", "Method", "NumericSketch",
    "PredictionLogger", "PredictionRecord", "QualityCheck",
    "QualityReport", "QualityThresholds", "Reference", "Sketch", "baseline_reference",
    "column_drift", "dataset_drift", "empty_state", "exact_numeric_drift", "input_quality",
    "read_log", "sketch_from_json", "training_baseline", "window_reference",
]
