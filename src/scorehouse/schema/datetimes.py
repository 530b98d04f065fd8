"""Date-time values: one rule turns every form a channel sends into the training convention.

The rule (README, "Date-times"):

- A value that carries a zone or offset (ISO `...Z`, `...+02:00`, `+0200`, `+02`; a
  zone-aware Parquet, pandas or PostgreSQL `timestamptz` value; an aware `datetime`) is an
  instant: it is converted to UTC.
- A value without one (ISO `2026-02-03 03:15:00`, a zone-less Parquet timestamp, a naive
  `datetime`, a date) is wall-clock time in the training column's zone
  (`Column.timezone`); for a zone-less training column it is taken as it is.
- A number (JSON, Parquet, or text of 9+ digits in CSV) is seconds since 1970-01-01 UTC.
- Text is ISO 8601 or what pandas' parser reads without doubt ("3 Feb 2026 10:00",
  "2026/02/03"); a numeric date whose day and month could be swapped ("03/02/2026") and
  relative words ("now", "today") are rejected with the reason.

So the canonical value is a zone-less `datetime64[ns]`: wall-clock time (zoned values in UTC)
for a zone-less column, the UTC instant for a zoned one, which the native runtime turns back
into the training zone. A value outside 1677-09-22 .. 2262-04-11 (what nanoseconds hold),
or a wall-clock time that a zone's clock change skips or repeats, rejects its row.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .columns import Column

#: Plain-number text read as epoch seconds (fewer digits, e.g. 20260203, is a date).
_EPOCH_TEXT = re.compile(r"[+-]?\d{9,}(\.\d*)?|[+-]?\d+\.\d*")
#: A numeric date that does not start with the year: day and month order is a guess.
_DAY_MONTH = re.compile(r"(\d{1,2})[/.\-](\d{1,2})[/.\-]\d{2,4}\b")
_RELATIVE = frozenset({"now", "today", "tomorrow", "yesterday"})
_NS = 10**9
#: Epoch seconds that nanoseconds since 1970 hold (as pandas' Timestamp range).
_EPOCH_RANGE = (pd.Timestamp.min.value / _NS, pd.Timestamp.max.value / _NS)
ISO_HINT = "send ISO 8601, e.g. 2026-02-03T04:15:00+01:00"


class DateTimeError(ValueError):
    """A value that cannot become a date-time under the rule; the message says why."""


def read_datetime(v: Any, zone: str | None) -> np.datetime64 | None:
    """One raw value (not missing) as the canonical zone-less datetime64[ns], None for NaN.

    `zone`: the training column's zone (None: zone-less). Raises DateTimeError.
    """
    if isinstance(v, (bool, np.bool_)):
        raise DateTimeError("expected a date-time, got a boolean")
    if isinstance(v, (int, float, np.integer, np.floating)):
        out = epoch_seconds(np.array([v]))
        if isinstance(out, str):
            raise DateTimeError(out)
        first: np.datetime64 = out[0]
        return first
    if isinstance(v, str):
        ts = _parse_text(v)
        if isinstance(ts, float):  # text of a plain number: epoch seconds, as a JSON number
            return read_datetime(ts, zone)
    elif isinstance(v, (_dt.date, np.datetime64)):
        ts = pd.Timestamp(v)
    else:
        raise DateTimeError(f"expected a date-time, got {type(v).__name__}")
    if pd.isna(ts):  # "NaT"
        return None
    if ts.tz is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    elif zone is not None:
        try:
            ts = ts.tz_localize(zone).tz_convert("UTC").tz_localize(None)
        except (ValueError, OverflowError):  # a skipped or repeated wall-clock time
            raise DateTimeError(clock_change(ts, zone)) from None
    try:
        return np.datetime64(ts.as_unit("ns").value, "ns")
    except (ValueError, OverflowError):
        raise DateTimeError(f"{ts} is outside the date-times scorehouse scores "
                            "(1677-09-22 .. 2262-04-11)") from None


def clock_change(wall: Any, zone: str) -> str:
    """Why a zone-less value is rejected for a zoned column: the zone's clock skips or
    repeats that wall-clock time."""
    return (f"{wall} is not one instant in zone {zone} (a clock change skips or repeats "
            "it); send it with its offset")


def zone_of(col: Column) -> str | None:
    """The training column's zone; manifests written before `Column.timezone` keep it in
    the pandas dtype only ("datetime64[ns, UTC]")."""
    if col.timezone:
        return col.timezone
    d = col.dtype or ""
    return d[d.index(",") + 1:-1].strip() if d.startswith("datetime64[") and "," in d else None


def _parse_text(v: str) -> pd.Timestamp | float:
    s = v.strip()
    if _EPOCH_TEXT.fullmatch(s):
        return float(s)
    if s.lower() in _RELATIVE:
        raise DateTimeError(f"{v!r} is relative to when it is read; {ISO_HINT}")
    m = _DAY_MONTH.match(s)
    if m and int(m[1]) <= 12 and int(m[2]) <= 12 and m[1] != m[2]:
        raise DateTimeError(f"{v!r}: day and month could be either way round; {ISO_HINT}")
    try:
        return pd.Timestamp(s)
    except (ValueError, TypeError, OverflowError):
        raise DateTimeError(f"cannot read {v!r} as a date-time; {ISO_HINT}") from None


def epoch_seconds(x: np.ndarray) -> np.ndarray | str:
    """Numbers of seconds since 1970-01-01 UTC as datetime64[ns] (NaN -> NaT), or the reason
    (a str) naming the first value out of range."""
    x = np.asarray(x)
    if x.dtype.kind in "iu":
        bad = (x < _EPOCH_RANGE[0]) | (x > _EPOCH_RANGE[1])
        if bad.any():
            return _out_of_range(x[bad][0].item())
        return (x.astype(np.int64) * _NS).astype("datetime64[ns]")
    x = x.astype("float64")
    nan = np.isnan(x)
    with np.errstate(invalid="ignore"):
        bad = ~nan & ~((x >= _EPOCH_RANGE[0]) & (x <= _EPOCH_RANGE[1]))
    if bad.any():
        return _out_of_range(x[bad][0].item())
    ns = np.round(np.where(nan, 0, x) * _NS).astype(np.int64).astype("datetime64[ns]")
    ns[nan] = np.datetime64("NaT")
    return ns


def _out_of_range(x: Any) -> str:
    if isinstance(x, float) and x.is_integer():
        x = int(x)  # 1770088500000, not 1770088500000.0
    return (f"{x!r} seconds since 1970-01-01 is outside the date-times scorehouse scores "
            "(epoch numbers are seconds, not milliseconds)")


def datetime_column(raw: Any, zone: str | None
                    ) -> tuple[np.ndarray, list[tuple[int, str, Any]]] | None:
    """(datetime64[ns] canonical values, [(row, reason, value)]) of a typed column (Arrow or
    pandas timestamps or dates, or numbers: epoch seconds) by the rule at once; None for
    text and Python objects (read value by value) or values nanoseconds cannot hold."""
    if isinstance(raw, (pa.Array, pa.ChunkedArray)):
        t = raw.type
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            return _epoch_column(pc.cast(raw, pa.float64()).to_numpy(zero_copy_only=False))
        if not (pa.types.is_timestamp(t) or pa.types.is_date(t)):
            return None
        aware = pa.types.is_timestamp(t) and t.tz is not None
        try:  # a zoned Arrow timestamp stores the UTC instant; the cast keeps it
            raw = pc.cast(raw, pa.timestamp("ns", tz=t.tz if aware else None)).to_pandas()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    elif isinstance(raw, pd.Series) and pd.api.types.is_numeric_dtype(raw.dtype) \
            and not pd.api.types.is_bool_dtype(raw.dtype):
        return _epoch_column(raw.to_numpy(dtype="float64", na_value=np.nan))
    elif not (isinstance(raw, pd.Series) and pd.api.types.is_datetime64_any_dtype(raw.dtype)):
        return None
    return _series(raw, zone)


def _epoch_column(x: np.ndarray) -> tuple[np.ndarray, list[tuple[int, str, Any]]] | None:
    ns = epoch_seconds(x)
    return None if isinstance(ns, str) else (ns, [])  # out of range: named row by row


def _series(s: pd.Series, zone: str | None
            ) -> tuple[np.ndarray, list[tuple[int, str, Any]]] | None:
    errors: list[tuple[int, str, Any]] = []
    if s.dt.tz is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    elif zone is not None:
        local = s.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
        errors = [(int(i), clock_change(s.iloc[i], zone), s.iloc[i])
                  for i in np.flatnonzero((local.isna() & s.notna()).to_numpy())]
        s = local.dt.tz_convert("UTC").dt.tz_localize(None)
    try:
        return s.dt.as_unit("ns").to_numpy(), errors
    except (ValueError, OverflowError):  # pandas' OutOfBoundsDatetime is a ValueError
        return None
