"""Database tables in and out: PostgreSQL, SQLite and DuckDB files.

Plain DB-API drivers (psycopg, sqlite3, duckdb): reading streams a chunk at a time with a
server-side cursor on PostgreSQL and Arrow batches on DuckDB. Writing runs in one
transaction committed at the end, so a failed run leaves the target table as it was; with a
key, rows are upserted (insert, or update on conflict).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pyarrow as pa

from .. import connections
from ..errors import NotFoundError, ScorehouseError
from ..schema.arrays import loose_array
from .sources_sinks import Sink, Source


def split_table(uri: str) -> tuple[str, str | None]:
    """(URL without the ?table= parameter, the table named by it)."""
    # Split by hand: urlunsplit would turn sqlite:////abs/path into sqlite://abs/path.
    base, _, query = uri.partition("?")
    params = parse_qsl(query, keep_blank_values=True)
    table = next((v for k, v in params if k == "table"), None)
    rest = urlencode([(k, v) for k, v in params if k != "table"])
    return base + (f"?{rest}" if rest else ""), table


def _scheme(uri: str) -> str:
    return urlsplit(uri).scheme.split("+")[0]


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return url.replace(parts.netloc, netloc, 1)
    return url


def _file_path(url: str) -> str:
    # sqlite:///relative.db and sqlite:////abs/path.db (SQLAlchemy's form); the same for DuckDB.
    path = url.split("://", 1)[1].split("?", 1)[0]
    return path[1:] if path.startswith("/") else path


def connect(url: str) -> Any:
    """A DB-API connection for a postgresql://, sqlite:/// or duckdb:/// URL."""
    kind = _scheme(url)
    try:
        if kind == "duckdb":
            import duckdb
            return duckdb.connect(_file_path(url))
        if kind == "sqlite":
            import sqlite3
            path = _file_path(url)
            if not path or not Path(path).parent.exists():
                raise NotFoundError(f"no folder for the SQLite database {url}")
            return sqlite3.connect(path, timeout=30)
        return connections.postgres(url)
    except ImportError as e:
        raise ScorehouseError(f"{kind} needs the {e.name} package: pip install "
                              f"'scorehouse[{'duckdb' if kind == 'duckdb' else 'postgres'}]'") from None
    except ScorehouseError:  # NotFoundError, or PostgreSQL's ConnectionFailedError
        raise
    except Exception as e:  # each driver has its own error classes; the message is what matters
        raise ScorehouseError(f"cannot connect to {_redacted(url)}: {_db_message(e)}") from None


def _quoted(name: str) -> str:
    """A possibly schema-qualified name as quoted SQL identifiers (never raw user text)."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in name.split("."))


def _column(name: str) -> str:
    """A column name as one quoted SQL identifier (a dot in it is part of the name:
    `shadow.value`, a role's column)."""
    return '"' + name.replace('"', '""') + '"'


def open_table(uri: str, query: str | None, chunk_rows: int) -> Source:
    """A Source reading `?table=` or `query` from a database in chunks of `chunk_rows`."""
    url, table = split_table(uri)
    if (table is None) == (query is None):
        raise ScorehouseError("a database input needs exactly one of ?table=NAME in the URL "
                              "or --query 'SELECT …'")
    sql = query or f"SELECT * FROM {_quoted(table)}"  # type: ignore[arg-type]
    described = _redacted(url) + (f"?table={table}" if table else "")
    source = Source(uri=described, fmt="table", batches=_batches(url, sql, chunk_rows))
    return source


def _batches(url: str, sql: str, chunk_rows: int) -> Iterator[pa.RecordBatch]:
    conn = connect(url)
    kind = _scheme(url)
    try:
        try:
            if kind == "duckdb":
                result = conn.execute(sql)
                # DuckDB 1.x calls it fetch_record_batch, 2.x to_arrow_reader.
                reader = getattr(result, "to_arrow_reader", None) or result.fetch_record_batch
                for batch in reader(chunk_rows):
                    yield _plain_types(batch)
                return
            # A named cursor is a server-side cursor on PostgreSQL: memory stays bounded.
            cur = conn.cursor(name="scorehouse_batch") if kind != "sqlite" else conn.cursor()
            if kind != "sqlite":
                cur.itersize = chunk_rows
            cur.execute(sql)
        except Exception as e:  # noqa: BLE001 - the driver's message says what is wrong
            raise ScorehouseError(f"cannot read from {_redacted(url)}: {_db_message(e)}") from None
        names: list[str] | None = None
        while True:
            rows = cur.fetchmany(chunk_rows)
            if names is None:
                names = [d[0] for d in cur.description]
            if not rows:
                break
            columns = list(zip(*rows, strict=True))
            yield _plain_types(pa.RecordBatch.from_arrays([loose_array(c) for c in columns],
                                                          names=names))
    finally:
        conn.close()


def _plain_types(batch: pa.RecordBatch) -> pa.RecordBatch:
    # An all-NULL chunk has no type; text takes whatever later chunks hold. Decimals are
    # scored as numbers.
    arrays = []
    for col in batch.columns:
        if pa.types.is_null(col.type):
            col = col.cast(pa.string())
        elif pa.types.is_decimal(col.type):
            col = col.cast(pa.float64())
        arrays.append(col)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names)


#: Arrow type -> SQL column type when scorehouse creates the output table.
_SQL_TYPES = {"int64": "BIGINT", "double": "DOUBLE PRECISION", "bool": "BOOLEAN",
              "string": "TEXT", "large_string": "TEXT", "int32": "INTEGER",
              "float": "REAL", "date32[day]": "DATE"}


def sql_type(t: pa.DataType) -> str:
    """The SQL type scorehouse gives a column of Arrow type `t` in a table it creates."""
    if pa.types.is_timestamp(t):
        return "TIMESTAMP"
    return _SQL_TYPES.get(str(t), "TEXT")


class TableSink(Sink):
    """Writes scores into a table (created if missing) in one transaction; upserts on `key`."""

    def __init__(self, uri: str, key: str | None):
        self.url, table = split_table(uri)
        if not table:
            raise ScorehouseError("a database output needs ?table=NAME in its URL")
        self.table, self.key, self.rows = table, key, 0
        self.kind = _scheme(self.url)
        self._columns: list[str] | None = None
        self._conn = connect(self.url)
        if self.kind == "duckdb":
            self._conn.begin()
        elif self.kind == "sqlite":
            # sqlite3 would run CREATE TABLE outside a transaction, which needs an exclusive
            # lock while the input (maybe the same file) is still being read; be explicit.
            self._conn.isolation_level = None
            self._conn.execute("BEGIN")

    def _existing_columns(self) -> list[str] | None:
        schema, _, name = self.table.rpartition(".")
        cur = self._conn.cursor()
        if self.kind == "sqlite":
            cur.execute(f"PRAGMA {_quoted(schema) + '.' if schema else ''}table_info("
                        f"{_quoted(name)})")
            return [r[1] for r in cur.fetchall()] or None
        mark = "?" if self.kind == "duckdb" else "%s"
        where = f"table_name = {mark}" + (f" AND table_schema = {mark}" if schema else
                                           " AND table_schema = current_schema()")
        cur.execute(f"SELECT column_name FROM information_schema.columns WHERE {where} "
                    "ORDER BY ordinal_position", [name, schema] if schema else [name])
        return [r[0] for r in cur.fetchall()] or None

    def _prepare(self, schema: pa.Schema) -> None:
        names = schema.names
        if self.key and self.key not in names:
            raise ScorehouseError(f"--key {self.key!r} is not an output column")
        existing = self._existing_columns()
        if existing is None:
            cols = ", ".join(f"{_column(f.name)} {sql_type(f.type)}" for f in schema)
            pk = f", PRIMARY KEY ({_column(self.key)})" if self.key else ""
            self._conn.cursor().execute(f"CREATE TABLE {_quoted(self.table)} ({cols}{pk})")
        else:
            missing = [n for n in names if n not in existing]
            if missing:
                raise ScorehouseError(f"table {self.table} exists without column(s) "
                                      f"{', '.join(missing)}; drop it or write to a new table")
        self._columns = names

    def _insert_sql(self, select: str | None = None) -> str:
        cols = self._columns or []
        target = ", ".join(_column(c) for c in cols)
        mark = "%s" if self.kind == "postgresql" else "?"
        values = f"SELECT {target} FROM {select}" if select else \
            f"VALUES ({', '.join([mark] * len(cols))})"
        sql = f"INSERT INTO {_quoted(self.table)} ({target}) {values}"
        if self.key:
            sets = ", ".join(f"{_column(c)} = excluded.{_column(c)}" for c in cols if c != self.key)
            sql += f" ON CONFLICT ({_column(self.key)}) DO UPDATE SET {sets}"
        return sql

    def write(self, table: pa.Table) -> None:
        """Insert (or upsert) one chunk of scored rows inside the run's transaction."""
        try:
            if self._columns is None:
                self._prepare(table.schema)
            if not table.num_rows:
                return
            if self.kind == "duckdb":  # DuckDB reads the Arrow chunk in place
                self._conn.register("scorehouse_chunk", table)
                self._conn.execute(self._insert_sql("scorehouse_chunk"))
                self._conn.unregister("scorehouse_chunk")
            else:
                rows = list(zip(*(table.column(c).to_pylist() for c in self._columns or []), strict=True))
                self._conn.cursor().executemany(self._insert_sql(), rows)
        except ScorehouseError:
            raise
        except Exception as e:  # the driver's message says what the database refused
            raise ScorehouseError(f"cannot write to table {self.table}: {_db_message(e)}"
                                  f"{_upsert_hint(e, self.key)}") from None
        self.rows += table.num_rows

    def commit(self, empty_schema: pa.Schema) -> None:
        """Create the table even for an empty input, then commit the run's transaction."""
        if self._columns is None:
            self._prepare(empty_schema)
        self._conn.commit()
        self._conn.close()

    def abort(self) -> None:
        """Roll the run's writes back."""
        try:
            self._conn.rollback()
            self._conn.close()
        except Exception:  # noqa: BLE001 - a dead connection has rolled back already
            pass

    def describe(self) -> dict[str, Any]:
        """The table written, for the run manifest."""
        return {"uri": f"{_redacted(self.url)}?table={self.table}", "format": "table",
                "table": self.table, "key": self.key, "rows": self.rows}


def _db_message(e: Exception) -> str:
    return str(getattr(e, "orig", None) or e).strip().splitlines()[0]


def _upsert_hint(e: Exception, key: str | None) -> str:
    text = str(e).lower()
    if key and ("on conflict" in text or "unique" in text or "constraint" in text):
        return (f" (an upsert on --key {key} needs a primary key or unique index on {key}; "
                "scorehouse adds one to tables it creates)")
    return ""
