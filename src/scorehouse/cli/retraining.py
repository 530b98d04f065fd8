"""`retrain`: refit a registered version's training recipe on new data and offer the new
version as the challenger through that alias's gates (`evaluation.retrain`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .common import JsonOpt, Reason, User, open_registry
from .evaluating import SHOWN, gate_table
from .output import console, emit_json, err_console, figure, table

#: Merged into the root app by `cli/app.py`.
commands = typer.Typer()


@commands.command()
def retrain(
    ref: Annotated[str, typer.Argument(help="Version to retrain, e.g. churn@production or churn/3.")],
    data: Annotated[Path, typer.Option("--data", help="New training data with the target column (.parquet/.csv/.jsonl).")],
    holdout: Annotated[Path | None, typer.Option(help="Evaluate on this file (with the target) and fit on all of --data, instead of the split the recipe records.")] = None,
    alias: Annotated[str, typer.Option(help="Alias offered to the new version through its gates; one other than challenger needs a gate policy.")] = "challenger",
    segment: Annotated[list[str] | None, typer.Option(
        "--segment", help="A column to break the holdout metrics down by (repeatable).")] = None,
    reason: Reason = "",
    user: User = None,
    as_json: JsonOpt = False,
) -> None:
    """Refit a version on new data by the training recipe its artifact keeps, register the
    result (its lineage names the parent), evaluate it, its parent and the versions its
    gates compare with on one holdout, and point @challenger at it when the gates pass.

    Exit 0 when the alias moved, or when there is nothing to do (the data's fingerprint was
    retrained on before); 6 when the gates refused (the new version stays registered, the
    alias does not move); 2 when the version has no training recipe.

    Example: scorehouse retrain churn@production --data new.parquet
    """
    from ..evaluation import retrain as run

    done = run(ref, data, holdout=holdout, alias=alias, segments=segment or [],
               registry=open_registry(), reason=reason, user=user)
    if as_json:
        emit_json(done.to_dict())
    elif done.noop:
        console.print(f"nothing to do: {done.same_as} was already fitted on data of this "
                      f"fingerprint ({done.data.fingerprint[:19]}…, {done.data.rows:,} rows); "
                      + (f"@{done.alias} is {done.current}" if done.current == done.same_as
                         else f"@{done.alias} is {done.current or 'not set'} (scorehouse promote "
                         f"{done.same_as} {done.alias} offers it)"))
    else:
        _print(done)
    if done.exit_code:
        raise typer.Exit(done.exit_code)


def _print(done: Any) -> None:
    held = done.evaluations[done.version].counts.read if done.version in done.evaluations else 0
    source = done.data.source or "the data"
    console.print(f"retrained {done.parent} on {source}: fit on {done.train_rows:,} rows, "
                  f"evaluated on {held:,} ({done.split}) -> registered {done.version}")
    refs = list(done.evaluations)
    names = [m for m in SHOWN if any(m in e.metrics.values for e in done.evaluations.values())]
    heads = [f"{r} (new)" if r == done.version else f"{r} (parent)" if r == done.parent
             else r for r in refs]
    table(["metric", *heads], [[m, *(figure(done.evaluations[r].metrics.get(m)) for r in refs)]
                               for m in names], title="on the same holdout")
    report = done.report
    if report is not None and report.policy:
        gate_table(report)
    if done.refused:
        where = f"stays at {report.current}" if report.current else "is not set"
        err_console.print(f"refused: {len(report.failing)} gate(s) failed; {done.version} stays "
                          f"registered and @{done.alias} {where} (scorehouse promote "
                          f"{done.version} {done.alias} --force -m WHY overrides)")
        return
    move = done.move
    was = f", was {move.model}/{move.from_version}" if move.from_version else ""
    gates = "gates passed" if report is not None and report.policy else "no gate policy on it"
    console.print(f"@{done.alias} -> {done.version} ({gates}{was})")
