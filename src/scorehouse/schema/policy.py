"""The column-set policy: how an input's columns compare with the schema, decided once here.

Every channel (the scorer, batch files and tables, each server route, Spark) asks
`check_names` (a header) or `check_input` (records, a table, a frame) and applies the answer
with `ColumnCheck.enforce`, so none of them decides for itself:

| input | lenient (default) | strict |
|---|---|---|
| required column absent | each row rejected (`required column is missing`) | refused |
| optional column absent | scored as missing, row flagged `absent_column` | refused |
| unknown column | ignored, reported with a "did you mean" | refused |

A column is optional when it had missing values in training (`nullable: true`). A `null`
that an input sends on purpose is a missing value, not an absent column, and is not flagged.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import pandas as pd
import pyarrow as pa

from ..errors import InvalidInputError, SchemaError
from .columns import Schema

#: The flag of a row scored without an optional column the input did not have.
ABSENT_COLUMN = "absent_column"
#: How close an unknown name must be to a schema column to be suggested (difflib ratio).
SUGGEST_CUTOFF = 0.7
#: Unknown columns named (with a suggestion each) in a check; the rest are only counted, so
#: a request with thousands of stray keys costs no more than one with a few.
MAX_NAMED = 20
#: Sets of at most this many names have their check remembered (up to 1,024 sets a schema).
MEMO_COLUMNS = 256
#: Arrow schema metadata of a table made from JSON records: per column, the rows whose record
#: lacked the key (JSON `{"column": [row, ...]}`), so they count as absent, not as null.
ABSENT_ROWS = b"scorehouse.absent_rows"


class ColumnPolicy(str, Enum):
    """What to do with an absent optional column or an unknown column."""

    LENIENT = "lenient"  # score: flag the absent column, report the unknown one
    STRICT = "strict"  # refuse the whole input, naming the columns

    @classmethod
    def parse(cls, value: str | ColumnPolicy | None) -> ColumnPolicy:
        """`"strict"`, `"lenient"`, a ColumnPolicy or None (lenient); else a SchemaError."""
        if value is None:
            return cls.LENIENT
        try:
            return cls(value)
        except ValueError:
            raise SchemaError(f"column policy must be lenient or strict, not {value!r}") from None


@dataclass(frozen=True)
class UnknownColumn:
    """An input column the model does not take, with the schema column it most resembles."""

    name: str
    did_you_mean: str | None = None

    def __str__(self) -> str:
        hint = f" (did you mean {self.did_you_mean!r}?)" if self.did_you_mean else ""
        return f"{self.name!r}{hint}"

    def to_dict(self) -> dict[str, str | None]:
        """{"column": ..., "did_you_mean": ... or None}."""
        return {"column": self.name, "did_you_mean": self.did_you_mean}


@dataclass(frozen=True)
class ColumnCheck:
    """Schema columns an input lacks (required ones, optional ones) and columns it adds.

    For records, a column counts as absent when at least one record lacks its key.
    """

    absent_required: tuple[str, ...] = ()
    absent_optional: tuple[str, ...] = ()
    unknown: tuple[UnknownColumn, ...] = ()
    #: Unknown columns beyond the first MAX_NAMED (in name order), counted only.
    more_unknown: int = 0

    @property
    def clean(self) -> bool:
        """True when the input has exactly the schema's columns."""
        return not (self.absent_required or self.absent_optional or self.unknown)

    def describe(self) -> str:
        """One line naming every absent and unknown column ('' when clean)."""
        parts = []
        if self.absent_required:
            parts.append(f"required column(s) {_names(self.absent_required)} absent from the input")
        if self.absent_optional:
            parts.append(f"optional column(s) {_names(self.absent_optional)} absent from the "
                         f"input (scored as missing, flagged {ABSENT_COLUMN})")
        if self.unknown:
            more = f" and {self.more_unknown} more" if self.more_unknown else ""
            parts.append("unknown column(s) " + ", ".join(str(u) for u in self.unknown) + more)
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """{"absent_required": [...], "absent_optional": [...],
        "unknown": [{"column", "did_you_mean"}, ...], "more_unknown": int}."""
        return {"absent_required": list(self.absent_required),
                "absent_optional": list(self.absent_optional),
                "unknown": [u.to_dict() for u in self.unknown], "more_unknown": self.more_unknown}

    def enforce(self, policy: ColumnPolicy) -> ColumnCheck:
        """This check, or ColumnsError when `policy` is strict and the columns differ."""
        if policy is ColumnPolicy.STRICT and not self.clean:
            raise ColumnsError(self)
        return self


#: The check of an input that has exactly the schema's columns.
CLEAN = ColumnCheck()


class ColumnsError(InvalidInputError):
    """An input refused under the strict column policy; `check` names the columns."""

    def __init__(self, check: ColumnCheck):
        self.check = check
        super().__init__(f"input columns do not match the model's schema (--columns strict): "
                         f"{check.describe()}")


def check_names(schema: Schema, names: Iterable[Any],
                absent_somewhere: Iterable[str] = ()) -> ColumnCheck:
    """Compare the column names of an input (a header) with `schema`.

    `absent_somewhere`: schema columns present in `names` but missing from some rows
    (records without the key); they count as absent too.
    """
    given = frozenset(str(n) for n in names)
    partly = set(absent_somewhere)
    if partly or len(given) > MEMO_COLUMNS:
        return _compare(schema, given, partly)
    # The same clients send the same columns request after request (an id column, say):
    # decide once per set of names, not with difflib on every request.
    memo: dict[frozenset[str], ColumnCheck] = schema._derived.setdefault("column_checks", {})
    found = memo.get(given)
    if found is None:
        if len(memo) >= 1024:
            memo.clear()
        found = memo[given] = _compare(schema, given, partly)
    return found


def _compare(schema: Schema, given: frozenset[str], partly: set[str]) -> ColumnCheck:
    absent = [c for c in schema.columns if c.name not in given or c.name in partly]
    unknown = sorted(given - set(schema.names))
    if not absent and not unknown:
        return CLEAN
    missing = [c.name for c in absent]
    return ColumnCheck(tuple(c.name for c in absent if not c.nullable),
                       tuple(c.name for c in absent if c.nullable),
                       tuple(UnknownColumn(n, suggest(schema, n, missing))
                             for n in unknown[:MAX_NAMED]),
                       max(0, len(unknown) - MAX_NAMED))


def check_input(schema: Schema, data: Any) -> ColumnCheck:
    """Compare the columns of any input the scorer takes (table, frame, records, one dict)."""
    if isinstance(data, Mapping):
        if data.keys() == _name_set(schema):  # the common case, without building anything
            return CLEAN
        return check_names(schema, data.keys())
    if isinstance(data, (pa.Table, pa.RecordBatch)):
        return check_names(schema, data.schema.names, absent_rows(data))
    if isinstance(data, pd.DataFrame):
        return check_names(schema, data.columns)
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        records = [r for r in data if isinstance(r, Mapping)]  # others: validate's error
        if not records:
            return check_names(schema, schema.names)
        union = set().union(*(r.keys() for r in records))
        partly = [n for n in schema.names if n in union and any(n not in r for r in records)]
        return check_names(schema, union, partly)
    return CLEAN  # not an input shape: validation says so


def records_table(records: Sequence[Mapping[str, Any]], batch: pa.RecordBatch) -> pa.RecordBatch:
    """`batch` (made from `records`) marked with the rows whose record lacked each column."""
    lacking = {}
    for name in batch.schema.names:
        rows = [i for i, r in enumerate(records) if name not in r]
        if rows:
            lacking[name] = rows
    if not lacking:
        return batch
    return batch.replace_schema_metadata({**(batch.schema.metadata or {}),
                                          ABSENT_ROWS: json.dumps(lacking)})


def absent_rows(data: pa.Table | pa.RecordBatch) -> dict[str, list[int]]:
    """Per column, the rows a table made by `records_table` had no key for ({} otherwise)."""
    meta = data.schema.metadata
    found = meta.get(ABSENT_ROWS) if meta else None
    return json.loads(found) if found else {}


def suggest(schema: Schema, name: str, absent: Sequence[str] = ()) -> str | None:
    """The schema column `name` most likely misspells: an absent one first, then any."""
    for pool in (absent, schema.names):
        lowered = {n.lower(): n for n in pool}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=SUGGEST_CUTOFF)
        if close:
            return lowered[close[0]]
    return None


def _name_set(schema: Schema) -> frozenset[str]:
    found = schema._derived.get("name_set")
    if found is None:
        found = schema._derived["name_set"] = frozenset(schema.names)
    return found


def _names(names: Sequence[str]) -> str:
    return ", ".join(repr(n) for n in names)
