"""Evidence for a promotion: a version measured on a holdout (`evaluate`), the gates an
alias's policy sets before a version may take it (`GatePolicy`, `check_gates`, `promote`),
a deployment's models compared on the requests they scored (`compare_deployment`:
pairs of roles from the prediction log, late labels, the canary's windows), and a version
refitted on new data by its training recipe and offered as the challenger through the
gates (`retrain`).

Above `registry`, `loading` and `monitor` (layer 8 of docs/architecture.md): it scores
through the `Scorer`, measures with scikit-learn, and keeps its results in the registry.
"""

from .canary import CanaryReport, CanaryWindow, Finding
from .compare import compare_deployment, deployment_rows
from .comparison import (
    Agreement,
    Arm,
    DeploymentComparison,
    MetricDifference,
    PairComparison,
    Performance,
    RequestCounts,
)
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
from .retraining import CHALLENGER, Retraining, retrain

__all__ = ["Agreement", "Arm", "CHALLENGER", "CanaryReport", "CanaryWindow", "Counts", "Curve",
           "DeploymentComparison", "Evaluation", "FeatureImportance", "Finding", "GatePolicy",
           "GateReport", "GateResult", "GatesRefused", "Holdout", "HoldoutDrift", "Importance",
           "MetricDifference", "MetricSet", "PairComparison", "Performance", "Promotion",
           "RequestCounts", "Retraining", "Rule", "Segment", "Verdict", "check_gates",
           "compare_deployment", "deployment_rows", "evaluate", "evaluate_ref",
           "evaluate_table", "measure_latency", "promote", "read_holdout", "retrain",
           "schema_breaks", "stored_evaluation"]
