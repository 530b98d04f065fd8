"""The catalog checks `db trigger` runs before it replaces a trigger.

A trigger whose options name a column that does not exist (or of a type that does not fit)
would make every later INSERT into the events table fail. So each option is looked up in
the catalog first, with an error naming the option, table and column; then every statement
the trigger will run is PREPAREd with the event's columns as typed parameters, which makes
PostgreSQL resolve each column, operator and assignment as it will at insert time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..errors import ConflictError, NotFoundError, ScorehouseError
from .names import COMMENT_PREFIX, SqlNames

_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod),
       a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = ''
FROM pg_attribute a WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""


_TRIGGERS = """
SELECT t.tgname, obj_description(t.oid, 'pg_trigger'), p.prosrc
FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
WHERE t.tgrelid = %s AND NOT t.tgisinternal AND t.tgname LIKE 'scorehouse\\_%%'
"""
#: The model a trigger function without a comment (made before the comment existed) feeds:
#: the literal it scores (transaction mode) or queues (outbox mode).
_MODEL_IN_BODY = re.compile(r"\.score\('((?:[^']|'')*)'|outbox \(model, profiles, key_column, "
                            r"key\) VALUES \('((?:[^']|'')*)'")


@dataclass(frozen=True)
class Column:
    """A table column as the checks need it."""

    name: str
    type: str  # format_type(): "integer", "text", "character varying(20)", …
    required: bool  # NOT NULL, with no default, identity or generation: an INSERT must set it


def _table(conn: Any, name: str, option: str) -> int:
    """The oid of table `name` (schema-qualified or on the search_path); NotFoundError if
    there is none, ScorehouseError if it is not a table."""
    from psycopg import errors, sql

    qualified = sql.SQL(".").join(sql.Identifier(p) for p in name.split("."))
    try:
        with conn.transaction():  # a savepoint: a malformed name must not abort the rest
            row = conn.execute("SELECT c.oid, c.relkind FROM pg_class c WHERE c.oid = "
                               "to_regclass(%s)", [qualified.as_string(conn)]).fetchone()
    except errors.Error:
        row = None
    if row is None:
        raise NotFoundError(f"{option} {name}: no such table")
    if row[1] not in ("r", "p"):
        raise ScorehouseError(f"{option} {name}: not a table (a view or other relation); "
                              "the trigger needs a table")
    return row[0]


def qualified_table(conn: Any, name: str, option: str) -> Any:
    """Table `name` as the catalog names it, schema-qualified (sql.Composable): the same
    table whatever the search_path of whoever runs the trigger."""
    from psycopg import sql

    schema, table = conn.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN "
                                 "pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s",
                                 [_table(conn, name, option)]).fetchone()
    return sql.SQL("{}.{}").format(sql.Identifier(schema), sql.Identifier(table))


def table_columns(conn: Any, name: str, option: str = "--profiles") -> dict[str, Column]:
    """The columns of table `name`, in order."""
    rows = conn.execute(_COLUMNS, [_table(conn, name, option)]).fetchall()
    return {n: Column(n, t, bool(req)) for n, t, req in rows}


def _need(columns: dict[str, Column], column: str, option: str, table: str) -> None:
    if column not in columns:
        raise NotFoundError(f"{option}: table {table} has no column {column!r} "
                            f"(it has {', '.join(columns) or 'none'})")


def check_recipe(conn: Any, r: Any, score_columns: dict[str, str]) -> dict[str, str]:
    """Check recipe `r`'s tables and columns; the events table's columns -> their types.

    Raises NotFoundError for a table or column that does not exist, ScorehouseError for one
    that cannot be used (a profile column of the score's name with another type; with
    missing="create", a NOT NULL profile column the trigger could not fill).
    """
    events = table_columns(conn, r.events, "--events")
    profiles = table_columns(conn, r.profiles, "--profiles")
    _need(events, r.key, f"--key {r.key}", r.events)
    _need(profiles, r.key, f"--key {r.key}", r.profiles)
    for c in r.increment:
        _need(profiles, c, f"--increment {c}", r.profiles)
    for target, source in r.copy.items():
        _need(profiles, target, f"--copy {target}={source}", r.profiles)
        _need(events, source, f"--copy {target}={source}", r.events)
    for c, kind in score_columns.items():
        canonical = conn.execute("SELECT %s::regtype::text", [kind]).fetchone()[0]
        if c in profiles and profiles[c].type != canonical:
            raise ScorehouseError(f"table {r.profiles} has a column {c!r} of type "
                                  f"{profiles[c].type}; the trigger writes {kind} there")
    if r.missing == "create":
        # Without a unique key, two events creating the same profile at once make two rows.
        unique = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = "
            "i.indrelid AND a.attnum = i.indkey[0] WHERE i.indrelid = %s AND i.indisunique "
            "AND i.indnkeyatts = 1 AND i.indpred IS NULL AND a.attname = %s)",
            [_table(conn, r.profiles, "--profiles"), r.key]).fetchone()[0]
        if not unique:
            raise ScorehouseError(
                f"--missing-profile create: {r.key} is not a unique key of {r.profiles} "
                "(a primary key or unique index on it alone), so concurrent events could "
                "create two rows; add one or use --missing-profile dead-letter")
        unset = [c.name for c in profiles.values() if c.required
                 and c.name not in (r.key, *r.increment, *r.copy)]
        if unset:
            raise ScorehouseError(
                f"--missing-profile create: a new row of {r.profiles} needs "
                f"{', '.join(unset)} (NOT NULL, no default), which the trigger cannot fill; "
                "give them defaults or use --missing-profile dead-letter")
    return {c.name: c.type for c in events.values()}


def prepare_all(conn: Any, r: Any, st: Any, new: Any, types: list[str]) -> None:
    """PREPARE (then DEALLOCATE) each statement of `st` (triggers._Statements) that recipe
    `r` runs, with parameters of `types` (`new` maps an event column to its parameter);
    ScorehouseError naming the option on failure.

    Each option is first checked alone, so that the error names it."""
    import psycopg
    from psycopg import sql

    profiles, key = st.profiles, sql.Identifier(r.key)
    checks = [(sql.SQL("SELECT 1 FROM {} WHERE {} = {}").format(profiles, key, new(r.key)),
               f"--key {r.key}")]
    checks += [(sql.SQL("UPDATE {} SET {} = COALESCE({}, 0) + 1 WHERE false").format(
        profiles, sql.Identifier(c), sql.Identifier(c)), f"--increment {c}") for c in r.increment]
    checks += [(sql.SQL("UPDATE {} SET {} = {} WHERE false").format(
        profiles, sql.Identifier(target), new(source)), f"--copy {target}={source}")
        for target, source in r.copy.items()]
    checks += [(st.find, "--key/--increment/--copy"),
               (st.dead(sql.Literal("check")), "the dead_events table")]
    if r.missing == "create":
        checks.append((st.create, "--missing-profile create"))
    if r.mode == "outbox":
        checks.append((st.queue, "the outbox table"))
    else:
        checks += [(st.score, "--model"), (st.write, "the score columns"),
                   (st.stale, "the score columns")]
    params = sql.SQL("({})").format(sql.SQL(", ").join(map(sql.SQL, types)))
    for statement, option in checks:
        try:
            conn.execute(sql.SQL("PREPARE scorehouse_check {} AS {}").format(params, statement))
        except psycopg.Error as e:
            raise ScorehouseError(f"{option}: {e.diag.message_primary} (checked against "
                                  f"{r.events} and {r.profiles}); nothing was changed") from None
        conn.execute("DEALLOCATE scorehouse_check")


def claim_trigger(conn: Any, r: Any, names: SqlNames) -> list[str]:
    """The triggers on `r.events` the new one replaces: this model's triggers under names
    of an earlier naming rule (the one of `names.trigger` itself is replaced in place).

    Raises ConflictError when a trigger of the new one's name feeds another model (or is
    not scorehouse's): replacing it would silently stop that model's scoring.
    """
    replaced = []
    for name, comment, source in conn.execute(_TRIGGERS, [_table(conn, r.events, "--events")]):
        owner = None
        if comment is not None and comment.startswith(COMMENT_PREFIX):
            owner = comment[len(COMMENT_PREFIX):]
        elif m := _MODEL_IN_BODY.search(source or ""):
            owner = (m.group(1) or m.group(2)).replace("''", "'")
        if name == names.trigger and owner != r.model:
            whose = f"feeds model {owner!r}" if owner else "was not created by scorehouse"
            raise ConflictError(f"cannot install the trigger of model {r.model!r}: its name is "
                                f"{name}, and the trigger {name} on {r.events} {whose}; drop "
                                "it first if it is no longer wanted")
        if name != names.trigger and owner == r.model:
            replaced.append(name)
    return replaced
