"""Which model an existing PostgreSQL function scores: the check before `db install` replaces it.

`db install` writes `COMMENT ON FUNCTION ... IS 'scorehouse model: <name>'` on every function
(and the result type) it creates. Before creating a model's objects it reads the catalog:
an object of the same name that scores another model, or that scorehouse did not create,
is refused with a ConflictError (exit 6) instead of being replaced. Objects from installs
made before the comment existed are recognised by the model name in their PL/Python body.
"""

from __future__ import annotations

import ast
from typing import Any

from ..errors import ConflictError
from .names import COMMENT_PREFIX, SqlNames

_OBJECTS = """
SELECT p.oid::regprocedure::text, obj_description(p.oid, 'pg_proc'), l.lanname, p.prosrc
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
JOIN pg_language l ON l.oid = p.prolang
WHERE n.nspname = %(schema)s AND p.proname = ANY(%(functions)s)
UNION ALL
SELECT format('type %%s', t.oid::regtype), obj_description(t.oid, 'pg_type'), NULL, NULL
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = %(schema)s AND t.typname = %(type)s
"""


def claim(conn: Any, schema: str, names: SqlNames) -> None:
    """Check that the objects `names` would create or replace in `schema` are free or
    already this model's.

    Raises ConflictError naming the object and the model (or the absence of one) it
    belongs to.
    """
    rows = conn.execute(_OBJECTS, {"schema": schema, "type": names.result_type,
                                   "functions": [names.function, names.query, names.batches]}
                        ).fetchall()
    owners = {obj: _owner(comment, language, source) for obj, comment, language, source in rows}
    # Known by the body only (installs before the comment): a SQL function or a type
    # belongs to whichever model the PL/Python functions beside it score.
    known = {m for m in owners.values() if m is not None}
    for obj, owner in owners.items():
        if owner is None and len(known) == 1:
            owner = next(iter(known))
        if owner == names.model:
            continue
        whose = (f"it scores model {owner!r}" if owner is not None
                 else "scorehouse db install did not create it")
        raise ConflictError(
            f"cannot install model {names.model!r}: its SQL name is {schema}.{names.function}, "
            f"and {obj} already exists in schema {schema}, but {whose}; drop it or install "
            "into another --schema")


def _owner(comment: str | None, language: str | None, source: str | None) -> str | None:
    """The model an object scores, by its comment or its PL/Python body; None if unknown."""
    if comment is not None:
        return comment[len(COMMENT_PREFIX):] if comment.startswith(COMMENT_PREFIX) else None
    if language != "plpython3u" or not source:
        return None
    # The body ends with `return _sh.score_typed(plpy, GD, <schema>, <model>, ...)` (or
    # score_batches): the model is the fourth argument, a string literal.
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "_sh"
                and len(node.args) > 3 and isinstance(node.args[3], ast.Constant)
                and isinstance(node.args[3].value, str)):
            return node.args[3].value
    return None
