"""Cutting the prediction log into windows, and what each window holds: its drift state
(sketches of the logged `input.*` and `prediction.*` columns) and its traffic (rows,
rejects, calls, rate, latency).

A window is given as text (`WindowSpec.parse`):

    all              the whole selection as one window
    hour, day, week  calendar windows in UTC (aligned to midnight, 1970-01-01)
    15min, 6h, 2d    windows of that width, aligned the same way
    5000rows         consecutive runs of that many logged rows (the last one may be short)

Windows never mix model versions: the log is split by version first (`split_log`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import UsageError
from ..schema import Schema
from .log.records import INPUT, PREDICTION
from .reference import empty_state
from .state import ABSENT, DriftState

#: Rows handed to the sketches at once (bounds the temporary arrays of a window).
CHUNK_ROWS = 262_144
_UNITS = {"min": 60, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}
_NAMED = {"hour": 3600, "day": 86_400, "week": 7 * 86_400}
_US = 1_000_000


@dataclass(frozen=True)
class WindowSpec:
    """How the log is cut: `seconds` wide calendar windows, runs of `rows` rows, or (both
    0) one window of everything; `text` is what the user wrote."""

    text: str
    seconds: int = 0
    rows: int = 0

    @classmethod
    def parse(cls, text: str) -> WindowSpec:
        """The spec `text` names (see the module docstring).

        Raises:
            UsageError: text of no known form, or a width of 0.
        """
        t = text.strip().lower()
        if t == "all":
            return cls(t)
        if t in _NAMED:
            return cls(t, seconds=_NAMED[t])
        m = re.fullmatch(r"(\d+)\s*(rows|min|m|h|d|w)", t)
        if m is None or int(m.group(1)) == 0:
            raise UsageError(f"window {text!r} is not 'all', 'hour', 'day', 'week', a width "
                             "such as 15min, 6h or 2d, or a row count such as 5000rows")
        n = int(m.group(1))
        return cls(t, rows=n) if m.group(2) == "rows" else cls(t, seconds=n * _UNITS[m.group(2)])


def parse_time(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """A point in time from ISO 8601 text (naive = UTC) or an age before `now` such as
    30min, 6h, 7d, 2w.

    Raises:
        UsageError: text of neither form.
    """
    m = re.fullmatch(r"(\d+)\s*(min|m|h|d|w)", text.strip().lower())
    if m is not None:
        now = now or dt.datetime.now(dt.timezone.utc)
        return now - dt.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"time {text!r} is neither ISO 8601 (2026-11-30T08:00) nor an age "
                         "such as 30min, 6h, 7d") from None
    return when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)


@dataclass(frozen=True)
class LogWindow:
    """The logged rows of one version in one window; `start` <= row times < `end` for
    calendar windows, the first and last row's time otherwise."""

    version: int | None
    start: dt.datetime
    end: dt.datetime
    rows: pa.Table
    seconds: float  # the window's width; the rows' time span for row windows


def _times_us(table: pa.Table) -> np.ndarray:
    """Row times as int64 microseconds since the epoch (UTC)."""
    times = table.column("time").cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
    return np.asarray(times.to_numpy(zero_copy_only=False), np.int64)


def _at(us: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(us / _US, dt.timezone.utc)


def versions_of(table: pa.Table) -> list[int | None]:
    """The versions in a log table, None (artifact files) first."""
    found = set(table.column("version").to_pylist())
    return sorted(found, key=lambda v: -1 if v is None else v)


def select_version(table: pa.Table, version: int | None) -> pa.Table:
    """The rows of one version (None: rows scored from artifact files)."""
    column = table.column("version")
    mask = pc.is_null(column) if version is None else pc.equal(column, version)
    return table.filter(pc.fill_null(mask, False))


def split_log(table: pa.Table, spec: WindowSpec) -> list[LogWindow]:
    """The windows of a log table (sorted by time, as `read_log` returns it), version by
    version, oldest first within a version."""
    out: list[LogWindow] = []
    for version in versions_of(table):
        rows = select_version(table, version)
        us = _times_us(rows)
        if spec.seconds:
            width = spec.seconds * _US
            keys = us // width
        elif spec.rows:
            keys = np.arange(len(us)) // spec.rows
        else:
            keys = np.zeros(len(us), np.int64)
        # Rows are in time order, so each window is one contiguous run of equal keys.
        cuts = [0, *(np.flatnonzero(np.diff(keys)) + 1).tolist(), len(us)]
        for a, b in zip(cuts[:-1], cuts[1:], strict=True):
            if spec.seconds:
                start, end = int(keys[a]) * width, (int(keys[a]) + 1) * width
            else:
                start, end = int(us[a]), int(us[b - 1])
            out.append(LogWindow(version, _at(start), _at(end), rows.slice(a, b - a),
                                 (end - start) / _US))
    return out


def absent_counts(rows: pa.Table) -> dict[str, int]:
    """{column: rows flagged absent_column for it} of logged rows (vectorised)."""
    flags = pc.list_flatten(rows.column("flags"))
    if len(flags) == 0:
        return {}
    kinds, columns = pc.struct_field(flags, "kind"), pc.struct_field(flags, "column")
    absent = columns.filter(pc.fill_null(pc.equal(kinds, ABSENT), False))
    counts = pc.value_counts(absent).to_pylist()
    return {str(c["values"]): int(c["counts"]) for c in counts}


def window_state(rows: pa.Table, baseline: Mapping[str, Any], schema: Schema,
                 chunk_rows: int = CHUNK_ROWS) -> DriftState:
    """The drift state of logged rows: every accepted row's `input.*` and `prediction.*`
    values on the baseline's bins, rows read and rejected, absent columns; fed `chunk_rows`
    rows at a time as whole columns."""
    state = empty_state(baseline, schema)
    accepted = pc.is_null(rows.column("reject"))
    kept = rows.filter(accepted)
    names = [n for n in kept.column_names if n.startswith((INPUT, PREDICTION))]
    for start in range(0, kept.num_rows, chunk_rows):
        chunk = kept.slice(start, chunk_rows)
        state.update({(n[len(INPUT):] if n.startswith(INPUT) else n): chunk.column(n)
                      for n in names})
    state.count_rows(rows.num_rows, rows.num_rows - kept.num_rows, absent_counts(rows))
    return state


@dataclass(frozen=True)
class Traffic:
    """A window's traffic: logged `rows` and `rejected` rows, scoring `calls` (rows of one
    call share their time and latency, so distinct (time, latency) pairs are counted),
    `rows_per_second` over the window's width (None for an instant), and the calls'
    latency percentiles in milliseconds (each call counted once, whatever its rows)."""

    rows: int
    rejected: int
    calls: int
    reject_rate: float
    rows_per_second: float | None
    latency_p50_ms: float | None
    latency_p99_ms: float | None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return dict(self.__dict__)


def traffic(window: LogWindow) -> Traffic:
    """The traffic figures of one window."""
    rows = window.rows
    n = rows.num_rows
    rejected = n - int(pc.sum(pc.is_null(rows.column("reject"))).as_py() or 0)
    calls = rows.select(["time", "latency_ms"]).group_by(["time", "latency_ms"]).aggregate([])
    latency = calls.column("latency_ms").drop_null().to_numpy(zero_copy_only=False)
    p50, p99 = (np.percentile(latency, [50, 99]).tolist() if len(latency) else (None, None))
    return Traffic(n, rejected, calls.num_rows, rejected / n if n else 0.0,
                   n / window.seconds if window.seconds > 0 else None, p50, p99)


__all__ = ["CHUNK_ROWS", "LogWindow", "Traffic", "WindowSpec", "absent_counts", "parse_time",
           "select_version", "split_log", "traffic", "versions_of", "window_state"]
