"""The coercion rules for whole columns: `coerce_column` applies `coerce_value`'s rule.

`values.coerce_value` is the reference rule for one value; `coerce_column` applies the same
rule to a whole column, vectorised for already-typed columns (Arrow, NumPy, pandas) and
value by value otherwise, so a CSV string "42" and a JSON 42 always end up the same. The
one-value names are importable from here too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .columns import Column
from .datetimes import datetime_column, zone_of
from .types import ColumnType
from .values import (
    FALSE_TOKENS,
    INT64_RANGE,
    NULL_TOKENS,
    TRUE_TOKENS,
    CoercionError,
    RowRule,
    coerce_value,
    flag_of,
    integer_reason,
    is_null,
    null_token,
    row_rule,
)

__all__ = [
    "Coerced", "coerce_column", "flag_mask",
    # the one-value rule (values.py), read from here by callers of the column rule
    "CoercionError", "RowRule", "coerce_value", "flag_of", "row_rule", "is_null",
    "NULL_TOKENS", "TRUE_TOKENS", "FALSE_TOKENS", "INT64_RANGE",
]


class Coerced:
    """A coerced column: canonical values, null mask, and the rows that failed with why.

    A string column coerced from its distinct values keeps them (`distinct`, with `values`
    equal to `distinct[codes]`) so later per-value checks run once per distinct value too.
    """

    __slots__ = ("values", "null", "errors", "distinct", "codes")

    def __init__(self, values: np.ndarray, null: np.ndarray, errors: list[tuple[int, str, Any]],
                 distinct: np.ndarray | None = None, codes: np.ndarray | None = None):
        self.values = values
        self.null = null
        self.errors = errors
        self.distinct = distinct
        self.codes = codes


def _typed_numpy(raw: Any) -> np.ndarray | None:
    """A NumPy view of an Arrow/pandas/NumPy column when it is already numeric or boolean."""
    if isinstance(raw, (pa.Array, pa.ChunkedArray)):
        t = raw.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t):
            return np.asarray(pc.cast(raw, pa.float64()).to_numpy(zero_copy_only=False))
        if pa.types.is_boolean(t) and raw.null_count == 0:
            return np.asarray(raw.to_numpy(zero_copy_only=False))
        return None
    if isinstance(raw, pd.Series):
        dt = raw.dtype
        if pd.api.types.is_bool_dtype(dt) and not raw.isna().any():
            return raw.to_numpy(dtype=bool)
        if pd.api.types.is_numeric_dtype(dt) and not pd.api.types.is_bool_dtype(dt):
            return raw.to_numpy(dtype="float64", na_value=np.nan)
        return None
    if isinstance(raw, np.ndarray) and raw.dtype.kind in "iufb":
        return raw if raw.dtype.kind == "b" else raw.astype("float64", copy=False)
    return None


_NULL_TOKEN_SET = pa.array(sorted(NULL_TOKENS))


def _parsed_numbers(raw: Any) -> np.ndarray | None:
    """Numbers parsed from an Arrow string column (a CSV read as text), when every present
    value parses and is finite; None sends the column to the reference rule instead."""
    if not isinstance(raw, (pa.Array, pa.ChunkedArray)) or not (
            pa.types.is_string(raw.type) or pa.types.is_large_string(raw.type)):
        return None
    try:
        # Most columns hold plain numbers and empty fields: one cast. Whatever it parses, the
        # path below parses the same (a null token it takes is a NaN spelling: null either way).
        x = pc.cast(pc.if_else(pc.equal(raw, ""), None, raw), pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        trimmed = pc.utf8_trim_whitespace(raw)
        token = pc.is_in(pc.utf8_lower(trimmed), value_set=_NULL_TOKEN_SET)
        try:
            x = pc.cast(pc.if_else(token, None, trimmed), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    out = x.to_numpy(zero_copy_only=False)
    return None if np.isinf(out).any() else out


def _arrow_codes(raw: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, codes) of an Arrow string column, dictionary-encoded chunk by chunk."""
    distinct: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    offset = 0
    for chunk in raw.chunks if isinstance(raw, pa.ChunkedArray) else [raw]:
        # A dictionary column (Parquet read with its dictionaries) is already encoded.
        encoded = chunk if pa.types.is_dictionary(chunk.type) else pc.dictionary_encode(chunk)
        d = encoded.dictionary.to_numpy(zero_copy_only=False)
        c = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
        if encoded.dictionary.null_count:  # rows pointing at a null entry are missing
            valid = encoded.dictionary.is_valid().to_numpy(zero_copy_only=False)
            c = np.where(np.append(valid, False)[c], c, -1)  # code -1 reads the False
        codes.append(np.where(c >= 0, c + offset, -1))
        distinct.append(d)
        offset += len(d)
    if not codes:
        return np.empty(0, dtype=object), np.empty(0, dtype=np.int64)
    return np.concatenate(distinct).astype(object, copy=False), np.concatenate(codes)


def _is_text(t: pa.DataType) -> bool:
    return bool(pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_string_view(t))


def _string_codes(raw: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(distinct values, codes with -1 for missing) when the column is already a string column.

    Such columns hold few distinct values, so the null-token rule runs once per distinct value
    instead of once per row (which costs a large column dearly: BENCHMARKS.md).
    """
    if isinstance(raw, (pa.Array, pa.ChunkedArray)):
        t = raw.type
        if pa.types.is_dictionary(t) and not _is_text(t.value_type):
            raw = pc.cast(raw, pa.large_string())
            t = raw.type
        if _is_text(t.value_type if pa.types.is_dictionary(t) else t):
            return _arrow_codes(raw)
        return None
    if isinstance(raw, pd.Series) and isinstance(raw.dtype, pd.CategoricalDtype):
        codes = raw.cat.codes.to_numpy(dtype=np.int64)
        return np.asarray(raw.cat.categories, dtype=object), codes
    if isinstance(raw, pd.Series) and pd.api.types.is_string_dtype(raw.dtype) and raw.dtype != object:
        codes, distinct = pd.factorize(raw)  # missing values get code -1
        return np.asarray(distinct, dtype=object), codes.astype(np.int64, copy=False)
    return None


def _objects(raw: Any) -> np.ndarray:
    if isinstance(raw, (pa.Array, pa.ChunkedArray)):
        return np.array(raw.to_pylist(), dtype=object)
    if isinstance(raw, pd.Series):
        return raw.to_numpy(dtype=object)
    return np.asarray(raw, dtype=object) if not isinstance(raw, np.ndarray) else raw.astype(object)


def _numbers(col: Column, x: np.ndarray) -> Coerced:
    null = np.isnan(x)
    bad = np.isinf(x)
    errors = [(int(i), "infinite value", x[i]) for i in np.flatnonzero(bad)]
    if col.type is ColumnType.INTEGER:
        safe = np.where(bad | null, 0, x)
        frac = ~null & ~bad & ((safe != np.floor(safe)) | (safe < INT64_RANGE[0])
                               | (safe >= INT64_RANGE[1]))
        errors += [(int(i), integer_reason(float(x[i])), x[i]) for i in np.flatnonzero(frac)]
        if errors:
            errors.sort()
    return Coerced(x, null, errors)


def _strings(col: Column, distinct: np.ndarray, codes: np.ndarray) -> Coerced:
    # The single-row rule, once per distinct value; non-strings (categories of a categorical)
    # are never null tokens.
    token = np.fromiter((isinstance(v, str) and null_token(v, col) for v in distinct),
                        dtype=bool, count=len(distinct))
    # One extra slot at the end is where code -1 (missing) lands.
    values = np.empty(len(distinct) + 1, dtype=object)
    values[:-1] = distinct
    values[:-1][token] = None
    values[-1] = None
    null = np.append(token, True)
    return Coerced(values[codes], null[codes], [], values, codes)


def _distinct_codes(raw: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """(distinct values, codes with -1 for missing) of a typed Arrow or pandas column; None
    for Python objects (where 1 == 1.0 == True would merge values the rules tell apart)."""
    if isinstance(raw, (pa.Array, pa.ChunkedArray)):
        t = raw.type.value_type if pa.types.is_dictionary(raw.type) else raw.type
        if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) \
                or _is_text(t):
            return _arrow_codes(raw)
        return None
    if isinstance(raw, pd.Series) and raw.dtype != object:
        if isinstance(raw.dtype, pd.CategoricalDtype):
            codes = raw.cat.codes.to_numpy(dtype=np.int64)
            return np.asarray(raw.cat.categories, dtype=object), codes
        codes, distinct = pd.factorize(raw)
        return np.asarray(distinct, dtype=object), codes.astype(np.int64, copy=False)
    return None


def _categories(col: Column, raw: Any) -> Coerced:
    """An int/float/bool-category column: the value rule once per distinct value."""
    found = _distinct_codes(raw)
    if found is None:
        return _one_by_one(col, raw)
    distinct, codes = found
    values = np.empty(len(distinct) + 1, dtype=object)  # the last slot is code -1 (missing)
    failed = np.zeros(len(distinct) + 1, dtype=bool)
    reasons: list[str] = []
    for j, v in enumerate(distinct):
        try:
            values[j] = coerce_value(col, v)
            reasons.append("")
        except CoercionError as e:
            failed[j] = True
            reasons.append(str(e))
    null = np.array([v is None for v in values], dtype=bool)
    errors = [(int(i), reasons[codes[i]], distinct[codes[i]])
              for i in np.flatnonzero(failed[codes])]
    return Coerced(values[codes], null[codes], errors, values, codes)


_NAT = np.iinfo(np.int64).min  # NaT's nanoseconds


def _datetimes(col: Column, raw: Any) -> Coerced | None:
    """A typed column by the date-time rule at once (see `datetimes.datetime_column`)."""
    found = datetime_column(raw, zone_of(col))
    if found is None:
        return None
    values, errors = found
    return Coerced(values, np.isnat(values), errors)


def _one_by_one(col: Column, raw: Any) -> Coerced:
    objs = _objects(raw)
    out = np.empty(len(objs), dtype=object)
    errors: list[tuple[int, str, Any]] = []
    for i, v in enumerate(objs):
        try:
            out[i] = coerce_value(col, v)
        except CoercionError as e:
            out[i] = None
            errors.append((i, str(e), v))
    null = np.array([v is None for v in out], dtype=bool)
    if col.type.numeric:
        values = np.where(null, np.nan, out).astype("float64")
    elif col.type is ColumnType.DATETIME:
        # zone-less Timestamps (see `datetimes`): their nanoseconds
        values = np.array([_NAT if v is None else v.value for v in out],
                          dtype=np.int64).view("datetime64[ns]")
    else:
        values = out
    return Coerced(values, null, errors)


def coerce_column(col: Column, raw: Any) -> Coerced:
    """Apply `coerce_value`'s rule to a whole Arrow/pandas/NumPy/list column at once.

    Values that fail the rule do not raise: they are listed in `Coerced.errors` as
    (row, reason, value) and are missing in `Coerced.values`.
    """
    if col.type.numeric:
        x = _typed_numpy(raw)
        if x is not None:
            if x.dtype.kind == "b":
                reason = "expected a number, got a boolean"
                return Coerced(np.full(len(x), np.nan), np.ones(len(x), bool),
                               [(i, reason, bool(v)) for i, v in enumerate(x)])
            return _numbers(col, x)
        x = _parsed_numbers(raw)
        if x is not None:
            parsed = _numbers(col, x)
            if not parsed.errors:  # rejects quote the original text: take the reference path
                return parsed
    elif col.type is ColumnType.STRING and col.category_value_type is not None:
        return _categories(col, raw)
    elif col.type is ColumnType.STRING:
        factorized = _string_codes(raw)
        if factorized is not None:
            return _strings(col, *factorized)
    elif col.type is ColumnType.DATETIME:
        typed = _datetimes(col, raw)
        if typed is not None:
            return typed
    elif col.type is ColumnType.BOOLEAN:
        x = _typed_numpy(raw)
        if x is not None and x.dtype.kind == "b":
            return Coerced(x, np.zeros(len(x), bool), [])
    return _one_by_one(col, raw)


def flag_mask(col: Column, c: Coerced) -> tuple[str, np.ndarray] | None:
    """The kind of flag this column raises and the mask of flagged rows, if any."""
    present = ~c.null
    if col.type is ColumnType.STRING and col.categories is not None:
        if c.codes is not None:
            seen = pd.Series(c.distinct, dtype=object).isin(col.categories).to_numpy()[c.codes]
        else:
            seen = pd.Series(c.values, dtype=object).isin(col.categories).to_numpy()
        return "unseen_category", present & ~seen
    if col.type.numeric and (col.min is not None or col.max is not None):
        x = np.where(present, c.values.astype("float64", copy=False), np.nan)
        with np.errstate(invalid="ignore"):
            out = np.zeros(len(x), bool)
            if col.min is not None:
                out |= x < col.min
            if col.max is not None:
                out |= x > col.max
        return "out_of_range", out
    return None
