"""Convert a trained model to one ONNX graph with one input per schema column.

The graph's contract, for any ONNX Runtime in any language:
- inputs: one per schema column, named like the column, shape [N, 1]; numbers, integers and
  booleans as double (missing = NaN), strings as string (missing = "");
- outputs: classifiers give `label` [N] and `probabilities` [N, classes] (in the manifest's
  class order); regressors give `value` [N, 1].
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ScorehouseError
from ...schema import Schema
from .boosters import SPARSE_FED, category_codes, sparse_fed

#: Opsets of the graphs we write: 19 is the first with string Equal; ml 3 has double trees.
OPSET = {"": 19, "ai.onnx.ml": 3}


class ConversionError(ScorehouseError):
    """The model, or one step of it, has no faithful ONNX conversion."""

    def __init__(self, step: str, reason: str):
        super().__init__(f"{step}: {reason}")
        self.step = step
        self.reason = reason


@dataclass
class Compiled:
    """An ONNX graph of a model and the names a caller feeds and reads."""

    model_bytes: bytes
    inputs: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)


def to_onnx(model: Any, flavor: str, schema: Schema, task: str) -> Compiled:
    """The ONNX graph of `model`, or ConversionError naming the step that cannot convert."""
    for col in schema.columns:
        if col.type == "datetime":
            raise ConversionError(f"input column {col.name!r}",
                                  "datetime columns have no ONNX input type")
    if flavor == "sklearn":
        onx = _convert_sklearn(model, schema)
    elif flavor in ("lightgbm", "xgboost"):
        codes = category_codes(model, flavor, schema, _root(model))
        onx = _convert_sklearn(_booster_estimator(model, flavor, schema, task), schema, codes)
    elif flavor == "python":
        raise ConversionError("model", "plain Python callables have no ONNX converter")
    else:
        raise ConversionError("model", f"{flavor} models are not converted")
    _name_outputs(onx, task, model.steps[-1][0] if hasattr(model, "steps") else _root(model))
    onx.graph.name = "scorehouse"  # converters name graphs with a random uuid
    data = onx.SerializeToString()
    refusal = _refusal(data)
    if refusal is not None:
        step = _refused_step(model, schema) if flavor == "sklearn" else _root(model)
        raise ConversionError(step, f"ONNX Runtime refuses the converted graph: {refusal}")
    return Compiled(data, _describe(onx.graph.input), _describe(onx.graph.output))


def _root(model: Any) -> str:
    """The user's name for the whole model: its class (a pipeline's steps have their own)."""
    return type(model).__name__


def _refused_step(model: Any, schema: Schema) -> str:
    """The first step of a pipeline that ONNX Runtime refuses, converted with those before it.

    The graph's nodes carry no step names, so we convert ever longer heads of the pipeline
    and load each: the first head that does not load ends with the culprit. When every head
    loads, the final estimator is what ONNX Runtime refused.
    """
    from sklearn.pipeline import Pipeline

    if not hasattr(model, "steps"):
        return _root(model)
    for k, (name, _) in enumerate(model.steps[:-1], start=1):
        try:
            head = _convert_sklearn(Pipeline(model.steps[:k]), schema)
        except ConversionError as e:
            return e.step
        if _refusal(head.SerializeToString()) is not None:
            return name
    return model.steps[-1][0]


def _input_types(schema: Schema) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    return [(c.name, StringTensorType([None, 1]) if c.type == "string"
             else DoubleTensorType([None, 1])) for c in schema.columns]


def steps(model: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every estimator inside `model` with its path, e.g. `features > cat > onehot`."""
    yield path or type(model).__name__, model
    children: list[tuple[str, Any]] = []
    if hasattr(model, "steps"):
        children = list(model.steps)
    elif hasattr(model, "transformers_"):
        children = [(n, t) for n, t, _ in model.transformers_]
    elif hasattr(model, "transformer_list"):
        children = list(model.transformer_list)
    for name, child in children:
        if child in ("drop", "passthrough", None):
            continue
        yield from steps(child, f"{path} > {name}" if path else name)


def _convert_sklearn(model: Any, schema: Schema,
                     codes: Mapping[str, list[str]] | None = None) -> Any:
    """The graph of a scikit-learn model (or booster wrapper); `codes` maps the text columns
    a booster reads as category codes to their categories (see `_columns_in_front`)."""
    from skl2onnx import convert_sklearn
    from skl2onnx._supported_operators import sklearn_operator_name_map
    from sklearn.base import is_classifier

    from .boosters import register_boosters
    from .encoders import register_encoders
    from .imputers import register_imputer
    from .trees import register_trees

    register_encoders()
    register_imputer()
    register_trees()
    register_boosters()
    options = {}
    containers = ("Pipeline", "ColumnTransformer", "FeatureUnion")
    for path, est in steps(model):
        if type(est).__name__ not in containers and type(est) not in sklearn_operator_name_map:
            raise ConversionError(path, f"no ONNX converter for {type(est).__name__}")
        if is_classifier(est) and type(est).__name__ not in containers:
            options[id(est)] = {"zipmap": False}
    by_column = _takes_columns(model)
    codes = codes or {}
    if not by_column and any(c.type == "string" and c.name not in codes for c in schema.columns):
        raise ConversionError(next(iter(steps(model)))[0], "string columns reach a step that "
                              "takes one matrix; only a ColumnTransformer can route them")
    sparse = SPARSE_FED.set(sparse_fed(model))
    try:
        onx = convert_sklearn(model, initial_types=_input_types(schema) if by_column
                              else _matrix_type(schema), options=options, target_opset=OPSET)
    except ConversionError:
        raise
    except Exception as e:
        raise ConversionError(_failing_step(model, e), _reason(e)) from e
    finally:
        SPARSE_FED.reset(sparse)
    if not by_column:
        _columns_in_front(onx, schema, codes)
    return onx


def _takes_columns(model: Any) -> bool:
    # Only a ColumnTransformer picks columns by name; anything else takes one matrix.
    while hasattr(model, "steps"):
        model = model.steps[0][1]
    return hasattr(model, "transformers")


def _matrix_type(schema: Schema) -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import DoubleTensorType

    return [("features", DoubleTensorType([None, len(schema.columns)]))]


def _columns_in_front(onx: Any, schema: Schema, codes: Mapping[str, list[str]]) -> None:
    """Replace the graph's one matrix input by one input per column and a Concat.

    A text column in `codes` becomes its category's position in that list (as LightGBM
    codes pandas categories), and NaN for a missing ("") or unseen value, as LightGBM
    reads a category it did not train on.
    """
    from onnx import TensorProto, helper

    g = onx.graph
    matrix = g.input[0].name
    del g.input[:]
    front, parts = [], []
    for c in schema.columns:
        if c.name not in codes:
            g.input.append(helper.make_tensor_value_info(c.name, TensorProto.DOUBLE, [None, 1]))
            parts.append(c.name)
            continue
        g.input.append(helper.make_tensor_value_info(c.name, TensorProto.STRING, [None, 1]))
        categories = codes[c.name]
        code = f"scorehouse_{c.name}_code"
        front += [helper.make_node("LabelEncoder", [c.name], [f"{code}_float"],
                                   domain="ai.onnx.ml", keys_strings=categories,
                                   values_floats=[float(k) for k in range(len(categories))],
                                   default_float=float("nan"), name=f"{code}_lookup"),
                  helper.make_node("Cast", [f"{code}_float"], [code], to=TensorProto.DOUBLE,
                                   name=f"{code}_cast")]
        parts.append(code)
    front.append(helper.make_node("Concat", parts, [matrix], axis=1, name="scorehouse_columns"))
    for k, node in enumerate(front):
        g.node.insert(k, node)


def _reason(error: Exception, limit: int = 300) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _failing_step(model: Any, error: Exception) -> str:
    # The converter that raised holds the estimator as `operator.raw_operator` in its frame.
    paths = {id(est): path for path, est in steps(model)}
    tb = error.__traceback__
    found = _root(model)
    while tb is not None:
        operator = tb.tb_frame.f_locals.get("operator")
        raw = getattr(operator, "raw_operator", None)
        if raw is not None and id(raw) in paths:
            found = paths[id(raw)]
        tb = tb.tb_next
    return found


def _booster_estimator(model: Any, library: str, schema: Schema, task: str) -> Any:
    import copy

    from .boosters import as_estimator, register_boosters

    register_boosters()
    if not hasattr(model, "get_params"):  # a bare Booster
        return as_estimator(model, library, task)
    if library == "xgboost" and model.get_booster().feature_names:
        # onnxmltools reads split features as f0, f1, ...; names are positional anyway.
        model = copy.deepcopy(model)
        model.get_booster().feature_names = None
    return model


def _name_outputs(onx: Any, task: str, step: str) -> None:
    from onnx import helper

    g = onx.graph
    tensors = [o for o in g.output if o.type.HasField("tensor_type")]
    wanted = ["value"] if task == "regression" else ["label", "probabilities"]
    if len(tensors) != len(g.output) or len(tensors) != len(wanted):
        raise ConversionError(step, f"the graph's outputs are {[o.name for o in g.output]}, "
                                    f"not {wanted}")
    for out, name in zip(g.output, wanted, strict=True):
        if out.name != name:
            g.node.append(helper.make_node("Identity", [out.name], [name],
                                           name=f"scorehouse_{name}"))
            out.name = name


def _refusal(data: bytes) -> str | None:
    """Why ONNX Runtime cannot load the graph `data`, or None when it loads."""
    import onnxruntime as ort

    try:
        ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - any refusal is reported with its message
        return _reason(e)
    return None


def _describe(values: Any) -> list[dict[str, Any]]:
    from onnx import TensorProto

    out = []
    for v in values:
        t = v.type.tensor_type
        shape = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        out.append({"name": v.name, "type": TensorProto.DataType.Name(t.elem_type).lower(),
                    "shape": shape})
    return out


