"""Rebuild the pandas frame a native model was trained on from canonical columns."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..schema import Column, Schema


def _series_values(col: Column, v: np.ndarray) -> object:
    dtype = col.dtype or ""
    if dtype == "category":
        return pd.Categorical(v, categories=list(col.categories or sorted({x for x in v if x})))
    if col.type == "string":
        if dtype in ("str", "string"):
            return pd.array(v, dtype=dtype)
        out = v.copy()
        out[pd.isna(out)] = np.nan  # sklearn's imputers look for NaN, not None
        return out
    if col.type in ("integer", "number") and dtype and v.dtype != dtype:
        # float32 training columns, nullable Int64 ...; an int column holding NaN stays float.
        if dtype.startswith(("int", "uint")) and v.dtype.kind == "f":
            return v
        try:
            return v.astype(dtype)
        except (TypeError, ValueError):
            return v
    return v


def model_frame(schema: Schema, columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """A DataFrame with the training column order and dtypes."""
    return pd.DataFrame({c.name: _series_values(c, columns[c.name]) for c in schema.columns},
                        copy=False)
