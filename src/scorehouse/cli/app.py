"""The `scorehouse` command: verbs for packaging, the registry and scoring.

Exit codes: 0 ok; 1 error; 2 bad usage, unsupported model, or a compiled runtime the parity
gate rejected; 3 not found; 4 invalid input (rows rejected); 5 artifact refused (tampered,
untrusted, bad signature); 6 conflict (e.g. nothing to roll back; a SQL function name another
model holds).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.markup import escape

from .. import __version__
from ..errors import InvalidInputError, ScorehouseError
from .output import (
    console,
    emit,
    emit_json,
    err_console,
    error_line,
    printable,
    table,
    warning_line,
)

try:  # recent typer vendors its own click and does not install click itself
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover - older typer runs on click
    from click import exceptions as click_exc
# Older typer re-exports click's Exit/Abort; newer typer has its own classes.
_EXIT = (typer.Exit, getattr(click_exc, "Exit", typer.Exit))
_ABORT = (typer.Abort, getattr(click_exc, "Abort", typer.Abort))
_CLICK_ERRORS = (click_exc.ClickException,)

app = typer.Typer(
    help="scorehouse: package a trained model, register every version, score it anywhere.\n\n"
    "Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 rows rejected, 5 artifact refused, "
    "6 conflict.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
models_app = typer.Typer(help="List and inspect registered models.", no_args_is_help=True)
app.add_typer(models_app, name="models")
db_app = typer.Typer(help="Score inside PostgreSQL: PL/Python functions over registered models.",
                     no_args_is_help=True)
app.add_typer(db_app, name="db")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts and CI/CD.")]
RuntimeOpt = Annotated[Literal["native", "onnx"] | None, typer.Option(
    help="native (the model's own library) or onnx (the compiled graph); default: onnx when it "
         "passed the parity gate at packaging, else native.")]
ColumnsOpt = Annotated[str, typer.Option(
    help="lenient: score inputs lacking an optional column (rows flagged absent_column) or "
         "carrying unknown ones (reported); strict: refuse them (exit 4).")]
#: --accept-parity-difference: the one way to run a compiled graph the parity gate rejected.
ACCEPT_HELP = ("With --runtime onnx: score with the compiled graph even though it failed the "
               "parity gate at packaging (refused otherwise); results then say so.")
Reason = Annotated[str, typer.Option("--reason", "-m", help="Why (kept in the history).")]
User = Annotated[str | None, typer.Option("--user", help="Who (default: $SCOREHOUSE_USER or login).")]
_state: dict[str, str | None] = {"registry": None, "artifacts": None}


def _print_version(value: bool) -> None:
    # Eager, so `scorehouse --version` works without a command.
    if value:
        console.print(f"scorehouse {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    registry: Annotated[str | None, typer.Option(
        "--registry", envvar="SCOREHOUSE_REGISTRY",
        help="Registry database URL (default: SQLite in $SCOREHOUSE_HOME).")] = None,
    artifacts: Annotated[str | None, typer.Option(
        "--artifacts", envvar="SCOREHOUSE_ARTIFACTS",
        help="Artifact store, any fsspec URL (default: $SCOREHOUSE_HOME/artifacts).")] = None,
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version.")] = False,
) -> None:
    _state.update(registry=registry, artifacts=artifacts)


def _registry():
    from ..registry import Registry

    return Registry(_state["registry"], _state["artifacts"])


# --- the main job ----------------------------------------------------------------------------


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where to write data and scores.")]
    = Path("scorehouse-demo"),
    rows: Annotated[int, typer.Option(help="Training rows to generate.")] = 20_000,
    as_json: JsonOpt = False,
) -> None:
    """Generate churn data, train, package, register, promote and score a file.

    Example:

        scorehouse demo --rows 5000
    """
    from ..demo import run_demo

    reg = _registry()
    say = (lambda *_: None) if as_json else console.print
    say(f"scorehouse demo: registry {reg.url}\n")
    out = run_demo(directory, reg, rows=rows, say=say)
    if as_json:
        emit_json(out)
        return
    console.print(f"\ndone in {out['seconds']}s. Try next:\n"
                  "  scorehouse models list\n"
                  "  scorehouse models show churn\n"
                  "  scorehouse predict churn@production --json "
                  "'{\"tenure\": 3, \"plan\": \"gold\", \"contract\": \"month-to-month\", "
                  "\"monthly_charges\": 72.5, \"total_charges\": 210, \"support_calls\": 4, "
                  "\"complaints\": 1, \"age\": 41, \"data_usage_gb\": 3.2, "
                  "\"days_since_login\": 12, \"payment_method\": \"invoice\", "
                  "\"region\": \"north\"}'\n"
                  f"  scorehouse register {out['artifact']} && scorehouse promote churn/2 "
                  "production\n"
                  "  scorehouse rollback churn production\n"
                  "  scorehouse models history churn")


# --- artifacts ---------------------------------------------------------------------------------


@app.command("package")
def package_cmd(
    model: Annotated[Path, typer.Argument(help="Model file: .joblib/.pkl, .onnx, .lgb.txt, .ubj")],
    train_data: Annotated[Path, typer.Option("--train-data", help="Training data (.parquet/.csv/.jsonl).")],
    name: Annotated[str, typer.Option("--name", help="Model name in the registry.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Artifact path (default NAME.shz; a folder if no .shz).")] = None,
    target: Annotated[str | None, typer.Option(help="Target column: excluded from inputs, used for metrics.")] = None,
    schema: Annotated[Path | None, typer.Option(help="JSON schema file, or per-column overrides {col: {field: value}}.")] = None,
    task: Annotated[str | None, typer.Option(help="binary, multiclass or regression (when not inferable).")] = None,
    classes: Annotated[str | None, typer.Option(help="Comma-separated class labels (when not inferable).")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="Extra metric NAME=VALUE (repeatable).")] = None,
    description: Annotated[str, typer.Option(help="What this model is for.")] = "",
    compile_onnx: Annotated[bool, typer.Option("--compile/--no-compile", help="Also compile to ONNX, used when it passes the parity gate.")] = True,
    tolerance: Annotated[float, typer.Option(help="Parity gate: largest allowed difference from the native model.")] = 1e-6,
    as_json: JsonOpt = False,
) -> None:
    """Package a trained model with its schema, lineage and baseline.

    Examples:

        scorehouse package model.joblib --train-data train.parquet --name churn --target churned

        scorehouse package model.onnx --train-data train.csv --name fraud --task binary --classes no,yes
    """
    from ..packaging import package
    from .model_files import load_model_file

    kwargs: dict[str, Any] = {}
    if schema is not None:
        spec = json.loads(schema.read_text())
        key = "schema" if isinstance(spec, list) or "columns" in spec else "schema_overrides"
        kwargs[key] = spec
    metrics = {}
    for m in metric or []:
        k, _, v = m.partition("=")
        try:
            metrics[k] = float(v)
        except ValueError:
            raise click_exc.BadParameter(f"--metric {m!r}: expected NAME=NUMBER") from None
    path = package(
        load_model_file(model), train_data, name=name, path=output, target=target, task=task,
        classes=[_label(c) for c in classes.split(",")] if classes else None,
        metrics=metrics, description=description, compile=compile_onnx, tolerance=tolerance,
        **kwargs,
    )
    from .. import artifact as artifact_io
    from ..packaging.parity import runtime_summary

    art = artifact_io.read(path, require_trust=False, check_versions=False)
    m = art.manifest
    out = {"artifact": str(path), "name": m["name"], "task": m["task"], "flavor": art.flavor,
           "manifest_sha256": art.manifest_sha256, "inputs": len(m["input_schema"]["columns"]),
           "metrics": m["lineage"]["metrics"], "runtime": m["model"]["runtime"],
           "compiled": m.get("compiled")}
    nullable = {c["name"]: c.get("nullable_reason") or "nullable"
                for c in m["input_schema"]["columns"] if c.get("nullable")}
    out["nullable"] = nullable
    emit(out, as_json, f"packaged {m['name']} ({m['task']}, {art.flavor}, "
         f"{out['inputs']} inputs) -> {path}\n{runtime_summary(m)}\n"
         + (f"nullable: {'; '.join(f'{k} ({v})' for k, v in nullable.items())}" if nullable
            else "nullable: none (every input is required)"))


def _label(s: str) -> Any:
    try:
        return int(s)
    except ValueError:
        return s


@app.command()
def inspect(
    ref: Annotated[str, typer.Argument(help="Artifact path or registry reference.")],
    trust: Annotated[bool, typer.Option(
        hidden=True, help="Ignored: inspect reads the manifest only and runs no code.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Show an artifact's manifest: schema, lineage, environment, metrics (runs no code).

    Examples:

        scorehouse inspect churn@production

        scorehouse inspect churn.shz --json
    """
    art = _artifact(ref)
    m = art.manifest
    if as_json:
        emit_json({**m, "manifest_sha256": art.manifest_sha256})
        return
    console.print(f"[bold]{escape(printable(str(m['name'])))}[/] {m['task']} ({art.flavor}); "
                  f"manifest sha256 {art.manifest_sha256}", markup=True)
    if m.get("classes"):
        console.print(f"classes: {m['classes']}")
    table(["input", "type", "nullable", "categories / range"],
          [(c["name"], c["type"] + (f" ({c['category_type']} categories)"
                                    if c.get("category_type") else ""),
            c.get("nullable_reason") or c.get("nullable", False), _span(c))
           for c in m["input_schema"]["columns"]])
    lin = m.get("lineage", {})
    console.print(f"trained on {lin.get('training_data', {}).get('rows')} rows "
                  f"({lin.get('training_data', {}).get('fingerprint', '')[:19]}…), "
                  f"created {lin.get('created_at')} by {lin.get('created_by')}")
    console.print(f"metrics: {lin.get('metrics', {})}")
    console.print(f"needs: {m.get('environment', {}).get('requirements', {})}")
    from ..packaging.parity import runtime_summary

    console.print(runtime_summary(m))


def _span(c: dict[str, Any]) -> str:
    if c.get("categories") is not None:
        cats = c["categories"]
        return ", ".join(cats[:6]) + (f" … ({len(cats)})" if len(cats) > 6 else "")
    if c.get("min") is not None:
        return f"{c['min']:g} .. {c['max']:g}"
    return ""


def _artifact(ref: str):
    from .. import artifact as artifact_io
    from ..loading import is_path

    if is_path(ref):  # verified, but never loaded: reading metadata needs no trust
        return artifact_io.read(ref, require_trust=False, check_versions=False)
    return _registry().load_artifact(ref)[0]


@app.command()
def verify(
    path: Annotated[Path, typer.Argument(help="Artifact file or folder.")],
    key: Annotated[str | None, typer.Option(envvar="SCOREHOUSE_SIGNING_KEY", help="HMAC key.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check every file hash (and the signature, given a key).

    Example:

        scorehouse verify churn.shz --key "$SCOREHOUSE_SIGNING_KEY"
    """
    from .. import artifact as artifact_io

    art = artifact_io.read(path, key=key, require_trust=False, check_versions=False)
    out = {"artifact": str(path), "ok": True, "manifest_sha256": art.manifest_sha256,
           "files": len(art.files), "signature": "verified" if key else "not checked",
           "runs_code_when_loaded": art.pickled}
    code = "; holds pickled code, which runs when loaded" if art.pickled else ""
    emit(out, as_json, f"ok: {path} ({len(art.files)} files verified, signature "
         f"{out['signature']}{code})")


@app.command()
def sign(
    path: Annotated[Path, typer.Argument(help="Artifact file or folder.")],
    key: Annotated[str, typer.Option(envvar="SCOREHOUSE_SIGNING_KEY", help="HMAC key.")],
    as_json: JsonOpt = False,
) -> None:
    """Sign an artifact with an HMAC key, after verifying its hashes.

    Example:

        scorehouse sign churn.shz --key "$SCOREHOUSE_SIGNING_KEY"
    """
    from .. import artifact as artifact_io

    artifact_io.resign(path, key)
    emit({"artifact": str(path), "signed": True}, as_json, f"signed {path}")


# --- registry ----------------------------------------------------------------------------------


@app.command()
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
    reg = _registry()
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


@app.command()
def promote(
    ref: Annotated[str, typer.Argument(help="Version to promote, e.g. churn/3.")],
    alias: Annotated[str, typer.Argument(help="Alias to point at it, e.g. production.")],
    reason: Reason = "",
    user: User = None,
    as_json: JsonOpt = False,
) -> None:
    """Point an alias (production, staging, champion, ...) at a version.

    Example:

        scorehouse promote churn/3 production -m "holdout AUC 0.91"
    """
    move = _registry().promote(ref, alias, reason=reason, user=user)
    emit(move, as_json, _move_text(move))


@app.command()
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
    move = _registry().rollback(name, alias, reason=reason, user=user)
    emit(move, as_json, _move_text(move))


@app.command()
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
    move = _registry().remove_alias(name, alias, reason=reason, user=user)
    emit(move, as_json, f"removed {name}@{alias} (was version {move['from_version']})")


def _move_text(move: dict[str, Any]) -> str:
    where = f"{move['model']}@{move['alias']}"
    if not move["changed"]:
        return f"{where} already points to version {move['version']}; nothing changed"
    return f"{where}: version {move['from_version'] or '-'} -> {move['version']} ({move['action']})"


@app.command()
def archive(ref: Annotated[str, typer.Argument(help="Version, e.g. churn/1.")],
            reason: Reason = "", user: User = None, as_json: JsonOpt = False) -> None:
    """Archive a version: kept for audit, never promoted (it must hold no alias).

    Example:

        scorehouse archive churn/1 -m "superseded"
    """
    mv = _registry().archive(ref, reason=reason, user=user)
    emit(mv.to_dict(), as_json, f"archived {mv.ref}")


@app.command()
def restore(ref: Annotated[str, typer.Argument(help="Version, e.g. churn/1.")],
            reason: Reason = "", user: User = None, as_json: JsonOpt = False) -> None:
    """Restore an archived version.

    Example:

        scorehouse restore churn/1
    """
    mv = _registry().restore(ref, reason=reason, user=user)
    emit(mv.to_dict(), as_json, f"restored {mv.ref}")


@models_app.command("list")
def models_list(as_json: JsonOpt = False) -> None:
    """Every model with its latest version and aliases.

    Example:

        scorehouse models list --json
    """
    rows = _registry().models()
    emit(rows, as_json, lambda: table(
        ["model", "versions", "aliases", "updated"],
        [(r["name"], r["versions"], " ".join(f"{a}={v}" for a, v in r["aliases"].items()),
          r["updated_at"]) for r in rows]) if rows else console.print("no models registered yet"))


@models_app.command("show")
def models_show(name: Annotated[str, typer.Argument(help="Model name.")],
                as_json: JsonOpt = False) -> None:
    """Every version of a model with status, aliases and metrics.

    Example:

        scorehouse models show churn
    """
    vs = _registry().versions(name)
    emit([v.to_dict(lineage=True) for v in vs], as_json, lambda: table(
        ["version", "status", "aliases", "task", "flavor", "created", "by", "metrics",
         "description"],
        [(v.version, v.status, " ".join(v.aliases), v.task, v.flavor, v.created_at, v.created_by,
          _metrics_text(v.lineage.get("metrics", {})), v.description) for v in vs], title=name))


def _metrics_text(metrics: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:3])


@models_app.command("history")
def models_history(name: Annotated[str, typer.Argument(help="Model name.")],
                   alias: Annotated[str | None, typer.Option(help="Only this alias.")] = None,
                   as_json: JsonOpt = False) -> None:
    """Every registration, alias move, rollback and archive, with time, user and reason.

    Example:

        scorehouse models history churn --alias production
    """
    evs = _registry().history(name, alias)
    emit([e.to_dict() for e in evs], as_json, lambda: table(
        ["when", "user", "action", "alias", "from", "to", "reason"],
        [(e.at, e.user, e.action, e.alias, e.from_version, e.version, e.reason) for e in evs],
        title=f"history of {name}"))


@models_app.command("lineage")
def models_lineage(ref: Annotated[str, typer.Argument(help="e.g. churn/3 or churn@production")],
                   as_json: JsonOpt = False) -> None:
    """Training data fingerprint, parameters, metrics and library versions of a version.

    Example:

        scorehouse models lineage churn@production --json
    """
    lin = _registry().lineage(ref)
    emit(lin, as_json, lambda: console.print_json(json.dumps(lin, default=str), ensure_ascii=True))


# --- scoring -----------------------------------------------------------------------------------


@app.command()
def predict(
    ref: Annotated[str, typer.Argument(help="churn@production, churn/3, or an artifact path.")],
    json_input: Annotated[str | None, typer.Option(
        "--json", help="One record or a list of records as JSON (output is always JSON).")] = None,
    input_file: Annotated[Path | None, typer.Option(
        "--input", "-i", help="JSON Lines file of records ('-' for stdin).")] = None,
    runtime: RuntimeOpt = None,
    accept_parity_difference: Annotated[bool, typer.Option(help=ACCEPT_HELP)] = False,
    trust: Annotated[bool, typer.Option(help="Trust pickled code in an artifact file.")] = False,
    columns: ColumnsOpt = "lenient",
) -> None:
    """Score records given as JSON; prints predictions and rejects as JSON (exit 4 on rejects).

    Examples:

        scorehouse predict churn@production --json '{"tenure": 3, "plan": "gold"}'

        scorehouse predict churn/3 -i records.jsonl
    """
    from ..loading import is_path, load

    if (json_input is None) == (input_file is None):
        raise click_exc.UsageError("give exactly one of --json '{...}' or --input FILE.jsonl")
    records = _records(json_input, input_file)
    scorer = load(ref, registry=None if is_path(ref) else _registry(), runtime=runtime,
                  trust=trust, accept_parity_difference=accept_parity_difference)
    result = scorer.predict(records, columns=_policy(columns))
    if not result.column_check.clean:
        err_console.print(f"[yellow]warning:[/] {result.column_check.describe()}", markup=True)
    emit_json({"model": scorer.name, "version": scorer.version, "runtime": result.runtime,
               **({"parity_accepted": result.parity_accepted} if result.parity_accepted else {}),
               "predictions": result.to_records(),
               "rejects": [r.to_dict() for r in result.rejects],
               "columns": result.column_check.to_dict()})
    if result.rejects:
        raise typer.Exit(InvalidInputError.exit_code)


@app.command()
def score(
    ref: Annotated[str, typer.Argument(help="churn@production, churn/3, or an artifact path.")],
    input: Annotated[str, typer.Argument(help="File (.csv[.gz|.zst], .parquet, .jsonl), Parquet folder or glob, '-' for stdin, or a database URL (postgresql://…?table=t, sqlite:///f.db?table=t, duckdb:///f.duckdb?table=t).")],
    output: Annotated[str | None, typer.Argument(help="File, '-' for stdout, or a database URL with ?table=…; optional with --to.")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="Input format: csv, parquet or jsonl (default: from the extension).")] = None,
    output_format: Annotated[str | None, typer.Option(help="Output format (default: from the extension).")] = None,
    keep: Annotated[str | None, typer.Option(help="Input columns to pass through: 'id,segment' or 'all'.")] = None,
    with_model: Annotated[bool, typer.Option(help="Add model and model_version columns.")] = False,
    workers: Annotated[int, typer.Option(help="Scoring threads (0: auto; the ONNX runtime already spreads each chunk over every core).")] = 0,
    chunk_rows: Annotated[int, typer.Option(help="Rows per chunk; memory grows with chunk x workers, not with the input.")] = 49152,
    max_reject_rate: Annotated[float, typer.Option(help="Exit 4 when the share of rejected rows is above this (0: any reject).")] = 0.0,
    query: Annotated[str | None, typer.Option(help="SQL query to read instead of ?table= (database input).")] = None,
    key: Annotated[str | None, typer.Option(help="Key column: upsert on it in a table, name each Redis hash by it.")] = None,
    to: Annotated[str | None, typer.Option("--to", help="Also write scores to Redis: redis://host:6379/0 (needs --key).")] = None,
    ttl: Annotated[int | None, typer.Option(help="Expire Redis hashes after this many seconds.")] = None,
    rejects: Annotated[Path | None, typer.Option(help="Rejects CSV (default: OUTPUT.rejects.csv, or $SCOREHOUSE_HOME/runs/…).")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Run manifest JSON (default: OUTPUT.run.json, or $SCOREHOUSE_HOME/runs/…).")] = None,
    runtime: RuntimeOpt = None,
    accept_parity_difference: Annotated[bool, typer.Option(help=ACCEPT_HELP)] = False,
    trust: Annotated[bool, typer.Option(help="Trust pickled code in an artifact file.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run manifest as JSON on stdout.")] = False,
    engine: Annotated[str, typer.Option(help="batch (this machine) or spark (Parquet in and out, on a Spark cluster).")] = "batch",
    master: Annotated[str | None, typer.Option(help="Spark master for --engine spark: local[*], spark://host:7077, … (default: spark-submit's, else local[*]).")] = None,
    columns: ColumnsOpt = "lenient",
) -> None:
    """Score a file, folder or table in bounded memory; exit 0 all scored, 4 too many rejects, 1 failure.

    Examples:

        scorehouse score churn@production customers.csv scores.csv --keep customer_id

        scorehouse score churn@production 'data/*.parquet' scores.parquet --keep all --with-model
    """
    from ..batch import Options
    from ..loading import is_path, load

    if output is None and to is None:
        raise click_exc.UsageError("give an OUTPUT, --to redis://…, or both")
    if as_json and output == "-":
        raise click_exc.UsageError("--json prints on stdout, which the output '-' already uses")
    if engine not in ("batch", "spark"):
        raise click_exc.UsageError(f"--engine must be batch or spark, not {engine!r}")
    scorer = load(ref, registry=None if is_path(ref) else _registry(), runtime=runtime, trust=trust,
                  accept_parity_difference=accept_parity_difference)
    kept = None if keep is None else ("*",) if keep == "all" else [k.strip() for k in keep.split(",") if k.strip()]
    options = Options(keep=kept, with_model=with_model, workers=workers, chunk_rows=chunk_rows,
                      max_reject_rate=max_reject_rate, columns=_policy(columns))
    if engine == "spark":
        if output is None or to or query or output == "-" or input == "-":
            raise click_exc.UsageError("--engine spark reads Parquet from INPUT and writes Parquet to OUTPUT "
                                       "(no stdin/stdout, --to or --query)")
        result, written = _score_on_spark(scorer, input, output, options, master, rejects, manifest)
    else:
        result, written = _score_here(scorer, input, output, options, fmt, output_format, query, key, to, ttl,
                             rejects, manifest, quiet)
    if as_json:
        emit_json(result)
    elif not quiet:
        _run_summary(result, written)
    if result["exit_code"]:
        raise typer.Exit(result["exit_code"])


def _score_on_spark(scorer: Any, input: str, output: str, options: Any, master: str | None,
                    rejects: Path | None, manifest: Path | None) -> tuple[dict[str, Any], Path]:
    from ..spark.job import JobPaths, run_job, session

    local = "://" not in output or output.startswith("file://")
    paths = JobPaths(output, str(rejects) if rejects else f"{output}.rejects.parquet",
                     manifest or (Path(f"{output}.run.json") if local else _side_manifest(scorer.name)))
    return run_job(session(master, options.chunk_rows), scorer, input, paths, options), paths.manifest


def _side_manifest(model: str) -> Path:
    from ..batch import side_files

    return side_files(None, model)[1]


def _score_here(scorer: Any, input: str, output: str | None, options: Any, fmt: str | None,
                output_format: str | None, query: str | None, key: str | None, to: str | None,
                ttl: int | None, rejects: Path | None, manifest: Path | None, quiet: bool
                ) -> tuple[dict[str, Any], Path]:
    from ..batch import Progress, RejectsFile, open_cache, open_input, open_output, run, side_files

    source = open_input(input, fmt=fmt, query=query, chunk_rows=options.chunk_rows,
                        categorical=scorer.schema.text_names)
    kept = options.keep
    if key and not (kept and (kept == ("*",) or key in kept)):
        kept = [*(kept or []), key]  # the key column is what an upsert or a lookup needs
    sinks = []
    try:
        if output is not None:
            sinks.append(open_output(output, fmt=output_format, key=key))
        if to is not None:
            sinks.append(open_cache(to, key=key, scorer=scorer, ttl=ttl))
    except BaseException:
        for s in sinks:
            s.abort()
        raise
    default_rejects, default_manifest = side_files(output, scorer.name)
    options.keep = kept
    progress = Progress(source.total, source.unit, enabled=not quiet)
    result = run(scorer, source, sinks, RejectsFile(rejects or default_rejects),
                 manifest or default_manifest, options, progress)
    return result, manifest or default_manifest


@app.command()
def lookup(
    model: Annotated[str, typer.Argument(help="Model name, e.g. churn.")],
    key: Annotated[str, typer.Argument(help="The key value the scores were written under.")],
    redis_url: Annotated[str, typer.Option("--redis", envvar="SCOREHOUSE_REDIS", help="Redis URL.")] = "redis://127.0.0.1:6379/0",
    as_json: JsonOpt = False,
) -> None:
    """Read one precomputed score written by `score --to redis://…` (exit 3 when absent).

    Example:

        scorehouse lookup churn C100042 --redis redis://localhost:6379/0
    """
    from ..batch.cache import hash_name
    from ..batch.cache import lookup as read_scores
    from ..errors import NotFoundError
    from ..registry.refs import valid_name

    valid_name(model)

    scores = read_scores(redis_url, model, key)
    if scores is None:
        raise NotFoundError(f"no cached scores under {hash_name(model, key)} in {redis_url}")
    emit(scores, as_json, lambda: table(["field", "value"], sorted(scores.items())))


#: Warnings only, and no access log: /metrics counts every request, and a log line per
#: request would cost a few percent of the throughput.
_UVICORN = {"log_level": "warning", "access_log": False, "timeout_graceful_shutdown": 30}


#: `serve`'s defaults repeat those of scorehouse.serve.limits and .models (importing them
#: here would load the web stack for every command); tests/test_serve_limits.py checks them.
@app.command()
def serve(
    refs: Annotated[list[str], typer.Argument(help="Models: churn@production fraud/3 path/to/model.shz …")],
    host: Annotated[str, typer.Option(help="Interface to listen on (anything but loopback: use API keys and TLS).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8080,
    workers: Annotated[int, typer.Option(help="Server processes.")] = 1,
    runtime: RuntimeOpt = None,
    accept_parity_difference: Annotated[bool, typer.Option(help=ACCEPT_HELP)] = False,
    trust: Annotated[bool, typer.Option(help="Trust pickled code in artifact files.")] = False,
    max_body: Annotated[int, typer.Option(help="Largest request body in bytes (413 beyond); JSON parsing holds the server ~65 ns a byte.")] = 1024 * 1024,
    max_rows: Annotated[int, typer.Option(envvar="SCOREHOUSE_MAX_ROWS", help="Most rows per request (413 beyond).")] = 100_000,
    max_rejects: Annotated[int, typer.Option(envvar="SCOREHOUSE_MAX_REJECTS", help="Most rejects listed in an answer; the rest are counted by column and reason.")] = 100,
    timeout: Annotated[float | None, typer.Option(help="Seconds a request may take (504 beyond).")] = 30.0,
    read_timeout: Annotated[float, typer.Option(envvar="SCOREHOUSE_READ_TIMEOUT", help="Seconds a client has to send a request body (408 and disconnect beyond).")] = 30.0,
    keep_alive: Annotated[int, typer.Option(help="Seconds an idle keep-alive connection stays open.")] = 5,
    pinned_cache: Annotated[int, typer.Option(envvar="SCOREHOUSE_PINNED_CACHE", help="Versions pinned by /versions/{v} paths kept loaded (least recently used dropped); 0 turns pinning off.")] = 4,
    batching: Annotated[str, typer.Option(help="Micro-batch single records: auto (where it measurably helps), on, off.")] = "auto",
    api_key: Annotated[list[str] | None, typer.Option("--api-key", envvar="SCOREHOUSE_API_KEY", help="Require this bearer token (repeatable).")] = None,
    api_key_file: Annotated[Path | None, typer.Option(help="File of bearer tokens, one per line ('#' comments); edits apply without a restart.")] = None,
    ssl_certfile: Annotated[Path | None, typer.Option(help="Serve HTTPS with this PEM certificate (chain).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="Private key of --ssl-certfile (PEM), if not in that file.")] = None,
    columns: ColumnsOpt = "lenient",
) -> None:
    """Serve models over HTTP: MLflow /invocations, V2 /v2/models/…/infer, /models/{name}/predict, /metrics.

    Example:

        scorehouse serve churn@production fraud@production --port 8080 --workers 2
    """
    import uvicorn

    from ..serve.entry import app_from_settings, exposure_warning, listening_socket, tls_options

    if batching not in ("auto", "on", "off"):
        raise click_exc.BadParameter("--batching must be auto, on or off")
    if min(max_body, max_rows, max_rejects, pinned_cache) < 0 or read_timeout <= 0:
        raise click_exc.BadParameter("limits must be positive (0 allowed for --max-rejects "
                                     "and --pinned-cache)")
    tls = tls_options(ssl_certfile, ssl_keyfile)  # a bad certificate: one line, here
    settings = {"refs": list(refs), "runtime": runtime, "trust": trust,
                "accept_parity_difference": accept_parity_difference, "max_body": max_body,
                "max_rows": max_rows, "max_rejects": max_rejects, "read_timeout": read_timeout,
                "pinned_cache": pinned_cache,
                "timeout": timeout, "batching": batching, "api_keys": list(api_key or []),
                "api_key_file": str(api_key_file) if api_key_file else None,
                "columns": _policy(columns).value,
                "registry": _state["registry"], "artifacts": _state["artifacts"]}
    app = app_from_settings(settings, preload=True)  # a bad model or key file: one line, here
    # Bind before announcing: a busy port is one line and exit 1, never "serving ..." and
    # then a crash at start-up.
    sock = listening_socket(host, port)
    scheme = "https" if tls else "http"
    err_console.print(f"serving {', '.join(refs)} on {scheme}://{host}:{port} ({workers} "
                      "worker(s)); docs at /docs, metrics at /metrics")
    warning = exposure_warning(host, bool(api_key or api_key_file), bool(tls))
    if warning:
        logging.getLogger("scorehouse.serve").warning(warning)
        err_console.print(f"[bold red]WARNING[/]: {warning}", highlight=False)
    # Request heads get the same deadline as bodies (uvicorn has none); worker processes
    # read it from the environment.
    os.environ["SCOREHOUSE_READ_TIMEOUT"] = str(read_timeout)
    from ..serve.protocol import HeadDeadlineProtocol

    options = dict(_UVICORN, timeout_keep_alive=keep_alive, http=HeadDeadlineProtocol, **tls)
    if workers > 1:  # each process loads the models itself: uvicorn needs an import string
        os.environ["SCOREHOUSE_SERVE_ARGS"] = json.dumps(settings)
        sock.close()  # uvicorn binds the address again for its worker processes
        uvicorn.run("scorehouse.serve.entry:app_from_env", factory=True, host=host, port=port,
                    workers=workers, **options)
        return
    uvicorn.Server(uvicorn.Config(app, host=host, port=port, **options)).run(sockets=[sock])


@db_app.command("install")
def db_install(
    url: Annotated[str, typer.Argument(help="postgresql://superuser@host/db")],
    refs: Annotated[list[str], typer.Argument(help="Models: churn@production …")],
    schema: Annotated[str, typer.Option(help="Schema for the functions and models.")] = "scorehouse",
    grant: Annotated[list[str] | None, typer.Option("--grant", help="Role to grant EXECUTE (repeatable).")] = None,
    python_path: Annotated[list[str] | None, typer.Option(help="Where the server imports scorehouse from (default: this installation).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create (idempotently) the scoring functions and copy the models into the database.

    Example:

        scorehouse db install postgresql://postgres@localhost/crm churn@production --grant app_user
    """
    from ..sql.postgres import install

    done = install(url, list(refs), registry=_registry(), schema=schema, grant=grant,
                   python_path=python_path)
    _db_report(done, schema, as_json)


@db_app.command("sync")
def db_sync(
    url: Annotated[str, typer.Argument(help="postgresql://superuser@host/db")],
    schema: Annotated[str, typer.Option(help="Schema the models were installed in.")] = "scorehouse",
    as_json: JsonOpt = False,
) -> None:
    """Copy in the new version of every installed alias that moved; the next call uses it.

    Example:

        scorehouse db sync postgresql://postgres@localhost/crm
    """
    from ..sql.postgres import sync

    _db_report(sync(url, registry=_registry(), schema=schema), schema, as_json)


@db_app.command("trigger")
def db_trigger(
    url: Annotated[str, typer.Argument(help="postgresql://superuser@host/db")],
    model: Annotated[str, typer.Option(help="Installed model, e.g. churn.")],
    events: Annotated[str, typer.Option(help="Table whose inserts are events, e.g. complaints.")],
    profiles: Annotated[str, typer.Option(help="Profile table updated and re-scored, e.g. customer_profile.")],
    key: Annotated[str, typer.Option(help="Column naming the entity in both tables, e.g. customer_id.")],
    increment: Annotated[list[str] | None, typer.Option(help="Profile counter to add 1 to per event (repeatable).")] = None,
    copy: Annotated[list[str] | None, typer.Option(help="PROFILE_COL=EVENT_COL: keep the last value seen (repeatable).")] = None,
    mode: Annotated[str, typer.Option(help="transaction: score in the writer's transaction; outbox: queue for `db worker`.")] = "transaction",
    strict: Annotated[bool, typer.Option(help="Let a scoring failure abort the insert (transaction mode).")] = False,
    schema: Annotated[str, typer.Option(help="Schema the model was installed in.")] = "scorehouse",
    missing_profile: Annotated[str, typer.Option(help="An event whose key has no profile row: dead-letter (record it in <schema>.dead_events) or create (insert the profile row).")] = "dead-letter",
) -> None:
    """Events update a profile's counters, and the profile gets a fresh score.

    Every option is checked against the database before the old trigger is replaced.

    Example:

        scorehouse db trigger postgresql://postgres@localhost/crm --model churn --events complaints --profiles customer_profile --key customer_id --increment complaints
    """
    from ..sql.triggers import Recipe, install_trigger

    pairs = {}
    for item in copy or []:
        target, sep, source = item.partition("=")
        if not sep or not target or not source:
            raise click_exc.BadParameter(f"--copy expects PROFILE_COL=EVENT_COL, got {item!r}")
        pairs[target] = source
    done = install_trigger(url, Recipe(model, events, profiles, key, list(increment or []),
                                       pairs, mode, strict, schema, missing_profile))
    console.print(f"trigger on {events} -> {done.function}: {mode} mode"
                  + ("; run `scorehouse db worker` to score the queue" if mode == "outbox" else ""))
    console.print(f"profile columns: {', '.join(done.columns)}; events without a profile row: "
                  f"{missing_profile} ({done.dead_events:,} in {schema}.dead_events so far)")


@db_app.command("worker")
def db_worker(
    url: Annotated[str, typer.Argument(help="postgresql://user@host/db")],
    model: Annotated[str, typer.Option(help="Installed model whose queue to drain.")],
    schema: Annotated[str, typer.Option(help="Schema the model was installed in.")] = "scorehouse",
    batch: Annotated[int, typer.Option(help="Queued profiles scored per transaction.")] = 500,
    once: Annotated[bool, typer.Option(help="Drain the queue, then exit.")] = False,
) -> None:
    """Score the profiles queued by an outbox trigger (LISTEN/NOTIFY, batches, SKIP LOCKED).

    Example:

        scorehouse db worker postgresql://postgres@localhost/crm --model churn
    """
    from ..sql.worker import Worker

    worker = Worker(url, model, schema=schema, batch=batch)
    try:
        worker.run(once=once)
    finally:
        err_console.print(f"scored {worker.scored:,} profile(s), {worker.failed:,} refused")
        worker.close()


def _db_report(done: list[Any], schema: str, as_json: bool) -> None:
    from dataclasses import asdict

    emit([asdict(d) for d in done], as_json, lambda: table(
        ["model", "ref", "version", "changed", "functions"],
        [(d.name, d.ref, d.version, "yes" if d.changed else "no",
          f"{schema}.score, {schema}.score_query, {schema}.{d.function}, "
          f"{schema}.{d.query_function}") for d in done]))


@app.command()
def stream(
    ref: Annotated[str, typer.Argument(help="churn@production, churn/3, or an artifact path.")],
    source: Annotated[str, typer.Option(help="Events: redis://host:6379/0?stream=events, nats://host:4222?subject=events (JetStream) or kafka://host:9092?topic=events (dead letters: <topic>.dead, or &dead=NAME).")],
    key: Annotated[str, typer.Option(help="Event field naming the entity, e.g. customer_id (with PostgreSQL profiles, also the table's key column).")],
    profiles: Annotated[str | None, typer.Option(help="Profiles: redis://host:6379/0 (hashes <prefix><key>; default: the source's server) or postgresql://user@host/db?table=customer_profile (rows keyed by --key).")] = None,
    prefix: Annotated[str, typer.Option(help="Profile hash prefix.")] = "profile:",
    sink: Annotated[str | None, typer.Option(help="Output stream for scores. With Redis profiles: a stream on the profiles' server, written with the profile atomically (redis://…?stream=scores; default <stream>:scores). With PostgreSQL profiles: on the source's broker, fed from the table's outbox after each commit, at least once (a bare name or a URL on that broker; default <stream>:scores on Redis, <subject/topic>.scores on NATS/Kafka).")] = None,
    reducer: Annotated[str | None, typer.Option(help='How an event changes a profile: JSON spec ({"count": …, "last": …, "sum": …}), a .json file, or module:function.')] = None,
    group: Annotated[str, typer.Option(help="Consumer group.")] = "scorehouse",
    consumer: Annotated[str | None, typer.Option(help="Consumer name (default: host-pid).")] = None,
    batch: Annotated[int, typer.Option(help="Events per round trip.")] = 200,
    max_attempts: Annotated[int, typer.Option(help="Deliveries before a poison event is dead-lettered.")] = 3,
    claim_idle_ms: Annotated[int, typer.Option(help="Reclaim events a consumer has held this long (NATS: the ack wait; Kafka: the retry delay of events left unsettled).")] = 30_000,
    runtime: RuntimeOpt = None,
    accept_parity_difference: Annotated[bool, typer.Option(help=ACCEPT_HELP)] = False,
    trust: Annotated[bool, typer.Option(help="Trust pickled code in an artifact file.")] = False,
    until_idle: Annotated[bool, typer.Option(help="Exit when the stream has nothing more.")] = False,
    metrics_port: Annotated[int | None, typer.Option(help="Serve Prometheus metrics on this port.")] = None,
) -> None:
    """Consume events, update profiles, score them, write back and publish (Redis Streams, NATS, Kafka).

    Example:

        scorehouse stream churn@production --source 'redis://localhost:6379/0?stream=events' --key customer_id --reducer '{"count": {"complaints": "type=complaint"}}'
    """
    from ..loading import is_path, load

    scorer = load(ref, registry=None if is_path(ref) else _registry(), runtime=runtime, trust=trust,
                  accept_parity_difference=accept_parity_difference)
    worker = _stream_worker(scorer, source, key, profiles, prefix, sink, "scores", reducer, group,
                            consumer, batch, max_attempts, claim_idle_ms)
    if metrics_port:
        from ..stream.metrics import serve_metrics
        serve_metrics(worker, metrics_port)
    err_console.print(f"scoring {worker.events.stream} as {group}/{worker.events.consumer} with "
                      f"{scorer.name}/{scorer.version or '-'} -> {worker.output_stream}")
    s = worker.run(until_idle=until_idle)
    err_console.print(f"{s.events:,} events: {s.scored:,} scored, {s.duplicates:,} already applied, "
                      f"{s.dead:,} dead-lettered, {s.retried:,} left for retry")


@app.command()
def enrich(
    source: Annotated[str, typer.Option(help="Events: redis://…?stream=events, nats://…?subject=events or kafka://…?topic=events.")],
    key: Annotated[str, typer.Option(help="Event field naming the entity, e.g. customer_id.")],
    sink: Annotated[str, typer.Option(help="Enriched events (event + updated profile): on the profiles' Redis (redis://…?stream=events:enriched), or with PostgreSQL profiles on the source's broker (a bare name or a URL there).")],
    reducer: Annotated[str | None, typer.Option(help="How an event changes a profile (as for `stream`).")] = None,
    profiles: Annotated[str | None, typer.Option(help="Profiles: redis://host:6379/0 (default: the source's server) or postgresql://user@host/db?table=NAME.")] = None,
    prefix: Annotated[str, typer.Option(help="Profile hash prefix.")] = "profile:",
    group: Annotated[str, typer.Option(help="Consumer group.")] = "scorehouse-enrich",
    consumer: Annotated[str | None, typer.Option(help="Consumer name (default: host-pid).")] = None,
    batch: Annotated[int, typer.Option(help="Events per round trip.")] = 200,
    until_idle: Annotated[bool, typer.Option(help="Exit when the stream has nothing more.")] = False,
) -> None:
    """Update profiles from events and publish event + profile, for a separate `stream` worker to score.

    Example:

        scorehouse enrich --source 'redis://localhost:6379/0?stream=events' --key customer_id --reducer '{"last": {"plan": "plan"}}' --sink 'redis://localhost:6379/0?stream=events:enriched'
    """
    worker = _stream_worker(None, source, key, profiles, prefix, sink, "enriched", reducer, group,
                            consumer, batch, 3, 30_000)
    s = worker.run(until_idle=until_idle)
    err_console.print(f"{s.events:,} events: {s.scored:,} applied, {s.duplicates:,} already applied, "
                      f"{s.dead:,} dead-lettered")


def _stream_worker(scorer: Any, source: str, key: str, profiles: str | None, prefix: str,
                   sink: str | None, suffix: str, reducer: str | None, group: str,
                   consumer: str | None, batch: int, max_attempts: int, claim_idle_ms: int) -> Any:
    import socket

    from ..stream import StreamWorker, load_reducer
    from ..stream import endpoints as ep

    name = consumer or f"{socket.gethostname()}-{os.getpid()}"
    store = ep.profiles_url(profiles, source)
    server = ep.output_server(store, source)
    events = ep.open_events(source, group, name, claim_idle_ms=claim_idle_ms)
    out = ep.output_stream(sink, server, ep.default_output(events, server, suffix))
    return StreamWorker(scorer, events, ep.open_profiles(store, events, key=key, prefix=prefix),
                        load_reducer(reducer), key=key, output_stream=out, batch=batch,
                        max_attempts=max_attempts)


def _run_summary(m: dict[str, Any], manifest: Path) -> None:
    c = m["counts"]
    where = ", ".join(o["uri"] for o in m["outputs"])
    err_console.print(
        f"scored {c['scored']:,} of {c['read']:,} rows ({c['rejected']:,} rejected, "
        f"{c['flagged']:,} flagged) in {m['seconds']:.1f} s, {m['rows_per_second'] or 0:,} rows/s "
        f"with {m['model']['name']}/{m['model']['version'] or '-'} ({m['model']['runtime']}) -> {where}")
    for kind, cols in m["flags"].items():
        err_console.print(f"  {kind}: " + ", ".join(f"{k} {v:,}" for k, v in cols.items()))
    columns = m.get("columns") or {}
    if columns.get("absent_optional"):
        err_console.print(f"  warning: column(s) {', '.join(columns['absent_optional'])} absent "
                          "from the input, scored as missing (flagged absent_column)")
    for u in columns.get("unknown") or []:
        hint = f" (did you mean {u['did_you_mean']!r}?)" if u["did_you_mean"] else ""
        err_console.print(f"  unknown column {u['column']!r} ignored{hint}")
    if c["rejected"]:
        by = ", ".join(f"{k} {v:,}" for k, v in m["rejects_by_column"].items())
        err_console.print(f"  rejects ({by}): {m['rejects']['uri']}")
    if m["exit_code"]:
        err_console.print(f"  reject rate {m['reject_rate']:.4%} is above --max-reject-rate "
                          f"{m['max_reject_rate']:.4%}: exit {m['exit_code']}")
    err_console.print(f"  run manifest: {manifest}")


def _policy(columns: str) -> Any:
    from ..schema import ColumnPolicy

    try:
        return ColumnPolicy.parse(columns)
    except ScorehouseError as e:
        raise click_exc.BadParameter(str(e)) from None


def _records(json_input: str | None, input_file: Path | None) -> Any:
    try:
        if json_input is not None:
            data = json.loads(json_input)
        else:
            fh = sys.stdin if str(input_file) == "-" else open(input_file)  # noqa: SIM115
            with fh:
                data = [json.loads(line) for line in fh if line.strip()]
    except json.JSONDecodeError as e:
        raise InvalidInputError(f"input is not valid JSON: {e}") from None
    except FileNotFoundError:
        raise click_exc.BadParameter(f"no such file: {input_file}") from None
    if not isinstance(data, (dict, list)):
        raise InvalidInputError("input must be a JSON object (one record) or a list of them")
    return data


# --- entry point -------------------------------------------------------------------------------


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    warning_line(str(message))


def _show_flags_as_flags(command: Any) -> Any:
    """`command` with every on/off flag (and --help) shown in --help without a type: typer
    prints each option's type, so a flag read `--json <bool>`, as if it took a value."""
    try:  # recent typer vendors its own click
        from typer._click import Context
    except ImportError:  # pragma: no cover - older typer runs on click
        from click import Context
    for param in [*command.params, command.get_help_option(Context(command))]:
        if param is not None and getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _show_flags_as_flags(sub)
    return command


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; errors become one line and a documented exit code, never a traceback."""
    args = sys.argv[1:] if argv is None else argv
    as_json = "--json" in args
    warnings.showwarning = _show_warning
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    debug = bool(os.environ.get("SCOREHOUSE_DEBUG"))
    try:
        command = _show_flags_as_flags(typer.main.get_command(app))
        rv = command.main(args=args, prog_name="scorehouse", standalone_mode=False)
    except _EXIT as e:
        sys.exit(e.exit_code)
    except _ABORT:
        err_console.print("aborted")
        sys.exit(130)
    except _CLICK_ERRORS as e:
        message = e.format_message()
        ctx = getattr(e, "ctx", None)
        if ctx is not None and not as_json:
            message += f" (see '{ctx.command_path} --help')"
        error_line(message, as_json, e.exit_code, type(e).__name__)
        sys.exit(e.exit_code)
    except ScorehouseError as e:
        if debug:
            raise
        error_line(str(e), as_json, e.exit_code, type(e).__name__)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:
        if debug:
            raise
        error_line(f"unexpected {type(e).__name__}: {e} (set SCOREHOUSE_DEBUG=1 for a traceback)",
                   as_json, 1, type(e).__name__)
        sys.exit(1)
    # Without standalone mode, typer returns (not raises) the code of a `typer.Exit(code)`.
    if isinstance(rv, int) and rv:
        sys.exit(rv)


if __name__ == "__main__":  # pragma: no cover
    main()
