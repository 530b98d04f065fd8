"""LightGBM and XGBoost to ONNX through onnxmltools' converters, inside skl2onnx.

Both the scikit-learn wrappers (LGBMClassifier, XGBRegressor, ...) and bare boosters
(lightgbm.Booster, xgboost.Booster) convert, alone or at the end of a pipeline.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .trees import DOUBLE_INPUT, FLOAT32_INPUT, double_precision

_registered = False


def xgboost_splits(model: Any) -> Any:
    """A fixer that stores XGBoost's split conditions as the float32 values XGBoost compares
    with (its dump prints them in decimal, which is close to but not the float32 itself)."""

    def fix(attrs: dict[str, Any]) -> None:
        values = np.asarray(attrs["nodes_values"], dtype=np.float64)
        attrs["nodes_values"] = values.astype(np.float32).astype(np.float64)

    return fix


_STAND_INS: dict[str, tuple[type, type]] = {}


def as_estimator(booster: Any, library: str, task: str) -> Any:
    """A bare booster dressed as a scikit-learn estimator that skl2onnx can convert."""
    classifier, regressor = _STAND_INS[library]
    return (regressor if task == "regression" else classifier)(booster)


def _register(library: str, classifier: type, regressor: type, wrapped: type, conv: Any) -> None:
    """Register a library's scikit-learn estimators and its bare-booster stand-ins."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    # skl2onnx places an estimator by its scikit-learn type: give bare boosters one.
    stand_ins = (type(f"{library}BoosterClassifier", (ClassifierMixin, BaseEstimator, wrapped), {}),
                 type(f"{library}BoosterRegressor", (RegressorMixin, BaseEstimator, wrapped), {}))
    _STAND_INS[library] = stand_ins
    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    for cls in (classifier, stand_ins[0]):
        update_registered_converter(cls, f"Scorehouse{cls.__name__}",
                                    calculate_linear_classifier_output_shapes, conv, options=options)
    for cls in (regressor, stand_ins[1]):
        update_registered_converter(cls, f"Scorehouse{cls.__name__}",
                                    calculate_linear_regressor_output_shapes, conv)


def register_boosters() -> None:
    """Teach skl2onnx the LightGBM and XGBoost estimators and boosters (once)."""
    global _registered
    if _registered:
        return
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm._parse import WrappedBooster
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
        _register("lightgbm", LGBMClassifier, LGBMRegressor, WrappedBooster,
                  double_precision(convert_lightgbm, DOUBLE_INPUT))
    except ImportError:
        pass
    try:
        from onnxmltools.convert.xgboost._parse import WrappedBooster
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor
        _register("xgboost", XGBClassifier, XGBRegressor, WrappedBooster,
                  double_precision(convert_xgboost, FLOAT32_INPUT, exact=xgboost_splits))
    except ImportError:
        pass
    _registered = True
