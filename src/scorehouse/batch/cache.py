"""A Redis cache of scores: one hash per key with the prediction, model version and time.

A front end reads a precomputed score with one HGETALL (`lookup`). Hashes are written with
pipelining, a few thousand commands per round trip; Redis has no transaction that spans a
run, so a failed run leaves the hashes it wrote (each one a complete, correct score).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from .. import connections
from ..errors import ScorehouseError
from .sources_sinks import Sink

#: Hash names: scorehouse:<model>:<key value>.
PREFIX = "scorehouse"
#: Commands sent per round trip.
PIPELINE = 5000


def hash_name(model: str, key: Any) -> str:
    """The Redis key of one row's scores."""
    return f"{PREFIX}:{model}:{key}"


def _client(url: str) -> Any:
    return connections.redis(url)


class RedisSink(Sink):
    """Writes each scored row's prediction columns to the hash named by its `key` column."""

    def __init__(self, url: str, *, key: str, model: str, version: int | None,
                 fields: list[str], ttl: int | None = None):
        self.url, self.key, self.model, self.version = url, key, model, version
        self.fields, self.ttl = fields, ttl
        self.rows = 0
        self.missing_key = 0
        self.client = _client(url)

    def write(self, table: pa.Table) -> None:
        """HSET one hash per row (and EXPIRE with a TTL), pipelined."""
        if self.key not in table.column_names:
            raise ScorehouseError(f"--key {self.key!r} is not a column of the input")
        keys = table.column(self.key).to_pylist()
        values = {f: table.column(f).to_pylist() for f in self.fields}
        stamp = datetime.now(timezone.utc).isoformat()
        common = {"model": self.model, "model_version": "" if self.version is None
                  else str(self.version), "scored_at": stamp}
        pipe = self.client.pipeline(transaction=False)
        for i, k in enumerate(keys):
            if k is None or k == "":
                self.missing_key += 1  # scored, but no hash can be named for it
                continue
            name = hash_name(self.model, k)
            pipe.hset(name, mapping={**{f: _text(values[f][i]) for f in self.fields}, **common})
            if self.ttl:
                pipe.expire(name, self.ttl)
            self.rows += 1
            if len(pipe) >= PIPELINE:
                pipe.execute()
        pipe.execute()

    def commit(self, empty_schema: pa.Schema) -> None:
        """Nothing to finish: every hash is complete when written."""
        self.client.close()

    def abort(self) -> None:
        """Hashes already written stay (each is a complete score); close the connection."""
        self.client.close()

    def describe(self) -> dict[str, Any]:
        """The Redis target, for the run manifest."""
        return {"uri": self.url, "format": "redis", "key": self.key,
                "hashes": f"{PREFIX}:{self.model}:<{self.key}>", "rows": self.rows,
                "rows_without_key": self.missing_key, "ttl": self.ttl}


def _text(v: Any) -> str:
    return "" if v is None else repr(v) if isinstance(v, float) else str(v)


def lookup(url: str, model: str, key: str) -> dict[str, str] | None:
    """The cached scores of one key, or None when there are none."""
    client = _client(url)
    try:
        data = client.hgetall(hash_name(model, key))
    finally:
        client.close()
    return {k.decode(): v.decode() for k, v in data.items()} or None
