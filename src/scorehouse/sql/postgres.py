"""`scorehouse db install` / `db sync`: PL/Python scoring functions in a PostgreSQL database.

The artifact is copied into a table of the schema, so the database server needs no access
to the registry or the artifact store; it needs to import scorehouse, from the path recorded
at install (the site-packages scorehouse was installed into, readable by the server's user,
for the same Python minor version as the server's PL/Python).
"""

from __future__ import annotations

import sysconfig
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..connections import postgres as connect
from ..errors import NotFoundError, ScorehouseError
from ..monitor.log.sinks.postgres import quoted_table
from ..registry import Registry
from ..registry.refs import registry_ref
from ..schema import Column, ColumnType
from ..scorer import Scorer, output_columns
from .catalog import claim
from .names import SqlNames, names_for
from .plpython import TYPED_BATCH, complement, label_text
from .predlog import configure as configure_log

#: Set while `_score_<model>_batches` runs (restored after): the batches are grouped in
#: memory (a hash of 50k-row arrays) instead of sorted on disk at the default 4MB, 0.03 s
#: of 0.15 s fetching 100k rows. The caller's own session settings are left alone.
BATCH_SETTINGS = "SET work_mem = '64MB'"

def arg_type(c: Column) -> str:
    """The SQL type of column `c` as an argument of `score_<model>`: its category type for
    a categorical (a store code is passed as a number), `timestamptz` for a date-time
    trained with a zone (an instant)."""
    if c.type is ColumnType.DATETIME and c.timezone:
        return "timestamptz"
    return (c.category_value_type or c.type).sql_type


@dataclass
class Installed:
    """One model installed in the database."""

    name: str
    ref: str
    version: int | None
    manifest_sha256: str
    changed: bool
    function: str  # the typed function, `score_<stem>` (see names.py)
    query_function: str  # `score_<stem>_query`


def _ident(name: str) -> Any:
    from psycopg import sql
    return sql.Identifier(name)


def _check_superuser(conn: Any) -> None:
    row = conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
    if not row or not row[0]:
        raise ScorehouseError(
            "installing needs a superuser: plpython3u is an untrusted language, so only a "
            "superuser may create functions in it; connect as one (e.g. postgres) and grant "
            "EXECUTE to your application's roles with --grant")


def python_paths() -> list[str]:
    """Where this scorehouse and its dependencies are installed (recorded for the server):
    the folder this scorehouse is imported from first (for a source checkout on PYTHONPATH
    or an editable install, the server then runs the same code), then site-packages."""
    here = str(Path(__file__).resolve().parents[2])
    return list(dict.fromkeys([here, sysconfig.get_paths()["purelib"],
                               sysconfig.get_paths()["platlib"]]))


def _setup(conn: Any, schema: str, paths: list[str]) -> None:
    from psycopg import errors, sql

    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS plpython3u")
    except (errors.UndefinedFile, errors.FeatureNotSupported) as e:
        raise ScorehouseError(
            "PL/Python is not available on the database server: install its package there "
            f"(Debian: postgresql-plpython3-<version>); {str(e).strip()}") from None
    s = _ident(schema)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(s))
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {}.models (name text PRIMARY KEY, ref text NOT NULL, "
        "version integer, manifest_sha256 text NOT NULL, artifact bytea NOT NULL, "
        "installed_at timestamptz NOT NULL DEFAULT now())").format(s))
    conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.config (key text PRIMARY KEY, "
                         "value text NOT NULL)").format(s))
    conn.execute(sql.SQL("INSERT INTO {}.config VALUES ('python_path', %s) ON CONFLICT (key) "
                         "DO UPDATE SET value = excluded.value").format(s),
                 ["\n".join(dict.fromkeys(paths))])
    conn.execute(sql.SQL("REVOKE ALL ON {}.models, {}.config FROM PUBLIC").format(s, s))


def _prelude(schema: str) -> str:
    # Every function body starts here: make scorehouse importable (once per connection),
    # then hand over to scorehouse.sql.plpython.
    query = f"SELECT value FROM {_quoted(schema)}.config WHERE key = 'python_path'"
    # The recorded folders go first on sys.path: the packages scorehouse was installed with
    # win over the system's (a Debian python3-protobuf of another version would otherwise
    # shadow the venv's, break `import onnx`, and quietly cost the tree kernel).
    return f'''
if "scorehouse_ready" not in GD:
    import site, sys
    _q = {query!r}
    _system = list(sys.path)
    for _p in plpy.execute(_q)[0]["value"].split("\\n"):
        site.addsitedir(_p)
    sys.path[:] = [_p for _p in sys.path if _p not in _system] + _system
    GD["scorehouse_ready"] = True
from scorehouse.sql import plpython as _sh
'''


def _quoted(schema: str) -> str:
    """The schema as a quoted SQL identifier, for the SQL that function bodies run."""
    return '"' + schema.replace('"', '""') + '"'


def _function(conn: Any, signature: Any, returns: str, body: str, definer: bool = True,
              settings: str = "") -> None:
    from psycopg import sql

    # SECURITY DEFINER with a fixed search_path: callers need EXECUTE, not table rights.
    # A function that runs the caller's own SQL must run with the caller's rights instead.
    security: sql.Composable = sql.SQL("SECURITY DEFINER SET search_path = pg_catalog, pg_temp" if definer
                       else "SECURITY INVOKER")
    if settings:  # SET clauses: in force while the function runs, restored after each call
        security = sql.SQL("{} {}").format(security, sql.SQL(settings))
    conn.execute(sql.SQL("CREATE OR REPLACE FUNCTION {} RETURNS {} LANGUAGE plpython3u {} AS {}")
                 .format(signature, sql.SQL(returns), security, sql.Literal(body)))


def _generic_functions(conn: Any, schema: str) -> list[Any]:
    from psycopg import sql

    s = _ident(schema)
    lit = repr(_quoted(schema))  # a Python literal in the function body
    # `id` names the row in the prediction log (and comes back in the answer); it was
    # added later: the two-argument function of an older install is replaced.
    conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}.score(text, jsonb)").format(s))
    score = sql.SQL("{}.score(model text, record jsonb, id text DEFAULT NULL)").format(s)
    _function(conn, score, "jsonb", _prelude(schema) +
              f"return _sh.score_json(plpy, GD, {lit}, model, record, id)\n")
    conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}.score_query(text, text, text)").format(s))
    query = sql.SQL("{}.score_query(model text, query text, key text)").format(s)
    _function(conn, query, "TABLE(key text, prediction jsonb, error text)", _prelude(schema) +
              f"return _sh.score_query(plpy, GD, {lit}, model, query, key)\n",
              definer=False)
    return [sql.SQL("{}.score(text, jsonb, text)").format(s),
            sql.SQL("{}.score_query(text, text, text)").format(s)]


def _typed_functions(conn: Any, schema: str, scorer: Scorer, names: SqlNames) -> list[Any]:
    """`score_<model>(col, ...)` for one row and `score_<model>_query(query, key)` for many."""
    from psycopg import sql

    s, name, fn = _ident(schema), scorer.name, names.function
    result_type = sql.SQL("{}.{}").format(s, _ident(names.result_type))
    outputs = output_columns(scorer.task, scorer.classes)
    sql_types = {c: "text" if c == "label" else "double precision" for c in outputs}
    fields: list[sql.Composable] = [sql.SQL("{} {}").format(_ident(c), sql.SQL(t))
                                    for c, t in sql_types.items()]
    fields.append(sql.SQL("model_version integer"))
    args = [sql.SQL("{} {}").format(_ident(c.name), sql.SQL(arg_type(c)))
            for c in scorer.schema.columns]
    arg_types = sql.SQL(", ").join(sql.SQL(arg_type(c)) for c in scorer.schema.columns)
    conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}.{}({})").format(s, _ident(fn), arg_types))
    conn.execute(sql.SQL("DROP TYPE IF EXISTS {} CASCADE").format(result_type))
    conn.execute(sql.SQL("CREATE TYPE {} AS ({})").format(result_type,
                                                          sql.SQL(", ").join(fields)))
    columns = ", ".join(repr(c.name) for c in scorer.schema.columns)
    lit = repr(_quoted(schema))  # a Python literal in the function body
    body = _prelude(schema) + (
        f"_args = dict(zip([{columns}], args))\n"
        f"return _sh.score_typed(plpy, GD, {lit}, {name!r}, _args)\n")
    signature = sql.SQL("{}.{}({})").format(s, _ident(fn), sql.SQL(", ").join(args))
    _function(conn, signature, result_type.as_string(conn), body)
    functions = [sql.SQL("{}.{}({})").format(s, _ident(fn), arg_types),
                 *_query_functions(conn, schema, names, sql_types, scorer.classes)]
    # The catalog's record of the model each object scores: the next install checks it.
    for f in functions:
        conn.execute(sql.SQL("COMMENT ON FUNCTION {} IS {}").format(f, sql.Literal(names.comment)))
    conn.execute(sql.SQL("COMMENT ON TYPE {} IS {}").format(result_type,
                                                           sql.Literal(names.comment)))
    return functions


def _query_functions(conn: Any, schema: str, names: SqlNames, sql_types: dict[str, str],
                     classes: Sequence[Any] | None) -> list[Any]:
    """`score_<model>_query(query, key, batch_rows)`: typed rows out, set-based.

    A PL/Python function yields each batch's columns as array literals and a SQL function
    unnests them, so no value goes through PL/Python's per-value conversion on the way out.
    Both run as the caller, whose query they run. The SQL function is STABLE so that the
    planner inlines it into the calling query (no second copy of every row); the PL/Python
    one it calls stays VOLATILE.
    """
    from psycopg import sql

    s, model = _ident(schema), names.model
    batches, query = _ident(names.batches), _ident(names.query)
    lit = repr(_quoted(schema))  # a Python literal in the function body
    arrays = [sql.SQL("{} text").format(_ident(f"_{c}")) for c in ("key", *sql_types, "error")]
    conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}.{}(text, text, integer)").format(s, query))
    conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}.{}(text, text, integer)").format(s, batches))
    _function(conn, sql.SQL("{}.{}(query text, key text, batch_rows integer)").format(s, batches),
              sql.SQL("TABLE(_version integer, {})").format(sql.SQL(", ").join(arrays))
              .as_string(conn),
              _prelude(schema) + f"return _sh.score_batches(plpy, GD, {lit}, {model!r}, "
              "query, key, batch_rows)\n", definer=False, settings=BATCH_SETTINGS)
    typed = {"key": "text", **sql_types, "error": "text"}
    # unnest in the select list: the arrays are walked in step (the shorter padded with
    # NULL, as the empty errors array is), and no per-array tuplestore is built.
    out = [sql.SQL("unnest(b.{}::{}[]) AS {}").format(_ident(f"_{c}"), sql.SQL(t), _ident(c))
           for c, t in typed.items()]
    columns = sql.SQL(", ").join(sql.SQL("{} {}").format(_ident(c), sql.SQL(t))
                                 for c, t in typed.items() if c != "error")
    body = sql.SQL("SELECT {out}, b._version AS model_version, {error} FROM {s}.{batches}("
                   "query, key, batch_rows) b").format(
        out=sql.SQL(", ").join(out[:-1]), error=out[-1], s=s, batches=batches)
    pair = complement(list(sql_types))
    if pair and classes:  # columns a batch may leave to SQL, as NULLs (see _left_to_sql)
        first, second = (_ident(c) for c in pair)
        p_first = sql.SQL("coalesce({}, float8 '1' - {})").format(first, second)
        label = sql.SQL("coalesce(label, CASE WHEN {s} > {f} THEN {one} WHEN {s} <= {f} "
                        "THEN {zero} END)").format(s=second, f=p_first,
                                                  one=sql.Literal(label_text(classes[1])),
                                                  zero=sql.Literal(label_text(classes[0])))
        derived = {pair[0]: p_first, "label": label}
        outer = [sql.SQL("{} AS {}").format(derived[c], _ident(c)) if c in derived
                 else _ident(c) for c in typed if c != "error"]
        body = sql.SQL("SELECT {}, model_version, error FROM ({}) u").format(
            sql.SQL(", ").join(outer), body)
    conn.execute(sql.SQL(
        "CREATE FUNCTION {}.{}(query text, key text, batch_rows integer DEFAULT {}) "
        "RETURNS TABLE({}, model_version integer, error text) LANGUAGE sql STABLE "
        "SECURITY INVOKER AS {}").format(s, query, sql.Literal(TYPED_BATCH), columns,
                        sql.Literal(body.as_string(conn))))
    return [sql.SQL("{}.{}(text, text, integer)").format(s, f) for f in (batches, query)]


def _store(conn: Any, schema: str, scorer: Scorer, ref: str, data: bytes) -> bool:
    from psycopg import sql

    s = _ident(schema)
    old = conn.execute(sql.SQL("SELECT manifest_sha256 FROM {}.models WHERE name = %s")
                       .format(s), [scorer.name]).fetchone()
    conn.execute(sql.SQL(
        "INSERT INTO {}.models (name, ref, version, manifest_sha256, artifact) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET ref = excluded.ref, "
        "version = excluded.version, manifest_sha256 = excluded.manifest_sha256, "
        "artifact = excluded.artifact, installed_at = now()").format(s),
        [scorer.name, ref, scorer.version, scorer.artifact.manifest_sha256, data])
    return old is None or old[0] != scorer.artifact.manifest_sha256


def _resolve(registry: Registry, ref: str) -> tuple[Scorer, bytes]:
    art, mv = registry.load_artifact(ref)
    return Scorer(art, version=mv.version, ref=ref), registry.store.get(mv.artifact_uri)


def install(url: str, refs: list[str], *, registry: Registry, schema: str = "scorehouse",
            grant: list[str] | None = None, python_path: list[str] | None = None,
            log_table: str | None = None) -> list[Installed]:
    """Install (idempotently) the scoring functions and the models `refs` into `schema`.

    `log_table`: the functions of these models log every row they score into this table
    (`name` or `schema.name`, created if missing) in the caller's transaction; None: they
    log nothing (an earlier install's log table is forgotten). See `sql.predlog`.

    Raises:
        ScorehouseError: not a superuser, no PL/Python, a model name another model's
            functions hold; UsageError: `log_table` is not a table name.
    """
    from psycopg import sql

    for ref in refs:
        registry_ref(ref)  # a malformed reference fails here, before any change
    with connect(url) as conn:
        _check_superuser(conn)
        _setup(conn, schema, python_path or python_paths())
        functions = _generic_functions(conn, schema)
        done = []
        for ref in refs:
            scorer, data = _resolve(registry, ref)
            names = names_for(scorer.name)
            claim(conn, schema, names)  # refuses a name another model's functions hold
            changed = _store(conn, schema, scorer, ref, data)
            configure_log(conn, _ident(schema), scorer.name, log_table)
            functions.extend(_typed_functions(conn, schema, scorer, names))
            done.append(Installed(scorer.name, ref, scorer.version,
                                  scorer.artifact.manifest_sha256, changed, names.function,
                                  names.query))
        for f in functions:
            conn.execute(sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(f))
        for role in grant or []:
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(_ident(schema),
                                                                        _ident(role)))
            # score_query runs as its caller, who must read the installed model.
            conn.execute(sql.SQL("GRANT SELECT ON {}.models, {}.config TO {}").format(
                _ident(schema), _ident(schema), _ident(role)))
            for f in functions:
                conn.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(f, _ident(role)))
            if log_table is not None:  # the set-based functions run (and log) as the caller
                conn.execute(sql.SQL("GRANT INSERT ON {} TO {}").format(
                    sql.SQL(quoted_table(conn, log_table)), _ident(role)))
        conn.execute(sql.SQL("NOTIFY scorehouse_models"))
    return done


def sync(url: str, *, registry: Registry, schema: str = "scorehouse") -> list[Installed]:
    """Re-resolve every installed reference; copy in the versions whose alias moved."""
    from psycopg import errors, sql

    with connect(url) as conn:
        try:
            rows = conn.execute(sql.SQL("SELECT name, ref FROM {}.models ORDER BY name")
                                .format(_ident(schema))).fetchall()
        except errors.UndefinedTable:
            raise NotFoundError(f"nothing is installed in schema {schema}; run scorehouse db "
                                "install first") from None
        done = []
        for name, ref in rows:
            scorer, data = _resolve(registry, ref)
            changed = _store(conn, schema, scorer, ref, data)
            names = names_for(name)
            done.append(Installed(name, ref, scorer.version, scorer.artifact.manifest_sha256,
                                  changed, names.function, names.query))
        if any(d.changed for d in done):
            conn.execute(sql.SQL("NOTIFY scorehouse_models"))
    return done


