"""Read a trained model from the file a data scientist saved it in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import NotFoundError, UnsupportedModelError


def load_model_file(path: Path) -> Any:
    """The model in `path`: joblib/pickle, ONNX, LightGBM text, or XGBoost JSON/UBJSON."""
    if not path.exists():
        raise NotFoundError(f"no model file at {path}")
    name = path.name.lower()
    if name.endswith(".onnx"):
        return str(path)
    if name.endswith((".joblib", ".pkl", ".pickle")):
        import joblib

        # The caller's own file: unpickling it is what they asked for.
        return joblib.load(path)
    if name.endswith((".lgb", ".lgb.txt", ".lightgbm")):
        import lightgbm

        return lightgbm.Booster(model_file=str(path))
    if name.endswith((".ubj", ".xgb", ".json")):
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(str(path))
        return booster
    raise UnsupportedModelError(
        f"cannot tell what kind of model {path.name} holds: use .joblib/.pkl (scikit-learn or "
        "any Python object), .onnx, .lgb.txt (LightGBM) or .ubj/.json (XGBoost)")
