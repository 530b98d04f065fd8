"""Evidence for promotions: `evaluate` a version on a holdout, and the `gates` group (set,
show, check) of the gate policy each alias holds. `promote` (versions.py) runs the gates."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from .common import JsonOpt, Reason, RuntimeOpt, User, open_registry
from .output import console, emit, emit_json, err_console, figure, table

#: Merged into the root app by `cli/app.py` (`evaluate`).
commands = typer.Typer()
#: The `gates` group.
group = typer.Typer(help="Gate policies: what a version must show before an alias may "
                         "point at it.", no_args_is_help=True)
#: The metrics shown in tables, in this order.
SHOWN = ("roc_auc", "pr_auc", "log_loss", "brier", "accuracy", "f1", "ece",
         "rmse", "mae", "r2", "mape")


@commands.command()
def evaluate(
    ref: Annotated[str, typer.Argument(help="Version (churn/3, churn@staging) or artifact file.")],
    holdout: Annotated[Path, typer.Argument(help="Holdout rows with the target: .parquet or .csv.")],
    target: Annotated[str, typer.Option("--target", "-y", help="The target column.")],
    segment: Annotated[list[str] | None, typer.Option(
        "--segment", help="A column to break the metrics down by (repeatable).")] = None,
    runtime: RuntimeOpt = None,
    trust: Annotated[bool, typer.Option("--trust", help="Load a pickled artifact file.")] = False,
    store: Annotated[bool, typer.Option(help="Keep the result on the registered version.")] = True,
    user: User = None,
    as_json: JsonOpt = False,
) -> None:
    """Score a holdout through the model and measure it (scikit-learn's metrics).

    Rows read = scored + rejected; rows whose target is missing or unknown are excluded
    from the metrics and counted. The result, curves included, is kept on the version.

    Example: scorehouse evaluate churn/3 holdout.parquet --target churned --segment plan
    """
    from ..evaluation import evaluate_ref

    registry = None if _is_path(ref) else open_registry()
    result, record = evaluate_ref(ref, holdout, target, segment or [], registry=registry,
                                  runtime=runtime, trust=trust, store=store, user=user)
    if as_json:
        emit_json({**result.to_dict(), "stored": None if record is None else record.id})
        return
    _print_evaluation(result)
    if record is not None:
        console.print(f"stored as evaluation {record.id} of {record.model}/{record.version}")


def _is_path(ref: str) -> bool:
    from ..registry.refs import ModelRef

    return ModelRef.parse(ref).is_path


def _print_evaluation(e: Any) -> None:
    c = e.counts
    console.print(f"{e.ref} on {e.holdout.path} (target {e.holdout.target}, runtime "
                  f"{e.runtime}): {c.read} read = {c.scored} scored + {c.rejected} rejected; "
                  f"{c.excluded} excluded, {c.evaluated} evaluated")
    for reason, n in {**c.rejects, **c.exclusions}.items():
        console.print(f"  {n} x {reason}")
    names = [m for m in SHOWN if m in e.metrics.values or m in e.metrics.absent]
    table(["metric", "value", "note"],
          [[m, figure(e.metrics.get(m)), e.metrics.absent.get(m, "")] for m in names])
    if e.per_class:
        cols = ["roc_auc", "pr_auc", "brier", "f1", "ece"]
        table(["class", "support", *cols],
              [[k, v.rows, *(figure(v.get(m)) for m in cols)] for k, v in e.per_class.items()],
              title="per class (one-vs-rest)")
    if e.segments:
        table(["segment", "value", "rows", *names],
              [[s.column, s.value, s.metrics.rows, *(figure(s.metrics.get(m)) for m in names)]
               for s in e.segments], title="per segment")
    d = e.drift
    if d is not None and d.share is not None:
        console.print(f"holdout drift from training: {d.share:.0%} of input columns "
                      f"({', '.join(d.drifted_columns) or 'none'})")
    elif d is not None:
        console.print(f"holdout drift not measured: {d.reason}")


@contextlib.contextmanager
def shows_refusal(as_json: bool) -> Iterator[None]:
    """Around a gated change: a `GatesRefused` inside shows its gate table (with --json, the
    error with the gates' results) before it ends the command with exit 6."""
    from ..evaluation import GatesRefused

    try:
        yield
    except GatesRefused as e:
        if as_json:
            emit_json({"error": str(e), "type": type(e).__name__, "exit_code": e.exit_code,
                       "gates": e.report.to_dict()})
            raise typer.Exit(e.exit_code) from None
        gate_table(e.report)
        raise


def gate_table(report: Any) -> None:
    """Each gate's figure, threshold and verdict (stdout)."""
    table(["gate", "figure", "threshold", "verdict", "detail"],
          [[r.name, figure(r.figure), figure(r.threshold), r.verdict.value.upper(), r.detail]
           for r in report.results],
          title=f"gates of @{report.alias} for {report.ref}"
                + (f" (now {report.current})" if report.current else ""))


@group.command("set")
def set_(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias the policy guards, e.g. production.")],
    rule: Annotated[list[str] | None, typer.Option(
        "--rule", help="'roc_auc >= 0.75', 'log_loss <= production * 1.02' (repeatable).")] = None,
    parity: Annotated[bool, typer.Option("--parity", help="The compiled runtime must have passed parity.")] = False,
    latency_ms: Annotated[float | None, typer.Option(help="Single-row p50 budget on this machine, ms.")] = None,
    latency_calls: Annotated[int, typer.Option(help="Calls timed for the latency gate.")] = 200,
    schema_compatible: Annotated[bool, typer.Option("--schema-compatible", help="No new required column, no narrowed category set against the current version.")] = False,
    max_drift_share: Annotated[float | None, typer.Option(help="Most share of input columns drifted on the holdout (0..1).")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the alias's policy.")] = False,
    reason: Reason = "",
    user: User = None,
    as_json: JsonOpt = False,
) -> None:
    """Set (replace) the gate policy of an alias; the change is kept with who, when and why.

    Example:

        scorehouse gates set churn production --rule "roc_auc >= 0.75" --parity --latency-ms 5 -m "Q3 policy"
    """
    from ..evaluation import GatePolicy

    policy = None if clear else GatePolicy.build(
        rule or [], parity=parity, latency_ms=latency_ms, latency_calls=latency_calls,
        schema_compatible=schema_compatible, max_drift_share=max_drift_share)
    record = open_registry().set_gate_policy(name, alias, policy, reason=reason, user=user)
    lines = "\n".join(f"  {line}" for line in (policy.lines() if policy else []))
    emit(record, as_json, f"removed the gates of {name}@{alias}" if policy is None
         else f"gates of {name}@{alias}:\n{lines or '  (none)'}")


@group.command()
def show(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str | None, typer.Argument(help="One alias (default: all).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The gate policies in force and every change to them.

    Example: scorehouse gates show churn production
    """
    from ..evaluation import GatePolicy

    history = open_registry().gate_policy_history(name, alias)
    if as_json:
        emit_json([h.to_dict() for h in history])
        return
    current = {h.alias: h for h in history}
    for a, h in sorted(current.items()):
        lines = GatePolicy.from_dict(h.policy).lines() if h.policy else ["(removed)"]
        console.print(f"{name}@{a}:")
        for line in lines:
            console.print(f"  {line}")
    table(["at", "user", "alias", "policy", "reason"],
          [[h.at, h.user, h.alias, "; ".join(GatePolicy.from_dict(h.policy).lines())
            if h.policy else "(removed)", h.reason] for h in history], title="history")


@group.command()
def check(
    ref: Annotated[str, typer.Argument(help="Candidate version, e.g. churn/4.")],
    alias: Annotated[str, typer.Option("--alias", help="Alias whose gates to run.")],
    as_json: JsonOpt = False,
) -> None:
    """Run an alias's gates on a version without moving anything (for CI): exit 0 when
    they pass, 6 when they would refuse the promotion.

    Example: scorehouse gates check churn/4 --alias production
    """
    from ..evaluation import check_gates

    report = check_gates(open_registry(), ref, alias)
    if as_json:
        emit_json(report.to_dict())
    elif not report.policy:
        console.print(f"@{alias} has no gate policy: nothing to check")
    else:
        gate_table(report)
        if not report.passed:
            err_console.print(f"refused: {len(report.failing)} gate(s) failed")
    if not report.passed:
        raise typer.Exit(6)
