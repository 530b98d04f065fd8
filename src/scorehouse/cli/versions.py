"""The registry's versions: `register` an artifact, move aliases (`promote`, `rollback`,
`unalias`), `archive` and `restore` a version. Every change is kept in the history."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .common import JsonOpt, Reason, User, open_registry
from .evaluating import gate_table, shows_refusal
from .output import console, emit, emit_json, err_console

#: Merged into the root app by `cli/app.py`.
commands = typer.Typer()


@commands.command()
def register(
    path: Annotated[Path, typer.Argument(help="Artifact file or folder to register.")],
    description: Annotated[str, typer.Option(help="Note for this version (default: the artifact's description).")] = "",
    refuse_duplicate: Annotated[bool, typer.Option("--refuse-duplicate", help="Refuse (exit 6) an artifact that is already a version of its model, instead of registering it again.")] = False,
    user: User = None,
    as_json: JsonOpt = False,
) -> None:
    """Register an artifact as the next version of its model.

    Says which version it already is when the same artifact was registered before, and how
    the input schema differs from the previous version's, if it does. Registering runs no
    code, but servers load registered versions without asking: with $SCOREHOUSE_SIGNING_KEY
    set, only artifacts signed under it are taken.

    Example: scorehouse register churn.shz
    """
    reg = open_registry()
    mv = reg.register(path, description=description, user=user,
                      allow_duplicate=not refuse_duplicate)
    versions = reg.versions(mv.name)
    same = [v.ref for v in versions
            if v.manifest_sha256 == mv.manifest_sha256 and v.version < mv.version]
    older = [v for v in versions if v.version < mv.version]
    diff = reg.schema_diff(older[-1].ref, mv.ref) if older else None
    if as_json:
        emit_json({**mv.to_dict(), "same_as": same, "schema_diff": _diff_json(diff)})
        return
    console.print(f"registered {mv.ref} (manifest {mv.manifest_sha256[:12]})")
    if same:
        err_console.print(f"note: the same artifact is already {', '.join(same)} (same manifest "
                          "sha256); --refuse-duplicate refuses instead", markup=False,
                          highlight=False)
    if diff:
        head = (f"warning: {mv.ref} shares no input column with {older[-1].ref}: is it the same "
                "model? (its input schema, against the previous version's:)" if diff.disjoint
                else f"note: {mv.ref}'s input schema differs from {older[-1].ref}'s:")
        err_console.print(head, markup=False, highlight=False)
        for line in diff.lines():
            err_console.print(f"  {line}", markup=False, highlight=False)


def _diff_json(diff: Any) -> dict[str, Any] | None:
    if diff is None:
        return None
    return {"added": list(diff.added), "removed": list(diff.removed),
            "changed": [vars(c) for c in diff.changed], "disjoint": diff.disjoint}


@commands.command()
def promote(
    ref: Annotated[str, typer.Argument(help="Version to promote, e.g. churn/3.")],
    alias: Annotated[str, typer.Argument(help="Alias to point at it, e.g. production.")],
    force: Annotated[bool, typer.Option("--force", help="Promote past failing gates (needs -m WHY; recorded in the history).")] = False,
    reason: Reason = "",
    user: User = None,
    as_json: JsonOpt = False,
) -> None:
    """Point an alias (production, staging, champion, ...) at a version.

    When the alias has a gate policy (scorehouse gates set), the gates run first: a
    failing gate refuses (exit 6) with a table of each gate's figure and verdict.

    Example:

        scorehouse promote churn/3 production -m "holdout AUC 0.91"
    """
    from ..evaluation import promote as gated_promote

    with shows_refusal(as_json):
        done = gated_promote(open_registry(), ref, alias, force=force, reason=reason, user=user)
    if not done.report.policy:  # no gates: exactly what promote printed before gates existed
        emit(done.move, as_json, _move_text(done.move))
        return

    def text() -> None:
        gate_table(done.report)
        console.print(_move_text(done.move)
                      + (" (FORCED past failing gates)" if done.forced else ""))

    emit(done, as_json, text)


@commands.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias to move back, e.g. production.")],
    reason: Reason = "",
    user: User = None,
    as_json: JsonOpt = False,
) -> None:
    """Move an alias back to the version it held before its last promotion.

    Example:

        scorehouse rollback churn production -m "v3 misbehaves"
    """
    move = open_registry().rollback(name, alias, reason=reason, user=user)
    emit(move, as_json, _move_text(move))


@commands.command()
def unalias(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="Alias to delete.")],
    reason: Reason = "",
    user: User = None,
    as_json: JsonOpt = False,
) -> None:
    """Delete an alias (its history is kept).

    Example:

        scorehouse unalias churn staging
    """
    move = open_registry().remove_alias(name, alias, reason=reason, user=user)
    emit(move, as_json, f"removed {name}@{alias} (was version {move['from_version']})")


def _move_text(move: Any) -> str:
    where = f"{move['model']}@{move['alias']}"
    if not move["changed"]:
        return f"{where} already points to version {move['version']}; nothing changed"
    return f"{where}: version {move['from_version'] or '-'} -> {move['version']} ({move['action']})"


@commands.command()
def archive(ref: Annotated[str, typer.Argument(help="Version, e.g. churn/1.")],
            reason: Reason = "", user: User = None, as_json: JsonOpt = False) -> None:
    """Archive a version: kept for audit, never promoted (it must hold no alias).

    Example:

        scorehouse archive churn/1 -m "superseded"
    """
    mv = open_registry().archive(ref, reason=reason, user=user)
    emit(mv.to_dict(), as_json, f"archived {mv.ref}")


@commands.command()
def restore(ref: Annotated[str, typer.Argument(help="Version, e.g. churn/1.")],
            reason: Reason = "", user: User = None, as_json: JsonOpt = False) -> None:
    """Restore an archived version.

    Example:

        scorehouse restore churn/1
    """
    mv = open_registry().restore(ref, reason=reason, user=user)
    emit(mv.to_dict(), as_json, f"restored {mv.ref}")
