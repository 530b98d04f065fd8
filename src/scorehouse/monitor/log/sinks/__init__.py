"""Prediction log sinks: a Parquet dataset (embedded default), a PostgreSQL table, a Kafka
topic, a Redis stream; `open_sink` picks one from a `--log-to` URL."""

from .base import Sink
from .parquet import ParquetSink, logged_files, read_log, recover
from .urls import PREDICTIONS, open_sink, parquet_root

__all__ = ["PREDICTIONS", "ParquetSink", "Sink", "logged_files", "open_sink", "parquet_root", "read_log",
           "recover"]
