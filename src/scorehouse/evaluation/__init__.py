"""Evidence for a promotion: a version measured on a holdout (`evaluate`), and the gates an
alias's policy sets before a version may take it (`GatePolicy`, `check_gates`, `promote`).

Above `registry`, `loading` and `monitor` (layer 8 of docs/architecture.md): it scores
through the `Scorer`, measures with scikit-learn, and keeps its results in the registry.
"""

from .evaluate import evaluate, evaluate_table, read_holdout
from .gates import GatePolicy, GateReport, GateResult, GatesRefused, Rule, Verdict
from .promotion import (
    Promotion,
    check_gates,
    evaluate_ref,
    measure_latency,
    promote,
    schema_breaks,
    stored_evaluation,
)
from .result import (
    Counts,
    Curve,
    Evaluation,
    FeatureImportance,
    Holdout,
    HoldoutDrift,
    Importance,
    MetricSet,
    Segment,
)

__all__ = ["Counts", "Curve", "Evaluation", "FeatureImportance", "GatePolicy", "GateReport", "GateResult",
           "GatesRefused", "Holdout", "HoldoutDrift", "Importance", "MetricSet", "Promotion", "Rule",
           "Segment", "Verdict", "check_gates", "evaluate", "evaluate_ref", "evaluate_table",
           "measure_latency", "promote", "read_holdout", "schema_breaks", "stored_evaluation"]
