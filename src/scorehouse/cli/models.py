"""The `models` group: what the registry holds (`list`, `show`), what happened to a model
(`history`), and what a version was trained on (`lineage`)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from .common import JsonOpt, open_registry
from .output import console, emit, table

#: Added to the root app as `scorehouse models` by `cli/app.py`.
group = typer.Typer(help="List and inspect registered models.", no_args_is_help=True)


@group.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Every model with its latest version and aliases.

    Example:

        scorehouse models list --json
    """
    rows = open_registry().models()
    emit(rows, as_json, lambda: table(
        ["model", "versions", "aliases", "updated"],
        [(r["name"], r["versions"], " ".join(f"{a}={v}" for a, v in r["aliases"].items()),
          r["updated_at"]) for r in rows]) if rows else console.print("no models registered yet"))


@group.command("show")
def models_show(name: Annotated[str, typer.Argument(help="Model name.")],
                as_json: JsonOpt = False) -> None:
    """Every version of a model with status, aliases and metrics.

    Example:

        scorehouse models show churn
    """
    vs = open_registry().versions(name)
    emit([v.to_dict(lineage=True) for v in vs], as_json, lambda: table(
        ["version", "status", "aliases", "task", "flavor", "created", "by", "metrics",
         "description"],
        [(v.version, v.status, " ".join(v.aliases), v.task, v.flavor, v.created_at, v.created_by,
          _metrics_text(v.lineage.get("metrics", {})), v.description) for v in vs], title=name))


def _metrics_text(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:3])


@group.command("history")
def models_history(name: Annotated[str, typer.Argument(help="Model name.")],
                   alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
                   as_json: JsonOpt = False) -> None:
    """Every registration, alias move, rollback and archive, with time, user and reason.

    Example:

        scorehouse models history churn --alias production
    """
    evs = open_registry().history(name, alias)
    emit([e.to_dict() for e in evs], as_json, lambda: table(
        ["when", "user", "action", "alias", "from", "to", "reason"],
        [(e.at, e.user, e.action, e.alias, e.from_version, e.version, e.reason) for e in evs],
        title=f"history of {name}"))


@group.command("lineage")
def models_lineage(ref: Annotated[str, typer.Argument(help="e.g. churn/3 or churn@production")],
                   as_json: JsonOpt = False) -> None:
    """Training data fingerprint, parameters, metrics and library versions of a version.

    Example:

        scorehouse models lineage churn@production --json
    """
    lin = open_registry().lineage(ref)
    emit(lin, as_json, lambda: console.print_json(json.dumps(lin, default=str), ensure_ascii=True))
