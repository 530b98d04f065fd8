"""In-database scoring on real PostgreSQL with plpython3u: install, parity, errors, sync."""

from __future__ import annotations

import json
import uuid

import numpy as np
import psycopg
import pytest

import scorehouse
import scorehouse.sql
from conftest import strict_overrides
from scorehouse.cli.app import main
from scorehouse.demo.data import TARGET
from scorehouse.sql.postgres import install, sync

#: The database scores with the compiled runtime: parity with native within this.
TOL = 1e-6
COLUMNS = ["tenure", "plan", "contract", "monthly_charges", "total_charges", "support_calls",
           "complaints", "age", "data_usage_gb", "days_since_login", "payment_method", "region"]


@pytest.fixture
def registry(tmp_path, churn_model, churn_data, strict_churn_artifact):
    """churn/1 (production) and a distinct churn/2 in a registry of the test's home; the
    columns never missing in training are required (the tests send nulls as bad input)."""
    reg = scorehouse.Registry()
    reg.register(strict_churn_artifact)
    second = scorehouse.package(churn_model, churn_data, name="churn", target=TARGET,
                                path=tmp_path / "churn-2.shz", description="second version",
                                schema_overrides=strict_overrides(churn_data))
    reg.register(second)
    reg.promote("churn/1", "production")
    return reg


@pytest.fixture
def db(pg_url, churn_data):
    """A database holding `customers` (200 rows of the churn features and an id)."""
    return _with_customers(pg_url, churn_data)


@pytest.fixture
def encoded_db(request, pg_server, churn_data):
    """The same in a database of encoding `request.param`: LATIN1 has the letters þ and ÿ
    in bytes 0xFE and 0xFF; SQL_ASCII stores any byte unchecked."""
    name = f"sh_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE \"{name}\" ENCODING '{request.param}' LC_COLLATE 'C' "
                     "LC_CTYPE 'C' TEMPLATE template0")
    try:
        yield _with_customers(f"{pg_server.rsplit('/', 1)[0]}/{name}", churn_data)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _with_customers(pg_url: str, churn_data) -> str:
    X = churn_data.drop(columns=[TARGET]).head(200)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id integer PRIMARY KEY, tenure bigint, plan text, "
                     "contract text, monthly_charges float8, total_charges float8, "
                     "support_calls bigint, complaints bigint, age bigint, data_usage_gb float8, "
                     "days_since_login float8, payment_method text, region text)")
        rows = [(i, *(None if v != v else v for v in rec)) for i, rec in
                enumerate(X[COLUMNS].astype(object).itertuples(index=False))]
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO customers VALUES (" + ", ".join(["%s"] * 13) + ")", rows)
    return pg_url


@pytest.fixture
def native(churn_model, churn_data):
    return churn_model.predict_proba(churn_data.drop(columns=[TARGET]).head(200)[COLUMNS])[:, 1]


def test_every_function_form_matches_the_native_model(db, registry, native):
    done = install(db, ["churn@production"], registry=registry)
    assert [(d.name, d.version, d.changed) for d in done] == [("churn", 1, True)]
    assert install(db, ["churn@production"], registry=registry)[0].changed is False  # idempotent
    with psycopg.connect(db, autocommit=True) as conn:
        by_json = conn.execute("SELECT scorehouse.score('churn', row_to_json(c)::jsonb) "
                               "FROM customers c ORDER BY id").fetchall()
        p = [r[0]["probabilities"]["yes"] for r in by_json]
        np.testing.assert_allclose(p, native, atol=TOL)
        assert by_json[0][0]["model"] == "churn" and by_json[0][0]["version"] == 1
        typed = conn.execute(f"SELECT (scorehouse.score_churn({', '.join(COLUMNS)})).* "
                             "FROM customers ORDER BY id").fetchall()
        np.testing.assert_allclose([r[2] for r in typed], native, atol=TOL)
        assert {r[0] for r in typed} <= {"yes", "no"} and typed[0][3] == 1
        batch = conn.execute("SELECT key::int, prediction, error FROM scorehouse.score_query("
                             "'churn', 'SELECT * FROM customers', 'id') ORDER BY 1").fetchall()
        assert len(batch) == 200 and all(e is None for _, _, e in batch)
        np.testing.assert_allclose([r[1]["probabilities"]["yes"] for r in batch], native,
                                   atol=TOL)


def test_bad_input_is_a_clear_sql_error_and_bad_rows_are_kept_in_the_set(db, registry):
    install(db, ["churn@production"], registry=registry)
    with psycopg.connect(db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.UndefinedObject, match="no model 'nope' is installed"):
            conn.execute("SELECT scorehouse.score('nope', '{}'::jsonb)")
        row = conn.execute("SELECT row_to_json(c)::jsonb FROM customers c WHERE id = 0"
                           ).fetchone()[0]
        row["tenure"] = None
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="column 'tenure'"):
            conn.execute("SELECT scorehouse.score('churn', %s)", [json.dumps(row)])
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="column 'plan'"):
            conn.execute(f"SELECT scorehouse.score_churn({', '.join(COLUMNS)}) FROM "
                         "(SELECT tenure, NULL::text AS plan, contract, monthly_charges, "
                         "total_charges, support_calls, complaints, age, data_usage_gb, "
                         "days_since_login, payment_method, region FROM customers LIMIT 1) c")
        conn.execute("UPDATE customers SET region = NULL WHERE id IN (3, 7)")
        out = conn.execute("SELECT key::int, prediction, error FROM scorehouse.score_query("
                           "'churn', 'SELECT * FROM customers', 'id')").fetchall()
        bad = {k: e for k, p, e in out if p is None}
        assert len(out) == 200 and set(bad) == {3, 7} and "column 'region'" in bad[3]


@pytest.mark.parametrize(("encoded_db", "client"), [("UTF8", "UTF8"), ("UTF8", "LATIN1"),
                                                     ("LATIN1", "UTF8"), ("SQL_ASCII", "UTF8")],
                         indirect=["encoded_db"])
def test_the_typed_set_function_scores_every_row_in_batches_like_the_native_model(
        encoded_db, client, registry, native):
    # Text reaches Python as its UTF-8 bytes (textsend when server and client are UTF-8,
    # else convert_to), split on 0xFF (0xFE for NULL), which UTF-8 never uses; a SQL_ASCII
    # database may hold any byte, so there it comes as arrays.
    db = encoded_db
    install(db, ["churn@production"], registry=registry)
    keys = ['plain', 'with "quotes"', "back\\slash", "comma, {brace}", "NULL", " padded ", "",
            "ünïcode", "ÿ þ", "þ"]
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(f"SET client_encoding = '{client}'")  # SQL_ASCII: stored as sent
        # Columns the model does not read (an array, JSON, a text key) ride along unread.
        conn.execute("ALTER TABLE customers ADD COLUMN tags int[], ADD COLUMN meta jsonb, "
                     "ADD COLUMN name text")
        conn.execute("UPDATE customers SET tags = ARRAY[id, id], meta = '{\"a\": 1}', "
                     "name = 'c' || id")
        for i, k in enumerate(keys):
            conn.execute("UPDATE customers SET name = %s WHERE id = %s", [k, i])
        conn.execute("UPDATE customers SET name = NULL WHERE id = 150")
        got = conn.execute("SELECT key, label, probability_no, probability_yes, model_version, "
                           "error FROM scorehouse.score_churn_query("
                           "'SELECT * FROM customers ORDER BY id;', 'name', 7)").fetchall()
        ids = conn.execute("SELECT name, id FROM customers").fetchall()
    assert len(got) == 200 and all(r[5] is None and r[4] == 1 for r in got)
    by_name = dict(ids)
    assert {r[0] for r in got} == set(by_name)  # every key back as it was, NULL included
    for key, label, p_no, p_yes, _, _ in got:
        assert p_yes == pytest.approx(native[by_name[key]], abs=TOL)
        assert p_no + p_yes == pytest.approx(1.0) and label in ("yes", "no")
    assert set(keys) <= {r[0] for r in got}


def test_the_typed_set_function_returns_the_python_scorers_floats_bit_for_bit(
        db, registry, scorer, churn_data):
    install(db, ["churn@production"], registry=registry)
    with psycopg.connect(db, autocommit=True) as conn:
        got = conn.execute("SELECT key::int, probability_no, probability_yes, label FROM "
                           "scorehouse.score_churn_query('SELECT * FROM customers', 'id', 50) "
                           "ORDER BY 1").fetchall()
    # Batches of 50 rows, like the 200 scored here at once, run the tree kernel (from 16 rows;
    # smaller ones run ONNX Runtime alone, equal within 1e-6), which makes probability_no =
    # 1 - probability_yes: that column and the label come back computed in SQL, and must
    # still be the scorer's own double and class.
    expected = scorer.predict(churn_data.drop(columns=[TARGET]).head(200)).columns()
    assert [r[1] for r in got] == expected["probability_no"].tolist()
    assert [r[2] for r in got] == expected["probability_yes"].tolist()
    assert [r[3] for r in got] == expected["label"].tolist()
    assert {r[3] for r in got} == {"yes", "no"}


#: Libraries the scorer imports inside PostgreSQL that a system package can also provide
#: (Debian ships python3-numpy, python3-protobuf, python3-sklearn, ...).
LIBRARIES = ["numpy", "onnx", "onnxruntime", "google.protobuf", "sklearn", "pyarrow", "numba"]


@pytest.mark.parametrize("library", LIBRARIES)
def test_plpython_imports_each_library_from_the_installing_environment(db, registry, library):
    """PL/Python runs the system's Python, whose own packages come first on sys.path; the
    install's folders must win, or a system package of another version shadows the one
    scorehouse was installed with (a Debian python3-protobuf broke `import onnx` there,
    and the tree kernel was quietly lost)."""
    import importlib

    install(db, ["churn@production"], registry=registry)
    mine = importlib.import_module(library).__file__
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("SELECT scorehouse.score('churn', row_to_json(c)::jsonb) FROM customers c "
                     "WHERE id = 0").fetchall()  # the install's prelude ran in this session
        conn.execute("CREATE OR REPLACE FUNCTION pg_temp.where_from(name text) RETURNS text "
                     "LANGUAGE plpython3u AS $$\nimport importlib\n"
                     "return importlib.import_module(name).__file__\n$$")
        (theirs,) = conn.execute("SELECT pg_temp.where_from(%s)", [library]).fetchone()
    assert theirs == mine


def test_the_typed_set_function_keeps_refused_rows_and_names_its_errors(db, registry):
    install(db, ["churn@production"], registry=registry)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE customers SET region = NULL WHERE id IN (3, 7)")
        out = conn.execute("SELECT key::int, label, probability_yes, error FROM "
                           "scorehouse.score_churn_query('SELECT * FROM customers', 'id', 50)"
                           ).fetchall()
        assert len(out) == 200
        bad = {k: (label, p, e) for k, label, p, e in out if e is not None}
        assert set(bad) == {3, 7} and bad[3][:2] == (None, None) and "column 'region'" in bad[3][2]
        assert conn.execute("SELECT count(*) FROM scorehouse.score_churn_query("
                            "'SELECT * FROM customers WHERE false', 'id')").fetchone()[0] == 0
        with pytest.raises(psycopg.errors.UndefinedColumn, match="no column 'nope'"):
            conn.execute("SELECT * FROM scorehouse.score_churn_query("
                         "'SELECT * FROM customers', 'nope')")
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="batch_rows"):
            conn.execute("SELECT * FROM scorehouse.score_churn_query("
                         "'SELECT * FROM customers', 'id', 0)")
        with pytest.raises(psycopg.errors.AmbiguousColumn, match="'region'"):
            conn.execute("SELECT * FROM scorehouse.score_churn_query("
                         "'SELECT c.*, c.region FROM customers c', 'id')")


def test_the_typed_set_function_groups_batches_in_memory_without_touching_the_session(
        db, registry):
    install(db, ["churn@production"], registry=registry)
    with psycopg.connect(db, autocommit=True) as conn:
        before = conn.execute("SHOW work_mem").fetchone()[0]
        # The query runs inside the function: its key shows the setting it was planned with.
        keys = conn.execute("SELECT key FROM scorehouse.score_churn_query('SELECT *, "
                            "current_setting(''work_mem'') || '':'' || id AS k FROM customers', "
                            "'k', 64)").fetchall()
        assert {k.split(":")[0] for (k,) in keys} == {"64MB"} and len(keys) == 200
        assert conn.execute("SHOW work_mem").fetchone()[0] == before != "64MB"


def test_a_schema_name_with_quotes_works_everywhere(db, registry, native):
    schema = 'it\'s "odd"'
    install(db, ["churn@production"], registry=registry, schema=schema)
    s = '"' + schema.replace('"', '""') + '"'
    with psycopg.connect(db, autocommit=True) as conn:
        one = conn.execute(f"SELECT {s}.score('churn', row_to_json(c)::jsonb) FROM customers c "
                           "WHERE id = 0").fetchone()[0]
        assert one["probabilities"]["yes"] == pytest.approx(native[0], abs=TOL)
        many = conn.execute(f"SELECT key::int, probability_yes FROM {s}.score_churn_query("
                            "'SELECT * FROM customers', 'id') ORDER BY 1").fetchall()
        np.testing.assert_allclose([p for _, p in many], native, atol=TOL)


def test_sync_moves_the_next_call_to_the_new_version_without_reconnecting(db, registry):
    install(db, ["churn@production"], registry=registry)
    q = "SELECT scorehouse.score('churn', row_to_json(c)::jsonb) FROM customers c WHERE id = 0"
    with psycopg.connect(db, autocommit=True) as conn:
        assert conn.execute(q).fetchone()[0]["version"] == 1
        registry.promote("churn/2", "production")
        try:
            main(["db", "sync", db, "--json"])
        except SystemExit as e:
            assert not e.code
        assert conn.execute(q).fetchone()[0]["version"] == 2  # same connection
    assert sync(db, registry=registry)[0].changed is False


def test_install_needs_a_superuser_and_grants_only_execute(db, registry, pg_server):
    role = f"sh_app_{uuid.uuid4().hex[:8]}"
    admin = psycopg.connect(pg_server, autocommit=True)
    try:
        admin.execute(f'CREATE ROLE "{role}" LOGIN PASSWORD \'pw\'')
        base = db.rsplit("@", 1)[1]
        as_role = f"postgresql://{role}:pw@{base}"
        with pytest.raises(scorehouse.ScorehouseError, match="needs a superuser"):
            install(as_role, ["churn@production"], registry=registry)
        install(db, ["churn@production"], registry=registry, grant=[role])
        with psycopg.connect(db, autocommit=True) as conn:  # the application's own data
            conn.execute(f'GRANT SELECT ON customers TO "{role}"')
        with psycopg.connect(as_role, autocommit=True) as conn:
            got = conn.execute("SELECT scorehouse.score('churn', row_to_json(c)::jsonb) FROM "
                               "customers c WHERE id = 1")
            assert got.fetchone()[0]["label"] in ("yes", "no")
            many = conn.execute("SELECT count(*) FROM scorehouse.score_churn_query("
                                "'SELECT * FROM customers', 'id')")
            assert many.fetchone()[0] == 200
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE FUNCTION scorehouse.x() RETURNS int LANGUAGE sql "
                             "AS 'SELECT 1'")
    finally:
        admin.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      f"WHERE usename = '{role}'")
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f'DROP OWNED BY "{role}"')
        admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        admin.close()


# --- DuckDB and SQLite ---------------------------------------------------------------------


def test_duckdb_function_is_vectorised_and_matches_native(registry, churn_model, churn_data):
    import duckdb

    X = churn_data.drop(columns=[TARGET])[COLUMNS]
    expected = churn_model.predict_proba(X)[:, 1]
    con = duckdb.connect()
    con.register("customers", X.reset_index(names="id"))
    reg = scorehouse.sql.register(con, "churn@production", registry=registry)
    assert reg.name == "score_churn"
    got = con.execute(f"SELECT id, s.label, s.probability_yes, s.model_version FROM (SELECT id, "
                      f"score_churn({', '.join(COLUMNS)}) AS s FROM customers) ORDER BY id"
                      ).fetchall()
    np.testing.assert_allclose([r[2] for r in got], expected, atol=TOL)
    assert {r[1] for r in got} <= {"yes", "no"} and got[0][3] == 1
    with pytest.raises(duckdb.Error, match="column 'tenure'"):
        con.execute(f"SELECT score_churn(NULL, {', '.join(COLUMNS[1:])}) FROM customers LIMIT 5"
                    ).fetchall()
    con.close()


def test_sqlite_function_returns_json_and_refuses_bad_rows(registry, churn_model, churn_data):
    import sqlite3

    X = churn_data.drop(columns=[TARGET])[COLUMNS].head(300)
    expected = churn_model.predict_proba(X)[:, 1]
    con = sqlite3.connect(":memory:")
    X.to_sql("customers", con, index=False)
    reg = scorehouse.sql.register(con, "churn@production", registry=registry)
    got = con.execute(f"SELECT json_extract(score_churn({', '.join(COLUMNS)}), "
                      "'$.probabilities.yes') FROM customers ORDER BY rowid").fetchall()
    np.testing.assert_allclose([r[0] for r in got], expected, atol=TOL)
    with pytest.raises(sqlite3.OperationalError):
        con.execute(f"SELECT score_churn('soon', {', '.join(COLUMNS[1:])}) FROM customers "
                    "LIMIT 1").fetchall()
    assert "column 'tenure'" in reg.errors[-1]  # sqlite3 keeps only a generic message


# --- the trigger recipe ------------------------------------------------------------------------


def _profiles(db: str) -> None:
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TABLE customer_profile AS SELECT id AS customer_id, "
                     f"{', '.join(COLUMNS)} FROM customers")
        conn.execute("ALTER TABLE customer_profile ADD PRIMARY KEY (customer_id)")
        conn.execute("CREATE TABLE complaints (id serial PRIMARY KEY, customer_id integer, "
                     "channel text, body text)")


def _cli(*args: str) -> None:
    try:
        main(list(args))
    except SystemExit as e:
        assert not e.code, args


def _expected(registry, db: str, ids: list[int]) -> np.ndarray:
    with psycopg.connect(db) as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        rows = cur.execute(f"SELECT {', '.join(COLUMNS)} FROM customer_profile WHERE "
                           "customer_id = ANY(%s) ORDER BY customer_id", [ids]).fetchall()
    result = registry.load("churn@production").predict(rows)
    return result.output.probabilities[:, 1]


def test_trigger_in_the_writers_transaction(db, registry):
    import psycopg.rows  # noqa: F401 - dict_row

    install(db, ["churn@production"], registry=registry)
    _profiles(db)
    _cli("db", "trigger", db, "--model", "churn", "--events", "complaints", "--profiles",
         "customer_profile", "--key", "customer_id", "--increment", "complaints",
         "--increment", "support_calls")
    with psycopg.connect(db, autocommit=True) as conn:
        before = conn.execute("SELECT complaints FROM customer_profile WHERE customer_id = 5"
                              ).fetchone()[0]
        conn.execute("INSERT INTO complaints (customer_id, channel) VALUES (5, 'phone'), "
                     "(9, 'email')")
        got = conn.execute("SELECT customer_id, complaints, churn_label, churn_score, "
                           "churn_version, churn_error FROM customer_profile WHERE customer_id "
                           "IN (5, 9) ORDER BY 1").fetchall()
        assert got[0][1] == before + 1 and got[0][2] in ("yes", "no") and got[0][4] == 1
        assert all(r[5] is None for r in got)
        np.testing.assert_allclose([r[3] for r in got], _expected(registry, db, [5, 9]), atol=TOL)
        # A profile the model refuses: the insert still succeeds; the reason is recorded.
        conn.execute("UPDATE customer_profile SET plan = NULL WHERE customer_id = 11")
        conn.execute("INSERT INTO complaints (customer_id) VALUES (11)")
        err = conn.execute("SELECT churn_error, churn_score FROM customer_profile WHERE "
                           "customer_id = 11").fetchone()
        assert "column 'plan'" in err[0] and err[1] is None
        assert conn.execute("SELECT count(*) FROM complaints").fetchone()[0] == 3
    _cli("db", "trigger", db, "--model", "churn", "--events", "complaints", "--profiles",
         "customer_profile", "--key", "customer_id", "--increment", "complaints", "--strict")
    with psycopg.connect(db, autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="column 'plan'"):
            conn.execute("INSERT INTO complaints (customer_id) VALUES (11)")
        assert conn.execute("SELECT count(*) FROM complaints").fetchone()[0] == 3


def test_outbox_trigger_and_worker(db, registry):
    import psycopg.rows  # noqa: F401 - dict_row

    from scorehouse.sql.worker import Worker

    install(db, ["churn@production"], registry=registry)
    _profiles(db)
    _cli("db", "trigger", db, "--model", "churn", "--events", "complaints", "--profiles",
         "customer_profile", "--key", "customer_id", "--increment", "complaints",
         "--copy", "payment_method=channel", "--mode", "outbox")
    ids = list(range(20, 60))
    with psycopg.connect(db, autocommit=True) as conn:
        for i in ids:
            conn.execute("INSERT INTO complaints (customer_id, channel) VALUES (%s, 'card')", [i])
        conn.execute("UPDATE customer_profile SET region = NULL WHERE customer_id = 21")
        queued = conn.execute("SELECT count(*) FROM scorehouse.outbox").fetchone()[0]
        assert queued == 40  # counted and copied now, scored later
        assert conn.execute("SELECT payment_method, churn_score FROM customer_profile WHERE "
                            "customer_id = 20").fetchone() == ("card", None)
    worker = Worker(db, "churn", batch=16)
    worker.run(once=True)
    worker.close()
    assert (worker.scored, worker.failed) == (39, 1)
    with psycopg.connect(db, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM scorehouse.outbox").fetchone()[0] == 0
        rows = conn.execute("SELECT customer_id, churn_score, churn_version, churn_error FROM "
                            "customer_profile WHERE customer_id = ANY(%s) ORDER BY 1", [ids]
                            ).fetchall()
    scored = [r for r in rows if r[0] != 21]
    assert all(r[2] == 1 and r[3] is None for r in scored)
    np.testing.assert_allclose([r[1] for r in scored],
                               _expected(registry, db, [r[0] for r in scored]), atol=TOL)
    assert "column 'region'" in dict((r[0], r[3]) for r in rows)[21]


def test_installed_functions_log_their_rows_in_the_callers_transaction(db, registry):
    """`db install --log-table`: every function form and the trigger log each row they
    score into the table, in the caller's transaction: committed with it, rolled back
    with it."""
    _cli("db", "install", db, "churn@production", "--log-table", "predlog")
    count = "SELECT count(*) FROM predlog"
    with psycopg.connect(db) as conn:  # one transaction, rolled back: no log row stays
        assert conn.execute(count).fetchone()[0] == 0  # created at install
        conn.execute("SELECT * FROM scorehouse.score_churn_query('SELECT * FROM customers', "
                     "'id')").fetchall()
        assert conn.execute(count).fetchone()[0] == 200  # visible inside the transaction
        conn.rollback()
        assert conn.execute(count).fetchone()[0] == 0
        conn.execute("UPDATE customers SET region = NULL WHERE id IN (3, 7)")
        conn.execute(f"SELECT scorehouse.score_churn({', '.join(COLUMNS)}) FROM customers "
                     "WHERE id < 3").fetchall()
        (answer,) = conn.execute("SELECT scorehouse.score('churn', row_to_json(c)::jsonb) "
                                 "FROM customers c WHERE id = 5").fetchone()
        generated_id = answer["id"]  # the id it was logged under: late labels join by it
        (named,) = conn.execute("SELECT scorehouse.score('churn', row_to_json(c)::jsonb, "
                                "'order-6') FROM customers c WHERE id = 6").fetchone()
        assert named["id"] == "order-6" and named["label"] in ("yes", "no")
        conn.execute("SELECT * FROM scorehouse.score_query('churn', 'SELECT * FROM customers "
                     "WHERE id < 10', 'id')").fetchall()
        conn.execute("SELECT * FROM scorehouse.score_churn_query('SELECT * FROM customers', "
                     "'id')").fetchall()
        conn.commit()
        rows = conn.execute("SELECT id, model, version, channel, runtime, latency_ms, reject, "
                            "inputs, outputs, flags FROM predlog").fetchall()
    assert len(rows) == 3 + 1 + 1 + 10 + 200
    assert {r[0] for r in rows} >= {generated_id, "order-6"}
    assert {(r[1], r[2], r[3]) for r in rows} == {("churn", 1, "sql")}
    assert all(r[4] and r[5] > 0 for r in rows)
    keyed = [r for r in rows if r[0] in {str(i) for i in range(200)}]
    assert len(keyed) == 210 and sorted({r[0] for r in keyed}, key=int) == [str(i) for i in
                                                                           range(200)]
    refused = [r for r in keyed if r[6] is not None]
    assert sorted(r[0] for r in refused) == ["3", "3", "7", "7"]  # in both set functions
    assert all("region" in r[6] and not r[8] for r in refused)
    scored = [r for r in rows if r[6] is None]
    assert all(set(r[8]) == {"label", "probability_no", "probability_yes"} for r in scored)
    assert all(isinstance(r[7]["tenure"], int) for r in scored)  # as coerced
    generated = [r for r in rows if r not in keyed and r[0] != "order-6"]
    assert len(generated) == 4 and all(len(r[0]) == 36 for r in generated)  # uuid7
    # The transaction-mode trigger scores through scorehouse.score: it logs too, under the
    # profile's key.
    _profiles(db)
    _cli("db", "trigger", db, "--model", "churn", "--events", "complaints", "--profiles",
         "customer_profile", "--key", "customer_id", "--increment", "complaints")
    with psycopg.connect(db) as conn:
        conn.execute("INSERT INTO complaints (customer_id) VALUES (5)")
        assert conn.execute(count).fetchone()[0] == 216
        conn.rollback()
        assert conn.execute(count).fetchone()[0] == 215
        conn.execute("INSERT INTO complaints (customer_id) VALUES (5)")
        conn.commit()
        assert conn.execute(count).fetchone()[0] == 216
        assert conn.execute("SELECT count(*) FROM predlog WHERE id = '5' AND "
                            "time > now() - interval '1 hour'").fetchone()[0] >= 1
        (newest,) = conn.execute("SELECT id FROM predlog ORDER BY time DESC LIMIT 1").fetchone()
        assert newest == "5"


def test_the_outbox_worker_logs_the_profiles_it_scores_under_their_keys(db, registry):
    from scorehouse.sql.worker import Worker

    install(db, ["churn@production"], registry=registry, log_table="predlog")
    _profiles(db)
    _cli("db", "trigger", db, "--model", "churn", "--events", "complaints", "--profiles",
         "customer_profile", "--key", "customer_id", "--increment", "complaints",
         "--mode", "outbox")
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("UPDATE customer_profile SET region = NULL WHERE customer_id = 21")
        for i in range(20, 30):
            conn.execute("INSERT INTO complaints (customer_id) VALUES (%s)", [i])
    worker = Worker(db, "churn", batch=4)
    worker.run(once=True)
    worker.close()
    with psycopg.connect(db) as conn:
        rows = conn.execute("SELECT id, channel, reject, outputs FROM predlog").fetchall()
    assert sorted((r[0] for r in rows), key=int) == [str(i) for i in range(20, 30)]
    assert {r[1] for r in rows} == {"sql"}
    assert [r[0] for r in rows if r[2] is not None] == ["21"] and "region" in [
        r[2] for r in rows if r[0] == "21"][0]
    assert all(set(r[3]) == {"label", "probability_no", "probability_yes"} for r in rows
               if r[0] != "21")
