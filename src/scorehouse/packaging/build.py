"""`package()`: a trained model + its training data -> one verifiable artifact."""

from __future__ import annotations

import datetime as dt
import getpass
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from .. import __version__
from ..artifact import SUFFIX, Artifact, flavor_of
from ..artifact import write as write_artifact
from ..artifact.environment import python_version, requirements_for
from ..artifact.flavors import PICKLE_FILE
from ..artifact.hashing import fingerprint_frame
from ..errors import ModelError, SchemaError, ScorehouseError, UnsupportedModelError, UsageError
from ..runtime.onnx import COMPILED_FILE
from ..schema import Schema, infer_schema
from ..scorer import Scorer, output_columns
from .baseline import input_profile, prediction_profile
from .compile import OPSET, ConversionError, to_onnx
from .metrics import training_metrics
from .model_categories import with_model_categories
from .nullability import imputed_columns
from .parity import TOLERANCE, compare
from .rebuild import check_rebuilt_frame

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


def _output_schema(task: str, classes: list[Any] | None, has_proba: bool) -> list[dict[str, str]]:
    out = []
    for name in output_columns(task, classes, has_proba):
        if name == "label":
            kind = "integer" if classes and all(isinstance(c, int) for c in classes) else "string"
        else:
            kind = "number"
        out.append({"name": name, "type": kind})
    return out


def _infer_task(model: Any, frame: pd.DataFrame) -> tuple[str, list[Any] | None]:
    predict = getattr(model, "predict", model)
    sample = np.asarray(predict(frame.head(1000)))
    if sample.dtype.kind == "f":
        return "regression", None
    labels = sorted({v.item() if hasattr(v, "item") else v for v in sample.reshape(-1)})
    return ("binary" if len(labels) == 2 else "multiclass"), labels


def package(
    model: Any,
    train_data: Any,
    *,
    name: str,
    path: str | os.PathLike | None = None,
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
) -> Path:
    """Package `model` with its schema, lineage and baseline into `path` (default NAME.shz).

    `train_data` is the frame the model was trained on (or a file path); `target`, when it
    is a column there, is left out of the schema and used for training metrics. With
    `compile`, the model is also converted to ONNX and used by default when it scores the
    training sample within `tolerance` of the native model (see `parity.compare`).
    """
    if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise UsageError(f"model name {name!r}: use letters, digits, '-', '_' or '.'")
    frame = read_frame(train_data)
    source = str(train_data) if isinstance(train_data, (str, os.PathLike)) else None
    flavor = flavor_of(model)
    info = flavor.describe(model)
    if target is not None and target not in frame.columns:
        raise SchemaError(f"target column {target!r} is not in the training data")
    names = _features(info.feature_names, frame, target, features)
    if isinstance(schema, Schema):
        input_schema = schema
    elif schema is not None:
        input_schema = Schema.from_dict(schema)
    else:
        input_schema = infer_schema(frame, names)
    imputed: list[str] = []
    if flavor.name == "lightgbm" and schema is None:
        input_schema = with_model_categories(input_schema, model)
    if flavor.name in ("sklearn", "python"):
        input_schema, imputed = _imputed_nullable(model, input_schema)
    if schema_overrides:
        input_schema = input_schema.override(schema_overrides)
    X = frame[input_schema.names]
    if task is None and info.task is None:
        task, classes = _infer_task(model, X) if flavor.name == "python" else (None, None)
    task = task or info.task
    classes = list(classes) if classes is not None else info.classes
    if task not in TASKS:
        raise UnsupportedModelError(
            f"cannot tell whether {name!r} is a classifier or a regressor; pass task= "
            f"(one of {', '.join(TASKS)}) and, for classifiers, classes=")
    if task != "regression" and not classes:
        raise UnsupportedModelError(f"{name!r} is a classifier but its class labels are "
                                    "unknown; pass classes=[...]")

    files = flavor.save(model)
    modules = info.modules
    requirements = requirements_for(modules, files.get(PICKLE_FILE))
    manifest: dict[str, Any] = {
        "format_version": 1,
        "name": name,
        "description": description,
        "task": task,
        "classes": classes if task != "regression" else None,
        "model": {"flavor": flavor.name, "pickled": flavor.pickled, "runtime": "native",
                  "params": {**info.params, **dict(params or {})}},
        "input_schema": input_schema.to_dict(),
        "environment": {"python": python_version(), "requirements": requirements},
    }
    # Score the training sample with the model as stored (not the object in memory): this
    # proves the artifact loads and predicts before anyone registers it.
    probe = Artifact(manifest, files, "", f"model {name!r}", trusted_by="user")
    sample = X if len(X) <= SAMPLE_ROWS else X.sample(SAMPLE_ROWS, random_state=0)
    result = Scorer(probe).predict(sample)
    if result.n_rejected:
        shown = "; ".join(str(r) for r in result.rejects[:3])
        if all(r.column is None for r in result.rejects):
            raise ModelError(f"the packaged model fails on {result.n_rejected} training row(s): "
                             f"{shown}")
        raise SchemaError(f"the training data itself fails the schema: {shown}")
    check_rebuilt_frame(probe, input_schema, sample, tolerance)
    if imputed:
        input_schema = _check_imputed(probe, sample, input_schema, imputed, manifest)
        probe = Artifact(manifest, files, "", f"model {name!r}", trusted_by="user")
    if compile and flavor.name != "onnx":
        manifest["compiled"] = _compile(model, flavor.name, input_schema, manifest, files,
                                        sample, result, tolerance)
    o = result.output
    manifest["output_schema"] = _output_schema(task, classes, o.probabilities is not None)
    all_metrics: dict[str, float] = {}
    if target is not None:
        y = frame.loc[sample.index, target].to_numpy()
        all_metrics.update({f"training_{k}": v for k, v in training_metrics(
            task, classes, y, o.labels, o.probabilities, o.values).items()})
    all_metrics.update({k: float(v) for k, v in (metrics or {}).items()})
    manifest["baseline"] = {
        "rows": int(len(frame)), "sample_rows": int(len(sample)),
        "inputs": input_profile(input_schema, frame),
        "predictions": prediction_profile(task, classes, o.labels, o.probabilities, o.values),
    }
    manifest["lineage"] = {
        "training_data": {"fingerprint": fingerprint_frame(frame), "rows": int(len(frame)),
                          "columns": [str(c) for c in frame.columns], "target": target,
                          "source": source},
        "params": manifest["model"]["params"],
        "metrics": all_metrics,
        "libraries": {"python": python_version(), "scorehouse": __version__, **requirements},
        "created_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "created_by": _user(),
    }
    out = Path(path) if path is not None else Path(f"{name}{SUFFIX}")
    write_artifact(manifest, files, out, key=key)
    return out


def _imputed_nullable(model: Any, schema: Schema) -> tuple[Schema, list[str]]:
    """`schema` with the required columns an imputer of the model fills made nullable (see
    `nullability`), and their names."""
    found = imputed_columns(model, schema.names)
    changes = {n: {"nullable": True, "nullable_reason": why} for n, why in found.items()
               if not schema[n].nullable}
    return (schema.override(changes) if changes else schema), list(changes)


def _check_imputed(probe: Artifact, sample: pd.DataFrame, schema: Schema, imputed: list[str],
                   manifest: dict[str, Any]) -> Schema:
    """Score a training row with the `imputed` columns missing; if the model cannot, they
    are required again (as inferred from the data) and the manifest says so."""
    row = sample.head(1).astype({c: object for c in imputed})
    row.loc[:, imputed] = None
    if not Scorer(probe).predict(row).n_rejected:
        return schema
    schema = schema.override({n: {"nullable": False} for n in imputed})
    manifest["input_schema"] = schema.to_dict()
    return schema


def _compile(model: Any, flavor: str, schema: Schema, manifest: dict[str, Any],
             files: dict[str, bytes], sample: pd.DataFrame, native: Any, tolerance: float
             ) -> dict[str, Any]:
    """Convert to ONNX and run the parity gate; adds the graph to `files` when it converts."""
    info: dict[str, Any] = {"format": "onnx", "file": COMPILED_FILE, "opset": OPSET}
    try:
        compiled = to_onnx(model, flavor, schema, manifest["task"])
    except ConversionError as e:
        return {"format": "onnx", "status": "not converted", "step": e.step,
                "reason": f"step {e.step!r} could not be converted: {e.reason}"}
    files[COMPILED_FILE] = compiled.model_bytes
    info.update(inputs=compiled.inputs, outputs=compiled.outputs)
    probe = Artifact(manifest, files, "", f"model {manifest['name']!r}", trusted_by="user")
    try:
        parity = compare(native, Scorer(probe, runtime="onnx").predict(sample), tolerance)
    except Exception as e:  # a graph that loads but cannot score is a failed gate
        parity = {"passed": False, "reason": f"the compiled model failed: {type(e).__name__}: {e}"}
    info["parity"] = parity
    if parity["passed"]:
        info["status"] = "passed"
        manifest["model"]["runtime"] = "onnx"
    else:
        info.update(status="failed parity", reason=parity["reason"])
    return info


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
