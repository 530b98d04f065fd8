"""An ONNX converter for SimpleImputer that ONNX Runtime can run on double columns."""

from __future__ import annotations

import numpy as np

_registered = False


def _convert_imputer(scope, operator, container):
    # ONNX Runtime has no double kernel for ai.onnx.ml.Imputer, and skl2onnx's converter
    # refuses NaN as the missing marker of string columns; Where(IsNaN | Equal) does both.
    from skl2onnx.algebra.onnx_ops import OnnxEqual, OnnxIsNaN, OnnxWhere
    from skl2onnx.common.data_types import StringTensorType, guess_numpy_type
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    op = operator.raw_operator
    if getattr(op, "add_indicator", False):
        raise NotImplementedError("SimpleImputer(add_indicator=True) has no ONNX converter")
    x = operator.inputs[0]
    opv = container.target_opset
    if isinstance(x.type, StringTensorType):
        if isinstance(op.missing_values, str):
            return convert_sklearn_imputer(scope, operator, container)
        stats = np.array([str(v) for v in op.statistics_], dtype=object).reshape(1, -1)
        missing = OnnxEqual(x, np.array([""], dtype=object), op_version=opv)
    else:
        dtype = guess_numpy_type(x.type)
        stats = np.asarray(op.statistics_, dtype=dtype).reshape(1, -1)
        if np.isnan(stats).any():
            raise NotImplementedError("SimpleImputer dropped an all-missing column "
                                      "(keep_empty_features=False); no ONNX converter")
        mv = op.missing_values
        if isinstance(mv, float) and np.isnan(mv):
            missing = OnnxIsNaN(x, op_version=opv)
        else:
            missing = OnnxEqual(x, np.array([mv], dtype=dtype), op_version=opv)
    node = OnnxWhere(missing, stats, x, op_version=opv, output_names=operator.outputs[:1])
    node.add_to(scope, container)


def register_imputer() -> None:
    """Replace skl2onnx's SimpleImputer converter with ours (once per process)."""
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
    from sklearn.impute import SimpleImputer

    update_registered_converter(SimpleImputer, "SklearnImputer",
                                calculate_sklearn_imputer_output_shapes, _convert_imputer,
                                overwrite=True)
    _registered = True
