"""Bring a registry database to the newest schema with Alembic, one process at a time."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_KEY = int.from_bytes(hashlib.sha256(b"scorehouse-migrate").digest()[:7], "big")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head() -> str:
    """The newest migration revision this scorehouse ships."""
    found = ScriptDirectory.from_config(_config()).get_current_head()
    assert found is not None  # the package ships its migrations
    return found


def current(conn: sa.Connection) -> str | None:
    """The revision the database is at (None for an empty database)."""
    return MigrationContext.configure(conn).get_current_revision()


@contextlib.contextmanager
def _exclusive(engine: sa.Engine) -> Iterator[sa.Connection]:
    # Two processes opening a fresh registry at once must not both create the tables.
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_KEY})
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_KEY})
                conn.commit()
        return
    db = engine.url.database
    lock_path = Path(db + ".lock") if db and db != ":memory:" else None
    with contextlib.ExitStack() as stack:
        if lock_path:
            fh = stack.enter_context(open(lock_path, "w"))
            fcntl.flock(fh, fcntl.LOCK_EX)
        yield stack.enter_context(engine.connect())


def upgrade(engine: sa.Engine) -> str:
    """Migrate the database to `head()` if it is behind; returns the revision now in force."""
    target = head()
    with engine.connect() as conn:
        if current(conn) == target:
            return target
    with _exclusive(engine) as conn:
        if current(conn) != target:
            cfg = _config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()
        return current(conn) or target
