"""`scorehouse db worker`: scores the profiles the outbox trigger queued, in batches.

It LISTENs for the trigger's notifications, claims queued keys with FOR UPDATE SKIP
LOCKED (so several workers share the queue), scores the profiles in one call with the model
installed in the database, writes the predictions and deletes the queue entries, all in one
transaction: a worker that dies leaves its claimed entries to the next one.
"""

from __future__ import annotations

import json
import logging
import time

from ..connections import postgres as connect
from ..errors import ModelError
from ..scorer import Scorer, ScorerCache
from .installed import installed_hash, installed_scorer
from .names import names_for
from .postgres import _ident
from .predlog import copy_rows, installed_log_table, table_rows
from .triggers import _qualified

log = logging.getLogger("scorehouse.sql.worker")


class Worker:
    """Drains `<schema>.outbox` for one model."""

    def __init__(self, url: str, model: str, *, schema: str = "scorehouse", batch: int = 500):
        self.url, self.model, self.schema, self.batch = url, model, schema, batch
        self.conn = connect(url)
        self.conn.autocommit = True  # transactions are explicit: one per batch
        self._scorers: ScorerCache[str] = ScorerCache(
            lambda name: installed_scorer(self.conn, self.schema, name))
        self.scored = self.failed = 0

    def scorer(self) -> Scorer:
        """The installed model, reloaded when `db sync` installed another version.

        Raises:
            NotFoundError: the model is not installed (any more).
        """
        return self._scorers.get(self.model, installed_hash(self.conn, self.schema, self.model))

    def drain_once(self) -> int:
        """Score one batch of queued profiles; how many queue entries it handled."""
        from psycopg import sql

        s = _ident(self.schema)
        with self.conn.transaction():
            claimed = self.conn.execute(sql.SQL(
                "SELECT id, profiles, key_column, key FROM {}.outbox WHERE model = %s ORDER BY "
                "id LIMIT %s FOR UPDATE SKIP LOCKED").format(s), [self.model, self.batch]
            ).fetchall()
            if not claimed:
                return 0
            scorer = self.scorer()
            groups: dict[tuple[str, str], set[str]] = {}
            for _, profiles, key_column, key in claimed:
                groups.setdefault((profiles, key_column), set()).add(key)
            for (profiles, key_column), keys in groups.items():
                self._score(scorer, profiles, key_column, sorted(keys))
            self.conn.execute(sql.SQL("DELETE FROM {}.outbox WHERE id = ANY(%s)").format(s),
                              [[c[0] for c in claimed]])
        return len(claimed)

    def _score(self, scorer: Scorer, profiles: str, key_column: str, keys: list[str]) -> None:
        from psycopg import sql
        from psycopg.rows import dict_row

        table, key = _qualified(profiles), _ident(key_column)
        with self.conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(sql.SQL("SELECT * FROM {} WHERE {}::text = ANY(%s)").format(
                table, key), [keys]).fetchall()
        names = names_for(self.model)
        cols = [names.column(c) for c in ("prediction", "label", "score", "version", "error")]
        updates: list[tuple] = []
        # A refused profile keeps its last good score and that score's scored_at: the
        # error says the score is stale, and no fresh timestamp suggests otherwise.
        refused: list[tuple[str, object]] = []
        events: list = []  # the call, for the prediction log
        scorer.add_hook(events.append)
        try:
            result = scorer.predict(rows)
        except ModelError as e:  # failed on every row: each profile's score is stale, and
            # the entries are dequeued (a poison batch must not block the queue forever)
            refused = [(str(e), row[key_column]) for row in rows]
            result = None
        finally:
            scorer.hooks.remove(events.append)
        self._log(events, [row[key_column] for row in rows])
        if result is not None:
            answers = result.to_records()
            for i, pos in enumerate(result.rows):
                rec = answers[i]
                rec.pop("row", None)
                rec["model"], rec["version"] = scorer.name, scorer.version
                updates.append((json.dumps(rec), str(rec.get("label")), scorer.headline(rec),
                                scorer.version, None, rows[int(pos)][key_column]))
            refused = [(rej.problem, rows[rej.row][key_column]) for rej in result.rejects]
        self.scored += len(updates)
        self.failed += len(refused)
        assignments = sql.SQL(", ").join(sql.SQL("{} = %s").format(_ident(c)) for c in cols)
        with self.conn.cursor() as cur:
            cur.executemany(sql.SQL("UPDATE {} SET {}, {} = now() WHERE {} = %s").format(
                table, assignments, _ident(names.column("scored_at")), key), updates)
            cur.executemany(sql.SQL("UPDATE {} SET {} = %s WHERE {} = %s").format(
                table, _ident(names.column("error")), key), refused)

    def _log(self, events: list, keys: list) -> None:
        """The scored call's rows into the model's log table (`db install --log-table`),
        in the batch's transaction, each under its profile's key."""
        table = installed_log_table(self.conn, _ident(self.schema), self.model)
        if table is None:
            return
        for event in events:
            for rows in table_rows(event, keys):
                copy_rows(self.conn, table, rows)

    def run(self, *, once: bool = False, idle: float = 1.0) -> None:
        """Drain the queue; then wait for notifications (or return, with `once`)."""
        listener = connect(self.url, autocommit=True)
        listener.execute("LISTEN scorehouse_outbox")
        try:
            while True:
                while self.drain_once():
                    pass
                if once:
                    return
                # Wake on a notification, or after `idle` seconds to catch missed ones.
                for _ in listener.notifies(timeout=idle, stop_after=1):
                    pass
        finally:
            listener.close()

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def wait_empty(url: str, schema: str = "scorehouse", timeout: float = 30.0) -> bool:
    """True once the outbox is empty (for scripts and tests)."""
    from psycopg import sql

    deadline = time.time() + timeout
    with connect(url) as conn:
        conn.autocommit = True
        while time.time() < deadline:
            n = conn.execute(sql.SQL("SELECT count(*) FROM {}.outbox").format(_ident(schema))
                             ).fetchone()[0]
            if n == 0:
                return True
            time.sleep(0.05)
    return False


__all__ = ["Worker", "wait_empty"]
