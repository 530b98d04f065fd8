"""Raw values (JSON, database rows) as Arrow columns that the schema's rules then read."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa


def loose_array(values: Sequence[Any], text: Callable[[Any], str] = str) -> pa.Array:
    """One column in Arrow's own type when the values share one; decimals as doubles.

    Values of mixed types become text (`text(v)` for each non-string), so the schema's
    rules say which value is wrong instead of the conversion failing for the whole column.
    """
    try:
        arr = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([v if v is None or isinstance(v, str) else text(v) for v in values],
                        pa.string())
    if pa.types.is_decimal(arr.type):  # PostgreSQL numeric: scored as a number
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    return arr


