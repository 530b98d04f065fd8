"""Tree ensembles in double precision, comparing inputs exactly as the native library does.

skl2onnx and onnxmltools store thresholds and leaf values as float32 attributes, which moves
rows that sit near a threshold to the other branch. We wrap their converters with a
container that stores those numbers as double tensors (ai.onnx.ml opset 3) and rounds the
input the way the library does before comparing: scikit-learn's trees and XGBoost compare
float32(x); LightGBM and HistGradientBoosting compare the double itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")
_NUMBERS = ("nodes_values", "nodes_hitrates", "class_weights", "target_weights", "base_values")

#: How each library rounds a feature before comparing it with a threshold.
FLOAT32_INPUT = "float32"
DOUBLE_INPUT = "double"

#: skl2onnx aliases of the tree models we convert, and how they compare.
SKLEARN_TREES = {
    "SklearnDecisionTreeClassifier": FLOAT32_INPUT, "SklearnDecisionTreeRegressor": FLOAT32_INPUT,
    "SklearnRandomForestClassifier": FLOAT32_INPUT, "SklearnRandomForestRegressor": FLOAT32_INPUT,
    "SklearnExtraTreesClassifier": FLOAT32_INPUT, "SklearnExtraTreesRegressor": FLOAT32_INPUT,
    "SklearnGradientBoostingClassifier": FLOAT32_INPUT,
    "SklearnGradientBoostingRegressor": FLOAT32_INPUT,
    "SklearnHistGradientBoostingClassifier": DOUBLE_INPUT,
    "SklearnHistGradientBoostingRegressor": DOUBLE_INPUT,
}


class DoubleTrees:
    """A converter container whose tree ensemble nodes hold double-precision numbers."""

    def __init__(self, container: Any, scope: Any, rounding: str,
                 exact: Callable[[dict[str, Any]], None] | None = None,
                 zeros_missing: bool = False):
        self._container = container
        self._scope = scope
        self._rounding = rounding
        self._exact = exact
        self._zeros_missing = zeros_missing

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, op_type: str, inputs: Any, outputs: Any, op_domain: str = "",
                 op_version: int | None = None, **attrs: Any) -> None:
        """Add a node; tree ensembles get double tensors and the library's input rounding."""
        if op_type in TREE_OPS:
            from onnx import numpy_helper

            if self._exact is not None:
                self._exact(attrs)

            for key in _NUMBERS:
                if key in attrs:
                    values = np.asarray(attrs.pop(key), dtype=np.float64).ravel()
                    attrs[f"{key}_as_tensor"] = numpy_helper.from_array(values)
            for key, value in attrs.items():  # e.g. nodes_missing_value_tracks_true
                if isinstance(value, list) and any(isinstance(v, (bool, np.bool_)) for v in value):
                    attrs[key] = [int(v) for v in value]
            features = inputs if isinstance(inputs, str) else inputs[0]
            if self._zeros_missing:
                features = self._zeros_as_missing(features)
            inputs = [self._rounded(features)]
            outputs, casts = self._float_outputs(
                op_type, [outputs] if isinstance(outputs, str) else list(outputs))
            self._container.add_node(op_type, inputs, outputs, op_domain=op_domain,
                                     op_version=3, **attrs)
            for src, dst in casts:
                self._cast(src, dst)
            return
        self._container.add_node(op_type, inputs, outputs, op_domain=op_domain,
                                 op_version=op_version, **attrs)

    def _float_outputs(self, op_type: str, outputs: list[str]
                       ) -> tuple[list[str], list[tuple[str, str]]]:
        # The ensemble's scores are float even with double thresholds. Where the converter
        # declared a double output, or computes on with an intermediate (in its input type,
        # double here), write float to a temporary and cast it.
        from onnx import TensorProto

        scores = 1 if op_type == "TreeEnsembleClassifier" else 0
        var = self._scope.variables.get(outputs[scores])
        if var is not None and var.type.to_onnx_type().tensor_type.elem_type != TensorProto.DOUBLE:
            return outputs, []
        tmp = self._scope.get_unique_variable_name(f"{outputs[scores]}_float")
        renamed = list(outputs)
        renamed[scores] = tmp
        return renamed, [(tmp, outputs[scores])]

    def _cast(self, src: str, dst: str) -> None:
        from onnx import TensorProto

        self._container.add_node("Cast", [src], [dst], to=TensorProto.DOUBLE,
                                 name=self._scope.get_unique_operator_name("Cast"))

    def _zeros_as_missing(self, name: str) -> str:
        # A sparse matrix stores no zeros, and a booster reads what is not stored as missing.
        from onnx import TensorProto

        zero, nan, is_zero, out = (self._scope.get_unique_variable_name(f"{name}_{what}")
                                   for what in ("zero", "nan", "is_zero", "sparse"))
        self._container.add_initializer(zero, TensorProto.DOUBLE, [], [0.0])
        self._container.add_initializer(nan, TensorProto.DOUBLE, [], [float("nan")])
        self._container.add_node("Equal", [name, zero], [is_zero],
                                 name=self._scope.get_unique_operator_name("Equal"))
        self._container.add_node("Where", [is_zero, nan, name], [out],
                                 name=self._scope.get_unique_operator_name("Where"))
        return out

    def _rounded(self, name: str) -> str:
        from onnx import TensorProto

        steps = [TensorProto.FLOAT, TensorProto.DOUBLE] if self._rounding == FLOAT32_INPUT \
            else [TensorProto.DOUBLE]
        for to in steps:
            out = self._scope.get_unique_variable_name(f"{name}_cast")
            self._container.add_node("Cast", [name], [out], to=to,
                                     name=self._scope.get_unique_operator_name("Cast"))
            name = out
        return name


def double_precision(convert: Any, rounding: str,
                     exact: Callable[[Any], Callable[[dict[str, Any]], None]] | None = None,
                     zeros_missing: Callable[[Any], bool] | None = None) -> Any:
    """Wrap a skl2onnx-style converter so its tree ensembles are double precision.

    `exact(model)`, when given, returns a function that puts the model's exact thresholds
    into a tree node's attributes (for converters that read rounded ones).
    `zeros_missing(model)`, when true, makes the trees read an input's zeros as missing.
    """
    takes_version = "op_version" in inspect.signature(convert).parameters

    def converter(scope, operator, container):
        fix = exact(operator.raw_operator) if exact is not None else None
        zeros = zeros_missing is not None and zeros_missing(operator.raw_operator)
        proxy = DoubleTrees(container, scope, rounding, fix, zeros)
        if takes_version:
            return convert(scope, operator, proxy, op_version=3)
        return convert(scope, operator, proxy)

    return converter


_registered = False


def register_trees() -> None:
    """Re-register skl2onnx's tree converters wrapped in double precision (once)."""
    global _registered
    if _registered:
        return
    from skl2onnx.common._registration import _converter_pool, register_converter

    for alias, rounding in SKLEARN_TREES.items():
        original = _converter_pool[alias]
        register_converter(alias, double_precision(original._fct, rounding), overwrite=True,
                           options=original.get_allowed_options())
    _registered = True
