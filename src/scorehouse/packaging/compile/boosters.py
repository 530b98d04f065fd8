"""LightGBM and XGBoost to ONNX through onnxmltools' converters, inside skl2onnx.

Both the scikit-learn wrappers (LGBMClassifier, XGBRegressor, ...) and bare boosters
(lightgbm.Booster, xgboost.Booster) convert, alone or at the end of a pipeline.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import numpy as np

from .trees import DOUBLE_INPUT, FLOAT32_INPUT, double_precision

_registered = False

#: While a model converts: the XGBoost estimators (by id) that the step before them feeds a
#: sparse matrix. XGBoost reads the zeros such a matrix does not store as missing values.
SPARSE_FED: ContextVar[frozenset[int]] = ContextVar("scorehouse_sparse_fed", default=frozenset())


def sparse_fed(model: Any) -> frozenset[int]:
    """The ids of the XGBoost estimators inside `model` whose previous step outputs sparse."""
    found: set[int] = set()

    def walk(m: Any) -> None:
        if hasattr(m, "steps"):
            for (_, before), (_, est) in zip(m.steps, m.steps[1:], strict=False):
                if type(est).__module__.startswith("xgboost") and _outputs_sparse(before):
                    found.add(id(est))
            for _, step in m.steps:
                walk(step)
        for _, step, _ in getattr(m, "transformers_", ()):
            walk(step)

    walk(model)
    return frozenset(found)


def _outputs_sparse(step: Any) -> bool:
    if hasattr(step, "sparse_output_"):  # a fitted ColumnTransformer decided for its data
        return bool(step.sparse_output_)
    if hasattr(step, "steps"):
        return _outputs_sparse(step.steps[-1][1])
    return bool(getattr(step, "sparse_output", False))  # OneHotEncoder


def _fed_sparse(model: Any) -> bool:
    return id(model) in SPARSE_FED.get()


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
                  double_precision(convert_xgboost, FLOAT32_INPUT, exact=xgboost_splits,
                                   zeros_missing=_fed_sparse))
    except ImportError:
        pass
    _registered = True


def category_codes(model: Any, library: str, schema: Any, step: str) -> dict[str, list[str]]:
    """{text column: its categories} for a booster that reads text columns as category codes.

    LightGBM trained on pandas categories codes each value as its position in the training
    frame's categories (`pandas_categorical`), one list per category column in column
    order; a value outside the list, or missing, is NaN. Raises ConversionError naming
    `step` (or the column) where the text columns cannot be coded so.
    """
    from .convert import ConversionError

    text = [c for c in schema.columns if c.type == "string"]
    if not text:
        return {}
    if library != "lightgbm":
        raise ConversionError(step, f"{library} reads no text columns in its ONNX conversion")
    booster = model.booster_ if hasattr(model, "booster_") else model
    lists = getattr(booster, "pandas_categorical", None) or []
    if len(lists) != len(text) or any(c.dtype != "category" for c in text):
        raise ConversionError(step, "its text columns are not all pandas categories it was "
                                    "trained on")
    codes = {}
    for col, categories in zip(text, lists, strict=True):
        if not all(isinstance(v, str) and v for v in categories):
            raise ConversionError(f"input column {col.name!r}", "LightGBM categories that are "
                                  "not non-empty text are not converted")
        codes[col.name] = list(categories)
    return codes
