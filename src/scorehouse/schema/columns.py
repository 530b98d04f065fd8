"""The input contract: one `Column` per model input, gathered in a `Schema`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import SchemaError
from .types import CategoryType, ColumnType

#: The column type names, as written in a manifest (see `ColumnType`).
TYPES = tuple(t.value for t in ColumnType)
#: The value type of a categorical column's categories (see `schema.categories`).
CATEGORY_TYPES = tuple(t.value for t in CategoryType)


@dataclass(frozen=True)
class Column:
    """One input column: logical type, nullability, exact categories and training range.

    `type` and `category_type` may be given as their text ("integer", "int"); they are
    kept as `ColumnType` and `CategoryType`.

    Raises:
        SchemaError: an unknown type or category type.
    """

    name: str
    type: ColumnType
    nullable: bool = False
    categories: tuple[str, ...] | None = None
    min: float | None = None
    max: float | None = None
    # The pandas dtype the model saw at training, so the native runtime rebuilds the same frame.
    dtype: str | None = None
    #: A `category` column's category type: "int", "float", "bool" or "text" (None: text, as
    #: in manifests written before the field). `categories` holds their canonical text.
    category_type: CategoryType | None = None
    #: A date-time column's zone at training (an IANA name or "UTC"); None: zone-less.
    timezone: str | None = None
    #: Why the column accepts missing values ("missing in training", an imputer step ...).
    nullable_reason: str | None = None

    def __post_init__(self) -> None:
        # Manifests and overrides name the types as text: kept as the enums.
        object.__setattr__(self, "type", ColumnType.parse(self.type, self.name))
        if self.category_type is not None:
            object.__setattr__(self, "category_type",
                               CategoryType.parse(self.category_type, self.name))
        if self.categories is not None and not isinstance(self.categories, tuple):
            object.__setattr__(self, "categories", tuple(self.categories))

    @property
    def category_value_type(self) -> ColumnType | None:
        """The column type whose rule reads this column's typed categories (int categories:
        integer ...); None for text categories and columns that are not categorical."""
        return None if self.category_type is None else self.category_type.value_type

    def to_dict(self) -> dict[str, Any]:
        """This column as plain JSON-able data (the types as their text: the manifest, and
        so its hash, is the same as before the enums)."""
        d = asdict(self)
        d["type"] = self.type.value
        if self.category_type is not None:
            d["category_type"] = self.category_type.value
        if self.categories is not None:
            d["categories"] = list(self.categories)
        return {k: v for k, v in d.items() if v is not None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Column:
        """A column from `to_dict` output.

        Raises:
            SchemaError: an unknown key (to catch typos), no name or type, or an unknown
                type or category type.
        """
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise SchemaError(f"column {d.get('name')!r}: unknown field(s) {sorted(unknown)}")
        if "name" not in d or "type" not in d:
            raise SchemaError(f"column {dict(d)!r}: 'name' and 'type' are required")
        return cls(**dict(d))


class _Derived(dict[str, Any]):
    """A schema's cache; it holds closures, so copies and pickles start empty."""

    def __reduce__(self) -> tuple[type, tuple[()]]:
        return _Derived, ()


@dataclass(frozen=True)
class Schema:
    """Ordered model inputs; the one set of rules every channel validates against."""

    columns: tuple[Column, ...]
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)
    #: Things derived from the columns once and reused on every call (the single-row rules).
    _derived: dict[str, Any] = field(default_factory=_Derived, init=False,
                                     compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", tuple(self.columns))
        index = {c.name: i for i, c in enumerate(self.columns)}
        if len(index) != len(self.columns):
            raise SchemaError("schema has duplicate column names")
        object.__setattr__(self, "_index", index)

    @property
    def names(self) -> list[str]:
        """Column names in model order."""
        return [c.name for c in self.columns]

    @property
    def text_names(self) -> list[str]:
        """Names of the string columns (which a reader may hand over dictionary-encoded)."""
        return [c.name for c in self.columns if c.type is ColumnType.STRING]

    def __getitem__(self, name: str) -> Column:
        """The column named `name`.

        Raises:
            SchemaError: the schema has no such column.
        """
        try:
            return self.columns[self._index[name]]
        except KeyError:
            raise SchemaError(f"schema has no column {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __len__(self) -> int:
        return len(self.columns)

    def to_dict(self) -> dict[str, Any]:
        """This schema as plain JSON-able data."""
        return {"columns": [c.to_dict() for c in self.columns]}

    def to_json(self) -> str:
        """This schema as indented JSON."""
        return json.dumps(self.to_dict(), indent=2)

    def example_record(self) -> dict[str, Any]:
        """A record every column accepts: a known category, the middle of the training range,
        False, or a date-time (None for a nullable one). The server's OpenAPI example and
        its warm-up call, and the latency gate's timed call, all use it."""
        rec: dict[str, Any] = {}
        for c in self.columns:
            if c.categories:
                rec[c.name] = c.categories[0]
            elif c.type in ("integer", "number"):
                lo, hi = (c.min or 0.0), (c.max if c.max is not None else (c.min or 0.0))
                mid = (lo + hi) / 2
                rec[c.name] = int(mid) if c.type == "integer" else mid
            elif c.type == "boolean":
                rec[c.name] = False
            else:
                rec[c.name] = None if c.nullable else "2024-01-01T00:00:00"
        return rec

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | Iterable[Mapping[str, Any]]) -> Schema:
        """A schema from `to_dict` output (or a bare list of column dicts).

        Raises:
            SchemaError: a column is invalid (see `Column.from_dict`) or two share a name.
        """
        cols = d["columns"] if isinstance(d, Mapping) else d
        return cls(tuple(Column.from_dict(c) for c in cols))

    def override(self, changes: Mapping[str, Mapping[str, Any]]) -> Schema:
        """A copy with per-column fields replaced, e.g. `{"tenure": {"nullable": True}}`.

        Raises:
            SchemaError: an unknown column or field, a change of name, or an invalid value
                (an unknown type ...).
        """
        cols = list(self.columns)
        for name, fields in changes.items():
            i = self._index.get(name)
            if i is None:
                raise SchemaError(f"schema override names unknown column {name!r}")
            bad = set(fields) - set(Column.__dataclass_fields__) - {"name"}
            if bad or "name" in fields:
                raise SchemaError(f"schema override for {name!r}: cannot set {sorted(bad or {'name'})}")
            fields = dict(fields)
            if "nullable" in fields and "nullable_reason" not in fields:
                fields["nullable_reason"] = "set by a schema override" if fields["nullable"] \
                    else None
            cols[i] = replace(cols[i], **fields)
        return Schema(tuple(cols))
