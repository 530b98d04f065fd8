"""Aliases and their history: moving an alias, and replaying its moves for a rollback.

Every move (promote, rollback, unalias) is one row of `sh_aliases` changed and one event
appended to `sh_events`, in the caller's transaction. The events are the alias's history:
replaying them gives the versions it held, which is what a rollback walks back through.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import sqlalchemy as sa

from ..errors import ConflictError, NotFoundError
from .records import Action, AliasMove, VersionStatus
from .tables import aliases, events, versions


def now() -> dt.datetime:
    """The current time, in UTC (what every stored time is)."""
    return dt.datetime.now(dt.timezone.utc)


def move_alias(conn: sa.Connection, mid: int, *, name: str, alias: str, version: int | None,
               action: Action, reason: str, who: str,
               expect: list[int] | None = None,
               gates: list[dict[str, Any]] | None = None) -> AliasMove:
    """Point `alias` of model `name` (id `mid`) at `version` (None: delete it) and record
    the move as `action`; a no-op (`changed` False) when it already points there.

    The caller holds the model's write lock (`Registry._model_id(lock=True)`), so the checks
    here see the alias as it is: it may have moved (even away and back) or its target been
    archived since the caller looked. `expect`: for a rollback, the alias's stack the caller
    computed its target from. `gates`: the gate results that let (or, forced, did not let)
    the move through, kept on its event.

    Raises:
        ConflictError: a rollback whose alias moved meanwhile, or an archived `version`.
        NotFoundError: unalias of an alias that does not exist.
    """
    where = (aliases.c.model_id == mid) & (aliases.c.alias == alias)
    before = conn.execute(sa.select(aliases.c.version).where(where)).scalar()
    if action is Action.ROLLBACK and alias_stack(conn, mid, alias) != expect:
        raise ConflictError(f"{name}@{alias} moved while rolling back; try again")
    if version is not None and conn.execute(sa.select(versions.c.status).where(
            versions.c.model_id == mid, versions.c.version == version)).scalar() \
            == VersionStatus.ARCHIVED.value:
        doing = "rolling back to" if action is Action.ROLLBACK else "promoting"
        raise ConflictError(f"{name}/{version} is archived; restore it before {doing} it")
    if action is Action.UNALIAS and before is None:
        raise NotFoundError(f"{name} has no alias {alias!r}")
    move = AliasMove(model=name, alias=alias, from_version=before, version=version,
                     action=action, changed=before != version)
    if not move.changed:
        return move
    at = now()
    if version is None:
        conn.execute(aliases.delete().where(where))
    elif before is None:
        conn.execute(aliases.insert().values(model_id=mid, alias=alias, version=version,
                                             updated_at=at, updated_by=who))
    else:
        conn.execute(aliases.update().where(where).values(
            version=version, updated_at=at, updated_by=who))
    conn.execute(events.insert().values(
        model_id=mid, at=at, user=who, action=action.value, alias=alias, version=version,
        from_version=before, reason=reason, gates=gates))
    return move


def alias_stack(conn: sa.Connection, mid: int, alias: str) -> list[int]:
    """The versions `alias` of model `mid` held, most recent last (empty once deleted)."""
    # Replaying the alias's history gives the versions it held, most recent last; a rollback
    # pops one, so repeated rollbacks walk further back rather than toggling.
    stack: list[int] = []
    rows = conn.execute(sa.select(events.c.action, events.c.version).where(
        events.c.model_id == mid, events.c.alias == alias).order_by(events.c.id)).all()
    for action, version in rows:
        if action == Action.PROMOTE.value:
            stack.append(version)
        elif action == Action.ROLLBACK.value:
            stack.pop()
            if not stack or stack[-1] != version:  # pragma: no cover - history edited by hand
                stack.append(version)
        elif action == Action.UNALIAS.value:
            stack.clear()
    return stack


def aliases_by_version(conn: sa.Connection, mid: int) -> dict[int, list[str]]:
    """Version number -> the aliases of model `mid` pointing at it."""
    out: dict[int, list[str]] = {}
    for a, v in conn.execute(sa.select(aliases.c.alias, aliases.c.version)
                             .where(aliases.c.model_id == mid)).all():
        out.setdefault(v, []).append(a)
    return out


def alias_names(conn: sa.Connection, mid: int) -> list[str]:
    """The aliases of model `mid`, by name."""
    return sorted(conn.execute(sa.select(aliases.c.alias)
                               .where(aliases.c.model_id == mid)).scalars())
