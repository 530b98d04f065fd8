"""The `deploy` group: deployments (an endpoint and its models by role) in the registry:
`create`, `show`, `list`, `set`, `history`, `rollback`. Every change is kept with who,
when, why and the full spec; `rollback` restores the spec before the last change.
`compare` reads the prediction log instead: the deployment's models pair by pair and its
canaries' windows (`evaluation.compare_deployment`, printed by `compare_output.py`).

`create` and `set` take the same role and option flags (`routing.flags.SpecChanges`);
`create --spec FILE.json` reads a whole spec (the JSON form of `routing.spec`) instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .common import JsonOpt, Reason, User, open_registry
from .output import console, emit, table

if TYPE_CHECKING:
    from ..evaluation.deployments import GatedChange

#: Added to the root app as `scorehouse deploy` by `cli/app.py`.
group = typer.Typer(help="Deployments: champion, challengers, shadows, canaries, decoy, "
                    "fallbacks and a default behind one endpoint name.", no_args_is_help=True)

Name = Annotated[str, typer.Argument(help="Deployment name, e.g. churn-api.")]
Champion = Annotated[str | None, typer.Option(help="The model that answers by default, e.g. churn@production.")]
Challenger = Annotated[list[str] | None, typer.Option("--challenger", help="REF=WEIGHT: a challenger answering that share (0..1) of sticky keys; weight 0 removes it (repeatable).")]
Shadow = Annotated[list[str] | None, typer.Option("--shadow", help="Model scoring every request off the response path (repeatable).")]
Canary = Annotated[list[str] | None, typer.Option("--canary", help="Stable reference model scoring every request, never answering (repeatable).")]
Fallback = Annotated[list[str] | None, typer.Option("--fallback", help="Model answering when the one before fails or misses the deadline; in order (repeatable).")]
Decoy = Annotated[bool | None, typer.Option("--decoy/--no-decoy", help="Archive every raw input to the prediction log.")]
Deadline = Annotated[float | None, typer.Option("--deadline-ms", help="Milliseconds each answering model gets before the next one answers (0: no deadline).")]
DefaultOpt = Annotated[str | None, typer.Option("--default", help="Last-resort answer: a JSON constant (0.0, \"no\").")]
DefaultRule = Annotated[str | None, typer.Option("--default-rule", help="Last-resort rule over input fields, e.g. '0.9 if support_calls > 3 else 0.1'.")]
StickyBy = Annotated[str | None, typer.Option("--sticky-by", help="Input field whose hash keeps a key on one model (default: the request id; '' clears).")]
RouteBy = Annotated[str | None, typer.Option("--route-by", help="Input field whose value picks a model (with --route; '' clears).")]
Route = Annotated[list[str] | None, typer.Option("--route", help="VALUE=REF: requests whose --route-by field is VALUE go to REF (repeatable).")]
Force = Annotated[bool, typer.Option("--force", help="Past failing gates (needs -m WHY; recorded in the history).")]


def _changes(**flags: Any) -> Any:
    from ..routing.flags import SpecChanges

    lists = ("challengers", "shadows", "canaries", "fallbacks", "remove", "routes")
    given: dict[str, Any] = {k: (v or []) if k in lists else v for k, v in flags.items()}
    return SpecChanges(**given)


def _show(stored: Any, as_json: bool, verb: str = "") -> None:
    def human() -> None:
        if verb:
            console.print(f"{verb} {stored.name} (revision {stored.revision})")
        for key, value in stored.spec.items():
            if key != "name":
                console.print(f"  {key}: {json.dumps(value)}")
    emit(stored.to_dict(), as_json, human)


@group.command("create")
def deploy_create(
    name: Name, champion: Champion = None, challenger: Challenger = None, shadow: Shadow = None,
    canary: Canary = None, fallback: Fallback = None, decoy: Decoy = None,
    deadline_ms: Deadline = None, default: DefaultOpt = None, default_rule: DefaultRule = None,
    sticky_by: StickyBy = None, route_by: RouteBy = None, route: Route = None,
    spec: Annotated[Path | None, typer.Option("--spec", help="Read the whole spec from this JSON file instead of flags.")] = None,
    force: Force = False, reason: Reason = "", user: User = None, as_json: JsonOpt = False,
) -> None:
    """Create a deployment; every model it names must be registered.

    Its champion passes the gates of @production and each weighted challenger those of
    @challenger (scorehouse gates set), as in deploy set: a failing gate refuses (exit 6)
    with the gate table and nothing is stored.

    Example:

        scorehouse deploy create churn-api --champion churn@production --challenger churn/3=0.1
        --shadow churn/4 --canary churn/1 --fallback churn/2 --deadline-ms 50 --default 0.0
        --sticky-by customer_id -m "A/B test v3"
    """
    from ..errors import UsageError
    from ..evaluation.deployments import create_deployment
    from ..routing.flags import apply
    from ..routing.spec import DeploymentSpec

    if spec is not None:
        made = DeploymentSpec.from_json(spec.read_text())
        if made.name != name:
            raise UsageError(f"--spec {spec}: its name is {made.name!r}, not {name!r}")
    else:
        if champion is None:
            raise UsageError("--champion REF is required (the model that answers by default)")
        made = apply(None, _changes(
            champion=champion, challengers=challenger, shadows=shadow, canaries=canary,
            fallbacks=fallback, decoy=decoy, deadline_ms=deadline_ms, default=default,
            default_rule=default_rule, sticky_by=sticky_by, route_by=route_by, routes=route),
            name=name)
    _gated(lambda: create_deployment(open_registry(), made, force=force, reason=reason,
                                     user=user), as_json, "created")


@group.command("set")
def deploy_set(
    name: Name, champion: Champion = None, challenger: Challenger = None, shadow: Shadow = None,
    canary: Canary = None, fallback: Fallback = None, decoy: Decoy = None,
    deadline_ms: Deadline = None, default: DefaultOpt = None, default_rule: DefaultRule = None,
    no_default: Annotated[bool, typer.Option("--no-default", help="Drop the default.")] = False,
    sticky_by: StickyBy = None, route_by: RouteBy = None, route: Route = None,
    promote: Annotated[str | None, typer.Option(help="Make this challenger the champion (the old champion leaves).")] = None,
    remove: Annotated[list[str] | None, typer.Option("--remove", help="Take this model out of every role but champion (repeatable).")] = None,
    force: Force = False, reason: Reason = "", user: User = None, as_json: JsonOpt = False,
) -> None:
    """Change a deployment: weights, roles, deadline, default, sticky field (a new revision).

    A model entering an answering role passes the gates its model's alias would: a new
    champion those of @production, a new challenger those of @challenger (scorehouse gates
    set); a failing gate refuses (exit 6) with the gate table and changes nothing.

    Examples:

        scorehouse deploy set churn-api --challenger churn/3=0.2 -m "more traffic"

        scorehouse deploy set churn-api --promote churn/3 -m "v3 wins"
    """
    from ..evaluation.deployments import change_deployment

    changes = _changes(
        champion=champion, challengers=challenger, shadows=shadow, canaries=canary,
        fallbacks=fallback, remove=remove, promote=promote, decoy=decoy,
        deadline_ms=deadline_ms, default=default, default_rule=default_rule,
        no_default=no_default, sticky_by=sticky_by, route_by=route_by, routes=route)
    _gated(lambda: change_deployment(open_registry(), name, changes, force=force,
                                     reason=reason, user=user), as_json, "changed")


def _gated(store: Callable[[], GatedChange], as_json: bool, done: str) -> None:
    """Run `store` (a gated create or change); print its gate tables and the stored
    deployment ("`done`"), or the refusal's table (exit 6)."""
    from .evaluating import gate_table, shows_refusal
    from .output import emit_json

    with shows_refusal(as_json):
        stored = store()
    if as_json:
        emit_json(stored.to_dict())
        return
    for report in stored.reports:
        if report.policy:
            gate_table(report)
    _show(stored.deployment, False, f"{done} past failing gates:" if stored.forced else done)


@group.command("show")
def deploy_show(name: Name, as_json: JsonOpt = False) -> None:
    """A deployment's spec as it stands, with its revision.

    Example:

        scorehouse deploy show churn-api --json
    """
    _show(open_registry().deployment(name), as_json, "deployment")


@group.command("list")
def deploy_list(as_json: JsonOpt = False) -> None:
    """Every deployment with its champion and revision.

    Example:

        scorehouse deploy list
    """
    rows = open_registry().deployments()
    emit([d.to_dict() for d in rows], as_json, lambda: table(
        ["deployment", "revision", "champion", "updated", "by"],
        [(d.name, d.revision, d.spec.get("champion"), d.updated_at, d.updated_by) for d in rows])
        if rows else console.print("no deployments yet"))


@group.command("history")
def deploy_history(name: Name, as_json: JsonOpt = False) -> None:
    """Every change of a deployment: when, who, what (create, set, rollback), why
    (--json gives each revision's full spec).

    Example:

        scorehouse deploy history churn-api
    """
    changes = open_registry().deployment_history(name)
    emit([c.to_dict() for c in changes], as_json, lambda: table(
        ["revision", "when", "user", "action", "restores", "reason", "champion", "challengers"],
        [(c.revision, c.at, c.user, c.action, c.restores, c.reason, c.spec.get("champion"),
          " ".join(f"{x['model']}={x['weight']:g}" for x in c.spec.get("challengers", [])))
         for c in changes],
        title=f"history of {name}"))


@group.command("rollback")
def deploy_rollback(name: Name, reason: Reason = "", user: User = None,
                    as_json: JsonOpt = False) -> None:
    """Restore the spec a deployment had before its last change (exit 6 when none).

    Example:

        scorehouse deploy rollback churn-api -m "v3 misbehaves"
    """
    stored = open_registry().rollback_deployment(name, reason=reason, user=user)
    _show(stored, as_json, "rolled back")


@group.command("compare")
def deploy_compare(
    name: Name,
    since: Annotated[str | None, typer.Option(help="Only rows logged since then: ISO time (UTC if naive) or an age such as 24h, 7d.")] = None,
    until: Annotated[str | None, typer.Option(help="Only rows logged before then (same forms as --since).")] = None,
    window: Annotated[str, typer.Option(help="The canary's windows: hour, 6h, day, 5000rows, all.")] = "hour",
    labels: Annotated[Path | None, typer.Option(help="Late labels (Parquet or CSV: id + target) for performance per model.")] = None,
    id_column: Annotated[str | None, typer.Option("--id", help="The labels' column of the request id.")] = None,
    target: Annotated[str | None, typer.Option(help="The labels' column of the true value.")] = None,
    positive: Annotated[str | None, typer.Option(help="The class whose probability is the score (default: the last class).")] = None,
    against: Annotated[str, typer.Option(help="The canary's reference: first (its first window) or training (its version's training baseline).")] = "first",
    source: Annotated[str | None, typer.Option(help="The Parquet prediction log (default $SCOREHOUSE_HOME/predictions).")] = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="Also write the comparison as one self-contained HTML page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Compare the models of a deployment on its logged requests: for each pair of roles,
    label agreement with McNemar's test, the paired score difference with its interval,
    score quantiles, performance with --labels (bootstrap interval); each canary's drift
    window by window, with a verdict: the input changed, or the new model differs.
    Exits 0 whatever it finds; 3 when the deployment logged no rows.

    Example:

        scorehouse deploy compare churn-api --since 24h --labels labels.parquet --id id
        --target churned -o compare.html
    """
    from .compare_output import compare

    compare(name, since=since, until=until, window=window, labels=labels,
            id_column=id_column, target=target, positive=positive, against=against,
            source=source, output=output, as_json=as_json)
