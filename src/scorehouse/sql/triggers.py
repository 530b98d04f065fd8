"""`scorehouse db trigger`: events update a profile, and the profile is re-scored.

An insert into the events table (say `complaints`) updates the entity's row in the profile
table (`customer_profile`): counters go up by one, last-seen values are copied. Then either

- `transaction`: the trigger re-scores the profile in the writer's transaction and writes
  the prediction into the profile; a scoring failure is recorded in `<model>_error` and
  does not abort the insert (unless `strict`), or
- `outbox`: the trigger only queues the key in `<schema>.outbox` and notifies; `scorehouse
  db worker` scores queued profiles in batches, off the writer's transaction.

An event whose key has no profile row (or is NULL) is never dropped silently: it goes to
`<schema>.dead_events` with the reason, or (`missing="create"`) creates the profile row.

`install_trigger` checks every option against the catalog (tables, columns, and, by
preparing each statement the trigger will run, their types) before it replaces anything,
all in one transaction: a bad option leaves the working trigger as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..connections import postgres as connect
from ..errors import ScorehouseError
from .installed import installed_artifact
from .names import SCORE_COLUMNS, SqlNames, names_for
from .postgres import _ident

MODES = ("transaction", "outbox")
#: What happens to an event whose key has no profile row.
MISSING = ("dead-letter", "create")


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
    missing: str = "dead-letter"  # one of MISSING


@dataclass
class Trigger:
    """An installed trigger: its function, the profile columns it writes, and how many
    events of this model wait in `<schema>.dead_events`."""

    function: str
    columns: list[str] = field(default_factory=list)
    dead_events: int = 0


def score_columns(model: str) -> dict[str, str]:
    """Columns the recipe adds to the profile table, with their SQL types."""
    names = names_for(model)
    return {names.column(suffix): kind for suffix, kind in SCORE_COLUMNS.items()}


def _installed_score(conn: Any, schema: str, model: str) -> Callable[[Any], Any]:
    """prediction -> the SQL expression of the profile's score in it, as
    `Scorer.headline` defines it: the regression value; for two classes P(the second); for
    more, P(the predicted label)."""
    from psycopg import sql

    manifest = installed_artifact(conn, schema, model)[0].manifest  # NotFoundError if absent
    classes = manifest.classes or []
    if manifest.task == "regression":
        return lambda p: sql.SQL("({}->>'value')::float8").format(p)
    if len(classes) == 2:
        return lambda p: sql.SQL("({}->'probabilities'->>{})::float8").format(
            p, sql.Literal(str(classes[-1])))
    return lambda p: sql.SQL("({p}->'probabilities'->>({p}->>'label'))::float8").format(p=p)


def install_trigger(url: str, recipe: Recipe) -> Trigger:
    """Create (idempotently) the profile columns, the outbox, the trigger.

    Raises:
        NotFoundError: a table, column or model that does not exist (nothing is changed).
        ScorehouseError: a bad mode, a column of the wrong type (nothing is changed).
        ConnectionFailedError: the database cannot be reached.
    """
    from psycopg import sql

    from .trigger_checks import check_recipe, claim_trigger, prepare_all, qualified_table, table_columns

    r, names = recipe, names_for(recipe.model)
    if r.mode not in MODES:
        raise ScorehouseError(f"--mode must be one of {', '.join(MODES)}, not {r.mode!r}")
    if r.missing not in MISSING:
        raise ScorehouseError(f"--missing-profile must be one of {', '.join(MISSING)}, "
                              f"not {r.missing!r}")
    s = _ident(r.schema)
    with connect(url) as conn:  # one transaction: committed only if every step succeeds
        score = _installed_score(conn, r.schema, r.model)
        event_types = check_recipe(conn, r, score_columns(r.model))
        events = qualified_table(conn, r.events, "--events")
        profiles = qualified_table(conn, r.profiles, "--profiles")
        replaced = claim_trigger(conn, r, names)
        _create_tables(conn, r, profiles, table_columns(conn, r.profiles))
        # Every statement the trigger runs, prepared with the event's columns as typed
        # parameters: a missing column or a type that does not fit fails here, not on
        # the application's next insert.
        new = _parameters(event_types)
        prepare_all(conn, r, _statements(r, names, score, profiles, new), new,
                    list(event_types.values()))
        fn = sql.SQL("{}.{}").format(s, _ident(names.trigger_function(r.events)))
        # SECURITY DEFINER with a fixed search_path (every name in the body is qualified):
        # the writer of an event needs no rights on the profiles, the scoring function or
        # the outbox and dead_events tables, so a role lacking one cannot turn every insert
        # into an error, or every score into a stale one.
        conn.execute(sql.SQL("CREATE OR REPLACE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql "
                             "SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS {}")
                     .format(fn, sql.Literal(_body(conn, r, names, score, profiles))))
        trigger = _ident(names.trigger)
        conn.execute(sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(trigger, events))
        conn.execute(sql.SQL("CREATE TRIGGER {} AFTER INSERT ON {} FOR EACH ROW EXECUTE "
                             "FUNCTION {}()").format(trigger, events, fn))
        conn.execute(sql.SQL("COMMENT ON TRIGGER {} ON {} IS {}").format(
            trigger, events, sql.Literal(names.comment)))
        for old in replaced:  # this model's trigger under an earlier name: one is enough
            conn.execute(sql.SQL("DROP TRIGGER {} ON {}").format(_ident(old), events))
        dead = conn.execute(sql.SQL("SELECT count(*) FROM {}.dead_events WHERE model = %s")
                            .format(s), [r.model]).fetchone()[0]
        return Trigger(fn.as_string(conn), list(score_columns(r.model)), dead)


def _create_tables(conn: Any, r: Recipe, profiles: Any, columns: Any) -> None:
    """The score columns missing from the profile table (which has `columns`), and the
    schema's outbox and dead_events tables."""
    from psycopg import sql

    s = _ident(r.schema)
    for column, kind in score_columns(r.model).items():
        if column not in columns:
            conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(
                profiles, _ident(column), sql.SQL(kind)))
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {}.outbox (id bigserial PRIMARY KEY, model text NOT "
        "NULL, profiles text NOT NULL, key_column text NOT NULL, key text NOT NULL, "
        "queued_at timestamptz NOT NULL DEFAULT now())").format(s))
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {}.dead_events (id bigserial PRIMARY KEY, model text "
        "NOT NULL, events text NOT NULL, profiles text NOT NULL, key_column text NOT NULL, "
        "key text, event jsonb NOT NULL, reason text NOT NULL, dead_at timestamptz NOT "
        "NULL DEFAULT now())").format(s))


def _qualified(name: str) -> Any:
    from psycopg import sql
    return sql.SQL(".").join(_ident(p) for p in name.split("."))


def _parameters(event_types: dict[str, str]) -> Callable[[str], Any]:
    """An event column as the prepared check's parameter: `$<position>`."""
    from psycopg import sql

    position = {c: i for i, c in enumerate(event_types, 1)}
    return lambda column: sql.SQL("${}").format(sql.SQL(str(position[column])))


def _new(column: str) -> Any:
    """An event column as the trigger function reads it: `NEW.<column>`."""
    from psycopg import sql
    return sql.SQL("NEW.{}").format(_ident(column))


@dataclass
class _Statements:
    """The SQL statements of one recipe; `new` maps an event column to its value."""

    profiles: Any  # the profile table, schema-qualified
    find: Any  # updates the counters (or looks the row up): FOUND says if the profile exists
    create: Any  # inserts the missing profile row
    dead: Callable[[Any], Any]  # reason -> records the event in dead_events
    score: Any  # SELECT the prediction INTO pred
    write: Any  # writes pred into the profile
    stale: Any  # records SQLERRM, keeping the last good score and its scored_at
    queue: Any  # queues the key in the outbox


def _statements(r: Recipe, names: SqlNames, score: Callable[[Any], Any], profiles: Any,
                new: Callable[[str], Any] = _new) -> _Statements:
    """The recipe's statements as the trigger runs them, or (`new` other than `_new`) as
    plain SQL to PREPARE: parameters for NEW's columns, NULLs of the right type for the
    PL/pgSQL values (the prediction, the error, the event)."""
    from psycopg import sql

    check = new is not _new
    s, key = _ident(r.schema), _ident(r.key)
    where = sql.SQL("WHERE {} = {}").format(key, new(r.key))
    sets = [sql.SQL("{} = COALESCE({}, 0) + 1").format(_ident(c), _ident(c)) for c in r.increment]
    sets += [sql.SQL("{} = {}").format(_ident(p), new(e)) for p, e in r.copy.items()]
    find = (sql.SQL("UPDATE {} SET {} {}").format(profiles, sql.SQL(", ").join(sets), where)
            if sets else sql.SQL("{} 1 FROM {} {}").format(
                sql.SQL("SELECT" if check else "PERFORM"), profiles, where))
    targets = [r.key, *r.increment, *r.copy]
    values = [new(r.key), *(sql.SQL("1") for _ in r.increment), *map(new, r.copy.values())]
    create = sql.SQL("INSERT INTO {} ({}) VALUES ({}) ON CONFLICT DO NOTHING").format(
        profiles, sql.SQL(", ").join(map(_ident, targets)), sql.SQL(", ").join(values))
    event = sql.SQL("'{}'::jsonb" if check else "to_jsonb(NEW)")

    def dead(reason: Any) -> Any:
        return sql.SQL("INSERT INTO {}.dead_events (model, events, profiles, key_column, key, "
                       "event, reason) VALUES ({}, {}, {}, {}, {}::text, {}, {})").format(
            s, sql.Literal(r.model), sql.Literal(r.events), sql.Literal(r.profiles),
            sql.Literal(r.key), new(r.key), event, reason)

    col = {suffix: _ident(names.column(suffix)) for suffix in SCORE_COLUMNS}
    pred = sql.SQL("NULL::jsonb" if check else "pred")
    # The profile's key names the logged row: late labels join by it.
    predict = sql.SQL("SELECT {}.score({}, to_jsonb(p), p.{}::text) FROM {} p "
                      "WHERE p.{} = {}").format(s, sql.Literal(r.model), key, profiles, key,
                                                new(r.key))
    write = sql.SQL(
        "UPDATE {} SET {} = {p}, {} = {p}->>'label', {} = {}, "
        "{} = ({p}->>'version')::int, {} = now(), {} = NULL {}").format(
        profiles, col["prediction"], col["label"], col["score"], score(pred),
        col["version"], col["scored_at"], col["error"], where, p=pred)
    error = sql.SQL("NULL::text" if check else "SQLERRM")
    stale = sql.SQL("UPDATE {} SET {} = {} {}").format(profiles, col["error"], error, where)
    queue = sql.SQL("INSERT INTO {}.outbox (model, profiles, key_column, key) VALUES ({}, {}, "
                    "{}, {}::text)").format(s, sql.Literal(r.model), sql.Literal(r.profiles),
                                            sql.Literal(r.key), new(r.key))
    return _Statements(profiles, find, create, dead, predict, write, stale, queue)


def _body(conn: Any, r: Recipe, names: SqlNames, score: Any, profiles: Any) -> str:
    """The trigger function's PL/pgSQL body."""
    from psycopg import sql

    st = _statements(r, names, score, profiles)
    no_row = f"no row in {r.profiles} has this {r.key}"
    if r.missing == "create":  # a concurrent insert may create it first: then update that one
        missing = sql.SQL("{create}; IF NOT FOUND THEN {find}; END IF; IF NOT FOUND THEN "
                          "{dead}; RETURN NEW; END IF;").format(
            create=st.create, find=st.find,
            dead=st.dead(sql.Literal(f"{no_row}, and creating one conflicted")))
    else:
        missing = sql.SQL("{}; RETURN NEW;").format(st.dead(sql.Literal(no_row)))
    null_key = st.dead(sql.Literal(f"the event's {r.key} is NULL"))
    if r.mode == "outbox":
        then = sql.SQL("{}; PERFORM pg_notify('scorehouse_outbox', {});").format(
            st.queue, sql.Literal(r.model))
    else:
        then = sql.SQL("{} INTO pred; {};").format(st.score, st.write)
        if not r.strict:  # a failure is recorded on the profile; the insert goes through
            then = sql.SQL("BEGIN {} EXCEPTION WHEN OTHERS THEN {}; END;").format(
                then, st.stale)
    return sql.SQL(
        "DECLARE pred jsonb; BEGIN IF {key} IS NULL THEN {null_key}; RETURN NEW; END IF; "
        "{find}; IF NOT FOUND THEN {missing} END IF; {then} RETURN NEW; END;").format(
        key=_new(r.key), null_key=null_key, find=st.find, missing=missing, then=then
    ).as_string(conn)
