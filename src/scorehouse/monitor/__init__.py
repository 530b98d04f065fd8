"""Watching deployed models: mergeable drift sketches, drift statistics and input quality
against the training baseline, the prediction log (`monitor.log`), its windows
(`windowing`, `windows`), decay against late labels (`labels`, `feedback`), alert rules
and their check (`alert_rules`, `alerts`, `figures`), and the windows of the log with
every figure, checked against rules (`checking`) (above `scorer` and `registry`; imports
no channel).

The names below load on first use: a channel that imports `monitor.live` or `monitor.log`
does not pay for scipy's statistics at start-up."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
        log_stamp,
        logged_rows,
        monitored,
        recent,
        reference_for,
    )

_LAZY = {
    "Alert": ".alerts",
    "AlertRule": ".alert_rules",
    "AlertState": ".alerts",
    "AlertStatus": ".alerts",
    "CategorySketch": ".sketch",
    "Channel": ".log",
    "CheckResult": ".alerts",
    "ColumnDrift": ".drift",
    "DatasetDrift": ".drift",
    "DecayReport": ".feedback",
    "DriftOptions": ".drift",
    "DriftState": ".state",
    "FeatureReference": ".reference",
    "FeatureWindow": ".state",
    "FeedbackWindow": ".feedback",
    "LabelAccounting": ".labels",
    "Labels": ".checking",
    "LogCheck": ".checking",
    "LogOptions": ".log",
    "LogWindow": ".windowing",
    "LoggedWindow": ".checking",
    "Method": ".drift",
    "NumericSketch": ".sketch",
    "Op": ".alert_rules",
    "PredictionLogger": ".log",
    "PredictionRecord": ".log",
    "QualityCheck": ".quality",
    "QualityReport": ".quality",
    "QualityThresholds": ".quality",
    "Reference": ".reference",
    "ReferenceFigure": ".feedback",
    "RuleSet": ".alert_rules",
    "RuleStatus": ".checking",
    "Sketch": ".sketch",
    "Standing": ".checking",
    "Traffic": ".windowing",
    "Webhook": ".alert_rules",
    "WindowAnalysis": ".windows",
    "WindowFigures": ".figures",
    "WindowReport": ".windows",
    "WindowSpec": ".windowing",
    "analyse_log": ".windows",
    "baseline_reference": ".reference",
    "check": ".alerts",
    "check_log": ".checking",
    "column_drift": ".drift",
    "dataset_drift": ".drift",
    "decay": ".feedback",
    "drift_score": ".figures",
    "empty_state": ".reference",
    "exact_numeric_drift": ".drift",
    "figure_value": ".figures",
    "input_quality": ".quality",
    "join_labels": ".labels",
    "load_rules": ".alert_rules",
    "log_windows": ".checking",
    "log_stamp": ".windows",
    "logged_rows": ".windows",
    "monitored": ".windows",
    "parse_rules": ".alert_rules",
    "parse_time": ".windowing",
    "read_labels": ".labels",
    "read_log": ".log",
    "recent": ".windows",
    "reference_for": ".windows",
    "rule_statuses": ".checking",
    "run_check": ".alerts",
    "sketch_from_json": ".sketch",
    "split_log": ".windowing",
    "training_baseline": ".reference",
    "window_reference": ".reference",
    "window_state": ".windowing",
}
__all__ = [
    "Alert", "AlertRule", "AlertState", "AlertStatus", "CategorySketch", "Channel",
    "CheckResult", "ColumnDrift", "DatasetDrift", "DecayReport", "DriftOptions", "DriftState",
    "FeatureReference", "FeatureWindow", "FeedbackWindow", "LabelAccounting", "Labels",
    "LogCheck", "LogOptions", "LogWindow", "LoggedWindow", "Method", "NumericSketch", "Op",
    "PredictionLogger", "PredictionRecord", "QualityCheck", "QualityReport",
    "QualityThresholds", "Reference", "ReferenceFigure", "RuleSet", "RuleStatus", "Sketch",
    "Standing", "Traffic", "Webhook", "WindowAnalysis", "WindowFigures", "WindowReport",
    "WindowSpec", "analyse_log", "baseline_reference", "check", "check_log", "column_drift",
    "dataset_drift", "decay", "drift_score", "empty_state", "exact_numeric_drift",
    "figure_value", "input_quality", "join_labels", "load_rules", "log_stamp", "log_windows", "logged_rows",
    "monitored", "parse_rules", "parse_time", "read_labels", "read_log", "recent",
    "reference_for", "rule_statuses", "run_check", "sketch_from_json", "split_log",
    "training_baseline", "window_reference", "window_state",
]


def __getattr__(name: str) -> Any:
    """The monitor's public names, imported from their module on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
