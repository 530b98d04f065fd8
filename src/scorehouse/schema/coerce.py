"""The coercion rules: how a raw value of any channel becomes the value the model sees.

`coerce_value` is the reference rule for one value; `coerce_column` applies the same rule to
a whole column, vectorised for already-typed columns (Arrow, NumPy, pandas) and value by
value otherwise, so a CSV string "42" and a JSON 42 always end up the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .categories import VALUE_TYPES, canonical_text
from .columns import Column
from .datetimes import DateTimeError, datetime_column, read_datetime, zone_of

#: Strings read as a missing value (case-insensitive, surrounding blanks ignored), as pandas
#: does when it reads a CSV; a string column keeps a token that is one of its categories.
NULL_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "nat", "<na>"})
TRUE_TOKENS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_TOKENS = frozenset({"false", "f", "no", "n", "0"})


class CoercionError(ValueError):
    """A value that cannot become the column's type; the message is the reason."""


def is_null(v: Any) -> bool:
    """True for None, NaN, pandas NA and NaT."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, (float, np.floating)) and v != v


def _null_token(s: str, col: Column) -> bool:
    if s.strip().lower() not in NULL_TOKENS:
        return False
    return not (col.categories is not None and s in col.categories)


def _to_number(v: Any, col: Column) -> float | None:
    if isinstance(v, (bool, np.bool_)):
        raise CoercionError("expected a number, got a boolean")
    if isinstance(v, (int, float, np.integer, np.floating)):
        x = float(v)
    elif isinstance(v, str):
        if _null_token(v, col):
            return None
        try:
            x = float(v.strip())
        except ValueError:
            what = "an integer" if col.type == "integer" else "a number"
            raise CoercionError(f"cannot read {v!r} as {what}") from None
    else:
        raise CoercionError(f"expected a number, got {type(v).__name__}")
    if x != x:
        return None
    if math.isinf(x):
        raise CoercionError("infinite value")
    return x


INT64_RANGE = (-(2.0**63), 2.0**63)


def _integer_reason(x: float) -> str:
    if x.is_integer():
        return f"integer {x:.0f} does not fit in 64 bits"
    return f"expected an integer, got {x!r}"


def _fits(x: float) -> bool:
    return x.is_integer() and INT64_RANGE[0] <= x < INT64_RANGE[1]


def coerce_value(col: Column, v: Any) -> Any:
    """`v` as `col`'s type (None when missing); raises CoercionError with the reason."""
    if is_null(v):
        return None
    kind = col.type
    if kind == "string" and col.category_type in VALUE_TYPES:
        return _category(col, v)
    if kind == "number":
        return _to_number(v, col)
    if kind == "integer":
        if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            if not INT64_RANGE[0] <= v < INT64_RANGE[1]:
                raise CoercionError(_integer_reason(float(v)))
            return int(v)
        x = _to_number(v, col)
        if x is None:
            return None
        if not _fits(x):
            raise CoercionError(_integer_reason(x))
        return int(x)
    if kind == "string":
        if isinstance(v, str):
            return None if _null_token(v, col) else v
        if isinstance(v, (bool, np.bool_)):
            raise CoercionError("expected a string, got a boolean")
        if isinstance(v, (int, np.integer)):
            return str(int(v))
        if isinstance(v, (float, np.floating)):
            return str(int(v)) if float(v).is_integer() else repr(float(v))
        raise CoercionError(f"expected a string, got {type(v).__name__}")
    if kind == "boolean":
        if isinstance(v, (bool, np.bool_)):
            return bool(v)
        if isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1):
            return bool(v)
        if isinstance(v, str):
            s = v.strip().lower()
            if s in NULL_TOKENS:
                return None
            if s in TRUE_TOKENS:
                return True
            if s in FALSE_TOKENS:
                return False
        raise CoercionError(f"cannot read {v!r} as a boolean")
    if kind == "datetime":
        if isinstance(v, str) and _null_token(v, col):
            return None
        try:  # the rule: `datetimes` (zoned values to UTC, numbers are epoch seconds ...)
            x = read_datetime(v, zone_of(col))
        except DateTimeError as e:
            raise CoercionError(str(e)) from None
        return None if x is None else pd.Timestamp(x)
    raise AssertionError(kind)


@lru_cache(maxsize=256)
def _value_column(col: Column) -> Column:
    """The plain integer/number/boolean column whose rule reads `col`'s typed categories."""
    return replace(col, type=VALUE_TYPES[col.category_type], categories=None, min=None,
                   max=None, dtype=None, category_type=None)


def _category(col: Column, v: Any) -> str | None:
    """A value of an int/float/bool-category column as its category's canonical text: read by
    the integer/number/boolean rule, then written as `categories.canonical_text` does."""
    try:
        x = coerce_value(_value_column(col), v)
    except CoercionError as e:
        raise CoercionError(f"{e} (the column's categories are {col.category_type} values)") \
            from None
    return None if x is None else canonical_text(col.category_type, x)


def flag_of(col: Column, v: Any) -> str | None:
    """'unseen_category' or 'out_of_range' when coerced value `v` is outside training data."""
    if v is None:
        return None
    if col.categories is not None and col.type == "string":
        return None if v in col.categories else "unseen_category"
    if col.type in ("number", "integer"):
        if (col.min is not None and v < col.min) or (col.max is not None and v > col.max):
            return "out_of_range"
    return None


#: A column's single-row rule: raw value -> (coerced value, flag or None); raises CoercionError.
RowRule = Callable[[Any], tuple[Any, str | None]]


def row_rule(col: Column) -> RowRule:
    """`coerce_value` then `flag_of` for one column, compiled once per schema.

    The exact Python types a JSON request carries (float, int, str) take a short path that
    repeats the reference rule's steps for that type; anything else goes to the reference.
    """
    def reference(v: Any) -> tuple[Any, str | None]:
        x = coerce_value(col, v)
        return x, flag_of(col, x)

    if col.type in ("number", "integer"):
        return _numeric_rule(col, reference)
    if col.type == "string" and col.category_type not in VALUE_TYPES:
        return _string_rule(col, reference)
    return reference


def _numeric_rule(col: Column, reference: RowRule) -> RowRule:
    lo, hi, integer = col.min, col.max, col.type == "integer"

    def rule(v: Any) -> tuple[Any, str | None]:
        if v is None:
            return None, None
        t = type(v)
        if t is int:
            if integer and not INT64_RANGE[0] <= v < INT64_RANGE[1]:
                raise CoercionError(_integer_reason(float(v)))
            x = v if integer else float(v)
        elif t is float and not integer:
            if v != v:
                return None, None
            if math.isinf(v):
                raise CoercionError("infinite value")
            x = v
        else:
            return reference(v)
        out = (lo is not None and x < lo) or (hi is not None and x > hi)
        return x, "out_of_range" if out else None

    return rule


def _string_rule(col: Column, reference: RowRule) -> RowRule:
    seen = None if col.categories is None else frozenset(col.categories)

    def rule(v: Any) -> tuple[Any, str | None]:
        if type(v) is not str:
            return (None, None) if v is None else reference(v)
        if v.strip().lower() in NULL_TOKENS and (seen is None or v not in seen):
            return None, None
        return v, None if seen is None or v in seen else "unseen_category"

    return rule


# --- whole columns -------------------------------------------------------------------------


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
            return pc.cast(raw, pa.float64()).to_numpy(zero_copy_only=False)
        if pa.types.is_boolean(t) and raw.null_count == 0:
            return raw.to_numpy(zero_copy_only=False)
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
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


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
    if col.type == "integer":
        safe = np.where(bad | null, 0, x)
        frac = ~null & ~bad & ((safe != np.floor(safe)) | (safe < INT64_RANGE[0])
                               | (safe >= INT64_RANGE[1]))
        errors += [(int(i), _integer_reason(float(x[i])), x[i]) for i in np.flatnonzero(frac)]
        if errors:
            errors.sort()
    return Coerced(x, null, errors)


def _strings(col: Column, distinct: np.ndarray, codes: np.ndarray) -> Coerced:
    # The single-row rule, once per distinct value; non-strings (categories of a categorical)
    # are never null tokens.
    token = np.fromiter((isinstance(v, str) and _null_token(v, col) for v in distinct),
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
    if col.type in ("number", "integer"):
        values = np.where(null, np.nan, out).astype("float64")
    elif col.type == "datetime":  # zone-less Timestamps (see `datetimes`): their nanoseconds
        values = np.array([_NAT if v is None else v.value for v in out],
                          dtype=np.int64).view("datetime64[ns]")
    else:
        values = out
    return Coerced(values, null, errors)


def coerce_column(col: Column, raw: Any) -> Coerced:
    """Apply `coerce_value`'s rule to a whole Arrow/pandas/NumPy/list column at once."""
    if col.type in ("number", "integer"):
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
    elif col.type == "string" and col.category_type in VALUE_TYPES:
        return _categories(col, raw)
    elif col.type == "string":
        factorized = _string_codes(raw)
        if factorized is not None:
            return _strings(col, *factorized)
    elif col.type == "datetime":
        typed = _datetimes(col, raw)
        if typed is not None:
            return typed
    elif col.type == "boolean":
        x = _typed_numpy(raw)
        if x is not None and x.dtype.kind == "b":
            return Coerced(x, np.zeros(len(x), bool), [])
    return _one_by_one(col, raw)


def flag_mask(col: Column, c: Coerced) -> tuple[str, np.ndarray] | None:
    """The kind of flag this column raises and the mask of flagged rows, if any."""
    present = ~c.null
    if col.type == "string" and col.categories is not None:
        if c.codes is not None:
            seen = pd.Series(c.distinct, dtype=object).isin(col.categories).to_numpy()[c.codes]
        else:
            seen = pd.Series(c.values, dtype=object).isin(col.categories).to_numpy()
        return "unseen_category", present & ~seen
    if col.type in ("number", "integer") and (col.min is not None or col.max is not None):
        x = np.where(present, c.values.astype("float64", copy=False), np.nan)
        with np.errstate(invalid="ignore"):
            out = np.zeros(len(x), bool)
            if col.min is not None:
                out |= x < col.min
            if col.max is not None:
                out |= x > col.max
        return "out_of_range", out
    return None
