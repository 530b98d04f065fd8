"""Training metrics computed at packaging when the target column is known."""

from __future__ import annotations

from typing import Any

import numpy as np


def training_metrics(task: str, classes: list[Any] | None, y: np.ndarray,
                     labels: np.ndarray | None, probabilities: np.ndarray | None,
                     values: np.ndarray | None) -> dict[str, float]:
    """Accuracy/log-loss/AUC for classifiers, RMSE/MAE/R² for regressors."""
    from sklearn import metrics as skm  # imported here: `import scorehouse` stays light

    if task == "regression":
        y = y.astype("float64")
        return {"rmse": float(np.sqrt(skm.mean_squared_error(y, values))),
                "mae": float(skm.mean_absolute_error(y, values)),
                "r2": float(skm.r2_score(y, values))}
    assert labels is not None  # a classifier's output always has labels
    out = {"accuracy": float(skm.accuracy_score(y.astype(str), labels.astype(str)))}
    if probabilities is not None and classes:
        y_str = y.astype(str)
        cls = [str(c) for c in classes]
        if set(y_str) <= set(cls):
            out["log_loss"] = float(skm.log_loss(y_str, probabilities, labels=cls))
            if len(set(y_str)) > 1:
                if task == "binary":
                    out["roc_auc"] = float(skm.roc_auc_score(y_str == cls[1], probabilities[:, 1]))
                elif len(set(y_str)) == len(cls):
                    out["roc_auc_ovr"] = float(skm.roc_auc_score(
                        y_str, probabilities, multi_class="ovr", labels=cls))
    return out
