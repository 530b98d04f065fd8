"""What the registry hands back: versions, history events, alias moves, model summaries.

The statuses and actions are `str` enums whose values are what the database stores and
what `--json` prints ("ready", "promote" ...), so neither changed when they became types.
Each record has `to_dict()`, its JSON form; `AliasMove` and `ModelSummary` also answer
`record["key"]`, for callers written when they were dicts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from typing import Any, Protocol

from ..schema.types import TextEnum


class VersionStatus(TextEnum):
    """Whether a version can be promoted: ready, or archived (kept for audit only)."""

    READY = "ready"
    ARCHIVED = "archived"


class Action(TextEnum):
    """What an entry of a model's history records."""

    REGISTER = "register"  # a new version
    PROMOTE = "promote"  # an alias pointed at a version
    ROLLBACK = "rollback"  # an alias moved back to the version it held before
    UNALIAS = "unalias"  # an alias deleted
    ARCHIVE = "archive"  # a version archived
    RESTORE = "restore"  # an archived version made ready again


class _ByKey:
    """A record that also reads as the dict it used to be: `record["field"]` is the
    field's JSON value, `to_dict()` all of them."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form: the fields in order, enums as their text."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    def __getitem__(self, key: str) -> Any:
        if key not in {f.name for f in fields(self)}:  # type: ignore[arg-type]
            raise KeyError(key)
        return _plain(getattr(self, key))


def _plain(v: Any) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, Mapping):
        return dict(v)
    return v


@dataclass(frozen=True)
class AliasMove(_ByKey):
    """An alias pointed at a version (promote), moved back (rollback) or deleted (unalias).

    `from_version`: the version it held before (None: it did not exist); `version`: the one
    it holds now (None: deleted); `changed`: False when it already held `version`.
    """

    model: str
    alias: str
    from_version: int | None
    version: int | None
    action: Action
    changed: bool


@dataclass(frozen=True)
class ModelSummary(_ByKey):
    """One model in `Registry.models()`: version count, newest unarchived version (None when
    all are archived), aliases (alias -> version, by name) and time of the last change."""

    name: str
    description: str
    versions: int
    latest: int | None
    aliases: dict[str, int]
    updated_at: str


@dataclass
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: int
    manifest_sha256: str
    artifact_uri: str
    status: VersionStatus
    task: str
    flavor: str
    description: str
    created_at: str
    created_by: str
    aliases: list[str] = field(default_factory=list)
    lineage: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """`name/version`."""
        return f"{self.name}/{self.version}"

    def to_dict(self, lineage: bool = False) -> dict[str, Any]:
        """JSON-able form (lineage only on request: it can be long)."""
        d = asdict(self)
        d["status"] = self.status.value
        if not lineage:
            d.pop("lineage")
        return d


@dataclass
class Event:
    """One entry of a model's history: register, promote, rollback, unalias, archive, restore."""

    at: str
    user: str
    model: str
    action: Action
    alias: str | None
    version: int | None
    from_version: int | None
    reason: str
    #: A promotion's gate results (`GateResult.to_dict()` each) when the alias had a gate
    #: policy; a forced promotion keeps the failing ones here. None: no gates ran.
    gates: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (`gates` only when gates ran)."""
        d = {**asdict(self), "action": self.action.value}
        if self.gates is None:
            d.pop("gates")
        return d


def iso(t: dt.datetime | None) -> str:
    """A stored time as ISO 8601 text to the second, in UTC ('' for None)."""
    if t is None:
        return ""
    if t.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.isoformat(timespec="seconds")


class Row(Protocol):
    """A database row read by column name (SQLAlchemy's `RowMapping`)."""

    def __getitem__(self, key: str) -> Any: ...


def version_of(name: str, r: Row, al: Mapping[int, list[str]]) -> ModelVersion:
    """The `ModelVersion` of an `sh_versions` row, with the aliases `al` gives its number."""
    return ModelVersion(
        name=name, version=r["version"], manifest_sha256=r["manifest_sha256"],
        artifact_uri=r["artifact_uri"], status=VersionStatus(r["status"]), task=r["task"],
        flavor=r["flavor"], description=r["description"], created_at=iso(r["created_at"]),
        created_by=r["created_by"], aliases=sorted(al.get(r["version"], [])),
        lineage=r["lineage"] or {},
    )
