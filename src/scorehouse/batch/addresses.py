"""From the address a user typed (a path, '-', a database URL, redis://) to the adapter
that serves it: a Source, a Sink, and where a run's side files go."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ScorehouseError
from ..scorer import Scorer, output_columns
from ..scorer.runs import run_folder
from .formats import FileSink, format_of, open_file
from .sources_sinks import Sink, Source

DATABASE_SCHEMES = ("postgresql", "postgres", "sqlite", "duckdb")


def is_database(uri: str) -> bool:
    """True for postgresql://, sqlite:/// and duckdb:/// URLs."""
    return urlsplit(uri).scheme.split("+")[0] in DATABASE_SCHEMES


def open_input(uri: str, *, fmt: str | None = None, query: str | None = None,
               chunk_rows: int = 49152, categorical: Sequence[str] = ()) -> Source:
    """A Source for a file, a folder/glob of Parquet, '-' (stdin) or a database table/query;
    `categorical`: the model's text columns (see `formats.files.open_file`)."""
    if is_database(uri):
        from .database import open_table
        return open_table(uri, query, chunk_rows)
    if query:
        raise ScorehouseError("--query needs a database input (postgresql://, sqlite:///, duckdb:///)")
    return open_file(uri, format_of(uri, fmt), chunk_rows, categorical)


def open_output(uri: str, *, fmt: str | None = None, key: str | None = None) -> Sink:
    """A Sink for a file, '-' (stdout) or a database table (upsert by `key` when given)."""
    if is_database(uri):
        from .database import TableSink
        return TableSink(uri, key)
    fmt = format_of(uri, fmt)
    if fmt == "csv" and uri.lower().endswith((".gz", ".zst", ".zstd")):
        raise ScorehouseError("compressed output is not supported; write .csv or .parquet "
                              "(Parquet is compressed with zstd)")
    return FileSink(uri, fmt)


def open_cache(uri: str, *, key: str | None, scorer: Scorer | None, ttl: int | None,
               model: str | None = None, fields: Sequence[str] | None = None) -> Sink:
    """A Sink that writes each row's scores to a Redis hash keyed by the `key` column:
    `scorer`'s outputs, or (a deployment's) the `fields` under the name `model`."""
    if urlsplit(uri).scheme not in ("redis", "rediss", "unix"):
        raise ScorehouseError(f"--to expects a redis:// URL, got {uri!r}")
    if not key:
        raise ScorehouseError("--to redis://... needs --key COLUMN: the column whose value "
                              "names each row's hash")
    from .cache import RedisSink
    if scorer is not None:
        return RedisSink(uri, key=key, model=scorer.name, version=scorer.version,
                         fields=output_columns(scorer.task, scorer.classes), ttl=ttl)
    assert model is not None and fields is not None  # the deployment's name and columns
    return RedisSink(uri, key=key, model=model, version=None, fields=list(fields), ttl=ttl)


def side_files(output: str | None, model: str) -> tuple[Path, Path]:
    """(rejects CSV, run manifest) beside a file output, else in $SCOREHOUSE_HOME/runs."""
    if output and output != "-" and not is_database(output):
        return Path(f"{output}.rejects.csv"), Path(f"{output}.run.json")
    folder = run_folder(model)
    return folder / "rejects.csv", folder / "run.json"
