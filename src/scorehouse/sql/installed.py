"""A model installed in `<schema>.models`, read back by a client of the database.

`db install` copies each artifact there with the manifest hash the registry recorded: that
hash is what trusts the pickled code in it, and what tells a long-lived reader (the outbox
worker) that `db sync` installed another version. (Inside the server, the PL/Python functions
read the same table through `plpy`: see plpython.py.)
"""

from __future__ import annotations

from typing import Any

from ..artifact import Artifact, read_bytes
from ..errors import NotFoundError
from ..scorer import Scorer


def _row(conn: Any, schema: str, model: str, columns: str) -> tuple[Any, ...]:
    from psycopg import errors, sql

    try:
        row = conn.execute(sql.SQL(f"SELECT {columns} FROM {{}}.models WHERE name = %s").format(
            sql.Identifier(schema)), [model]).fetchone()
    except errors.UndefinedTable:
        row = None
    if row is None:
        raise NotFoundError(f"model {model!r} is not installed in schema {schema}; run "
                            "scorehouse db install first")
    return row


def installed_hash(conn: Any, schema: str, model: str) -> str:
    """The manifest hash (hex sha256) of `model` as installed now: one indexed lookup.

    Raises:
        NotFoundError: the model (or the schema's models table) is not installed.
    """
    return _row(conn, schema, model, "manifest_sha256")[0]


def installed_artifact(conn: Any, schema: str, model: str) -> tuple[Artifact, int | None]:
    """(the installed artifact of `model`, its registry version), checked against the hash
    recorded at install (which trusts its pickled code).

    Raises:
        NotFoundError: the model (or the schema's models table) is not installed.
        IntegrityError: the stored bytes do not match the recorded hash.
    """
    data, sha, version = _row(conn, schema, model, "artifact, manifest_sha256, version")
    return read_bytes(bytes(data), f"{schema}.models[{model}]", expected_sha256=sha), version


def installed_scorer(conn: Any, schema: str, model: str) -> Scorer:
    """A Scorer of the installed `model` (the loader of the worker's `ScorerCache`).

    Raises:
        NotFoundError, IntegrityError: as `installed_artifact`.
    """
    art, version = installed_artifact(conn, schema, model)
    return Scorer(art, version=version, ref=model)
