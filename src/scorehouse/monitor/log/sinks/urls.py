"""From a `--log-to` URL to its sink."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ....config import home
from ....errors import UsageError
from ..options import LogOptions
from .base import Sink

#: The default dataset's folder under $SCOREHOUSE_HOME.
PREDICTIONS = "predictions"


def parquet_root(url: str) -> Path:
    """The folder of a Parquet log: "" / `parquet:` -> $SCOREHOUSE_HOME/predictions,
    `parquet:///abs/path` or `file:///abs/path` -> that folder, anything else -> a path."""
    if url in ("", "parquet:", "parquet://"):
        return home() / PREDICTIONS
    for prefix in ("parquet://", "file://", "parquet:"):
        if url.startswith(prefix):
            return Path(urlsplit(url).path or url[len(prefix):]).expanduser()
    return Path(url).expanduser()


def open_sink(options: LogOptions) -> Sink:
    """The sink `options.to` names (see `monitor.log.options` for the URL forms).

    Raises:
        UsageError: a URL of no known sink, or one that lacks its table/topic/stream.
        ConnectionFailedError: PostgreSQL or Redis cannot be reached.
        ScorehouseError: the driver (psycopg, redis, confluent-kafka) is not installed.
    """
    url = options.to
    scheme = urlsplit(url).scheme if "://" in url else url.split(":", 1)[0] if ":" in url \
        and not Path(url).exists() else ""
    if scheme in ("", "parquet", "file"):
        from .parquet import ParquetSink

        return ParquetSink(parquet_root(url), rotate_mb=options.rotate_mb,
                           rotate_seconds=options.rotate_seconds)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        from .postgres import PostgresSink

        return PostgresSink(url)
    if scheme == "kafka":
        from .streams import KafkaSink

        return KafkaSink(url)
    if scheme in ("redis", "rediss", "unix"):
        from .streams import RedisSink

        return RedisSink(url)
    raise UsageError(f"no prediction log sink for {url!r}: use a folder or parquet:, "
                     "postgresql://..., kafka://host:port/topic or redis://host:port/db"
                     "?stream=name")


__all__ = ["PREDICTIONS", "open_sink", "parquet_root"]
