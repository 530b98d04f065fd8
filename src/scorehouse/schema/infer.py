"""Infer a `Schema` from the training frame."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import SchemaError
from .categories import canonical_text, category_type_of
from .columns import Column, Schema

#: String columns with more distinct values than this keep no category set (no unseen flags).
CATEGORY_LIMIT = 10_000


def _logical_type(s: pd.Series) -> str:
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):  # first: pandas calls one of bools "bool"
        return "string"
    if pd.api.types.is_bool_dtype(dt):
        return "boolean"
    if pd.api.types.is_integer_dtype(dt):
        return "integer"
    if pd.api.types.is_float_dtype(dt):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(dt):
        return "datetime"
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
    categories = category_type = None
    lo = hi = None
    if isinstance(s.dtype, pd.CategoricalDtype):
        # A categorical keeps its categories' type and order (XGBoost reads the codes).
        cats = s.cat.categories
        category_type = category_type_of(str(s.name), cats)
        if len(cats) <= category_limit:
            categories = tuple(canonical_text(category_type, c) for c in cats)
    elif kind == "string":
        cats = s.dropna().unique()
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
        else "category", category_type=category_type,
        timezone=_zone(s), nullable_reason="missing in training" if nullable else None,
    )


def _zone(s: pd.Series) -> str | None:
    """The zone of a zone-aware date-time column ("UTC", "Europe/Paris"); None otherwise."""
    tz = getattr(s.dtype, "tz", None)
    return None if tz is None else str(tz)


def infer_schema(
    frame: pd.DataFrame, columns: Sequence[str] | None = None, category_limit: int = CATEGORY_LIMIT
) -> Schema:
    """The schema of `frame`, restricted to `columns` (model order) when given."""
    names = list(columns) if columns is not None else [str(c) for c in frame.columns]
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise SchemaError(f"training data lacks the model's input column(s) {missing}")
    return Schema(tuple(infer_column(frame[c], category_limit) for c in names))
