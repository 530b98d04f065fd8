"""`scorehouse db trigger`: events update a profile, and the profile is re-scored.

An insert into the events table (say `complaints`) updates the entity's row in the profile
table (`customer_profile`): counters go up by one, last-seen values are copied. Then either

- `transaction`: the trigger re-scores the profile in the writer's transaction and writes
  the prediction into the profile; a scoring failure is recorded in `<model>_error` and
  does not abort the insert (unless `strict`), or
- `outbox`: the trigger only queues the key in `<schema>.outbox` and notifies; `scorehouse
  db worker` scores queued profiles in batches, off the writer's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import NotFoundError, ScorehouseError
from .embedded import plain
from .postgres import _connect, _ident

MODES = ("transaction", "outbox")


@dataclass
class Recipe:
    """What the trigger does: which tables, key, counters, copied values and mode."""

    model: str
    events: str
    profiles: str
    key: str
    increment: list[str]
    copy: dict[str, str]  # profile column -> event column
    mode: str = "transaction"
    strict: bool = False
    schema: str = "scorehouse"


def score_columns(model: str) -> dict[str, str]:
    """Columns the recipe adds to the profile table, with their SQL types."""
    return {f"{model}_label": "text", f"{model}_score": "double precision",
            f"{model}_prediction": "jsonb", f"{model}_version": "integer",
            f"{model}_scored_at": "timestamptz", f"{model}_error": "text"}


def _installed_score(conn: Any, schema: str, model: str) -> Any:
    """The SQL expression of the profile's score in the prediction `pred`, as
    `Scorer.headline` defines it: the regression value; for two classes P(the second); for
    more, P(the predicted label)."""
    from psycopg import errors, sql

    from ..artifact import read_bytes

    try:
        row = conn.execute(sql.SQL("SELECT artifact, manifest_sha256 FROM {}.models WHERE "
                                   "name = %s").format(_ident(schema)), [model]).fetchone()
    except errors.UndefinedTable:
        row = None
    if row is None:
        conn.rollback()
        raise NotFoundError(f"model {model!r} is not installed in schema {schema}; run "
                            "scorehouse db install first")
    manifest = read_bytes(bytes(row[0]), model, expected_sha256=row[1]).manifest
    classes = manifest.get("classes") or []
    if manifest["task"] == "regression":
        return sql.SQL("(pred->>'value')::float8")
    if len(classes) == 2:
        return sql.SQL("(pred->'probabilities'->>{})::float8").format(
            sql.Literal(str(classes[-1])))
    return sql.SQL("(pred->'probabilities'->>(pred->>'label'))::float8")


def install_trigger(url: str, recipe: Recipe) -> str:
    """Create (idempotently) the profile columns, the outbox, the trigger; its name."""
    from psycopg import sql

    if recipe.mode not in MODES:
        raise ScorehouseError(f"--mode must be one of {', '.join(MODES)}")
    r, s = recipe, _ident(recipe.schema)
    events, profiles = _qualified(r.events), _qualified(r.profiles)
    with _connect(url) as conn:
        score = _installed_score(conn, r.schema, r.model)
        for column, kind in score_columns(r.model).items():
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                profiles, _ident(column), sql.SQL(kind)))
        conn.execute(sql.SQL(
            "CREATE TABLE IF NOT EXISTS {}.outbox (id bigserial PRIMARY KEY, model text NOT "
            "NULL, profiles text NOT NULL, key_column text NOT NULL, key text NOT NULL, "
            "queued_at timestamptz NOT NULL DEFAULT now())").format(s))
        fn = sql.SQL("{}.{}").format(s, _ident(f"on_{plain(r.events)}_{plain(r.model)}"))
        conn.execute(sql.SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql "
                             "AS {}").format(fn, sql.Literal(_body(conn, r, score))))
        trigger = _ident(f"scorehouse_{plain(r.model)}")
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(trigger, events))
        conn.execute(sql.SQL("CREATE TRIGGER {} AFTER INSERT ON {} FOR EACH ROW EXECUTE "
                             "FUNCTION {}()").format(trigger, events, fn))
        return fn.as_string(conn)


def _qualified(name: str) -> Any:
    from psycopg import sql
    return sql.SQL(".").join(_ident(p) for p in name.split("."))


def _body(conn: Any, r: Recipe, score: Any) -> str:
    from psycopg import sql

    profiles, key = _qualified(r.profiles), _ident(r.key)
    sets = [sql.SQL("{} = COALESCE({}, 0) + 1").format(_ident(c), _ident(c)) for c in r.increment]
    sets += [sql.SQL("{} = NEW.{}").format(_ident(p), _ident(e)) for p, e in r.copy.items()]
    update = sql.SQL("UPDATE {} SET {} WHERE {} = NEW.{};").format(
        profiles, sql.SQL(", ").join(sets), key, key) if sets else sql.SQL("")
    m = r.model
    cols = {c: _ident(c) for c in score_columns(m)}
    if r.mode == "outbox":
        then = sql.SQL(
            "INSERT INTO {}.outbox (model, profiles, key_column, key) VALUES ({}, {}, {}, "
            "NEW.{}::text); PERFORM pg_notify('scorehouse_outbox', {});").format(
            _ident(r.schema), sql.Literal(m), sql.Literal(r.profiles), sql.Literal(r.key), key,
            sql.Literal(m))
    else:
        write = sql.SQL(
            "SELECT {}.score({}, to_jsonb(p)) INTO pred FROM {} p WHERE p.{} = NEW.{}; "
            "UPDATE {} SET {} = pred, {} = pred->>'label', {} = {}, "
            "{} = (pred->>'version')::int, {} = now(), {} = NULL WHERE {} = NEW.{};").format(
            _ident(r.schema), sql.Literal(m), profiles, key, key, profiles,
            cols[f"{m}_prediction"], cols[f"{m}_label"], cols[f"{m}_score"],
            score, cols[f"{m}_version"], cols[f"{m}_scored_at"],
            cols[f"{m}_error"], key, key)
        if r.strict:
            then = write
        else:  # a model failure is recorded on the profile; the insert goes through
            then = sql.SQL("BEGIN {} EXCEPTION WHEN OTHERS THEN UPDATE {} SET {} = SQLERRM, "
                           "{} = now() WHERE {} = NEW.{}; END;").format(
                write, profiles, cols[f"{m}_error"], cols[f"{m}_scored_at"], key, key)
    return sql.SQL("DECLARE pred jsonb; BEGIN {} {} RETURN NEW; END;").format(
        update, then).as_string(conn)
