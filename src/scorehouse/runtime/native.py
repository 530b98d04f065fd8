"""The native runtime: the model's own library predicts (scikit-learn, LightGBM, XGBoost, Python)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..errors import ModelError
from .base import Output, Runtime, binary_proba
from .frames import model_frame


class NativeRuntime(Runtime):
    """Predicts with the library the model was trained with, on a rebuilt training-like frame."""

    name = "native"

    def __init__(self, artifact, schema):
        super().__init__(artifact, schema)
        self.model = artifact.model()
        self.flavor = artifact.flavor
        predict = {
            "sklearn": self._sklearn, "python": self._sklearn,
            "lightgbm": self._lightgbm, "xgboost": self._xgboost,
        }.get(self.flavor)
        if predict is None:
            raise ModelError(f"the native runtime cannot run {self.flavor} models")
        self._predict: Callable[[Any], Output] = predict
        if self.flavor == "xgboost":
            best = self.model.attr("best_iteration")
            self._iterations = (0, int(best) + 1) if best is not None else (0, 0)
            self._objective = artifact.manifest.model.params.get("objective", "")

    def predict(self, columns: Mapping[str, np.ndarray], n: int) -> Output:
        """Predict n rows with the native library."""
        return self._predict(model_frame(self.schema, columns))

    def predict_frame(self, frame) -> Output:
        """Predict a pandas frame as given, not rebuilt from canonical columns (packaging
        compares the two on the training rows: `packaging.rebuild`)."""
        return self._predict(frame)

    def _classify(self, proba: np.ndarray) -> Output:
        return Output(labels=self.labels_from(proba), probabilities=proba)

    def _sklearn(self, frame) -> Output:
        m = self.model
        if self.task == "regression":
            predict = getattr(m, "predict", m)
            return Output(values=np.asarray(predict(frame), dtype="float64").reshape(-1))
        if self.classes is not None and callable(getattr(m, "predict_proba", None)):
            return self._classify(np.asarray(m.predict_proba(frame), dtype="float64"))
        predict = getattr(m, "predict", m)
        return Output(labels=np.asarray(predict(frame), dtype=object).reshape(-1))

    def _lightgbm(self, frame) -> Output:
        out = np.asarray(self.model.predict(frame), dtype="float64")
        if self.task == "regression":
            return Output(values=out.reshape(-1))
        return self._classify(binary_proba(out) if out.ndim == 1 else out)

    def _xgboost(self, frame) -> Output:
        out = np.asarray(self.model.inplace_predict(frame, iteration_range=self._iterations),
                         dtype="float64")
        if self.task == "regression":
            return Output(values=out.reshape(-1))
        if self._objective in ("multi:softmax", "binary:hinge"):
            assert self.classes is not None  # classifier objectives
            return Output(labels=self.classes[out.astype(int).reshape(-1)])
        if self._objective == "binary:logitraw":
            out = 1.0 / (1.0 + np.exp(-out))
        return self._classify(binary_proba(out) if out.ndim == 1 else out)
