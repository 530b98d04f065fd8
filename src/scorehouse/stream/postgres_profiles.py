"""Profiles as rows of a PostgreSQL table, behind the same interface as `RedisProfiles`.

`postgresql://user@host/db?table=customer_profile` holds one row per entity, keyed by the
worker's key column (which needs a unique index; a missing table is created). A batch's
profiles are read in one query and its writes go in one transaction, one pipelined
statement per event. Each statement checks, atomically with its write, that the event was
not applied before (`<table>_seen` keeps applied event ids per entity for `SEEN_TTL`) and
that the row did not change since it was read (`_version` holds the id of the last event
applied); so a redelivered event never counts twice, and no write is based on a stale read.

A broker's stream cannot join a PostgreSQL transaction, so each statement queues its
output record in `<table>_outbox`; after the commit the queue goes to the source's broker
and is deleted. A worker killed in between leaves its queue to the next relay: the profile
effect is exactly once, the output stream at least once (`event_id` tells repeats apart).
"""

from __future__ import annotations

import json
import numbers
import time
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from .. import connections
from ..errors import ScorehouseError
from .events import Publish
from .order import POSITIONS
from .profiles import SEEN_TTL, Applied, Effect, Outcome, Refused, Stored, text_value

VERSION = "_version"
#: PostgreSQL cuts longer column names, which would then never match the profile's field.
MAX_NAME = 63
RELAY_BATCH = 2000
#: Seconds between purges of event ids older than SEEN_TTL.
PURGE_EVERY = 600.0

#: How an entity id (text in every event) becomes a value of the key column's type.
KEY_TYPES: dict[str, Callable[[str], Any]] = {
    "smallint": int, "integer": int, "bigint": int, "numeric": Decimal, "uuid": uuid.UUID,
    "text": str, "character varying": str, "character": str}

WRITE = """
WITH _sh_written AS (
    INSERT INTO {table} AS p ({key}, {columns}) VALUES (%(key)s, {values})
    ON CONFLICT ({key}) DO UPDATE SET {sets}
    WHERE coalesce(p._version, '') = %(expected)s::text AND NOT EXISTS (
        SELECT 1 FROM {seen} s WHERE s.entity = %(entity)s::text AND s.event_id = %(event)s::text)
    RETURNING 1
), _sh_seen AS (
    INSERT INTO {seen} (entity, event_id) SELECT %(entity)s::text, %(event)s::text
    FROM _sh_written ON CONFLICT DO NOTHING RETURNING 1
){queue}
SELECT count(*) FROM _sh_written
"""
QUEUE = """, _sh_queued AS (
    INSERT INTO {outbox} (stream, entity, event_id, body)
    SELECT %(stream)s::text, %(entity)s::text, %(event)s::text, %(body)s::jsonb
    FROM _sh_written RETURNING 1
)"""


def _sql() -> Any:
    from psycopg import sql
    return sql


def _column_type(value: Any) -> str:
    # The first value a new profile field gets decides its column's type.
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, numbers.Integral):
        return "bigint"
    if isinstance(value, numbers.Real):
        return "double precision"
    if isinstance(value, (dict, list)):
        return "jsonb"
    return "text"


def parse_url(url: str) -> tuple[str, list[str]]:
    """postgresql://…?table=[schema.]name -> (connection URL without `table`, name parts)."""
    parts = urlsplit(url)
    params = parse_qsl(parts.query)
    table = [v for k, v in params if k == "table"]
    if not table or not all(table[-1].split(".")):
        raise ScorehouseError("PostgreSQL profiles need ?table=NAME (or schema.name), e.g. "
                              "postgresql://user@host/db?table=customer_profile")
    rest = urlencode([(k, v) for k, v in params if k != "table"])
    return urlunsplit(parts._replace(query=rest)), table[-1].split(".")


class PostgresProfiles:
    """Profiles as rows of a PostgreSQL table keyed by `key`; writes are compare-and-set per event.

    `publish` sends the queued output records to the source's broker (see the module doc).
    """

    def __init__(self, url: str, key: str, publish: Publish | None = None):
        sql = _sql()
        self.dsn, names = parse_url(url)
        self.key, self.publish = key, publish
        self.name = ".".join(names)

        def named(suffix: str) -> Any:
            *schema, table = names
            return sql.SQL(".").join(sql.Identifier(n) for n in [*schema, table + suffix])

        self.table, self.seen, self.outbox = named(""), named("_seen"), named("_outbox")
        self.conn = self._connect()
        self._statements: dict[tuple[tuple[str, ...], bool], bytes] = {}
        self._purged = float("-inf")
        self._setup()
        self.relay()  # what a killed worker left queued

    # --- connection and table ---------------------------------------------------------------
    @property
    def transient(self) -> tuple[type[Exception], ...]:
        """Errors of a database restarting or unreachable: the worker waits and carries on."""
        import psycopg

        return (psycopg.OperationalError,)

    def _connect(self) -> Any:
        return connections.postgres(self.dsn, autocommit=True, role="the profiles' database")

    def _db(self) -> Any:
        if self.conn.closed or self.conn.broken:
            self.conn = self._connect()
        return self.conn

    def _setup(self) -> None:
        sql = _sql()
        t, k = self.table, sql.Identifier(self.key)
        with self.conn.transaction():
            # Workers starting together must not race on CREATE TABLE.
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [self.name])
            self.conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({} text PRIMARY KEY, "
                                      "_version text)").format(t, k))
            self.conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS _version text")
                              .format(t))
            self.conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (entity text, event_id text, seen_at timestamptz "
                "NOT NULL DEFAULT now(), PRIMARY KEY (entity, event_id))").format(self.seen))
            self.conn.execute(sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} (id bigserial PRIMARY KEY, stream text NOT NULL, "
                "entity text NOT NULL, event_id text NOT NULL, body jsonb NOT NULL)")
                .format(self.outbox))
        self._load_columns()
        if self.key not in self.columns:
            raise ScorehouseError(f"table {self.name} has no column {self.key!r} (the --key)")
        unique = self.conn.execute(
            "SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND "
            "a.attnum = i.indkey[0] WHERE i.indrelid = %s::regclass AND i.indisunique AND "
            "i.indnkeyatts = 1 AND i.indpred IS NULL AND a.attname = %s",
            [t.as_string(self.conn), self.key]).fetchone()
        if not unique:
            raise ScorehouseError(
                f"table {self.name} needs a unique index on {self.key!r} to upsert profiles: "
                f"CREATE UNIQUE INDEX ON {t.as_string(self.conn)} ({k.as_string(self.conn)})")
        base = self.columns[self.key].split("(")[0]
        self._key_type, self._parse_key = base, KEY_TYPES.get(base)

    def _load_columns(self) -> None:
        rows = self._db().execute(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE "
            "attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
            [self.table.as_string(self.conn)]).fetchall()
        self.columns: dict[str, str] = dict(rows)

    def _ensure_columns(self, profiles: list[Mapping[str, Any]]) -> None:
        sql = _sql()
        new: dict[str, str] = {}
        for p in profiles:
            for c, v in p.items():
                if c not in self.columns and c not in new and _writable(c, v):
                    new[c] = _column_type(v)
        if not new:
            return
        conn = self._db()
        with conn.transaction():
            for c, kind in new.items():
                conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                    self.table, sql.Identifier(c), sql.SQL(kind)))
        self._load_columns()

    # --- read -------------------------------------------------------------------------------
    def fetch(self, entities: list[str]) -> dict[str, Stored]:
        """entity -> (version, fields) for each entity (empty profile when absent)."""
        from psycopg.rows import dict_row

        sql = _sql()
        out: dict[str, Stored] = {e: Stored("", {}) for e in entities}
        wanted: dict[Any, list[str]] = {}
        for e in entities:
            if self.entity_problem(e) is None:
                wanted.setdefault(self._key_value(e), []).append(e)
        if not wanted:
            return out
        k = sql.Identifier(self.key)
        where = sql.SQL("{} = ANY(%s)" if self._parse_key else "{}::text = ANY(%s)").format(k)
        with self._db().cursor(row_factory=dict_row) as cur:
            rows = cur.execute(sql.SQL("SELECT * FROM {} WHERE {}").format(self.table, where),
                               [list(wanted)]).fetchall()
        for row in rows:
            key = row.pop(self.key)
            version = row.pop(VERSION, None) or ""
            fields = {c: v for c, v in row.items() if v is not None}
            for e in wanted.get(key if self._parse_key else str(key), []):
                out[e] = Stored(version, fields)
        return out

    def _key_value(self, entity: str) -> Any:
        return self._parse_key(entity) if self._parse_key else entity

    def entity_problem(self, entity: str) -> str | None:
        """Why `entity` cannot be a value of the key column, if it cannot."""
        try:
            self._key_value(entity)
        except (ValueError, ArithmeticError):
            return f"{self.key} {entity!r} is not a valid {self._key_type} (the key of {self.name})"
        return None

    # --- write ------------------------------------------------------------------------------
    def apply(self, effect: Effect) -> Applied:
        """Write one event's effect atomically: written, already applied, a conflict (the
        row changed since it was read), or Refused with the reason the database gave."""
        return self.apply_many([effect])[0]

    def apply_many(self, effects: list[Effect]) -> list[Applied]:
        """`apply` for many events in one transaction and one round trip, in order."""
        import psycopg

        outcomes: list[Applied | None] = [self._problem(e) for e in effects]
        todo = [i for i, o in enumerate(outcomes) if o is None]
        self._ensure_columns([effects[i].profile for i in todo])
        try:
            written: list[Applied] = list(self._write([effects[i] for i in todo]))
        except (psycopg.DataError, psycopg.IntegrityError):
            # One event's values do not fit the table: find it, let the others through.
            written = [self._write_alone(effects[i]) for i in todo]
        for i, n in zip(todo, written, strict=True):
            outcomes[i] = n
        self._tell_duplicates(effects, outcomes)
        self._purge()
        self.relay()
        return [o if o is not None else Outcome.CONFLICT for o in outcomes]

    def _problem(self, effect: Effect) -> Refused | None:
        long = [c for c in effect.profile if len(c.encode()) > MAX_NAME]
        if long:
            return Refused(f"profile field {long[0][:40]!r}… is longer than PostgreSQL's "
                           f"{MAX_NAME}-byte column names")
        why = self.entity_problem(effect.entity)
        return Refused(why) if why else None

    def _statement(self, effect: Effect) -> tuple[bytes, dict[str, Any]]:
        entity, version, event_id, profile, output_stream, output = effect
        columns = tuple(c for c, v in profile.items() if _writable(c, v) and c != self.key)
        queue = bool(output_stream)
        if queue and self.publish is None:
            raise ScorehouseError(f"an output stream ({output_stream}) with PostgreSQL profiles "
                                  "needs PostgresProfiles(publish=…) to reach the broker")
        params: dict[str, Any] = {f"c{i}": text_value(profile[c]) for i, c in enumerate(columns)}
        params.update(key=entity, entity=entity, event=event_id, expected=version)
        if queue:
            params.update(stream=output_stream, body=json.dumps(output, default=str))
        return self._compose(columns, queue), params

    def _compose(self, columns: tuple[str, ...], queue: bool) -> bytes:
        query = self._statements.get((columns, queue))
        if query is None:
            sql = _sql()
            names = [sql.Identifier(c) for c in [*columns, VERSION]]
            values = [sql.Placeholder(f"c{i}") for i in range(len(columns))]
            values.append(sql.Placeholder("event"))
            query = sql.SQL(WRITE).format(
                table=self.table, key=sql.Identifier(self.key), seen=self.seen,
                columns=sql.SQL(", ").join(names), values=sql.SQL(", ").join(values),
                sets=sql.SQL(", ").join(sql.SQL("{} = EXCLUDED.{}").format(n, n) for n in names),
                queue=sql.SQL(QUEUE).format(outbox=self.outbox) if queue else sql.SQL(""),
            ).as_bytes(self._db())
            self._statements[(columns, queue)] = query
        return query

    def _write(self, effects: list[Effect]) -> list[Outcome]:
        """WRITTEN, or ALREADY_APPLIED for a statement that wrote nothing (which
        `_tell_duplicates` then sorts into ALREADY_APPLIED and CONFLICT)."""
        if not effects:
            return []
        # Rows are locked in key order, the same in every worker, so two batches touching the
        # same profiles wait for each other instead of deadlocking (an entity's own events
        # keep their order: the sort is stable).
        order = sorted(range(len(effects)), key=lambda i: effects[i].entity)
        conn = self._db()
        with conn.transaction():
            with conn.pipeline():
                cursors = {i: conn.execute(*self._statement(effects[i])) for i in order}
            return [Outcome(int(cursors[i].fetchone()[0])) for i in range(len(effects))]

    def _write_alone(self, effect: Effect) -> Applied:
        import psycopg

        try:
            return self._write([effect])[0]
        except (psycopg.DataError, psycopg.IntegrityError) as e:
            return Refused(f"{self.name} refused the profile: {e.diag.message_primary or e}")

    def _tell_duplicates(self, effects: list[Effect], outcomes: list[Applied | None]) -> None:
        # A statement that wrote nothing met either an event already applied or a row changed
        # since it was read; the seen table tells which.
        missed = [i for i, o in enumerate(outcomes) if o is Outcome.ALREADY_APPLIED]
        if not missed:
            return
        sql = _sql()
        seen = set(self._db().execute(sql.SQL(
            "SELECT entity, event_id FROM {} WHERE (entity, event_id) IN "
            "(SELECT * FROM unnest(%s::text[], %s::text[]))").format(self.seen),
            [[effects[i].entity for i in missed], [effects[i].event_id for i in missed]]).fetchall())
        for i in missed:
            outcomes[i] = (Outcome.ALREADY_APPLIED if (effects[i].entity, effects[i].event_id) in seen
                           else Outcome.CONFLICT)

    def _purge(self) -> None:
        if time.monotonic() - self._purged < PURGE_EVERY:
            return
        self._purged = time.monotonic()
        self._db().execute(_sql().SQL("DELETE FROM {} WHERE seen_at < now() - %s * "
                                      "interval '1 second'").format(self.seen), [SEEN_TTL])

    # --- output -----------------------------------------------------------------------------
    def relay(self) -> int:
        """Send queued output records to the broker and delete them; how many were sent."""
        if self.publish is None:
            return 0
        sql = _sql()
        sent = 0
        while True:
            conn = self._db()
            with conn.transaction():
                # SKIP LOCKED: several workers relay at once without sending a record twice.
                rows = conn.execute(sql.SQL(
                    "SELECT id, stream, entity, body FROM {} ORDER BY id LIMIT %s "
                    "FOR UPDATE SKIP LOCKED").format(self.outbox), [RELAY_BATCH]).fetchall()
                streams: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
                for _, stream, entity, body in rows:
                    streams.setdefault(stream, []).append((entity, body))
                for stream, entries in streams.items():
                    self.publish(stream, entries)
                if rows:
                    conn.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(self.outbox),
                                 [[r[0] for r in rows]])
            sent += len(rows)
            if len(rows) < RELAY_BATCH:
                return sent

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def _writable(column: str, value: Any) -> bool:
    # As in Redis: fields starting with "_" are the store's own (but for the positions the
    # worker keeps), and None is "no value".
    return (column == POSITIONS or not column.startswith("_")) and value is not None
