"""Categorical columns whose categories are not text: one rule maps what arrives to them.

A pandas `category` column records its categories' value type (`Column.category_type`: int,
float, bool or text) and the categories' canonical text (`Column.categories`):

    int 11 -> "11"      float 2.5 -> "2.5", 2 -> "2.0"      bool True -> "True"

A value from any channel (JSON 11 or "11", CSV text "11", a Parquet int64 or double 11.0)
is read by the rule of the matching column type (integer, number, boolean:
`CategoryType.value_type`),
written as that canonical text, and matched exactly: so 11, "11", 11.0 and " 11 " are all
category 11. A value that cannot be read as the type ("abc" or 11.5 for int categories, a
boolean for numbers) rejects the row; a readable value that is no training category (55)
is scored and flagged `unseen_category`, as for text.
The native runtime turns the canonical text back into the typed categories
(`typed_categories`), so the model sees the category values it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import SchemaError
from .columns import Column
from .types import CategoryType


def category_type_of(name: str, categories: pd.Index) -> CategoryType:
    """The category type (int, float, bool or text) of a training categorical's categories.

    Raises:
        SchemaError: categories of any other kind (dates, mixed objects): scorehouse could
            not match them, so it refuses at packaging instead of scoring them as missing.
    """
    dt = categories.dtype
    if pd.api.types.is_bool_dtype(dt):
        return CategoryType.BOOL
    if pd.api.types.is_integer_dtype(dt):
        return CategoryType.INT
    if pd.api.types.is_float_dtype(dt):
        return CategoryType.FLOAT
    values = list(categories)
    if all(isinstance(v, str) for v in values):
        return CategoryType.TEXT
    if values and all(isinstance(v, (bool, np.bool_)) for v in values):
        return CategoryType.BOOL
    raise SchemaError(
        f"column {name!r} is a categorical of {dt} values; scorehouse matches categories of "
        "integers, floats, booleans or text: convert its categories to one of those "
        "(e.g. .cat.rename_categories(str)) and retrain, or pass the column as another type")


def canonical_text(kind: CategoryType | str | None, v: Any) -> str:
    """The text a typed category is stored and matched as (`kind` from `category_type_of`;
    None or "text": the value's own text)."""
    if kind == "int":
        return str(int(v))
    if kind == "float":
        return repr(float(v))
    if kind == "bool":
        return str(bool(v))
    return str(v)


def typed_categories(col: Column, texts: Sequence[str] | None = None) -> list[Any]:
    """`col.categories` (or `texts`, canonical texts of this column) as the values the model
    was trained on: ints, floats, bools or text."""
    kind = col.category_type or CategoryType.TEXT
    cats = (col.categories or ()) if texts is None else texts
    if kind == "int":
        return [int(c) for c in cats]
    if kind == "float":
        return [float(c) for c in cats]
    if kind == "bool":
        return [c == "True" for c in cats]
    return list(cats)
