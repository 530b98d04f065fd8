"""`package()`: a trained model + its training data -> one verifiable artifact."""

from __future__ import annotations

import datetime as dt
import getpass
import os
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import __version__
from ..artifact import (
    CARD_FILE,
    SUFFIX,
    Artifact,
    Baseline,
    CardText,
    Compiled,
    CompileStatus,
    Environment,
    HoldoutSplit,
    Lineage,
    Manifest,
    ModelInfo,
    ModelSection,
    OutputColumn,
    Parity,
    TrainingData,
    flavor_of,
    valid_name,
)
from ..artifact import write as write_artifact
from ..artifact.environment import python_version, requirements_for
from ..artifact.flavors import PICKLE_FILE, Flavor
from ..artifact.hashing import fingerprint_frame
from ..errors import ModelError, SchemaError, ScorehouseError, UnsupportedModelError
from ..runtime.onnx import COMPILED_FILE
from ..schema import Schema, infer_schema
from ..scorer import Result, Scorer, output_columns
from .baseline import input_profile, prediction_profile
from .compile import OPSET, ConversionError, to_onnx
from .metrics import training_metrics
from .model_categories import with_model_categories
from .nullability import imputed_columns
from .parity import TOLERANCE, compare
from .rebuild import check_rebuilt_frame
from .recipe import holdout_split, recipe_for

#: Rows of training data scored at packaging for the prediction baseline and the reload check.
SAMPLE_ROWS = 50_000
TASKS = ("binary", "multiclass", "regression")


def read_frame(data: Any) -> pd.DataFrame:
    """Training data from a DataFrame, an Arrow table, or a Parquet/CSV/JSON Lines path."""
    if isinstance(data, pd.DataFrame):
        return data
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return data.to_pandas()
    if isinstance(data, (str, os.PathLike)):
        p = Path(data)
        if not p.exists():
            raise ScorehouseError(f"training data {p} does not exist")
        name = p.name.lower()
        if name.endswith(".parquet") or p.is_dir():
            return pd.read_parquet(p)
        if name.endswith((".csv", ".csv.gz", ".csv.zst")):
            return pd.read_csv(p)
        if name.endswith((".jsonl", ".ndjson")):
            return pd.read_json(p, lines=True)
        raise ScorehouseError(f"cannot read training data {p}: use .parquet, .csv or .jsonl")
    raise ScorehouseError(f"training data must be a DataFrame, Arrow table or file path, "
                          f"not {type(data).__name__}")


def _features(info_names: list[str] | None, frame: pd.DataFrame, target: str | None,
              features: Sequence[str] | None) -> list[str]:
    if features is not None:
        return list(features)
    cols = [str(c) for c in frame.columns if c != target]
    if info_names and all(n in frame.columns for n in info_names):
        return list(info_names)
    return cols


def _output_schema(task: str, classes: list[Any] | None, has_proba: bool
                   ) -> tuple[OutputColumn, ...]:
    out = []
    for name in output_columns(task, classes, has_proba):
        if name == "label":
            kind = "integer" if classes and all(isinstance(c, int) for c in classes) else "string"
        else:
            kind = "number"
        out.append(OutputColumn(name=name, type=kind))
    return tuple(out)


def _infer_task(model: Any, frame: pd.DataFrame) -> tuple[str, list[Any] | None]:
    predict = getattr(model, "predict", model)
    sample = np.asarray(predict(frame.head(1000)))
    if sample.dtype.kind == "f":
        return "regression", None
    labels = sorted({v.item() if hasattr(v, "item") else v for v in sample.reshape(-1)})
    return ("binary" if len(labels) == 2 else "multiclass"), labels


def package(  # long: the public API, one documented keyword per packaging choice
    model: Any,
    train_data: Any,
    *,
    name: str,
    path: str | os.PathLike[str] | None = None,
    target: str | None = None,
    features: Sequence[str] | None = None,
    task: str | None = None,
    classes: Sequence[Any] | None = None,
    schema: Schema | Mapping[str, Any] | None = None,
    schema_overrides: Mapping[str, Mapping[str, Any]] | None = None,
    metrics: Mapping[str, float] | None = None,
    params: Mapping[str, Any] | None = None,
    description: str = "",
    key: str | bytes | None = None,
    compile: bool = True,
    tolerance: float = TOLERANCE,
    card: CardText | str | os.PathLike[str] | None = None,
    recipe: str | bool = True,
    holdout: HoldoutSplit | float | str | os.PathLike[str] | None = None,
    parent: str | None = None,
    retrain_data: TrainingData | None = None,
) -> Path:
    """Package `model` with its schema, lineage and baseline into `path` (default NAME.shz).

    `train_data` is the frame the model was trained on (or a file path); `target`, when it
    is a column there, is left out of the schema and used for training metrics. With
    `compile`, the model is also converted to ONNX and used by default when it scores the
    training sample within `tolerance` of the native model (see `parity.compare`).
    `card`: the author's text for the model card (a `CardText` or a .toml/.json file; see
    `artifact.card_text`), stored in the artifact and hashed like every file.

    The training recipe `scorehouse retrain` refits (`packaging.recipe`) is kept by itself,
    given `target`, for a scikit-learn, LightGBM or XGBoost estimator; `recipe=
    "package.module:function"` names a function instead, `recipe=False` keeps none.
    `holdout`: how retrain holds rows out of new data, a fraction (default 0.2, seed 0), a
    `HoldoutSplit(fraction=, seed=)` or a holdout file's path. `parent` ("churn/3") and
    `retrain_data` are set by `retrain` (a refit's lineage).

    Raises:
        UsageError: `name` is not a valid model name (`artifact.valid_name`: the rule
            `register` applies too), an unreadable or invalid `card` file, a bad holdout
            fraction, or a recipe function without `target` or that cannot be imported.
        SchemaError: `target` is not a column, or the training data fails its own schema.
        UnsupportedModelError: the task or the class labels cannot be told.
        ModelError: the packaged model fails on training rows.
        ScorehouseError: unreadable training data.
    """
    valid_name(name)
    frame = read_frame(train_data)
    flavor = flavor_of(model)
    info = flavor.describe(model)
    if target is not None and target not in frame.columns:
        raise SchemaError(f"target column {target!r} is not in the training data")
    input_schema, imputed = _input_schema(model, flavor.name, info, frame, target, features,
                                          schema, schema_overrides)
    X = frame[input_schema.names]
    task, classes = _task_and_classes(model, flavor.name, info, X, name, task, classes)
    kept, recipe_files = recipe_for(model, flavor.name, input_schema.names, target,
                                    holdout_split(holdout), recipe)
    files = {**_with_card(flavor.save(model), card), **recipe_files}
    manifest = replace(_first_manifest(name, description, task, classes, flavor, info, params,
                                       input_schema, files), recipe=kept)
    sample = X if len(X) <= SAMPLE_ROWS else X.sample(SAMPLE_ROWS, random_state=0)
    manifest, result = _check_scores(manifest, files, sample, imputed, tolerance)
    if compile and flavor.name != "onnx":
        manifest = _compile(model, manifest, files, sample, result, tolerance)
    source = str(train_data) if isinstance(train_data, (str, os.PathLike)) else None
    manifest = _with_records(manifest, frame, sample, result, target, source, metrics)
    if parent is not None:
        assert manifest.lineage is not None  # _with_records wrote it
        manifest = replace(manifest, lineage=replace(manifest.lineage, parent=parent,
                                                     retrain_data=retrain_data))
    out = Path(path) if path is not None else Path(f"{name}{SUFFIX}")
    write_artifact(manifest, files, out, key=key)
    return out


def _with_card(files: dict[str, bytes], card: CardText | str | os.PathLike[str] | None
               ) -> dict[str, bytes]:
    """The model's files with the card text (`artifact.card_text`) added when there is one."""
    text = card if isinstance(card, CardText) or card is None else CardText.from_file(card)
    if text:
        files[CARD_FILE] = text.to_bytes()
    return files


def _input_schema(model: Any, flavor: str, info: ModelInfo, frame: pd.DataFrame,
                  target: str | None, features: Sequence[str] | None,
                  schema: Schema | Mapping[str, Any] | None,
                  overrides: Mapping[str, Mapping[str, Any]] | None) -> tuple[Schema, list[str]]:
    """The input schema (given, or inferred from the training frame) and the columns made
    nullable because an imputer of the model fills them (checked in `_check_scores`)."""
    names = _features(info.feature_names, frame, target, features)
    if isinstance(schema, Schema):
        input_schema = schema
    elif schema is not None:
        input_schema = Schema.from_dict(schema)
    else:
        input_schema = infer_schema(frame, names)
    imputed: list[str] = []
    if flavor == "lightgbm" and schema is None:
        input_schema = with_model_categories(input_schema, model)
    if flavor in ("sklearn", "python"):
        input_schema, imputed = _imputed_nullable(model, input_schema)
    if overrides:
        input_schema = input_schema.override(overrides)
    return input_schema, imputed


def _task_and_classes(model: Any, flavor: str, info: ModelInfo, X: pd.DataFrame, name: str,
                      task: str | None, classes: Sequence[Any] | None
                      ) -> tuple[str, list[Any] | None]:
    """The task and class labels: given, else the model's own, else (a plain Python model)
    from its predictions. Raises UnsupportedModelError when neither can be told."""
    if task is None and info.task is None:
        task, classes = _infer_task(model, X) if flavor == "python" else (None, None)
    task = task or info.task
    labels = list(classes) if classes is not None else info.classes
    if task not in TASKS:
        raise UnsupportedModelError(
            f"cannot tell whether {name!r} is a classifier or a regressor; pass task= "
            f"(one of {', '.join(TASKS)}) and, for classifiers, classes=")
    if task != "regression" and not labels:
        raise UnsupportedModelError(f"{name!r} is a classifier but its class labels are "
                                    "unknown; pass classes=[...]")
    return task, labels


def _first_manifest(name: str, description: str, task: str, classes: list[Any] | None,
                    flavor: Flavor, info: ModelInfo, params: Mapping[str, Any] | None,
                    schema: Schema, files: dict[str, bytes]) -> Manifest:
    """The manifest before scoring: what the model is, what it reads and what it needs."""
    requirements = requirements_for(info.modules, files.get(PICKLE_FILE))
    return Manifest(
        name=name, description=description, task=task,
        classes=classes if task != "regression" else None,
        model=ModelSection(flavor=flavor.name, pickled=flavor.pickled, runtime="native",
                           params={**info.params, **dict(params or {})}),
        input_schema=schema.to_dict(),
        environment=Environment(python=python_version(), requirements=requirements),
    )


def _probe(manifest: Manifest, files: dict[str, bytes]) -> Artifact:
    """The artifact as it will be stored, held in memory (trusted: it is ours)."""
    return Artifact(manifest, files, "", f"model {manifest.name!r}", trusted_by="user")


def _check_scores(manifest: Manifest, files: dict[str, bytes], sample: pd.DataFrame,
                  imputed: list[str], tolerance: float) -> tuple[Manifest, Result]:
    """Score the training sample with the model as stored (not the object in memory): this
    proves the artifact loads and predicts before anyone registers it. The manifest (its
    schema corrected for imputed columns the model cannot do without) and the result."""
    probe = _probe(manifest, files)
    result = Scorer(probe).predict(sample)
    if result.n_rejected:
        shown = "; ".join(str(r) for r in result.rejects[:3])
        if all(r.column is None for r in result.rejects):
            raise ModelError(f"the packaged model fails on {result.n_rejected} training row(s): "
                             f"{shown}")
        raise SchemaError(f"the training data itself fails the schema: {shown}")
    schema = Schema.from_dict(manifest.input_schema)
    check_rebuilt_frame(probe, schema, sample, tolerance)
    if imputed:
        manifest = _check_imputed(probe, sample, schema, imputed, manifest)
    return manifest, result


def _with_records(manifest: Manifest, frame: pd.DataFrame, sample: pd.DataFrame,
                  result: Result, target: str | None, source: str | None,
                  metrics: Mapping[str, float] | None) -> Manifest:
    """The manifest with what monitoring and audits read: output schema, baseline, lineage."""
    task, classes, o = manifest.task, manifest.classes, result.output
    labels = list(classes) if classes is not None else None
    all_metrics: dict[str, float] = {}
    if target is not None:
        y = frame.loc[sample.index, target].to_numpy()
        all_metrics.update({f"training_{k}": v for k, v in training_metrics(
            task, labels, y, o.labels, o.probabilities, o.values).items()})
    all_metrics.update({k: float(v) for k, v in (metrics or {}).items()})
    schema = Schema.from_dict(manifest.input_schema)
    baseline = Baseline(
        rows=int(len(frame)), sample_rows=int(len(sample)),
        inputs=input_profile(schema, frame),
        predictions=prediction_profile(task, labels, o.labels, o.probabilities, o.values))
    lineage = Lineage(
        training_data=TrainingData(
            fingerprint=fingerprint_frame(frame), rows=int(len(frame)),
            columns=[str(c) for c in frame.columns], target=target, source=source),
        params=manifest.model.params,
        metrics=all_metrics,
        libraries={"python": python_version(), "scorehouse": __version__,
                   **manifest.requirements},
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        created_by=_user())
    outputs = _output_schema(task, labels, o.probabilities is not None)
    return replace(manifest, output_schema=outputs, baseline=baseline, lineage=lineage)


def _imputed_nullable(model: Any, schema: Schema) -> tuple[Schema, list[str]]:
    """`schema` with the required columns an imputer of the model fills made nullable (see
    `nullability`), and their names."""
    found = imputed_columns(model, schema.names)
    changes = {n: {"nullable": True, "nullable_reason": why} for n, why in found.items()
               if not schema[n].nullable}
    return (schema.override(changes) if changes else schema), list(changes)


def _check_imputed(probe: Artifact, sample: pd.DataFrame, schema: Schema, imputed: list[str],
                   manifest: Manifest) -> Manifest:
    """Score a training row with the `imputed` columns missing; if the model cannot, they
    are required again (as inferred from the data) and the manifest says so."""
    row = sample.head(1).astype({c: object for c in imputed})
    row.loc[:, imputed] = None
    if not Scorer(probe).predict(row).n_rejected:
        return manifest
    schema = schema.override({n: {"nullable": False} for n in imputed})
    return replace(manifest, input_schema=schema.to_dict())


def _compile(model: Any, manifest: Manifest, files: dict[str, bytes], sample: pd.DataFrame,
             native: Result, tolerance: float) -> Manifest:
    """Convert to ONNX and run the parity gate: the manifest with `compiled` (and the onnx
    runtime when the gate passes); adds the graph to `files` when it converts."""
    schema = Schema.from_dict(manifest.input_schema)
    try:
        compiled = to_onnx(model, manifest.model.flavor, schema, manifest.task)
    except ConversionError as e:
        return replace(manifest, compiled=Compiled(
            format="onnx", status=CompileStatus.NOT_CONVERTED, step=e.step,
            reason=f"step {e.step!r} could not be converted: {e.reason}"))
    files[COMPILED_FILE] = compiled.model_bytes
    try:
        parity = compare(native, Scorer(_probe(manifest, files), runtime="onnx").predict(sample),
                         tolerance)
    except Exception as e:  # a graph that loads but cannot score is a failed gate
        parity = {"passed": False, "reason": f"the compiled model failed: {type(e).__name__}: {e}"}
    passed = bool(parity["passed"])
    info = Compiled(format="onnx", file=COMPILED_FILE, opset=OPSET, inputs=compiled.inputs,
                    outputs=compiled.outputs, parity=Parity.from_dict(parity),
                    status=CompileStatus.PASSED if passed else CompileStatus.FAILED_PARITY,
                    reason=None if passed else parity["reason"])
    runtime = "onnx" if passed else manifest.model.runtime
    return replace(manifest, compiled=info, model=replace(manifest.model, runtime=runtime))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
