"""`db trigger` faults on real PostgreSQL: bad options are refused with the working trigger
left in place; a model failure marks the score stale; events without a profile row are
dead-lettered or create the row."""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
import psycopg
import pytest

import scorehouse
from scorehouse.cli.app import main
from scorehouse.sql.postgres import install
from scorehouse.sql.worker import Worker

OLD = "2000-01-01 00:00:00+00"  # a last good scoring, long ago


def _fragile():
    """A model with a production bug: P(yes) = 0.2 + 0.3 * complaints, raising from 3 up.
    Defined here so that cloudpickle carries the class in the artifact (the server cannot
    import the test module)."""

    class Fragile:
        classes_ = np.array(["no", "yes"])

        def predict_proba(self, X):
            c = np.asarray(X["complaints"], dtype=float)
            if (c >= 3).any():
                raise ValueError("model blew up on complaints >= 3")
            p = 0.2 + 0.3 * c
            return np.column_stack([1 - p, p])

        def predict(self, X):
            return self.classes_[(self.predict_proba(X)[:, 1] > 0.5).astype(int)]

    return Fragile()


@pytest.fixture
def db(pg_url, tmp_path):
    """`fragile` installed; profiles 1..3 (complaints 1, 1, 2); an events table."""
    df = pd.DataFrame({"complaints": [0, 1, 2] * 50, "t": ["no", "no", "yes"] * 50})
    reg = scorehouse.Registry()
    reg.register(scorehouse.package(_fragile(), df, name="fragile", target="t",
                                    path=tmp_path / "fragile.shz"))
    reg.promote("fragile/1", "production")
    install(pg_url, ["fragile@production"], registry=reg)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE profiles (customer_id int PRIMARY KEY, complaints int, "
                     "plan text, channel text, segment text NOT NULL)")
        conn.execute("INSERT INTO profiles VALUES (1, 1, 'a', NULL, 's'), (2, 1, 'b', NULL, 's'), "
                     "(3, 2, 'c', NULL, 's')")
        conn.execute("CREATE TABLE events (id serial PRIMARY KEY, customer_id int, channel text)")
        conn.execute("CREATE TABLE events_text_key (id serial, customer_id text)")
        conn.execute("CREATE TABLE profiles_bad (customer_id int PRIMARY KEY, complaints int, "
                     "fragile_score text)")
        conn.execute("CREATE VIEW profiles_view AS SELECT * FROM profiles")
        conn.execute("CREATE TABLE profiles_no_key (customer_id int, complaints int)")
    return pg_url


def _trigger(db: str, *extra: str, **options: str) -> int:
    """Run `db trigger` (exit code); `options` override the working recipe's."""
    opts = {"model": "fragile", "events": "events", "profiles": "profiles",
            "key": "customer_id", "increment": "complaints", **options}
    args = ["db", "trigger", db]
    for k, v in opts.items():
        args += [f"--{k.replace('_', '-')}", v]
    try:
        main(args + list(extra))
    except SystemExit as e:
        return e.code or 0
    return 0


def _row(conn, key: int) -> dict:
    cur = conn.cursor(row_factory=psycopg.rows.dict_row)
    return cur.execute("SELECT * FROM profiles WHERE customer_id = %s", [key]).fetchone()


@pytest.mark.parametrize("mode", ["transaction", "outbox"])
def test_a_model_failure_marks_the_score_stale_and_keeps_its_time(db, mode):
    import psycopg.rows  # noqa: F401 - dict_row

    assert _trigger(db, mode=mode) == 0
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO events (customer_id) VALUES (1)")  # complaints 2: scored
        if mode == "outbox":
            Worker(db, "fragile").run(once=True)
        good = _row(conn, 1)
        assert good["fragile_score"] == pytest.approx(0.8) and good["fragile_error"] is None
        conn.execute("UPDATE profiles SET fragile_scored_at = %s", [OLD])
        # complaints 3 for 1 (the model raises on the whole batch); 2 is fine in the same one
        conn.execute("INSERT INTO events (customer_id) VALUES (1), (2)")
        if mode == "outbox":
            worker = Worker(db, "fragile")
            worker.run(once=True)
            assert (worker.scored, worker.failed) == (1, 1)
            assert conn.execute("SELECT count(*) FROM scorehouse.outbox").fetchone()[0] == 0
            conn.execute("INSERT INTO events (customer_id) VALUES (1)")  # only failing rows
            worker.run(once=True)  # a batch failing on every row is dequeued, not retried
            assert conn.execute("SELECT count(*) FROM scorehouse.outbox").fetchone()[0] == 0
        stale = _row(conn, 1)
        assert stale["complaints"] >= 3  # the insert went through
        assert "blew up" in stale["fragile_error"]
        assert (stale["fragile_score"], stale["fragile_label"]) == (good["fragile_score"],
                                                                    good["fragile_label"])
        assert str(stale["fragile_scored_at"]) == "2000-01-01 00:00:00+00:00"  # not now()
        fresh = _row(conn, 2)  # the other profile: scored now
        assert fresh["fragile_error"] is None and fresh["fragile_score"] == pytest.approx(0.8)
        assert fresh["fragile_scored_at"].year > 2000


#: A bad option, the exit code and a fragment of the one-line error.
BAD = {
    "no such key column": ({"key": "no_such_column"}, 3, "no_such_column"),
    "no such events table": ({"events": "no_such_table"}, 3, "no such table"),
    "no such profiles table": ({"profiles": "no_such_table"}, 3, "no such table"),
    "schema-qualified, missing": ({"profiles": "nope.profiles"}, 3, "no such table"),
    "profiles is a view": ({"profiles": "profiles_view"}, 1, "not a table"),
    "no such counter": ({"increment": "nope"}, 3, "nope"),
    "counter of text": ({"increment": "plan"}, 1, "--increment plan:"),
    "key of another type": ({"events": "events_text_key"}, 1, "--key customer_id: operator"),
    "copy into another type": ({"copy": "complaints=channel"}, 1, "--copy complaints=channel: col"),
    "copy from no column": ({"copy": "plan=nope"}, 3, "nope"),
    "score column of another type": ({"profiles": "profiles_bad"}, 1, "fragile_score"),
    "not installed model": ({"model": "nope"}, 3, "not installed"),
    "bad mode": ({"mode": "sometimes"}, 1, "--mode"),
    "create, NOT NULL column": ({"missing_profile": "create"}, 1, "segment"),
    "create, key not unique": ({"profiles": "profiles_no_key", "missing_profile": "create"}, 1,
                               "not a unique key"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_option_is_refused_and_the_working_trigger_kept(db, case, capsys):
    import psycopg.rows  # noqa: F401 - dict_row

    options, code, fragment = BAD[case]
    assert _trigger(db) == 0
    with psycopg.connect(db, autocommit=True) as conn:
        definition = conn.execute("SELECT pg_get_functiondef('scorehouse.on_events_fragile'"
                                  "::regproc)").fetchone()[0]
        columns = conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                               "'profiles_bad'::regclass AND attnum > 0").fetchone()[0]
    capsys.readouterr()
    assert _trigger(db, **options) == code
    assert fragment in capsys.readouterr().err
    with psycopg.connect(db, autocommit=True) as conn:
        assert conn.execute("SELECT pg_get_functiondef('scorehouse.on_events_fragile'::regproc)"
                            ).fetchone()[0] == definition
        assert conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'events'::regclass"
                            ).fetchall() == [("scorehouse_fragile",)]
        assert conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = "
                            "'profiles_bad'::regclass AND attnum > 0").fetchone()[0] == columns
        conn.execute("INSERT INTO events (customer_id) VALUES (1)")  # still works, and scores
        row = _row(conn, 1)
        assert row["complaints"] == 2 and row["fragile_score"] == pytest.approx(0.8)


@pytest.mark.parametrize("mode", ["transaction", "outbox"])
def test_events_without_a_profile_are_dead_lettered_and_counted(db, mode, capsys):
    assert _trigger(db, mode=mode, copy="channel=channel") == 0
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO events (customer_id, channel) VALUES (99, 'web'), "
                     "(NULL, 'app'), (1, 'phone')")
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 3  # none refused
        dead = conn.execute("SELECT model, events, key, event->>'channel', reason FROM "
                            "scorehouse.dead_events ORDER BY id").fetchall()
        assert [d[:4] for d in dead] == [("fragile", "events", "99", "web"),
                                         ("fragile", "events", None, "app")]
        assert "no row in profiles" in dead[0][4] and "NULL" in dead[1][4]
        assert conn.execute("SELECT count(*) FROM profiles").fetchone()[0] == 3  # none made
        if mode == "outbox":
            assert conn.execute("SELECT key FROM scorehouse.outbox").fetchall() == [("1",)]
    capsys.readouterr()
    assert _trigger(db, mode=mode) == 0  # a re-deploy tells how many wait there
    assert "2 in scorehouse.dead_events" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["transaction", "outbox"])
def test_missing_profile_create_makes_the_row_and_scores_it(db, mode):
    import psycopg.rows  # noqa: F401 - dict_row

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("ALTER TABLE profiles ALTER segment SET DEFAULT 'new'")
    assert _trigger(db, mode=mode, copy="channel=channel", missing_profile="create") == 0
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("INSERT INTO events (customer_id, channel) VALUES (77, 'web'), (77, 'app'), "
                     "(NULL, 'app')")
        if mode == "outbox":
            Worker(db, "fragile").run(once=True)
        row = _row(conn, 77)
        # created by the first event (complaints 1), counted again by the second
        assert (row["complaints"], row["channel"], row["segment"]) == (2, "app", "new")
        assert row["fragile_score"] == pytest.approx(0.8) and row["fragile_error"] is None
        # a NULL key cannot make a row: dead-lettered
        assert conn.execute("SELECT key, reason FROM scorehouse.dead_events").fetchall() == [
            (None, "the event's customer_id is NULL")]


@pytest.mark.parametrize("mode", ["transaction", "outbox"])
def test_a_writer_with_only_insert_rights_gets_scores_and_dead_letters(db, mode):
    """The trigger runs with its owner's rights: the application's role needs INSERT on
    the events table and nothing in the scorehouse schema or on the profiles."""
    import psycopg.rows  # noqa: F401 - dict_row

    role = f"sh_writer_{uuid.uuid4().hex[:8]}"
    assert _trigger(db, mode=mode) == 0
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}"')
        try:
            conn.execute(f'GRANT INSERT ON events TO "{role}"')
            conn.execute(f'GRANT USAGE ON SEQUENCE events_id_seq TO "{role}"')
            conn.execute(f'SET ROLE "{role}"')
            conn.execute("INSERT INTO events (customer_id) VALUES (1), (99)")
            conn.execute("RESET ROLE")
            if mode == "outbox":
                Worker(db, "fragile").run(once=True)
            row = _row(conn, 1)
            assert row["complaints"] == 2 and row["fragile_error"] is None
            assert row["fragile_score"] == pytest.approx(0.8)
            assert conn.execute("SELECT key FROM scorehouse.dead_events").fetchall() == [("99",)]
        finally:
            conn.execute("RESET ROLE")
            conn.execute(f'DROP OWNED BY "{role}"')
            conn.execute(f'DROP ROLE "{role}"')


def test_the_trigger_finds_its_tables_whatever_the_writers_search_path(db):
    import psycopg.rows  # noqa: F401 - dict_row

    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA decoy")
        conn.execute("CREATE TABLE decoy.profiles (LIKE profiles INCLUDING ALL)")
    assert _trigger(db) == 0
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SET search_path = decoy, public")
        conn.execute("INSERT INTO public.events (customer_id) VALUES (1)")
        conn.execute("RESET search_path")
        assert _row(conn, 1)["fragile_score"] == pytest.approx(0.8)


@pytest.mark.parametrize("owner", ["another model", "not scorehouse"])
def test_a_trigger_name_held_by_another_trigger_is_refused(db, owner, capsys):
    with psycopg.connect(db, autocommit=True) as conn:
        if owner == "another model":  # as a hash collision would make it
            assert _trigger(db) == 0
            conn.execute("COMMENT ON TRIGGER scorehouse_fragile ON events IS "
                         "'scorehouse model: other'")
        else:  # the application's own trigger of that name
            conn.execute("CREATE FUNCTION mine() RETURNS trigger LANGUAGE plpgsql AS "
                         "'BEGIN RETURN NEW; END'")
            conn.execute("CREATE TRIGGER scorehouse_fragile AFTER INSERT ON events FOR EACH "
                         "ROW EXECUTE FUNCTION mine()")
        before = conn.execute("SELECT tgfoid FROM pg_trigger WHERE tgname = "
                              "'scorehouse_fragile'").fetchall()
    capsys.readouterr()
    assert _trigger(db) == 6
    err = capsys.readouterr().err
    assert "scorehouse_fragile" in err and ("'other'" in err) == (owner == "another model")
    with psycopg.connect(db, autocommit=True) as conn:
        assert conn.execute("SELECT tgfoid FROM pg_trigger WHERE tgname = "
                            "'scorehouse_fragile'").fetchall() == before


def test_the_same_models_trigger_under_an_older_name_is_replaced_not_doubled(db):
    import psycopg.rows  # noqa: F401 - dict_row

    assert _trigger(db) == 0
    with psycopg.connect(db, autocommit=True) as conn:  # as an older naming rule left it
        conn.execute("ALTER TRIGGER scorehouse_fragile ON events RENAME TO scorehouse_frag")
        conn.execute("COMMENT ON TRIGGER scorehouse_frag ON events IS NULL")
    assert _trigger(db) == 0
    with psycopg.connect(db, autocommit=True) as conn:
        assert conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'events'::regclass"
                            ).fetchall() == [("scorehouse_fragile",)]
        conn.execute("INSERT INTO events (customer_id) VALUES (1)")
        assert _row(conn, 1)["complaints"] == 2  # counted once
