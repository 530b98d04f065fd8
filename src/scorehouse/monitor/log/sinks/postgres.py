"""The PostgreSQL sink: one table, typed columns for what every row has, JSONB for the
inputs, outputs and flags (their columns differ by model).

    postgresql://user:password@host:5432/db?table=scorehouse_predictions

`insert_rows(conn, batch)` writes with COPY on a connection the caller holds and does not
commit, so rows can join the caller's own transaction: the in-database functions and
triggers (issue 21, later step) can log in the transaction that scored the rows, and the
log then commits or rolls back with it. From inside PostgreSQL (PL/Python) the same rows
go in with one `INSERT ... SELECT` over the scored rows; `create_table_sql` gives the DDL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import pyarrow as pa

from ....connections import postgres
from ....errors import UsageError
from ..records import records
from .base import Sink

log = logging.getLogger("scorehouse.monitor.log")

DEFAULT_TABLE = "scorehouse_predictions"
COLUMNS = ("id", "time", "model", "version", "runtime", "channel", "latency_ms", "reject",
           "inputs", "outputs", "flags", "deployment", "role")


def _table(name: str) -> Any:
    from psycopg import sql

    parts = name.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise UsageError(f"log table {name!r} is not a table name or schema.table")
    return sql.Identifier(*parts)


def create_table_sql(table: str = DEFAULT_TABLE) -> Any:
    """The statements that create the log table and its (model, time) index if missing."""
    from psycopg import sql

    index = sql.Identifier(table.split(".")[-1] + "_model_time")
    return sql.SQL(
        "CREATE TABLE IF NOT EXISTS {t} (id text NOT NULL, time timestamptz NOT NULL, "
        "model text NOT NULL, version integer, runtime text, channel text NOT NULL, "
        "latency_ms double precision, reject text, inputs jsonb, outputs jsonb, flags jsonb,"
        " deployment text, role text);"
        # A table made before deployments were logged gains their columns.
        " ALTER TABLE {t} ADD COLUMN IF NOT EXISTS deployment text,"
        " ADD COLUMN IF NOT EXISTS role text;"
        " CREATE INDEX IF NOT EXISTS {i} ON {t} (model, time)").format(t=_table(table), i=index)


def insert_rows(conn: Any, batch: pa.RecordBatch | pa.Table, table: str = DEFAULT_TABLE) -> int:
    """COPY the rows of a logged `batch` into `table` on `conn`, in its current transaction
    (no commit). Returns the rows written.

    Raises:
        psycopg.Error: the table is missing or the server refuses the rows.
    """
    from psycopg import sql

    statement = sql.SQL("COPY {t} ({c}) FROM STDIN").format(
        t=_table(table), c=sql.SQL(", ").join(map(sql.Identifier, COLUMNS)))
    n = 0
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for row in table_rows(batch):
            copy.write_row(row)
            n += 1
    return n


def table_rows(batch: pa.RecordBatch | pa.Table) -> Iterator[tuple[Any, ...]]:
    """The rows of a logged `batch` as the table holds them, in `COLUMNS` order (inputs,
    outputs and flags as JSON text)."""
    for r in records(batch):
        yield (r.id, r.time, r.model, r.version, r.runtime, r.channel.value, r.latency_ms,
               r.reject, _json(r.inputs), _json(r.outputs),
               _json([{"kind": k, "column": c} for k, c in r.flags]), r.deployment, r.role)


def quoted_table(conn: Any, table: str) -> str:
    """`table` (`name` or `schema.name`) as quoted SQL, for SQL built without psycopg.

    Raises:
        UsageError: not a table name.
    """
    return str(_table(table).as_string(conn))


def _json(value: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class PostgresSink(Sink):
    """Rows into a table (`?table=`, default scorehouse_predictions, created if missing),
    one COPY and commit per drain; a broken connection is reopened on the next write.

    Raises (on open):
        ConnectionFailedError: the server cannot be reached.
        UsageError: a table name that is not `name` or `schema.name`.
    """

    kind = "postgresql"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        self.table = dict(query).get("table") or DEFAULT_TABLE
        _table(self.table)
        self.url = urlunsplit(parts._replace(query=urlencode(
            [(k, v) for k, v in query if k != "table"])))
        self.conn: Any = None
        self._connect()

    def _connect(self) -> None:
        self.conn = postgres(self.url, role="the prediction log's database")
        with self.conn.transaction():
            self.conn.execute(create_table_sql(self.table))
        self.conn.commit()

    def write(self, batch: pa.RecordBatch) -> None:
        if self.conn is None or self.conn.closed or self.conn.broken:
            self._connect()
        try:
            insert_rows(self.conn, batch, self.table)
            self.conn.commit()
        except Exception:
            if not self.conn.closed:
                self.conn.rollback()
            raise

    def close(self) -> None:
        if self.conn is not None and not self.conn.closed:
            self.conn.close()


__all__ = ["COLUMNS", "DEFAULT_TABLE", "PostgresSink", "create_table_sql", "insert_rows",
           "quoted_table", "table_rows"]
