"""The registry side of evaluation: evaluate a registered version and keep the result,
run an alias's gates on a candidate, and `promote` through them.

`promote` is what `scorehouse promote` calls: with no gate policy on the alias it is
`Registry.promote`, unchanged; with one, a failing gate refuses (`GatesRefused`, exit 6)
unless forced with a reason, and the gate results are kept on the history event.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NotFoundError, UsageError
from ..loading import load
from ..registry import AliasMove, ModelVersion, Registry
from ..registry.evaluations import EvaluationRecord
from ..registry.refs import ModelRef, valid_name
from ..schema import Schema
from ..schema.diff import diff_schemas
from ..scorer import Scorer
from .evaluate import evaluate
from .gates import GatePolicy, GateReport, GateResult, GatesRefused, Rule, Verdict
from .result import Evaluation

#: Untimed single-row calls before the latency gate's timed ones (caches, lazy imports).
WARMUP_CALLS = 5


def evaluate_ref(ref: str, holdout: str | Path, target: str, segments: Sequence[str] = (), *,
                 registry: Registry | None = None, runtime: str | None = None,
                 trust: bool = False, store: bool = True, user: str | None = None
                 ) -> tuple[Evaluation, EvaluationRecord | None]:
    """Evaluate `ref` (a registry reference or an artifact path) on a holdout file, and keep
    the result on the registered version when `store` (an artifact file has none to keep
    it on: the record is then None).

    Raises:
        NotFoundError: no such model, version, alias, artifact or holdout file.
        UsageError: `target` or a segment column is not in the holdout.
        ArtifactError, ParityError: as `loading.load`.
    """
    model = ModelRef.parse(ref)
    reg = None if model.is_path else (registry or Registry())
    scorer = load(model, registry=reg, runtime=runtime, trust=trust)
    result = evaluate(scorer, holdout, target, segments)
    record = None
    if store and reg is not None:
        record = reg.record_evaluation(f"{scorer.name}/{scorer.version}", result, user=user)
    return result, record


def stored_evaluation(reg: Registry, ref: str) -> Evaluation | None:
    """The newest evaluation stored on the version `ref` names (None: never evaluated)."""
    record = reg.latest_evaluation(ref)
    return None if record is None else Evaluation.from_dict(record.result)


def _current(reg: Registry, name: str, alias: str) -> ModelVersion | None:
    try:
        return reg.resolve(f"{name}@{alias}")
    except NotFoundError:
        return None


def check_gates(reg: Registry, ref: str, alias: str, policy: GatePolicy | None = None
                ) -> GateReport:
    """Run the gates of `alias` (its stored policy, or `policy`) on the version `ref`
    names, moving nothing.

    Raises:
        UsageError, NotFoundError: as `Registry.resolve`.
    """
    mv = reg.resolve(ref)
    current = _current(reg, mv.name, alias)
    if policy is None:
        stored = reg.gate_policy(mv.name, alias)
        if stored is None or stored.policy is None:
            return GateReport(mv.ref, alias, None if current is None else current.ref, [], policy=False)
        policy = GatePolicy.from_dict(stored.policy)
    candidate = stored_evaluation(reg, mv.ref)
    results = [_rule(reg, mv, r, candidate) for r in policy.rules]
    if policy.parity:
        results.append(_parity(reg, mv))
    if policy.latency_ms is not None:
        results.append(_latency(reg.load(mv.ref), policy.latency_ms, policy.latency_calls))
    if policy.schema_compatible:
        results.append(_schema(reg, mv, current))
    if policy.max_drift_share is not None:
        results.append(_drift(mv, candidate, policy.max_drift_share))
    return GateReport(mv.ref, alias, None if current is None else current.ref, results)


def _no_evaluation(mv: ModelVersion) -> str:
    return (f"{mv.ref} has no stored evaluation: scorehouse evaluate {mv.ref} HOLDOUT "
            "--target COLUMN")


def _rule(reg: Registry, mv: ModelVersion, rule: Rule, candidate: Evaluation | None
          ) -> GateResult:
    name = str(rule)
    if candidate is None:
        return GateResult(name, None, None, Verdict.FAIL, _no_evaluation(mv))
    figure = candidate.metrics.get(rule.metric)
    if figure is None:
        why = candidate.metrics.absent.get(rule.metric, f"not measured for a {mv.task} model")
        return GateResult(name, None, None, Verdict.FAIL, f"{rule.metric}: {why}")
    detail = ""
    if rule.alias is None:
        threshold = rule.threshold()
    else:
        other = _current(reg, mv.name, rule.alias)
        if other is None:
            return GateResult(name, figure, None, Verdict.SKIP,
                              f"{mv.name} has no @{rule.alias} yet: nothing to compare with")
        theirs = stored_evaluation(reg, other.ref)
        base = None if theirs is None else theirs.metrics.get(rule.metric)
        if theirs is None or base is None:
            return GateResult(name, figure, None, Verdict.FAIL,
                              _no_evaluation(other) if theirs is None
                              else f"{other.ref} has no {rule.metric}")
        threshold = rule.threshold(base)
        detail = f"@{rule.alias} is {other.ref}: {rule.metric} {base:.6g}"
        if theirs.holdout.sha256 != candidate.holdout.sha256:
            detail += " (on a different holdout)"
    verdict = Verdict.PASS if rule.holds(figure, threshold) else Verdict.FAIL
    return GateResult(name, figure, threshold, verdict, detail)


def _parity(reg: Registry, mv: ModelVersion) -> GateResult:
    compiled = reg.load_artifact(mv.ref)[0].manifest.compiled
    parity = compiled.parity if compiled else None
    if compiled is None or compiled.status in (None, "not converted"):
        why = compiled.reason if compiled and compiled.reason else "no compiled graph"
        return GateResult("parity", "not compiled", "passed", Verdict.SKIP,
                          f"{why}: scored by the native runtime")
    worst = max((parity.max_abs_diff.values() if parity else []), default=0.0)
    detail = f"max abs diff {worst:.3g} (tolerance {parity.tolerance:g})" if parity else ""
    if parity is not None and parity.passed:
        return GateResult("parity", "passed", "passed", Verdict.PASS, detail)
    reason = (parity.reason if parity and parity.reason else compiled.status) or "failed"
    return GateResult("parity", "failed", "passed", Verdict.FAIL, f"{reason}; {detail}")


def measure_latency(scorer: Scorer, calls: int) -> tuple[float, int]:
    """(p50 in ms, rows rejected) over `calls` single-row `predict` calls on this machine."""
    row = scorer.schema.example_record()
    for _ in range(WARMUP_CALLS):
        scorer.predict(row)
    times = np.empty(calls)
    rejected = 0
    for i in range(calls):
        start = time.perf_counter()
        rejected += scorer.predict(row).n_rejected
        times[i] = time.perf_counter() - start
    return float(np.median(times) * 1000), rejected


def _latency(scorer: Scorer, budget_ms: float, calls: int) -> GateResult:
    p50, rejected = measure_latency(scorer, calls)
    detail = f"p50 of {calls} single-row calls, runtime {scorer.runtime.name}"
    if rejected:
        detail += f" (the example row was rejected {rejected} time(s): validation only)"
    return GateResult("latency_ms", round(p50, 4), budget_ms,
                      Verdict.PASS if p50 <= budget_ms else Verdict.FAIL, detail)


def schema_breaks(old: Schema, new: Schema) -> list[str]:
    """What a caller of `old` would see refused by `new`: new required columns, columns
    turned required, type changes, and narrowed category sets (the categories lost)."""
    diff = diff_schemas(old, new)
    out = [f"new required column {n}" for n in diff.added if not new[n].nullable]
    for change in diff.changed:
        a, b = old[change.column], new[change.column]
        if change.what == "nullable" and a.nullable and not b.nullable:
            out.append(f"{change.column} became required")
        elif change.what == "type":
            out.append(f"{change.column}: type {change.before} -> {change.after}")
        elif change.what == "categories" and a.categories is not None:
            lost = sorted(set(a.categories) - set(b.categories or a.categories))
            if lost:
                out.append(f"{change.column} no longer accepts {', '.join(lost[:6])}"
                           + (" ..." if len(lost) > 6 else ""))
    return out


def _schema(reg: Registry, mv: ModelVersion, current: ModelVersion | None) -> GateResult:
    if current is None:
        return GateResult("schema", None, "compatible", Verdict.SKIP,
                          "no current version to be compatible with")
    old, new = (Schema.from_dict(reg.load_artifact(v.ref)[0].manifest.input_schema)
                for v in (current, mv))
    breaks = schema_breaks(old, new)
    if breaks:
        return GateResult("schema", "incompatible", "compatible", Verdict.FAIL,
                          f"against {current.ref}: " + "; ".join(breaks))
    return GateResult("schema", "compatible", "compatible", Verdict.PASS,
                      f"against {current.ref}")


def _drift(mv: ModelVersion, candidate: Evaluation | None, limit: float) -> GateResult:
    if candidate is None:
        return GateResult("drift_share", None, limit, Verdict.FAIL, _no_evaluation(mv))
    drift = candidate.drift
    if drift is None or drift.share is None:
        why = drift.reason if drift else "not measured"
        return GateResult("drift_share", None, limit, Verdict.FAIL, f"holdout drift: {why}")
    cols = ", ".join(drift.drifted_columns) or "none"
    return GateResult("drift_share", round(drift.share, 6), limit,
                      Verdict.PASS if drift.share <= limit else Verdict.FAIL,
                      f"drifted input columns: {cols}")


@dataclass(frozen=True)
class Promotion:
    """What `promote` did: the alias `move`, the gate `report`, and whether gates that
    failed were overridden (`forced`)."""

    move: AliasMove
    report: GateReport
    forced: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: the move's fields, then `forced` and the gates."""
        return {**self.move.to_dict(), "forced": self.forced, "gates": self.report.to_dict()}


def promote(reg: Registry, ref: str, alias: str, *, force: bool = False, reason: str = "",
            user: str | None = None) -> Promotion:
    """Point `alias` at `ref` through the alias's gates (none: as `Registry.promote`).

    Raises:
        GatesRefused: (exit 6) a gate failed and `force` is False.
        UsageError: `force` past failing gates without a `reason`; as `Registry.promote`.
        ConflictError, NotFoundError: as `Registry.promote`.
    """
    valid_name(alias, "alias")  # a malformed alias is bad usage (exit 2), before lookups
    mv = reg.resolve(ref)
    current = _current(reg, mv.name, alias)
    if current is not None and current.version == mv.version:
        report = GateReport(mv.ref, alias, current.ref, [], policy=False)
    else:
        report = check_gates(reg, mv.ref, alias)
    if not report.policy:
        return Promotion(reg.promote(mv.ref, alias, reason=reason, user=user), report, False)
    forced = not report.passed
    if forced and not force:
        raise GatesRefused(report)
    if forced and not reason.strip():
        raise UsageError("--force past failing gates needs a reason: -m WHY")
    if forced:
        names = ", ".join(r.name for r in report.failing)
        reason = f"forced past failing gates ({names}): {reason}"
    move = reg.promote(mv.ref, alias, reason=reason, user=user,
                       gates=[r.to_dict() for r in report.results])
    return Promotion(move, report, forced)
