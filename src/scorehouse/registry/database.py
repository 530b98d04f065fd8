"""The registry's database: opening it (SQLite or PostgreSQL), and writing with retries."""

from __future__ import annotations

import getpass
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from ..errors import RegistryError

T = TypeVar("T")
#: How long a write waits for a busy database (SQLite lock, PostgreSQL serialisation) in total.
WRITE_RETRY_SECONDS = 60.0


def engine_url(url: str) -> str:
    """`url` with PostgreSQL's driver named (psycopg 3); other URLs as they are."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def open_engine(url: str) -> sa.Engine:
    """An SQLAlchemy engine for registry URL `url` (a SQLite file's folder is created).

    Raises:
        RegistryError: a bad URL or a missing database driver.
    """
    full = engine_url(url)
    kw: dict[str, Any] = {"future": True}
    if full.startswith("sqlite"):
        db = sa.engine.make_url(full).database
        if db and db != ":memory:":
            Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
        kw["connect_args"] = {"timeout": 30}
    try:
        engine = sa.create_engine(full, **kw)
    except Exception as e:  # bad URL or missing driver
        raise RegistryError(f"cannot use registry {url!r}: {e}") from None
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def write(engine: sa.Engine, fn: Callable[[sa.Connection], T]) -> T:
    """`fn(conn)` in one transaction, run again while the database is busy.

    Raises:
        RegistryError: a database error other than busy, or still busy after
            WRITE_RETRY_SECONDS. What `fn` raises (ConflictError ...) passes through.
    """
    def transaction() -> T:
        with engine.begin() as conn:
            return fn(conn)

    # SQLite allows one writer at a time and PostgreSQL may abort a transaction that
    # lost a race; either way the whole unit of work is simply run again.
    return when_free(transaction, "registry write failed")


def when_free(work: Callable[[], T], failed: str) -> T:
    """`work()`, run again while the database answers busy, for up to WRITE_RETRY_SECONDS.

    Besides writes, this covers opening a registry: processes that open a fresh SQLite file
    at the same moment all switch it to WAL, and SQLite answers one of them "database is
    locked" at once, without waiting, where waiting could deadlock.

    Raises:
        RegistryError: `failed`, then the database's message: an error other than busy, or
            still busy at the deadline. What `work` raises otherwise passes through.
    """
    deadline = time.monotonic() + WRITE_RETRY_SECONDS
    delay = 0.01
    while True:
        try:
            return work()
        except DBAPIError as e:
            if not _is_busy(e) or time.monotonic() > deadline:
                raise RegistryError(f"{failed}: {e.orig}") from None
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def insert_ignore(conn: sa.Connection, table: sa.Table) -> Any:
    """An INSERT into `table` that does nothing when the row exists (either dialect)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql
        return postgresql.insert(table).on_conflict_do_nothing()
    from sqlalchemy.dialects import sqlite
    return sqlite.insert(table).on_conflict_do_nothing()


def _is_busy(e: DBAPIError) -> bool:
    text = str(e.orig).lower() if e.orig is not None else str(e).lower()
    code = getattr(e.orig, "sqlstate", None)
    return "locked" in text or "busy" in text or code in ("40001", "40P01")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()

def user_name(user: str | None) -> str:
    """`user`, else $SCOREHOUSE_USER, else the login name ("unknown" when there is none)."""
    if user:
        return user
    try:
        return os.environ.get("SCOREHOUSE_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
