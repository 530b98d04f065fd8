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


def _booster_classes() -> dict[str, tuple[type, type]]:
    """scikit-learn-shaped stand-ins for bare boosters, so skl2onnx can place them."""
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    out: dict[str, tuple[type, type]] = {}
    try:
        from onnxmltools.convert.lightgbm._parse import WrappedBooster as LgbWrapped
        out["lightgbm"] = (type("LightGBMBoosterClassifier", (ClassifierMixin, BaseEstimator,
                                                               LgbWrapped), {}),
                           type("LightGBMBoosterRegressor", (RegressorMixin, BaseEstimator,
                                                             LgbWrapped), {}))
    except ImportError:
        pass
    try:
        from onnxmltools.convert.xgboost._parse import WrappedBooster as XgbWrapped
        out["xgboost"] = (type("XGBoostBoosterClassifier", (ClassifierMixin, BaseEstimator,
                                                             XgbWrapped), {}),
                          type("XGBoostBoosterRegressor", (RegressorMixin, BaseEstimator,
                                                           XgbWrapped), {}))
    except ImportError:
        pass
    return out


_STAND_INS: dict[str, tuple[type, type]] = {}


def as_estimator(booster: Any, library: str, task: str) -> Any:
    """A bare booster dressed as a scikit-learn estimator that skl2onnx can convert."""
    classifier, regressor = _STAND_INS[library]
    return (regressor if task == "regression" else classifier)(booster)


def register_boosters() -> None:
    """Teach skl2onnx the LightGBM and XGBoost estimators and boosters (once)."""
    global _registered
    if _registered:
        return
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    _STAND_INS.update(_booster_classes())
    models: list[tuple[type, str, Any, bool]] = []
    try:
        from lightgbm import LGBMClassifier, LGBMRegressor
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
        conv = double_precision(convert_lightgbm, DOUBLE_INPUT)
        models += [(LGBMClassifier, "LightGbmLGBMClassifier", conv, True),
                   (LGBMRegressor, "LightGbmLGBMRegressor", conv, False)]
        if "lightgbm" in _STAND_INS:
            c, r = _STAND_INS["lightgbm"]
            models += [(c, "ScorehouseLightGBMBoosterClassifier", conv, True),
                       (r, "ScorehouseLightGBMBoosterRegressor", conv, False)]
    except ImportError:
        pass
    try:
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost
        from xgboost import XGBClassifier, XGBRegressor
        conv = double_precision(convert_xgboost, FLOAT32_INPUT, exact=xgboost_splits)
        models += [(XGBClassifier, "XGBoostXGBClassifier", conv, True),
                   (XGBRegressor, "XGBoostXGBRegressor", conv, False)]
        if "xgboost" in _STAND_INS:
            c, r = _STAND_INS["xgboost"]
            models += [(c, "ScorehouseXGBoostBoosterClassifier", conv, True),
                       (r, "ScorehouseXGBoostBoosterRegressor", conv, False)]
    except ImportError:
        pass
    for cls, alias, conv, is_classifier in models:
        if is_classifier:
            update_registered_converter(cls, alias, calculate_linear_classifier_output_shapes,
                                        conv, options=options)
        else:
            update_registered_converter(cls, alias, calculate_linear_regressor_output_shapes, conv)
    _registered = True
