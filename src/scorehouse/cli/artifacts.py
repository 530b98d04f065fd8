"""Artifact files: `package` a trained model, `inspect` its manifest, `verify` and `sign` it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from .common import JsonOpt, click_exc, open_registry
from .output import console, emit, emit_json, printable, table

if TYPE_CHECKING:
    from ..schema import Column

#: Merged into the root app by `cli/app.py`.
commands = typer.Typer()


@commands.command("package")
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
    card: Annotated[Path | None, typer.Option(help="Model card text (.toml/.json): intended_use, users, out_of_scope, ethical_considerations, caveats.")] = None,
    recipe: Annotated[str | None, typer.Option(help="Training recipe for retrain, MODULE:FUNCTION called as function(train, target) (default, with --target: an unfitted copy of a scikit-learn, LightGBM or XGBoost estimator).")] = None,
    holdout: Annotated[Path | None, typer.Option(help="Holdout file retrain evaluates on (default: --holdout-fraction of the new data).")] = None,
    holdout_fraction: Annotated[float, typer.Option(help="Share of the new data retrain holds out to evaluate on.")] = 0.2,
    holdout_seed: Annotated[int, typer.Option(help="Seed of retrain's holdout draw.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Package a trained model with its schema, lineage, baseline and training recipe.

    Examples:

        scorehouse package model.joblib --train-data train.parquet --name churn --target churned

        scorehouse package model.onnx --train-data train.csv --name fraud --task binary --classes no,yes
    """
    from ..artifact import HoldoutSplit
    from ..packaging import package
    from .model_files import load_model_file

    kwargs: dict[str, Any] = {}
    if schema is not None:
        spec = json.loads(schema.read_text())
        key = "schema" if isinstance(spec, list) or "columns" in spec else "schema_overrides"
        kwargs[key] = spec
    metrics = _metrics(metric or [])
    path = package(
        load_model_file(model), train_data, name=name, path=output, target=target, task=task,
        classes=[_label(c) for c in classes.split(",")] if classes else None,
        metrics=metrics, description=description, compile=compile_onnx,
        tolerance=tolerance, card=card, recipe=recipe or True,
        holdout=holdout if holdout is not None else HoldoutSplit(fraction=holdout_fraction,
                                                                seed=holdout_seed),
        **kwargs,
    )
    _report_package(path, as_json)


def _metrics(given: list[str]) -> dict[str, float]:
    """`--metric NAME=VALUE` options as {name: value}; BadParameter for a value not a number."""
    metrics = {}
    for m in given:
        k, _, v = m.partition("=")
        try:
            metrics[k] = float(v)
        except ValueError:
            raise click_exc.BadParameter(f"--metric {m!r}: expected NAME=NUMBER") from None
    return metrics


def _label(s: str) -> Any:
    try:
        return int(s)
    except ValueError:
        return s


def _report_package(path: Path, as_json: bool) -> None:
    """Print what was packaged at `path`: name, task, inputs, runtime, nullable inputs."""
    from .. import artifact as artifact_io
    from ..packaging.parity import runtime_summary
    from ..schema import Schema

    art = artifact_io.read(path, require_trust=False, check_versions=False)
    m = art.manifest
    columns = Schema.from_dict(m.input_schema).columns
    out = {"artifact": str(path), "name": m.name, "task": m.task, "flavor": art.flavor,
           "manifest_sha256": art.manifest_sha256, "inputs": len(columns),
           "metrics": dict(m.metrics), "runtime": m.model.runtime,
           "compiled": m.compiled.to_dict() if m.compiled else None}
    nullable = {c.name: c.nullable_reason or "nullable" for c in columns if c.nullable}
    out["nullable"] = nullable
    out["recipe"] = m.recipe.to_dict() if m.recipe else None
    emit(out, as_json, f"packaged {m.name} ({m.task}, {art.flavor}, "
         f"{out['inputs']} inputs) -> {path}\n{runtime_summary(m)}\n"
         + (f"nullable: {'; '.join(f'{k} ({v})' for k, v in nullable.items())}" if nullable
            else "nullable: none (every input is required)") + f"\n{recipe_line(m)}")


def recipe_line(m: Any) -> str:
    """'recipe: estimator ... (retrain holds out 20% of rows, seed 0)', or why there is none."""
    if m.recipe is None:
        return ("recipe: none (retrain needs --target and a scikit-learn, LightGBM or XGBoost "
                "estimator, or --recipe MODULE:FUNCTION)")
    return f"recipe: {m.recipe.describe()} (retrain holds out {m.recipe.split.describe()})"


@commands.command()
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
    from ..schema import Schema

    art = _artifact(ref)
    m = art.manifest
    if as_json:
        emit_json({**m.to_dict(), "manifest_sha256": art.manifest_sha256})
        return
    console.print(f"[bold]{escape(printable(m.name))}[/] {m.task} ({art.flavor}); "
                  f"manifest sha256 {art.manifest_sha256}", markup=True)
    if m.classes:
        console.print(f"classes: {list(m.classes)}")
    table(["input", "type", "nullable", "categories / range"],
          [(c.name, f"{c.type}" + (f" ({c.category_type} categories)" if c.category_type else ""),
            c.nullable_reason or c.nullable, _span(c))
           for c in Schema.from_dict(m.input_schema).columns])
    lin = m.lineage
    data = lin.training_data if lin else None
    console.print(f"trained on {data.rows if data else None} rows "
                  f"({(data.fingerprint if data else '')[:19]}…), "
                  f"created {lin.created_at if lin else None} by {lin.created_by if lin else None}"
                  + (f", retrained from {lin.parent}" if lin and lin.parent else ""))
    console.print(recipe_line(m))
    console.print(f"metrics: {dict(m.metrics)}")
    console.print(f"needs: {dict(m.requirements)}")
    from ..packaging.parity import runtime_summary

    console.print(runtime_summary(m))


def _span(c: Column) -> str:
    """A column's category set (the first six) or its training range, for `inspect`."""
    if c.categories is not None:
        cats = [str(x) for x in c.categories]
        return ", ".join(cats[:6]) + (f" … ({len(cats)})" if len(cats) > 6 else "")
    if c.min is not None and c.max is not None:
        return f"{c.min:g} .. {c.max:g}"
    return ""


def _artifact(ref: str):
    from .. import artifact as artifact_io
    from ..registry.refs import ModelRef

    if ModelRef.parse(ref).is_path:  # verified, but never loaded: reading metadata needs no trust
        return artifact_io.read(ref, require_trust=False, check_versions=False)
    return open_registry().load_artifact(ref)[0]


@commands.command()
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


@commands.command()
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
