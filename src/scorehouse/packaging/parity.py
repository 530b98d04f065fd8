"""The parity gate: the compiled model is used only where it scores like the native one."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..artifact import CompileStatus, Manifest
from ..scorer import Result, output_columns

#: Default largest allowed difference: absolute on probabilities; on regression values,
#: relative to max(1, |native value|).
TOLERANCE = 1e-6


def compare(native: Result, compiled: Result, tolerance: float = TOLERANCE) -> dict[str, Any]:
    """Max difference of every output and label flips between two results of the same rows."""
    a, b = native.output, compiled.output
    report: dict[str, Any] = {"rows": int(native.n_scored), "tolerance": tolerance,
                              "max_abs_diff": {}, "label_flips": 0, "near_ties": 0}
    if not np.array_equal(native.rows, compiled.rows):
        report.update(passed=False, reason="the two runtimes rejected different rows")
        return report
    names = output_columns(native.task, native.classes, a.probabilities is not None)
    worst = 0.0
    if a.probabilities is not None:
        if b.probabilities is None:
            report.update(passed=False, reason="the compiled model gives no probabilities")
            return report
        diff = np.abs(a.probabilities - b.probabilities)
        for k, name in enumerate(n for n in names if n != "label"):
            report["max_abs_diff"][name] = float(diff[:, k].max()) if len(diff) else 0.0
        worst = float(diff.max()) if diff.size else 0.0
        # A row whose two best classes are within tolerance natively is a tie, not a flip.
        top2 = np.sort(a.probabilities, axis=1)[:, -2:] if a.probabilities.shape[1] > 1 else None
        tie = (top2[:, 1] - top2[:, 0] <= tolerance) if top2 is not None else \
            np.zeros(len(a.probabilities), bool)
        differ = a.labels != b.labels
        report["label_flips"] = int((differ & ~tie).sum())
        report["near_ties"] = int((differ & tie).sum())
    elif a.values is not None:
        diff = np.abs(a.values - b.values)
        report["max_abs_diff"]["value"] = float(diff.max()) if len(diff) else 0.0
        rel = diff / np.maximum(1.0, np.abs(a.values))
        report["max_rel_diff"] = {"value": float(rel.max()) if len(rel) else 0.0}
        worst = report["max_rel_diff"]["value"]
    else:
        report["label_flips"] = int(np.count_nonzero(a.labels != b.labels))
    reasons = []
    if worst > tolerance:
        reasons.append(f"max difference {worst:.3g} exceeds the tolerance {tolerance:g}")
    if report["label_flips"]:
        reasons.append(f"{report['label_flips']} label(s) differ")
    report["passed"] = not reasons
    if reasons:
        report["reason"] = "; ".join(reasons)
    return report


def runtime_summary(manifest: Manifest) -> str:
    """One line on the compiled runtime: used, or why not."""
    c = manifest.compiled
    if not c:
        return f"runtime: {manifest.model.runtime}"
    if c.status == CompileStatus.PASSED and c.parity is not None:
        p = c.parity
        worst = max([*p.max_abs_diff.values(), *(p.max_rel_diff or {}).values()], default=0)
        return (f"runtime: onnx (parity on {p.rows:,} rows: max diff {worst:.2g}, "
                f"{p.label_flips} label flips, tolerance {p.tolerance:g})")
    return f"runtime: native ({c.status}: {c.reason})"
