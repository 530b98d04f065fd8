"""What changed between two input schemas: columns added, removed, and changed in a way a
caller notices (type, nullability, category set). Training ranges are left out: they move
with every retraining and change no caller's request."""

from __future__ import annotations

from dataclasses import dataclass

from .columns import Schema


@dataclass(frozen=True)
class ColumnChange:
    """One column whose contract changed: `what` is 'type', 'nullable' or 'categories'."""

    column: str
    what: str
    before: str
    after: str

    def __str__(self) -> str:
        return f"{self.column}: {self.what} {self.before} -> {self.after}"


@dataclass(frozen=True)
class SchemaDiff:
    """The difference from an old schema to a new one (empty when a caller sees no change)."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[ColumnChange, ...]
    #: Columns the two schemas share.
    kept: int

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    @property
    def disjoint(self) -> bool:
        """No column in common: most likely a different model registered under this name."""
        return self.kept == 0 and bool(self.added or self.removed)

    def lines(self) -> list[str]:
        """One line per added, removed or changed column, for a terminal."""
        return ([f"+ {c}" for c in self.added] + [f"- {c}" for c in self.removed]
                + [f"~ {c}" for c in self.changed])


def _categories(cats: tuple[object, ...] | None) -> str:
    if cats is None:
        return "any"
    shown = ", ".join(map(str, cats[:6]))
    return "{" + shown + (", ..." if len(cats) > 6 else "") + "}"


def diff_schemas(old: Schema, new: Schema) -> SchemaDiff:
    """Compare `old` with `new`, column by column, by name.

    Returns:
        A `SchemaDiff`: added and removed column names (in each schema's order), and a
        `ColumnChange` for each shared column whose type, nullability or category set differs.
    """
    added = tuple(n for n in new.names if n not in old)
    removed = tuple(n for n in old.names if n not in new)
    changed: list[ColumnChange] = []
    shared = [n for n in new.names if n in old]
    for name in shared:
        a, b = old[name], new[name]
        if a.type != b.type:
            changed.append(ColumnChange(name, "type", a.type.value, b.type.value))
        if a.nullable != b.nullable:
            changed.append(ColumnChange(name, "nullable", str(a.nullable).lower(),
                                        str(b.nullable).lower()))
        if a.categories != b.categories:
            changed.append(ColumnChange(name, "categories", _categories(a.categories),
                                        _categories(b.categories)))
    return SchemaDiff(added, removed, tuple(changed), len(shared))
