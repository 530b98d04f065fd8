"""Infer a `Schema` from the training frame."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..errors import SchemaError
from .categories import canonical_text, category_type_of
from .columns import Column, Schema
from .types import CategoryType, ColumnType

#: String columns with more distinct values than this keep no category set (no unseen flags).
CATEGORY_LIMIT = 10_000


def _logical_type(s: pd.Series) -> ColumnType:
    """The column type of a training series (pandas dtype -> ColumnType).

    Raises:
        SchemaError: text mixed with other values, or a dtype scorehouse cannot score.
    """
    dt = s.dtype
    if isinstance(dt, pd.CategoricalDtype):  # first: pandas calls one of bools "bool"
        return ColumnType.STRING
    if pd.api.types.is_bool_dtype(dt):
        return ColumnType.BOOLEAN
    if pd.api.types.is_integer_dtype(dt):
        return ColumnType.INTEGER
    if pd.api.types.is_float_dtype(dt):
        return ColumnType.NUMBER
    if pd.api.types.is_datetime64_any_dtype(dt):
        return ColumnType.DATETIME
    if pd.api.types.is_string_dtype(dt) or pd.api.types.is_object_dtype(dt):
        non_null = s.dropna()
        if len(non_null) and not all(isinstance(v, str) for v in non_null.head(1000)):
            raise SchemaError(
                f"column {s.name!r} mixes strings with other types; "
                "convert it to one type before packaging"
            )
        return ColumnType.STRING
    raise SchemaError(f"column {s.name!r} has dtype {dt} that scorehouse cannot score")


def infer_column(s: pd.Series, category_limit: int = CATEGORY_LIMIT) -> Column:
    """The `Column` describing one training series.

    Raises:
        SchemaError: a series scorehouse cannot score (see `_logical_type`), or a
            categorical whose categories are not ints, floats, booleans or text.
    """
    kind = _logical_type(s)
    nullable = bool(s.isna().any())
    categories: tuple[str, ...] | None = None
    category_type: CategoryType | None = None
    lo = hi = None
    if isinstance(s.dtype, pd.CategoricalDtype):
        # A categorical keeps its categories' type and order (XGBoost reads the codes).
        cats = s.cat.categories
        category_type = category_type_of(str(s.name), cats)
        if len(cats) <= category_limit:
            categories = tuple(canonical_text(category_type, c) for c in cats)
    elif kind is ColumnType.STRING:
        distinct = s.dropna().unique()
        if len(distinct) <= category_limit:
            categories = tuple(sorted(str(c) for c in distinct))
    elif kind.numeric:
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
    """The schema of `frame`, restricted to `columns` (model order) when given.

    Raises:
        SchemaError: a named column is not in `frame`, or a column cannot be scored (see
            `infer_column`).
    """
    names = list(columns) if columns is not None else [str(c) for c in frame.columns]
    missing = [c for c in names if c not in frame.columns]
    if missing:
        raise SchemaError(f"training data lacks the model's input column(s) {missing}")
    return Schema(tuple(infer_column(frame[c], category_limit) for c in names))
