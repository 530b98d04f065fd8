"""The prediction log: every scored and rejected row of every channel, with its id, time,
model, version, runtime, channel, coerced inputs, flags, reject reason, outputs and latency,
through a bounded queue that never blocks scoring, into a sink (`--log-to URL`).

    logger = PredictionLogger("parquet:")          # $SCOREHOUSE_HOME/predictions
    logger.attach(scorer, Channel.PREDICT)         # scorer.add_hook(...)
    ...
    logger.close()                                 # flushes (graceful shutdown)
    table = read_log(model="churn", since=yesterday)
"""

from .logger import WAKE_ROWS, LogMetrics, LogStats, PredictionLogger
from .options import LogOptions
from .records import (
    FIXED,
    INPUT,
    PREDICTION,
    Channel,
    PredictionRecord,
    new_id,
    records,
    row_id,
    row_ids,
    to_batch,
)
from .sinks import ParquetSink, Sink, open_sink, read_log

__all__ = [
    "FIXED", "INPUT", "PREDICTION", "WAKE_ROWS", "Channel", "LogMetrics", "LogOptions",
    "LogStats", "ParquetSink", "PredictionLogger", "PredictionRecord", "Sink", "new_id",
    "open_sink", "read_log", "records", "row_id", "row_ids", "to_batch",
]
