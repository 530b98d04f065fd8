"""Validate whole inputs (Arrow table, DataFrame, records, one dict) against a `Schema`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from ..errors import SchemaError
from .coerce import Coerced, CoercionError, RowRule, coerce_column, flag_mask, row_rule
from .columns import Column, Schema
from .policy import ABSENT_COLUMN, absent_rows
from .types import ColumnType


@dataclass(frozen=True)
class Reject:
    """One problem that kept a row from being scored: 0-based input row, column, reason."""

    row: int
    column: str | None
    reason: str
    value: Any = None

    @property
    def problem(self) -> str:
        """The column and reason, without the row: "column 'tenure': cannot read ..."."""
        return f"column {self.column!r}: {self.reason}" if self.column else self.reason

    def __str__(self) -> str:
        return f"row {self.row}, {self.problem}" if self.column else \
            f"row {self.row}: {self.reason}"

    @property
    def kind(self) -> str:
        """The reason without the value: 'missing column', 'missing value', 'model error' or
        'invalid value' (what rejects are counted by when there are too many to list)."""
        if self.reason == MISSING_COLUMN:
            return "missing column"
        if self.reason == MISSING_VALUE:
            return "missing value"
        return "model error" if self.reason.startswith("model error") else "invalid value"

    def to_dict(self) -> dict[str, Any]:
        """This reject as JSON-able data."""
        v = self.value
        if isinstance(v, np.generic):
            v = v.item()
        if not isinstance(v, (str, int, float, bool, type(None))):
            v = repr(v)
        return {"row": self.row, "column": self.column, "reason": self.reason, "value": v}


@dataclass
class RejectTally:
    """Every problem of a batch counted, when only the first ones are kept as `Reject`s.

    `rows`: rows rejected; `counts`: (column, or None for the row as a whole, Reject.kind)
    -> problems. Counting costs one addition per column, however many rows are bad.
    """

    rows: int
    counts: dict[tuple[str | None, str], int] = field(default_factory=dict)

    @property
    def problems(self) -> int:
        """All problems, kept or not."""
        return sum(self.counts.values())

    def add(self, column: str | None, kind: str, n: int) -> None:
        """Count `n` more problems of `kind` in `column`."""
        if n:
            self.counts[(column, kind)] = self.counts.get((column, kind), 0) + n


@dataclass
class Validated:
    """Accepted rows in the model's canonical form, plus rejects and flags.

    `tally` is set when `max_rejects` cut the list: `rejects` then holds the first
    `max_rejects` problems (by row) and `tally` counts them all.
    """

    n_read: int
    rows: np.ndarray
    columns: dict[str, np.ndarray]
    rejects: list[Reject] = field(default_factory=list)
    #: (kind, column) -> input positions of flagged rows; kind 'unseen_category', 'out_of_range'
    #: or 'absent_column'.
    flags: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    tally: RejectTally | None = None


#: Why a row is rejected when a column that was never empty in training has no value.
MISSING_VALUE = "missing value; the column had no missing values in training (nullable: false)"
MISSING_COLUMN = "required column is missing from the input"


def _input_columns(data: Any) -> tuple[int, Any]:
    """(row count, getter) for any supported input shape.

    The getter maps a column name to (raw column or None when the input lacks it, mask of
    the rows that lack it although others have it, or None): records may differ in keys.
    """
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    if isinstance(data, pa.Table):
        names, n_rows = set(data.column_names), data.num_rows
        partly = absent_rows(data)  # a table made from records that lacked some keys

        def arrow_getter(n: str) -> Any:
            if n not in names:
                return None, None
            if n not in partly:
                return data.column(n), None
            lacking = np.zeros(n_rows, bool)
            lacking[partly[n]] = True
            return data.column(n), lacking

        return n_rows, arrow_getter
    if isinstance(data, pd.DataFrame):
        return len(data), lambda n: (data[n], None) if n in data.columns else (None, None)
    if isinstance(data, Mapping):
        data = [data]
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        records = data
        for i, r in enumerate(records):
            if not isinstance(r, Mapping):
                raise SchemaError(f"row {i}: expected a record (mapping of column to value), "
                                  f"got {type(r).__name__}")
        keys = set().union(*(r.keys() for r in records)) if records else set()

        def getter(n: str) -> Any:
            if n not in keys:
                return None, None
            lacking = np.fromiter((n not in r for r in records), bool, len(records))
            return (np.array([r.get(n) for r in records], dtype=object),
                    lacking if lacking.any() else None)

        return len(records), getter
    raise SchemaError(
        f"cannot score a {type(data).__name__}: pass an Arrow table, a pandas DataFrame, "
        "a list of records or one dict"
    )


def canonical(col: Column, c: Coerced, keep: np.ndarray | None) -> np.ndarray:
    """The accepted rows of a coerced column, in the dtype the runtime expects."""
    values = c.values if keep is None else c.values[keep]
    null = c.null if keep is None else c.null[keep]
    if col.type is ColumnType.INTEGER and not null.any():
        return values.astype("int64")
    if col.type.numeric:  # an integer column with missing values: NaN marks them
        return values.astype("float64", copy=False)
    return values


def validate_batch(schema: Schema, data: Any, *, max_rejects: int | None = None) -> Validated:
    """Coerce every column of `data`, reject bad rows with reasons, flag unusual ones.

    `max_rejects`: keep at most this many `Reject`s (the first by row) and count the rest in
    `Validated.tally`, so a batch of bad rows costs memory for its counts, not one object
    per bad cell (a server answering untrusted requests sets it; files keep every reject).

    Returns:
        `Validated`: the accepted rows' positions and canonical columns (int64, float64,
        bool, object or datetime64[ns] arrays of the accepted rows), rejects and flags.

    Raises:
        SchemaError: `data` is not an Arrow table or batch, a DataFrame, records or one
            dict, or a record is not a mapping. Bad values never raise: they are rejects.
    """
    n, get = _input_columns(data)
    coerced: dict[str, Coerced] = {}
    errors: list[Reject] = []
    tally = RejectTally(0)
    # Without a cap every problem is kept; with one, each column keeps its first `cap`
    # (by row), which always contains the batch's first `cap`.
    cap = n * max(len(schema.columns), 1) if max_rejects is None else max_rejects
    bad = np.zeros(n, dtype=bool)
    flags: dict[tuple[str, str], np.ndarray] = {}
    for col in schema.columns:
        raw, lacking = get(col.name)
        absent = raw is None
        if absent:
            lacking = np.ones(n, bool)
        if lacking is not None and _absent(col, lacking, cap, flags, errors, tally):
            bad |= lacking
        # An absent column is all missing: coerce one missing value and repeat it, instead
        # of n of them one by one.
        c = coerce_column(col, raw) if not absent else _all_missing(col, n)
        errors += [Reject(i, col.name, reason, value) for i, reason, value in c.errors[:cap]]
        tally.add(col.name, "invalid value", len(c.errors))
        failed = np.zeros(n, bool)
        if c.errors:
            failed[[i for i, _, _ in c.errors]] = True
            bad |= failed
        if not col.nullable and not absent:
            missing = c.null & ~failed if lacking is None else c.null & ~failed & ~lacking
            bad |= _missing_values(col, missing, cap, errors, tally)
        coerced[col.name] = c
        fm = flag_mask(col, c)
        if fm is not None and fm[1].any():
            flags[(fm[0], col.name)] = np.flatnonzero(fm[1])
    keep = None if not bad.any() else ~bad
    rows = np.arange(n) if keep is None else np.flatnonzero(keep)
    if keep is not None:
        flags = {k: v[keep[v]] for k, v in flags.items()}
        flags = {k: v for k, v in flags.items() if len(v)}
    columns = {name: canonical(schema[name], c, keep) for name, c in coerced.items()}
    errors.sort(key=lambda r: r.row)
    cut = tally.problems > len(errors[:cap])
    tally.rows = int(bad.sum())
    return Validated(n, rows, columns, errors[:cap], flags, tally if cut else None)


def _absent(col: Column, lacking: np.ndarray, cap: int,
            flags: dict[tuple[str, str], np.ndarray], errors: list[Reject],
            tally: RejectTally) -> bool:
    """Apply the column policy (policy.py) to the rows `lacking` column `col`: absent and
    required rejects them (True: the rows are bad), absent and optional scores them as
    missing, flagged so the lost value leaves a trace (False)."""
    if col.nullable:
        flags[(ABSENT_COLUMN, col.name)] = np.flatnonzero(lacking)
        return False
    where = np.flatnonzero(lacking)
    errors += [Reject(int(i), col.name, MISSING_COLUMN) for i in where[:cap]]
    tally.add(col.name, "missing column", len(where))
    return True


def _missing_values(col: Column, missing: np.ndarray, cap: int, errors: list[Reject],
                    tally: RejectTally) -> np.ndarray:
    """Reject the rows `missing` a value of required column `col`; returns `missing`."""
    if missing.any():
        errors += [Reject(int(i), col.name, MISSING_VALUE) for i in np.flatnonzero(missing)[:cap]]
        tally.add(col.name, "missing value", int(missing.sum()))
    return missing


def _all_missing(col: Column, n: int) -> Coerced:
    """What `coerce_column` makes of `n` missing values, in the same dtype."""
    one = coerce_column(col, np.full(1, None, dtype=object))
    return Coerced(np.repeat(one.values, n), np.ones(n, dtype=bool), [])


def _row_rules(schema: Schema) -> list[tuple[str, bool, RowRule]]:
    """(name, nullable, rule) per column, compiled on first use and kept on the schema."""
    rules = schema._derived.get("row_rules")
    if rules is None:
        rules = schema._derived["row_rules"] = [(c.name, c.nullable, row_rule(c))
                                                for c in schema.columns]
    return rules


def validate_row(
    schema: Schema, row: Mapping[str, Any]
) -> tuple[dict[str, Any], list[Reject], list[tuple[str, str]]]:
    """One dict coerced value by value, without building arrays: (values, rejects, flags).

    Bad values never raise: they are rejects (row 0); flags are (kind, column) pairs.
    """
    values: dict[str, Any] = {}
    rejects: list[Reject] = []
    flags: list[tuple[str, str]] = []
    for name, nullable, rule in _row_rules(schema):
        if name not in row:
            values[name] = None
            if nullable:
                flags.append((ABSENT_COLUMN, name))
            else:
                rejects.append(Reject(0, name, MISSING_COLUMN))
            continue
        raw = row[name]
        try:
            v, flag = rule(raw)
        except CoercionError as e:
            rejects.append(Reject(0, name, str(e), raw))
            continue
        if v is None and not nullable:
            rejects.append(Reject(0, name, MISSING_VALUE))
        values[name] = v
        if flag:
            flags.append((flag, name))
    return values, rejects, flags
