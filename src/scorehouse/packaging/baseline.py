"""The training-data baseline later drift checks compare against."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..schema import Schema

QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
#: Categories beyond this many are summarised as '__other__' in the frequency table.
MAX_FREQUENCIES = 1000


def _numeric(x: np.ndarray) -> dict[str, Any]:
    x = x[np.isfinite(x)]
    if not len(x):
        return {}
    q = np.quantile(x, QUANTILES)
    # Decile edges make every bin hold ~10% of training rows: the usual base for PSI.
    edges = np.unique(np.quantile(x, np.linspace(0, 1, 11)))
    if len(edges) < 2:
        edges = np.array([x.min(), x.min() + 1.0])
    counts, _ = np.histogram(x, bins=edges)
    return {
        "mean": float(x.mean()), "std": float(x.std()),
        "quantiles": {str(k): float(v) for k, v in zip(QUANTILES, q, strict=True)},
        "histogram": {"edges": edges.tolist(), "fractions": (counts / len(x)).tolist()},
    }


def _frequencies(s: pd.Series) -> dict[str, Any]:
    freq = s.dropna().astype(str).value_counts(normalize=True)
    top = freq.head(MAX_FREQUENCIES)
    out: dict[str, Any] = {"n_unique": int(len(freq)),
                           "frequencies": {str(k): float(v) for k, v in top.items()}}
    if len(freq) > MAX_FREQUENCIES:
        out["frequencies"]["__other__"] = float(freq.iloc[MAX_FREQUENCIES:].sum())
    return out


def input_profile(schema: Schema, frame: pd.DataFrame) -> dict[str, Any]:
    """Per input column: null rate, and quantiles + histogram or category frequencies."""
    out = {}
    for col in schema.columns:
        s = frame[col.name]
        prof: dict[str, Any] = {"null_rate": float(s.isna().mean()) if len(s) else 0.0}
        if col.type in ("integer", "number"):
            prof.update(_numeric(s.to_numpy(dtype="float64", na_value=np.nan)))
        elif col.type in ("string", "boolean"):
            prof.update(_frequencies(s))
        out[col.name] = prof
    return out


def prediction_profile(task: str, classes: list[Any] | None, labels: np.ndarray | None,
                       probabilities: np.ndarray | None, values: np.ndarray | None
                       ) -> dict[str, Any]:
    """The distribution of the model's own predictions on the training sample."""
    if task == "regression":
        return {"value": _numeric(np.asarray(values, dtype="float64"))}
    out: dict[str, Any] = {"label": _frequencies(pd.Series(labels, dtype=object))}
    if probabilities is not None:
        out["probability"] = {str(c): _numeric(probabilities[:, j])
                              for j, c in enumerate(classes or [])}
    return out
