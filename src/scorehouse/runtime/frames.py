"""Rebuild the pandas frame a native model was trained on from canonical columns."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pandas as pd

from ..schema import Column, Schema
from ..schema.categories import typed_categories
from ..schema.datetimes import zone_of

#: The date-time units pandas stores, by their name in a dtype ("datetime64[us, UTC]").
_UNITS: dict[str, Literal["s", "ms", "us", "ns"]] = {"s": "s", "ms": "ms", "us": "us", "ns": "ns"}


def _series_values(col: Column, v: np.ndarray) -> object:
    dtype = col.dtype or ""
    if dtype == "category":
        return _categorical(col, v)
    if col.type == "datetime":
        return _datetimes(col, v)
    if col.type == "string":
        if dtype in ("str", "string"):
            # pandas-stubs take only a literal dtype name; this is "str" or "string".
            return pd.array(v, dtype=dtype)  # type: ignore[call-overload]
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


def _categorical(col: Column, v: np.ndarray) -> pd.Categorical:
    """The training categorical: canonical texts matched to the categories, then the typed
    category values (ints, floats, bools or text) the model was trained on; a value that is
    no category (flagged unseen) is missing, as pandas makes it."""
    texts = list(col.categories) if col.categories is not None else \
        sorted({x for x in v if x is not None})
    # pandas takes array-likes here (its documented types); pandas-stubs only an Index.
    codes = pd.Index(texts, dtype=object).get_indexer(v)  # type: ignore[arg-type]
    return pd.Categorical.from_codes(codes, categories=typed_categories(col, texts))  # type: ignore[call-overload]


def _datetimes(col: Column, v: np.ndarray) -> object:
    """Canonical date-times (zone-less; UTC instants for a zoned column) in the training
    column's zone and unit ("datetime64[us, Europe/Paris]")."""
    out = pd.DatetimeIndex(v)
    zone = zone_of(col)
    if zone is not None:
        out = out.tz_localize("UTC").tz_convert(zone)
    unit = _UNITS.get((col.dtype or "").removeprefix("datetime64[").split(",")[0].rstrip("]"))
    if unit is not None:
        out = out.as_unit(unit)
    return out.array


def model_frame(schema: Schema, columns: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """A DataFrame with the training column order and dtypes."""
    return pd.DataFrame({c.name: _series_values(c, columns[c.name]) for c in schema.columns},
                        copy=False)
