"""Infer a `Schema` from the training frame."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import SchemaError
from .columns import Column, Schema

#: String columns with more distinct values than this keep no category set (no unseen flags).
CATEGORY_LIMIT = 10_000


def _logical_type(s: pd.Series) -> str:
    dt = s.dtype
    if pd.api.types.is_bool_dtype(dt):
        return "boolean"
    if pd.api.types.is_integer_dtype(dt):
        return "integer"
    if pd.api.types.is_float_dtype(dt):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dt):
        return "datetime"
    if isinstance(dt, pd.CategoricalDtype):
        return "string"
    if pd.api.types.is_string_dtype(dt) or pd.api.types.is_object_dtype(dt):
        non_null = s.dropna()
        if len(non_null) and not all(isinstance(v, str) for v in non_null.head(1000)):
            raise SchemaError(
                f"column {s.name!r} mixes strings with other types; "
                "convert it to one type before packaging"
            )
        return "string"
    raise SchemaError(f"column {s.name!r} has dtype {dt} that scorehouse cannot score")


def infer_column(s: pd.Series, category_limit: int = CATEGORY_LIMIT) -> Column:
    """The `Column` describing one training series."""
    kind = _logical_type(s)
    nullable = bool(s.isna().any())
    categories = None
    lo = hi = None
    if kind == "string":
        cats = s.cat.categories if isinstance(s.dtype, pd.CategoricalDtype) else s.dropna().unique()
        if len(cats) <= category_limit:
            categories = tuple(sorted(str(c) for c in cats))
    elif kind in ("integer", "number"):
        values = s.dropna().to_numpy(dtype="float64")
        values = values[np.isfinite(values)]
        if len(values):
            lo, hi = float(values.min()), float(values.max())
    return Column(
        name=str(s.name), type=kind, nullable=nullable, categories=categories,
        min=lo, max=hi, dtype=str(s.dtype) if not isinstance(s.dtype, pd.CategoricalDtype)
        else "category",
    )


def infer_schema(
    frame: pd.DataFrame, columns: Sequence[str] | None = None, category_limit: int = CATEGORY_LIMIT
) -> Schema:
    """The schema of `frame`, restricted to `columns` (model order) when given."""
    names = list(columns) if columns is not None else [str(c) for c in frame.columns]
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise SchemaError(f"training data lacks the model's input column(s) {missing}")
    return Schema(tuple(infer_column(frame[c], category_limit) for c in names))
