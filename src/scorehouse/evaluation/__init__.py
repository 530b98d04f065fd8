"""Evidence for a promotion: a version measured on a holdout (`evaluate`), and the gates an
alias's policy sets before a version may take it (`GatePolicy`, `check_gates`, `promote`).

Above `registry`, `loading` and `monitor` (layer 8 of docs/architecture.md): it scores
through the `Scorer`, measures with scikit-learn, and keeps its results in the registry.
"""

from .evaluate import evaluate, evaluate_table, read_holdout
from .result import Counts, Curve, Evaluation, Holdout, HoldoutDrift, MetricSet, Segment

__all__ = ["Counts", "Curve", "Evaluation", "Holdout", "HoldoutDrift", "MetricSet", "Segment",
           "evaluate", "evaluate_table", "read_holdout"]
