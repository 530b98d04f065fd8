"""The interface every prediction log sink implements."""

from __future__ import annotations

import abc

import pyarrow as pa


class Sink(abc.ABC):
    """Where logged rows go. Called from the logger's one background thread only.

    `write` takes a record batch of the layout of `monitor.log.records` (one model per
    batch when it comes from a `PredictionLogger`); it may raise, and the logger then
    counts the batch's rows as dropped.
    """

    #: The sink's kind, as the `sink` label of the logger's metrics names it.
    kind: str = "sink"

    @abc.abstractmethod
    def write(self, batch: pa.RecordBatch) -> None:
        """Write the rows of `batch` (or buffer them until `flush`/`close`)."""

    def flush(self) -> None:  # noqa: B027 - most sinks have nothing to do here
        """Called after every drain of the queue, even an empty one (closing aged files)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Write out whatever is buffered and release the connection or files."""


__all__ = ["Sink"]
