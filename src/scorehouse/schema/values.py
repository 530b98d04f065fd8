"""The reference rule for one value: how a raw value of any channel becomes what the model sees.

`coerce_value` reads one value by its column's type (one function per `ColumnType`);
`row_rule` compiles the same rule, with its training-data flag, into a function per column
for single-row requests. `coerce.coerce_column` applies the same rule to whole columns, so
a CSV string "42" and a JSON 42 always end up the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from .categories import canonical_text
from .columns import Column
from .datetimes import DateTimeError, read_datetime, zone_of
from .types import ColumnType

#: Strings read as a missing value (case-insensitive, surrounding blanks ignored), as pandas
#: does when it reads a CSV; a string column keeps a token that is one of its categories.
NULL_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "nat", "<na>"})
TRUE_TOKENS = frozenset({"true", "t", "yes", "y", "1"})
FALSE_TOKENS = frozenset({"false", "f", "no", "n", "0"})
#: The values an int64 holds, as floats: [low, high).
INT64_RANGE = (-(2.0**63), 2.0**63)


class CoercionError(ValueError):
    """A value that cannot become the column's type; the message is the reason."""


def is_null(v: Any) -> bool:
    """True for None, NaN, pandas NA and NaT."""
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, (float, np.floating)) and v != v


def null_token(s: str, col: Column) -> bool:
    """True when text `s` means a missing value in `col` (a NULL_TOKENS spelling that is not
    one of the column's categories)."""
    if s.strip().lower() not in NULL_TOKENS:
        return False
    return not (col.categories is not None and s in col.categories)


def _to_number(col: Column, v: Any) -> float | None:
    if isinstance(v, (bool, np.bool_)):
        raise CoercionError("expected a number, got a boolean")
    if isinstance(v, (int, float, np.integer, np.floating)):
        x = float(v)
    elif isinstance(v, str):
        if null_token(v, col):
            return None
        try:
            x = float(v.strip())
        except ValueError:
            what = "an integer" if col.type is ColumnType.INTEGER else "a number"
            raise CoercionError(f"cannot read {v!r} as {what}") from None
    else:
        raise CoercionError(f"expected a number, got {type(v).__name__}")
    if x != x:
        return None
    if math.isinf(x):
        raise CoercionError("infinite value")
    return x


def integer_reason(x: float) -> str:
    """Why number `x` is refused by an integer column."""
    if x.is_integer():
        return f"integer {x:.0f} does not fit in 64 bits"
    return f"expected an integer, got {x!r}"


def _fits(x: float) -> bool:
    return x.is_integer() and INT64_RANGE[0] <= x < INT64_RANGE[1]


def _to_integer(col: Column, v: Any) -> int | None:
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        if not INT64_RANGE[0] <= v < INT64_RANGE[1]:
            raise CoercionError(integer_reason(float(v)))
        return int(v)
    x = _to_number(col, v)
    if x is None:
        return None
    if not _fits(x):
        raise CoercionError(integer_reason(x))
    return int(x)


def _to_string(col: Column, v: Any) -> str | None:
    if col.category_value_type is not None:
        return _category(col, v)
    if isinstance(v, str):
        return None if null_token(v, col) else v
    if isinstance(v, (bool, np.bool_)):
        raise CoercionError("expected a string, got a boolean")
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    raise CoercionError(f"expected a string, got {type(v).__name__}")


def _to_boolean(col: Column, v: Any) -> bool | None:
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


def _to_datetime(col: Column, v: Any) -> pd.Timestamp | None:
    if isinstance(v, str) and null_token(v, col):
        return None
    try:  # the rule: `datetimes` (zoned values to UTC, numbers are epoch seconds ...)
        x = read_datetime(v, zone_of(col))
    except DateTimeError as e:
        raise CoercionError(str(e)) from None
    return None if x is None else pd.Timestamp(x)


#: The rule of each column type: (column, raw value that is not missing) -> value or None.
_RULES: dict[ColumnType, Callable[[Column, Any], Any]] = {
    ColumnType.NUMBER: _to_number, ColumnType.INTEGER: _to_integer,
    ColumnType.STRING: _to_string, ColumnType.BOOLEAN: _to_boolean,
    ColumnType.DATETIME: _to_datetime,
}


def coerce_value(col: Column, v: Any) -> Any:
    """`v` as `col`'s type: int, float, bool, str or a zone-less `pd.Timestamp`; None when
    missing (None, NaN, NaT or a null token such as "NA").

    Raises:
        CoercionError: `v` cannot be read as the column's type; the message says why.
    """
    if is_null(v):
        return None
    return _RULES[col.type](col, v)


@lru_cache(maxsize=256)
def _value_column(col: Column) -> Column:
    """The plain integer/number/boolean column whose rule reads `col`'s typed categories."""
    kind = col.category_value_type
    assert kind is not None  # only asked for a column of typed categories
    return replace(col, type=kind, categories=None, min=None, max=None, dtype=None,
                   category_type=None)


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
    if col.categories is not None and col.type is ColumnType.STRING:
        return None if v in col.categories else "unseen_category"
    if col.type.numeric:
        if (col.min is not None and v < col.min) or (col.max is not None and v > col.max):
            return "out_of_range"
    return None


#: A column's single-row rule: raw value -> (coerced value, flag or None); raises CoercionError.
RowRule = Callable[[Any], tuple[Any, str | None]]


def row_rule(col: Column) -> RowRule:
    """`coerce_value` then `flag_of` for one column, compiled once per schema.

    The exact Python types a JSON request carries (float, int, str) take a short path that
    repeats the reference rule's steps for that type; anything else goes to the reference.
    The rule raises CoercionError as `coerce_value` does.
    """
    def reference(v: Any) -> tuple[Any, str | None]:
        x = coerce_value(col, v)
        return x, flag_of(col, x)

    if col.type.numeric:
        return _numeric_rule(col, reference)
    if col.type is ColumnType.STRING and col.category_value_type is None:
        return _string_rule(col, reference)
    return reference


def _numeric_rule(col: Column, reference: RowRule) -> RowRule:
    lo, hi, integer = col.min, col.max, col.type is ColumnType.INTEGER

    def rule(v: Any) -> tuple[Any, str | None]:
        if v is None:
            return None, None
        t = type(v)
        if t is int:
            if integer and not INT64_RANGE[0] <= v < INT64_RANGE[1]:
                raise CoercionError(integer_reason(float(v)))
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
