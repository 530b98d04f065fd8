"""One-hot and ordinal encoders that give double, like scikit-learn, so a graph has one float type.

Why: skl2onnx types an encoder's output float32, and types each step's outputs twice: first
while it parses the pipeline, guessing from the step's input (a string column guesses
float32), then while it infers shapes (a ColumnTransformer's concatenation becomes double
as soon as one of its parts is double). A step after the concatenation keeps the type it was
given at parsing. So when the encoder's block comes first in a ColumnTransformer, the
estimator's outputs are declared float32 while it computes in double, and ONNX Runtime
refuses the graph ("Type (tensor(float)) of output arg (probabilities) ... does not match
expected type (tensor(double))"): every classifier that computes its probabilities in its
input type (linear models, gradient boosting, LightGBM) failed after a one-hot block.

Giving the encoders double outputs in all three places (parsing, shape inference and the
graph, through a final Cast) makes every number that flows between steps double, whatever
the column order. The encoded values are small integers (0/1, category codes), which
float32 and double hold exactly, so no score changes.
"""

from __future__ import annotations

from typing import Any

_registered = False


class _DoubleOutput:
    """A converter container that writes the operator's output through a Cast to double."""

    def __init__(self, container: Any, scope: Any, output: str):
        self._container = container
        self._scope = scope
        self._output = output
        self._temporary = scope.get_unique_variable_name(f"{output}_encoded")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, op_type: str, inputs: Any, outputs: Any, *args: Any, **attrs: Any) -> None:
        """Add a node; the one producing the operator's output writes a temporary instead."""
        names = [outputs] if isinstance(outputs, str) else list(outputs)
        if self._output in names:
            names = [self._temporary if n == self._output else n for n in names]
        self._container.add_node(op_type, inputs, names, *args, **attrs)

    def cast(self) -> None:
        from onnx import TensorProto

        self._container.add_node("Cast", [self._temporary], [self._output], to=TensorProto.DOUBLE,
                                 name=self._scope.get_unique_operator_name("Cast"))


def _double_converter(convert: Any) -> Any:
    def converter(scope: Any, operator: Any, container: Any) -> None:
        proxy = _DoubleOutput(container, scope, operator.outputs[0].full_name)
        convert(scope, operator, proxy)
        proxy.cast()

    return converter


def _double_shapes(calculate: Any) -> Any:
    def calculator(operator: Any) -> None:
        from skl2onnx.common.data_types import DoubleTensorType

        calculate(operator)
        operator.outputs[0].type = DoubleTensorType(operator.outputs[0].type.shape)

    return calculator


def _double_parser(alias: str) -> Any:
    def parser(scope: Any, model: Any, inputs: Any, custom_parsers: Any = None) -> Any:
        from skl2onnx.common.data_types import DoubleTensorType

        operator = scope.declare_local_operator(alias, model)
        operator.inputs = inputs
        operator.outputs.append(scope.declare_local_variable("variable", DoubleTensorType()))
        return operator.outputs

    return parser


def register_encoders() -> None:
    """Make skl2onnx's OneHotEncoder and OrdinalEncoder give double (once per process)."""
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common._registration import _converter_pool, _shape_calculator_pool
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

    for cls, alias in ((OneHotEncoder, "SklearnOneHotEncoder"),
                       (OrdinalEncoder, "SklearnOrdinalEncoder")):
        original = _converter_pool[alias]
        update_registered_converter(
            cls, alias, _double_shapes(_shape_calculator_pool[alias]),
            _double_converter(original._fct), overwrite=True, parser=_double_parser(alias),
            options=original.get_allowed_options())
    _registered = True
