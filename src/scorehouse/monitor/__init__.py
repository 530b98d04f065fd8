"""Watching deployed models: mergeable drift sketches, drift statistics and input quality
against the training baseline, the prediction log (`monitor.log`), its windows
(`windowing`, `windows`), decay against late labels (`labels`, `feedback`), alert rules
and their check (`alert_rules`, `alerts`, `figures`), and the windows of the log with
every figure, checked against rules (`checking`) (above `scorer` and `registry`; imports
no channel)."""

from .alert_rules import AlertRule, Op, RuleSet, Webhook, load_rules, parse_rules
from .alerts import Alert, AlertState, AlertStatus, CheckResult, check, run_check
from .checking import (
    Labels,
    LogCheck,
    LoggedWindow,
    RuleStatus,
    Standing,
    check_log,
    log_windows,
    rule_statuses,
)
from .drift import (
    ColumnDrift,
    DatasetDrift,
    DriftOptions,
    Method,
    column_drift,
    dataset_drift,
    exact_numeric_drift,
)
from .feedback import DecayReport, FeedbackWindow, ReferenceFigure, decay
from .figures import WindowFigures, drift_score, figure_value
from .labels import LabelAccounting, join_labels, read_labels
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
from .windowing import LogWindow, Traffic, WindowSpec, parse_time, split_log, window_state
from .windows import (
    WindowAnalysis,
    WindowReport,
    analyse_log,
    logged_rows,
    monitored,
    recent,
    reference_for,
)

__all__ = [
    "Alert", "AlertRule", "AlertState", "AlertStatus", "CheckResult", "Op", "RuleSet",
    "Webhook", "WindowFigures", "check", "drift_score", "figure_value", "load_rules",
    "parse_rules", "run_check",
    "Labels", "LogCheck", "LoggedWindow", "RuleStatus", "Standing", "check_log",
    "log_windows", "rule_statuses",
    "CategorySketch", "Channel", "ColumnDrift", "DatasetDrift", "DecayReport", "DriftOptions",
    "DriftState", "FeatureReference", "FeatureWindow", "FeedbackWindow", "LabelAccounting",
    "LogOptions", "LogWindow", "Method", "NumericSketch", "PredictionLogger",
    "PredictionRecord", "QualityCheck", "QualityReport", "QualityThresholds", "Reference",
    "ReferenceFigure", "Sketch", "Traffic", "WindowAnalysis", "WindowReport", "WindowSpec",
    "analyse_log", "baseline_reference", "column_drift", "dataset_drift", "decay",
    "empty_state", "exact_numeric_drift", "input_quality", "join_labels", "logged_rows",
    "monitored", "parse_time", "read_labels", "read_log", "recent", "reference_for",
    "sketch_from_json", "split_log", "training_baseline", "window_reference", "window_state",
]
