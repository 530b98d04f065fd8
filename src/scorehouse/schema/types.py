"""The type of a schema column, and what each channel calls it.

A `Column.type` is one of five logical types; every channel that names a column's type
(a PostgreSQL or DuckDB function argument, a V2 tensor, an OpenAPI property, an Arrow or
NumPy column) asks the `ColumnType` here instead of keeping its own table:

| type     | PostgreSQL       | DuckDB    | V2    | JSON Schema           | Arrow, NumPy             |
|----------|------------------|-----------|-------|-----------------------|--------------------------|
| integer  | bigint           | BIGINT    | INT64 | integer               | int64, int64             |
| number   | double precision | DOUBLE    | FP64  | number                | double, float64          |
| boolean  | boolean          | BOOLEAN   | BOOL  | boolean               | bool, bool               |
| string   | text             | VARCHAR   | BYTES | string                | string, object           |
| datetime | timestamp        | TIMESTAMP | BYTES | string, date-time     | timestamp[ns], dt64[ns]  |

A categorical column is a `string` column whose categories may be typed values
(`CategoryType`: int, float, bool or text); a typed category is read by the rule of its
value type (`CategoryType.value_type`: int -> integer ...).

Both are `str` enums: a member equals its text (`ColumnType.INTEGER == "integer"`) and
prints as it, so manifests, JSON and messages read as before.
"""

from __future__ import annotations

from enum import Enum
from typing import Any, TypeVar

import pyarrow as pa

from ..errors import SchemaError


class TextEnum(str, Enum):
    """A `str` enum whose text is its value: `str(ColumnType.INTEGER)` and f-strings give
    "integer", as the plain strings the enums replaced (3.11's `StrEnum`, on 3.10 too)."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(self, spec)


E = TypeVar("E", bound=TextEnum)


def _member(cls: type[E], value: str | E, column: str | None, what: str) -> E:
    """`cls`'s member named `value`; a SchemaError naming `column` and listing the names."""
    try:
        return cls(value)
    except ValueError:
        where = f"column {column!r}: " if column is not None else ""
        raise SchemaError(f"{where}unknown {what} {value!r} (expected one of "
                          f"{', '.join(t.value for t in cls)})") from None


class ColumnType(TextEnum):
    """The logical type of a model input column, with its name in each channel."""

    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    STRING = "string"
    DATETIME = "datetime"

    @classmethod
    def parse(cls, value: str | ColumnType, column: str | None = None) -> ColumnType:
        """The member named by `value` ("integer", ..., or a member).

        Raises:
            SchemaError: `value` is not one of the five type names (the message names
                `column` when given).
        """
        return _member(cls, value, column, "type")

    @property
    def numeric(self) -> bool:
        """True for integer and number (the columns with a training range)."""
        return self in (ColumnType.INTEGER, ColumnType.NUMBER)

    @property
    def sql_type(self) -> str:
        """The PostgreSQL type of a value of this type ("bigint", "double precision" ...);
        a zoned date-time column takes `timestamptz` instead (see `sql.postgres.arg_type`)."""
        return _SQL[self]

    @property
    def duckdb_type(self) -> str:
        """The DuckDB type of a value of this type ("BIGINT", "DOUBLE" ...)."""
        return _DUCKDB[self]

    @property
    def v2_datatype(self) -> str:
        """The Open Inference Protocol (KServe V2) tensor datatype: INT64, FP64, BOOL, or
        BYTES for text and date-times (sent as ISO 8601 text)."""
        return _V2[self]

    @property
    def json_schema(self) -> dict[str, str]:
        """The JSON Schema (OpenAPI) of one value: `{"type": ...}`, plus `"format":
        "date-time"` for a date-time (a fresh dict: callers may add to it)."""
        return dict(_JSON[self])

    @property
    def arrow_type(self) -> pa.DataType:
        """The Arrow type of this type's canonical values (date-times: zone-less ns)."""
        return _ARROW[self]()

    @property
    def numpy_dtype(self) -> str:
        """The NumPy dtype of this type's canonical values without missing ones (an integer
        column with missing values is float64 instead: NaN marks them)."""
        return _NUMPY[self]


class CategoryType(TextEnum):
    """The value type of a categorical column's categories (`Column.category_type`)."""

    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    TEXT = "text"

    @classmethod
    def parse(cls, value: str | CategoryType, column: str | None = None) -> CategoryType:
        """The member named by `value` ("int", "float", "bool", "text" or a member).

        Raises:
            SchemaError: `value` is not one of the four names (the message names `column`
                when given).
        """
        return _member(cls, value, column, "category_type")

    @property
    def value_type(self) -> ColumnType | None:
        """The column type whose rule reads a value of this category type (int -> integer,
        float -> number, bool -> boolean); None for text (read by the string rule)."""
        return _VALUE_TYPES.get(self)


_SQL = {ColumnType.INTEGER: "bigint", ColumnType.NUMBER: "double precision",
        ColumnType.BOOLEAN: "boolean", ColumnType.STRING: "text",
        ColumnType.DATETIME: "timestamp"}
_DUCKDB = {ColumnType.INTEGER: "BIGINT", ColumnType.NUMBER: "DOUBLE",
           ColumnType.BOOLEAN: "BOOLEAN", ColumnType.STRING: "VARCHAR",
           ColumnType.DATETIME: "TIMESTAMP"}
_V2 = {ColumnType.INTEGER: "INT64", ColumnType.NUMBER: "FP64", ColumnType.BOOLEAN: "BOOL",
       ColumnType.STRING: "BYTES", ColumnType.DATETIME: "BYTES"}
_JSON: dict[ColumnType, dict[str, str]] = {
    ColumnType.INTEGER: {"type": "integer"}, ColumnType.NUMBER: {"type": "number"},
    ColumnType.BOOLEAN: {"type": "boolean"}, ColumnType.STRING: {"type": "string"},
    ColumnType.DATETIME: {"type": "string", "format": "date-time"}}
_ARROW: dict[ColumnType, Any] = {
    ColumnType.INTEGER: pa.int64, ColumnType.NUMBER: pa.float64, ColumnType.BOOLEAN: pa.bool_,
    ColumnType.STRING: pa.string, ColumnType.DATETIME: lambda: pa.timestamp("ns")}
_NUMPY = {ColumnType.INTEGER: "int64", ColumnType.NUMBER: "float64", ColumnType.BOOLEAN: "bool",
          ColumnType.STRING: "object", ColumnType.DATETIME: "datetime64[ns]"}
_VALUE_TYPES = {CategoryType.INT: ColumnType.INTEGER, CategoryType.FLOAT: ColumnType.NUMBER,
                CategoryType.BOOL: ColumnType.BOOLEAN}
