"""A model's SQL names in PostgreSQL: distinct for distinct models, whole within 63 bytes,
and never taken over from another model's functions (real PostgreSQL with plpython3u)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import psycopg
import pytest

import scorehouse
from scorehouse.cli.app import main
from scorehouse.errors import ConflictError
from scorehouse.sql import register
from scorehouse.sql.names import MAX_IDENTIFIER, names_for
from scorehouse.sql.postgres import install

LONG = "m" * 57  # names sharing their first 57 bytes: PostgreSQL cut them to one before
#: Pairs of registry names that plain sanitising (lower case, `_` for the rest) or the
#: 63-byte cut maps to one SQL name.
PAIRS = [("churn-a", "churn_a"), ("Churn", "churn"), ("churn.v2", "churn_v2"),
         (f"{LONG}_one", f"{LONG}_two"), ("a" * 70, "a" * 69 + "b"), ("select", "SELECT")]
#: Names no registry accepts, but an artifact loaded from a file may carry.
HOSTILE = ['x"; DROP TABLE t; --', "ünïcödé", "名前", "select", "a" * 200, "", " ", "Robert'); --"]


def test_plain_names_keep_their_sql_names():
    n = names_for("churn")
    assert (n.function, n.query, n.batches, n.result_type, n.trigger, n.column("score")) == (
        "score_churn", "score_churn_query", "_score_churn_batches", "score_churn_result",
        "scorehouse_churn", "churn_score")
    assert n.trigger_function("complaints") == "on_complaints_churn"


@pytest.mark.parametrize("name", [n for pair in PAIRS for n in pair] + HOSTILE)
def test_every_sql_name_is_plain_ascii_whole_and_stable(name):
    n = names_for(name)
    idents = [n.function, n.query, n.batches, n.result_type, n.trigger,
              n.trigger_function("public.complaints"),
              *(n.column(s) for s in ("label", "score", "prediction", "version", "scored_at",
                                      "error"))]
    for ident in idents:
        assert re.fullmatch(r"[a-z0-9_]+", ident), ident
        assert len(ident.encode()) <= MAX_IDENTIFIER, ident
    assert n.query.endswith("_query") and n.batches.endswith("_batches")
    assert names_for(name) == n  # the same name, the same SQL names, every time


def test_distinct_names_get_distinct_sql_names():
    names = [n for pair in PAIRS for n in pair] + HOSTILE
    stems = {names_for(n).stem for n in names}
    assert len(stems) == len(set(names))


# --- side by side in PostgreSQL ----------------------------------------------------------------


def _linear(tmp_path, name: str, sign: int):
    """A model of x, y answering P(yes) = 1 at (1, 1) for sign 1, 0 for sign -1."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=300), "y": rng.normal(size=300)})
    df["t"] = np.where(sign * (df.x + df.y) > 0, "yes", "no")
    model = LogisticRegression(C=100).fit(df[["x", "y"]], df.t)
    return scorehouse.package(model, df, name=name, target="t", compile=False,
                              path=tmp_path / f"{names_for(name).stem}.shz")


def _registry(tmp_path, names: list[str]) -> scorehouse.Registry:
    reg = scorehouse.Registry()
    for i, name in enumerate(names):
        reg.register(_linear(tmp_path, name, 1 if i % 2 == 0 else -1))
        reg.promote(f"{name}/1", "production")
    return reg


def _p_yes(conn, function: str) -> float:
    return conn.execute(f'SELECT round(((scorehouse."{function}"(1, 1)).probability_yes)'
                        "::numeric, 3)").fetchone()[0]


@pytest.mark.parametrize("pair", PAIRS, ids=["dash", "case", "dot", "57-byte-prefix",
                                             "over-63", "keyword"])
def test_names_that_sanitise_alike_each_score_their_own_model(pg_url, tmp_path, pair):
    reg = _registry(tmp_path, list(pair))
    done = install(pg_url, [f"{n}@production" for n in pair], registry=reg)
    assert [d.function for d in done] == [names_for(n).function for n in pair]
    assert len({d.function for d in done}) == 2
    with psycopg.connect(pg_url, autocommit=True) as conn:
        # typed, one row; set-based typed; jsonb: each answers its own model
        for d, expected in zip(done, (1, 0), strict=True):
            assert _p_yes(conn, d.function) == expected
            assert d.query_function.endswith("_query")
            got = conn.execute(f'SELECT probability_yes FROM scorehouse."{d.query_function}"'
                               "('SELECT 1 AS id, 1.0 AS x, 1.0 AS y', 'id')").fetchone()[0]
            assert round(got) == expected
            generic = conn.execute("SELECT scorehouse.score(%s, '{\"x\": 1, \"y\": 1}')",
                                   [d.name]).fetchone()[0]
            assert round(generic["probabilities"]["yes"]) == expected
        shared = conn.execute("SELECT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = "
                              "p.pronamespace WHERE n.nspname = 'scorehouse' GROUP BY 1 "
                              "HAVING count(*) > 1").fetchall()
        assert shared == []
        comments = dict(conn.execute(
            "SELECT p.proname, obj_description(p.oid, 'pg_proc') FROM pg_proc p JOIN "
            "pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'scorehouse'"
        ).fetchall())
        for d in done:
            assert comments[d.function] == comments[d.query_function] == \
                f"scorehouse model: {d.name}"
    # Installing again (a re-deploy) is idempotent: the comments say the functions are ours.
    install(pg_url, [f"{n}@production" for n in reversed(pair)], registry=reg)


def test_the_cli_prints_the_derived_names(pg_url, tmp_path, capsys):
    _registry(tmp_path, ["churn-a"])
    main(["db", "install", pg_url, "churn-a@production", "--json"])
    out = capsys.readouterr().out
    assert '"function": "score_churn_a_' in out and '"query_function": "score_churn_a_' in out


def _typed_signature(conn) -> str:
    return conn.execute("SELECT p.oid::regprocedure::text FROM pg_proc p WHERE p.proname = "
                        "'score_churn'").fetchone()[0]


@pytest.mark.parametrize("owner", ["another model", "not scorehouse"])
def test_a_name_held_by_another_function_is_refused_and_left_alone(pg_url, tmp_path, owner,
                                                                   capsys):
    reg = _registry(tmp_path, ["churn"])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA scorehouse")
        if owner == "another model":  # as if a hash collision had given another model this name
            install(pg_url, ["churn@production"], registry=reg)
            conn.execute(f"COMMENT ON FUNCTION {_typed_signature(conn)} IS "
                         "'scorehouse model: churn-other'")
        else:  # the user's own function of that name
            conn.execute("CREATE FUNCTION scorehouse.score_churn(x float8, y float8) RETURNS int "
                         "LANGUAGE sql AS 'SELECT 42'")
        before = conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'score_churn'"
                              ).fetchall()
    with pytest.raises(ConflictError, match="churn") as e:
        install(pg_url, ["churn@production"], registry=reg)
    assert ("churn-other" in str(e.value)) == (owner == "another model")
    with pytest.raises(SystemExit) as e:
        main(["db", "install", pg_url, "churn@production"])
    assert e.value.code == 6
    assert "score_churn" in capsys.readouterr().err
    with psycopg.connect(pg_url, autocommit=True) as conn:
        assert conn.execute("SELECT prosrc FROM pg_proc WHERE proname = 'score_churn'"
                            ).fetchall() == before


def test_functions_of_an_install_without_comments_are_recognised_by_their_body(pg_url,
                                                                                tmp_path):
    reg = _registry(tmp_path, ["churn", "other"])
    install(pg_url, ["churn@production", "other@production"], registry=reg)
    with psycopg.connect(pg_url, autocommit=True) as conn:  # as an older scorehouse left them
        for (sig,) in conn.execute("SELECT p.oid::regprocedure::text FROM pg_proc p JOIN "
                                   "pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = "
                                   "'scorehouse'").fetchall():
            conn.execute(f"COMMENT ON FUNCTION {sig} IS NULL")
        conn.execute("COMMENT ON TYPE scorehouse.score_churn_result IS NULL")
        # ... and one whose body scores another model under this model's name
        conn.execute("ALTER FUNCTION scorehouse._score_other_batches(text, text, integer) "
                     "RENAME TO _score_churn_batches_x")
    install(pg_url, ["churn@production"], registry=reg)  # its own: replaced
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP FUNCTION scorehouse._score_churn_batches(text, text, integer) "
                     "CASCADE")
        conn.execute("ALTER FUNCTION scorehouse._score_churn_batches_x(text, text, integer) "
                     "RENAME TO _score_churn_batches")
    with pytest.raises(ConflictError, match="scores model 'other'"):
        install(pg_url, ["churn@production"], registry=reg)


# Names a model can have (`refs.valid_name`: the one rule of package and register); the SQL
# quoting of names no model can have is tested on `names_for` directly (HOSTILE).
@pytest.mark.parametrize("name", ["churn-a", "Select", "a" * 100, "Model.v2_final", "9lives"])
def test_duckdb_and_sqlite_functions_take_the_same_names(tmp_path, name):
    import sqlite3

    import duckdb

    path = _linear(tmp_path, name, 1)
    expected = names_for(name).function
    con = duckdb.connect()
    assert register(con, str(path), trust=True).name == expected
    got = con.execute(f'SELECT "{expected}"(1.0, 1.0).probability_yes').fetchone()[0]
    assert round(got) == 1
    lite = sqlite3.connect(":memory:")
    assert register(lite, str(path), trust=True).name == expected
    assert '"yes"' in lite.execute(f'SELECT "{expected}"(1.0, 1.0)').fetchone()[0]
