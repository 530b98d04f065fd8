"""The prediction log of the in-database functions: rows into a table of the same database,
in the caller's transaction (`scorehouse db install REF --log-table NAME`).

At install, the table is created with the PostgreSQL sink's DDL (`create_table_sql`) and
its quoted name (qualified by the installer's current schema when given without one)
recorded in `<schema>.config` under `log_table:<model>`; an install without
`--log-table` removes that entry (logging off). Inside PostgreSQL, each scoring call reads
the entry with the model's hash (`plpython.scorer`: the same indexed lookup, joined) and,
when there is one, inserts the call's
rows with one prepared multi-row `INSERT ... SELECT FROM unnest(...)` through `plpy`: the
rows join the caller's transaction, so a rolled-back transaction leaves no log rows. A
single-row call that refuses its row raises an SQL error, which rolls back its log row too
(the set-based functions keep refused rows, and log them with their reason). The outbox
worker (`db worker`) logs the profiles it scores in its own transaction, keyed by the
profile's key, with COPY (`copy_rows`).

Rows: id = the key argument's value (`score_query`, `score_<model>_query`; a NULL key: the
call's generated id numbered by row), the `id` argument of `score(model, row, id)` (the
trigger passes the profile's key; NULL: a generated uuid7, which the answer returns as
"id"), else a generated uuid7 (`score_<model>(...)`); channel `sql`; inputs as the
schema coerced them, outputs, flags, reject reason, model, version, runtime, latency.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from ..scorer import Result, ScoreEvent, Scorer

# The monitor's modules are imported where used: a connection whose model logs nothing
# (most) does not pay for importing the log (Arrow conversion, sinks, Prometheus).

#: The GD entry {(schema, model): quoted log table or None} that `plpython.scorer` sets.
LOG_TABLES = "scorehouse_log_tables"
#: The SQL type of each log column as the INSERT's array parameters carry it.
_TYPES = ("text", "timestamptz", "text", "integer", "text", "text", "float8", "text", "jsonb",
          "jsonb", "jsonb", "text", "text")


def config_key(model: str) -> str:
    """The `<schema>.config` key holding the quoted log table of `model`."""
    return f"log_table:{model}"


def configure(conn: Any, schema: Any, model: str, table: str | None) -> None:
    """At install (psycopg `conn`, `schema` an identifier): create the log `table` if missing
    and record it for `model`; `table` None: `model` logs nothing.

    Raises:
        UsageError: `table` is not `name` or `schema.name`.
    """
    from psycopg import sql

    from ..monitor.log.sinks.postgres import create_table_sql, quoted_table

    key = config_key(model)
    if table is None:
        conn.execute(sql.SQL("DELETE FROM {}.config WHERE key = %s").format(schema), [key])
        return
    quoted_table(conn, table)  # a UsageError for what is not a table name
    conn.execute(create_table_sql(table))
    parts = table.split(".")
    if len(parts) == 1:  # the functions run with search_path = pg_catalog: qualify it
        parts.insert(0, conn.execute("SELECT current_schema()").fetchone()[0])
    quoted = sql.Identifier(*parts).as_string(conn)
    conn.execute(sql.SQL("INSERT INTO {}.config VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
                         "SET value = excluded.value").format(schema), [key, quoted])


def log_table(gd: dict[str, Any], schema: str, model: str) -> str | None:
    """The quoted log table of installed `model` as the last `plpython.scorer` call read
    it (None: it logs nothing)."""
    found: str | None = gd.get(LOG_TABLES, {}).get((schema, model))
    return found


def logged(plpy: Any, gd: dict[str, Any], schema: str, scorer: Scorer,
           predict: Callable[[], Result], keys: Callable[[], Sequence[Any]] | None = None
           ) -> Result:
    """`predict()`, whose rows go to the model's log table (if it has one) in the current
    transaction; `keys()` gives each input row's key (None: generated ids)."""
    table = log_table(gd, schema, scorer.name)
    if table is None:
        return predict()
    events: list[ScoreEvent] = []
    scorer.add_hook(events.append)
    try:
        result = predict()
    finally:
        scorer.hooks.remove(events.append)
    for event in events:
        insert(plpy, gd, table, event, None if keys is None else keys())
    return result


def insert(plpy: Any, gd: dict[str, Any], table: str, event: ScoreEvent,
           keys: Sequence[Any] | None) -> int:
    """Insert the rows of one scoring call into `table` (quoted); returns the rows."""
    plan = _plan(plpy, gd, table)
    n = 0
    for rows in table_rows(event, keys):
        plpy.execute(plan, [list(column) for column in zip(*rows, strict=True)])
        n += len(rows)
    return n


def table_rows(event: ScoreEvent, keys: Sequence[Any] | None) -> list[list[tuple[Any, ...]]]:
    """The rows of one scoring call as the log table holds them (`COLUMNS` order), one list
    per record batch; `keys`: each input row's key (None, or a None key: generated ids)."""
    from ..monitor.log import Channel, LogOptions, new_id, row_id
    from ..monitor.log.convert import Call, batches
    from ..monitor.log.sinks import postgres

    call_id = new_id()
    ids = None if keys is None else [row_id(call_id, i) if k is None else str(k)
                                     for i, k in enumerate(keys)]
    call = Call(event, Channel.SQL, call_id, ids, event.result.seconds * 1000.0,
                time.time_ns() // 1000)
    return [list(postgres.table_rows(batch)) for batch in batches([call], LogOptions())[0]]


def copy_rows(conn: Any, table: str, rows: Sequence[tuple[Any, ...]]) -> None:
    """COPY `rows` (`table_rows`') into `table` (quoted) on psycopg `conn`, in its current
    transaction (the outbox worker's)."""
    from psycopg import sql

    from ..monitor.log.sinks.postgres import COLUMNS

    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.SQL(table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def installed_log_table(conn: Any, schema: Any, model: str) -> str | None:
    """The quoted log table of installed `model`, read on psycopg `conn` (`schema` an
    identifier); None: it logs nothing."""
    from psycopg import sql

    row = conn.execute(sql.SQL("SELECT value FROM {}.config WHERE key = %s").format(schema),
                       [config_key(model)]).fetchone()
    return None if row is None else str(row[0])


def _plan(plpy: Any, gd: dict[str, Any], table: str) -> Any:
    """The prepared multi-row INSERT into `table`, one array parameter per column."""
    from ..monitor.log.sinks.postgres import COLUMNS

    plans = gd.setdefault("scorehouse_plans", {})
    key = ("log_insert", table)
    if key not in plans:
        arrays = ", ".join(f"${i}::{t}[]" for i, t in enumerate(_TYPES, 1))
        plans[key] = plpy.prepare(
            f"INSERT INTO {table} ({', '.join(COLUMNS)}) SELECT * FROM unnest({arrays})",
            [f"{t}[]" for t in _TYPES])
    return plans[key]


__all__ = ["LOG_TABLES", "config_key", "configure", "copy_rows", "insert",
           "installed_log_table", "log_table", "logged", "table_rows"]
