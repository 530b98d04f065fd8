"""What runs inside PostgreSQL: PL/Python function bodies call these with `plpy` and `GD`.

A model is loaded once per database connection and kept in GD with the manifest hash it
was loaded from; every call compares that hash with the installed one (one indexed lookup,
a cached plan), so after `scorehouse db sync` the next call scores with the new version.
A model installed with a log table logs every call's rows in the caller's transaction
(`predlog.logged`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from ..artifact import read_bytes
from ..schema.arrays import loose_array
from ..scorer import Result, Scorer, ScorerCache
from .predlog import LOG_TABLES, log_table, logged

#: Rows fetched and scored per round in the set-based function.
BATCH = 10_000
#: Rows per round in the typed set-based function (its `batch_rows` argument's default):
#: from 32,768 rows up, a batch is scored on every core.
TYPED_BATCH = 50_000
#: text and varchar: batches of these travel as UTF-8 bytes (`_text_column`).
TEXT_TYPES = {25, 1043}
_END, _NULL = b"\xff", b"\xfe"


def scorer(plpy: Any, gd: dict[str, Any], schema: str, model: str) -> Scorer:
    """The Scorer of installed model `model`, reloaded when its installed hash changes.

    GD (one dict per database connection) keeps the prepared plans and the connection's
    `ScorerCache`, keyed by (schema, model). The same lookup reads the model's log table
    (`predlog.LOG_TABLES` in GD, for `predlog.logged`): no second query per call.
    """
    plans = gd.setdefault("scorehouse_plans", {})
    key = (schema, "hash and log table")
    if key not in plans:
        plans[key] = plpy.prepare(
            f"SELECT m.manifest_sha256, c.value AS log_table FROM {schema}.models m "
            f"LEFT JOIN {schema}.config c ON c.key = 'log_table:' || m.name "
            "WHERE m.name = $1", ["text"])
    rows = plpy.execute(plans[key], [model])
    if not rows:
        names = [r["name"] for r in plpy.execute(f"SELECT name FROM {schema}.models ORDER BY 1")]
        plpy.error(f"scorehouse: no model {model!r} is installed in schema {schema}",
                   hint=f"installed: {', '.join(names) or 'none'}; run scorehouse db install",
                   sqlstate="42704")  # undefined_object
    gd.setdefault(LOG_TABLES, {})[(schema, model)] = rows[0]["log_table"]
    cache = gd.get("scorehouse_scorers")
    if cache is None:
        # Not prepared ahead: a connection may score one row, and pays only what it uses.
        cache = gd["scorehouse_scorers"] = ScorerCache(lambda k: _installed(plpy, *k),
                                                       prepare=False)
    return cache.get((schema, model), rows[0]["manifest_sha256"])


def _installed(plpy: Any, schema: str, model: str) -> Scorer:
    """The loader of GD's ScorerCache: the installed artifact, trusted by its recorded hash."""
    row = plpy.execute(plpy.prepare(
        f"SELECT artifact, manifest_sha256, version FROM {schema}.models WHERE name = $1",
        ["text"]), [model])[0]
    # The hash recorded at install (from the registry) is what makes the pickle trusted.
    art = read_bytes(bytes(row["artifact"]), f"{schema}.models[{model}]",
                     expected_sha256=row["manifest_sha256"])
    return Scorer(art, version=row["version"], ref=model)


def _fail(plpy: Any, result: Result, model: str) -> None:
    plpy.error(f"scorehouse: {model}: {result.rejects[0].problem}",
               detail="; ".join(str(x) for x in result.rejects[:5]),
               sqlstate="22023")  # invalid_parameter_value


def _answer(result: Result, rec: dict[str, Any]) -> dict[str, Any]:
    """One record of `result.to_records()` as the SQL functions answer it."""
    rec.pop("row", None)
    rec["model"], rec["version"] = result.model, result.version
    return rec


def score_json(plpy: Any, gd: dict[str, Any], schema: str, model: str, row: str | None,
               row_id: str | None = None) -> str:
    """`schema.score(model, jsonb[, id])`: one row as JSON in, its prediction as JSON out.

    When the model logs (`--log-table`), the row is logged under `row_id` (the trigger
    passes the profile's key), or a generated uuid7 when NULL; either comes back as the
    answer's `id`, the key to join late labels by."""
    if row is None:
        plpy.error("scorehouse: the row is NULL", sqlstate="22004")  # null_value_not_allowed
    record = json.loads(row)  # type: ignore[arg-type]  # plpy is untyped: plpy.error raises
    if not isinstance(record, dict):
        plpy.error("scorehouse: the row must be a JSON object (row_to_json(t)::jsonb)",
                   sqlstate="22023")
    s = scorer(plpy, gd, schema, model)
    if row_id is None and log_table(gd, schema, model) is not None:
        from ..monitor.log.records import new_id  # only a logging model pays the import

        row_id = new_id()
    result = logged(plpy, gd, schema, s, lambda: s.predict(record),
                    None if row_id is None else (lambda: [row_id]))
    if result.rejects:
        _fail(plpy, result, model)
    answer = _answer(result, result.to_records()[0])
    if row_id is not None:
        answer["id"] = row_id
    return json.dumps(answer)


def score_typed(plpy: Any, gd: dict[str, Any], schema: str, model: str,
                args: Mapping[str, Any]) -> dict[str, Any]:
    """`schema.score_<model>(col, ...)`: typed arguments in, a composite row out."""
    s = scorer(plpy, gd, schema, model)
    result = logged(plpy, gd, schema, s, lambda: s.predict(dict(args)))
    if result.rejects:
        _fail(plpy, result, model)
    return _composite(result, 0)


def _composite(result: Result, i: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, values in result.columns().items():
        v = values[i]
        out[name] = v.item() if hasattr(v, "item") else v
    if "label" in out:
        out["label"] = None if out["label"] is None else str(out["label"])
    out["model_version"] = result.version
    return out


def score_query(plpy: Any, gd: dict[str, Any], schema: str, model: str, query: str,
                key: str) -> Iterator[tuple[str | None, str | None, str | None]]:
    """`schema.score_query(model, query, key)`: every row of `query`, scored in batches.

    Each batch goes to the scorer as Arrow columns (the records path costs several times
    more). Rows that fail validation come back with `error` set and no prediction, so none
    is lost.
    """
    s = scorer(plpy, gd, schema, model)
    cursor = plpy.cursor(query)
    while True:
        rows = cursor.fetch(BATCH)
        if not rows:
            break
        names = list(rows[0].keys())
        if key not in names:
            plpy.error(f"scorehouse: the query has no column {key!r} to key the results by",
                       sqlstate="42703")  # undefined_column
        columns = {n: [r[n] for r in rows] for n in names}
        table = pa.table({n: loose_array(v) for n, v in columns.items()})
        result = logged(plpy, gd, schema, s, functools.partial(s.predict, table),
                        functools.partial(columns.__getitem__, key))
        answers = dict(zip(result.rows.tolist(), _json_rows(result), strict=True))
        problems = _problems(result)
        for pos, k in enumerate(columns[key]):
            text = None if k is None else str(k)
            answer = answers.get(pos)
            if answer is not None:
                yield text, answer, None
            else:
                yield text, None, problems.get(pos, "rejected")


def _problems(result: Result) -> dict[int, str]:
    """Each refused row's problems, joined: the `error` the set-based functions return."""
    problems: dict[int, list[str]] = {}
    for rej in result.rejects:
        problems.setdefault(rej.row, []).append(rej.problem)
    return {row: "; ".join(p) for row, p in problems.items()}


def _json_rows(result: Result) -> list[str]:
    """One JSON prediction per scored row, as `score` answers it."""
    return [orjson.dumps(_answer(result, rec)).decode() for rec in result.to_records()]


def score_batches(plpy: Any, gd: dict[str, Any], schema: str, model: str, query: str, key: str,
                  batch_rows: int) -> Iterator[tuple[Any, ...]]:
    """`schema._score_<model>_batches(query, key, batch_rows)`: every row of `query`, scored.

    Yields one row per batch: the model version, then one PostgreSQL array literal per
    column (keys, prediction columns, errors), which `score_<model>_query` unnests.
    PostgreSQL hands each batch over as one array per column (array_agg; text as one bytes
    value, `_text_column`), only the columns the model reads and the key, and takes the
    results back as array literals it parses in C: row by row, PL/Python would build a dict
    per row on the way in and convert every value through text on the way out, together
    several times the cost of scoring.
    """
    if batch_rows is None or batch_rows < 1:
        plpy.error("scorehouse: batch_rows must be a positive number of rows", sqlstate="22023")
    s = scorer(plpy, gd, schema, model)
    query = query.strip().rstrip(";")
    shape = plpy.execute(f"SELECT * FROM ({query}) q LIMIT 0")
    names = shape.colnames()
    if key not in names:
        plpy.error(f"scorehouse: the query has no column {key!r} to key the results by",
                   sqlstate="42703")  # undefined_column
    wanted = [n for n in dict.fromkeys(names) if n == key or n in s.schema.names]
    twice = [n for n in wanted if names.count(n) > 1]
    if twice:
        plpy.error(f"scorehouse: the query has more than one column named {twice[0]!r}",
                   sqlstate="42702")  # ambiguous_column
    q = [plpy.quote_ident(n) for n in wanted]
    types = dict(zip(names, shape.coltypes(), strict=True))
    to_utf8 = _utf8_bytes(plpy)
    aggregates = ", ".join(_aggregate(c, to_utf8 if types[n] in TEXT_TYPES else None)
                           for n, c in zip(wanted, q, strict=True))
    batched = (f"SELECT {aggregates} FROM (SELECT {', '.join(q)}, row_number() OVER () - 1 "
               f"AS scorehouse_n FROM ({query}) q) b GROUP BY scorehouse_n / {int(batch_rows)}")
    cursor = plpy.cursor(batched)

    def predict(table: pa.Table) -> Result:
        return logged(plpy, gd, schema, s, lambda: s.predict(table),
                      lambda: table.column(key).to_pylist())
    while True:
        got = cursor.fetch(1)
        if not got:
            return
        yield _scored_literals(s, got[0], key, predict)


def complement(columns: Sequence[str]) -> tuple[str, str] | None:
    """A two-class model's probability columns (first, second), of which `_left_to_sql`
    may leave the first, and the label, for `score_<model>_query` to compute."""
    probabilities = [c for c in columns if c.startswith("probability_")]
    return (probabilities[0], probabilities[1]) if len(probabilities) == 2 else None


def label_text(label: Any) -> str:
    """A class label as the array literals spell it (Arrow's text of the value)."""
    return pc.cast(pa.array([label]), pa.string())[0].as_py()


def _left_to_sql(columns: dict[str, Any], classes: Sequence[Any] | None) -> dict[str, Any]:
    """The batch's prediction columns, None for those `score_<model>_query` computes itself.

    For a two-class model whose first probability is exactly 1 - the second (as the tree
    kernel computes them), PostgreSQL's float8 `1 - second` is the same double; where every
    label is the class of the larger probability (the first on a tie), so is its CASE. One
    column of 17-digit numbers and one of text less to print, and for PostgreSQL to parse:
    about a tenth of a 100k-row run. Checked on every batch; otherwise all columns go back.
    """
    pair = complement(list(columns))
    if pair is None or not classes:
        return columns
    first, second = columns[pair[0]], columns[pair[1]]
    if np.array_equal(first, 1.0 - second):
        columns[pair[0]] = None
    labels = columns.get("label")
    if labels is not None and np.isfinite(first).all() and np.isfinite(second).all():
        larger = np.asarray(classes, dtype=object)[(second > first).astype(np.intp)]
        if (np.asarray(labels, dtype=object) == larger).all():
            columns["label"] = None
    return columns


def _utf8_bytes(plpy: Any) -> str | None:
    """The SQL function giving a text value's UTF-8 bytes here, or None (SQL_ASCII: text is
    unchecked bytes, so it travels as arrays). textsend sends the client's encoding: where
    both are UTF-8 it copies the bytes, without convert_to's lookup of the encoding by name
    for every value (a twentieth of the time of a 100k-row run)."""
    server, client = plpy.execute("SELECT current_setting('server_encoding') AS s, "
                                  "current_setting('client_encoding') AS c")[0].values()
    if server == "SQL_ASCII":
        return None
    return "textsend({})" if server == client == "UTF8" else "convert_to({}, 'UTF8')"


def _aggregate(column: str, to_utf8: str | None) -> str:
    """The aggregate that hands a batch of one column to Python (see `_text_column`)."""
    if to_utf8:
        return (f"string_agg(coalesce({to_utf8.format(column)}, decode('{_NULL.hex()}', "
                f"'hex')), decode('{_END.hex()}', 'hex')) AS {column}")
    return f"array_agg({column}) AS {column}"


def _text_column(data: bytes) -> pa.Array:
    """A text column from the bytes of `_aggregate`: each value's UTF-8 bytes, separated by
    0xFF, 0xFE for NULL. Neither byte occurs in UTF-8, so no value can be mistaken for a
    separator; PostgreSQL builds one string instead of an array of text values, and Python
    splits it in Arrow instead of making a str per value (which, the other way, was a fifth
    of a query's time on the benchmark's table: BENCHMARKS.md)."""
    parts = pc.split_pattern(pa.array([data], pa.large_binary()), _END).flatten()
    null = pc.equal(parts, pa.scalar(_NULL, pa.large_binary()))
    return pc.if_else(null, pa.scalar(None, pa.large_binary()), parts).cast(pa.large_string())


def _scored_literals(s: Scorer, columns: Mapping[str, Any], key: str,
                     predict: Callable[[pa.Table], Result] | None = None) -> tuple[Any, ...]:
    """(version, keys, one literal per prediction column, errors) of one batch's columns,
    scored by `predict` (default `s.predict`)."""
    table = pa.table({name: _text_column(v) if isinstance(v, bytes) else loose_array(v)
                      for name, v in columns.items()})
    n = table.num_rows
    result = (predict or s.predict)(table)
    missing = np.ones(n, bool)  # rows without a prediction: rejected
    missing[result.rows] = False
    out = [_array_literal(table.column(key).combine_chunks())]
    every = len(result.rows) == n  # no row refused: the columns are already full length
    predictions = _left_to_sql(result.columns(), s.classes)
    for values in predictions.values():
        if values is None:
            out.append("{}")
            continue
        if every:
            out.append(_array_literal(pa.array(values)))
            continue
        full = np.empty(n, values.dtype)
        full[result.rows] = values
        out.append(_array_literal(pa.array(full, mask=missing)))
    if not result.rejects:  # unnest pads the shorter arrays with NULL
        out.append("{}")
        return (result.version, *out)
    problems = _problems(result)
    errors = pa.array([problems.get(i, "rejected") if m else None
                       for i, m in enumerate(missing.tolist())], pa.string())
    out.append(_array_literal(errors))
    return (result.version, *out)


def _array_literal(values: pa.Array) -> str:
    """`values` as a PostgreSQL array literal: numbers in shortest round-trip form, text
    quoted and escaped, NULL for nulls."""
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        # Digits, sign, point, exponent: nothing to quote. Floats in the shortest form that
        # reads back to the same double.
        text = pc.cast(values, pa.string())
    else:  # keys and labels of any other type: as quoted, escaped text
        values = pc.cast(values, pa.string())
        text = pc.replace_substring(values, "\\", "\\\\")
        text = pc.replace_substring(text, '"', '\\"')
        text = pc.binary_join_element_wise('"', text, '"', "")
    text = pc.fill_null(text, "NULL")
    # Joined by Arrow as one list of all the values: no Python string per value.
    whole = pa.ListArray.from_arrays(pa.array([0, len(text)], pa.int32()), text)
    return "{" + pc.binary_join(whole, ",")[0].as_py() + "}"
