"""`scorehouse.sql.register(con, "churn@production")`: a `score_<model>` SQL function on a
DuckDB connection (vectorised over Arrow batches) or a sqlite3 connection (row by row)."""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from ..errors import ScorehouseError
from ..loading import load
from ..registry import Registry
from ..registry.refs import ModelRef
from ..scorer import Result, Scorer, output_columns
from .names import names_for


@dataclass
class Registered:
    """A function registered on a connection; `errors` keeps why rows were refused."""

    name: str
    scorer: Scorer
    errors: list[str] = field(default_factory=list)


def function_name(model: str) -> str:
    """`score_<stem>`, the scoring function's name in every database (see names.py)."""
    return names_for(model).function


def register(con: Any, ref: str | ModelRef, *, registry: Registry | None = None, name: str | None = None,
             trust: bool = False) -> Registered:
    """Register `score_<model>(col, ...)` on a DuckDB or sqlite3 connection."""
    scorer = load(ref, registry=registry, trust=trust)  # a path never opens the registry
    reg = Registered(name or function_name(scorer.name), scorer)
    kind = type(con).__module__.split(".")[0].lstrip("_")
    if kind == "duckdb":
        _duckdb(con, reg)
    elif kind == "sqlite3":
        _sqlite(con, reg)
    else:
        raise ScorehouseError(f"cannot register a function on a {type(con).__name__}: pass a "
                              "duckdb or sqlite3 connection")
    return reg


def _refuse(reg: Registered, result: Result) -> None:
    problems = "; ".join(str(r) for r in result.rejects[:5])
    message = f"{reg.name}: {result.n_rejected} row(s) rejected: {problems}"
    reg.errors.append(message)
    raise ValueError(message)


def _duckdb(con: Any, reg: Registered) -> None:
    import duckdb

    s = reg.scorer
    names = s.schema.names
    outputs = output_columns(s.task, s.classes)
    fields = {c: "VARCHAR" if c == "label" else "DOUBLE" for c in outputs}
    fields["model_version"] = "INTEGER"

    def score(*columns: Any) -> pa.Array:
        table = pa.table({n: c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c
                          for n, c in zip(names, columns, strict=True)})
        result = s.predict(table)
        if result.rejects:
            _refuse(reg, result)
        arrays = []
        for c, values in result.columns().items():
            arrays.append(pa.array([str(v) for v in values], pa.string()) if c == "label"
                          else pa.array(values, pa.float64()))
        arrays.append(pa.array([s.version] * result.n_scored, pa.int32()))
        return pa.StructArray.from_arrays(arrays, names=list(fields))

    # DuckDB counts the function's parameters: give the varargs one a parameter per column.
    score.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(f"c{i}", inspect.Parameter.POSITIONAL_ONLY) for i in range(len(names))])
    con.create_function(reg.name, score, [duckdb.sqltype(c.type.duckdb_type)
                                          for c in s.schema.columns],
                        duckdb.struct_type(fields), type="arrow", null_handling="special")


def _sqlite(con: Any, reg: Registered) -> None:
    s = reg.scorer
    names = s.schema.names

    def score(*values: Any) -> str:
        result = s.predict(dict(zip(names, values, strict=True)))
        if result.rejects:
            _refuse(reg, result)
        rec = result.to_records()[0]
        rec.pop("row", None)
        rec["model_version"] = s.version
        return json.dumps(rec)

    # SQLite functions return one value: the prediction as JSON (json_extract reads it).
    con.create_function(reg.name, len(names), score, deterministic=True)
