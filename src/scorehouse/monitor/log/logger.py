"""`PredictionLogger`: the scorer hook that logs every scored and rejected row to a sink,
without ever holding up scoring.

The scoring thread only appends the call (the `ScoreEvent`, whole columns) to a bounded
queue: a uuid7, a clock read and a lock, a few µs whatever the rows. A background thread
wakes every `flush` seconds (sooner when `WAKE_ROWS` rows wait), turns the calls into Arrow
record batches (`convert.batches`: ids, sampling, hashing) and hands them to the sink.

When the sink falls behind and the queue holds `queue` rows, new calls are dropped and
counted, never silently: `stats.dropped` and `scorehouse_log_dropped_total{model,sink}`
(rows a sink failed to write count there too, and the failure is logged). Invariant once
closed: rows offered (kept by sampling) == written + dropped.

Shutdown: `close()` drains the queue, and the sink closes its files (graceful). kill -9
loses what the queue held, at most `flush` seconds of rows (default 1 s), plus what a remote
sink's client still buffered; the Parquet sink journals every drain to disk, so its open
file survives and is recovered as Parquet by the next logger on that directory.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics

from ...scorer import Hook, ScoreEvent, Scorer
from .convert import Call, batches, kept_rows
from .options import LogOptions
from .records import Channel, new_id
from .sinks import Sink, open_sink

log = logging.getLogger("scorehouse.monitor.log")

#: Rows waiting that wake the background thread before its `flush` interval is up.
WAKE_ROWS = 8192

disable_created_metrics()  # type: ignore[no-untyped-call]  # as serve.metrics: no `*_created` series


@dataclass
class LogStats:
    """Rows through one logger: `offered` (kept by sampling) = `written` + `dropped` once
    closed; `sampled_out` rows sampling left out; `failed` (part of `dropped`) rows a
    sink raised on."""

    offered: int = 0
    written: int = 0
    dropped: int = 0
    sampled_out: int = 0
    failed: int = 0


class LogMetrics:
    """The logger's Prometheus counters, in `registry` (a server's own) or a new one."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.dropped = Counter("scorehouse_log_dropped", "Prediction log rows dropped because "
                               "the sink fell behind (queue full) or failed, by model and "
                               "sink", ["model", "sink"], registry=self.registry)
        self.written = Counter("scorehouse_log_rows", "Prediction log rows written, by model "
                               "and sink", ["model", "sink"], registry=self.registry)


class PredictionLogger:
    """Logs scoring calls to a sink through a bounded queue and a background thread.

    Args:
        options: a `LogOptions`, a `--log-to` URL, or None for the default Parquet dataset
            under $SCOREHOUSE_HOME/predictions.
        sink: a sink to write to instead of the one `options.to` names.
        channel: the channel calls come from unless `log` says otherwise.
        registry: the Prometheus registry of the counters (a server passes its own).

    Raises:
        UsageError: options out of range or a URL of no known sink.
        ConnectionFailedError: a remote sink that cannot be reached.
    """

    def __init__(self, options: LogOptions | str | None = None, *, sink: Sink | None = None,
                 channel: Channel = Channel.PREDICT,
                 registry: CollectorRegistry | None = None) -> None:
        self.options = options if isinstance(options, LogOptions) else LogOptions.parse(options)
        self.sink = sink if sink is not None else open_sink(self.options)
        self.channel = Channel(channel)
        self.stats = LogStats()
        self.metrics = LogMetrics(registry)
        self._queue: deque[Call] = deque()
        self._rows = 0  # rows in the queue
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="scorehouse-predlog",
                                        daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<PredictionLogger {self.sink.kind} {self.stats}>"

    def __enter__(self) -> PredictionLogger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def hook(self, channel: Channel | None = None) -> Hook:
        """A scorer hook logging every call as coming from `channel`."""
        chosen = Channel(channel) if channel is not None else self.channel

        def logged(event: ScoreEvent) -> None:
            self.log(event, channel=chosen)
        return logged

    def attach(self, scorer: Scorer, channel: Channel | None = None) -> None:
        """Log every call of `scorer` (`scorer.add_hook(self.hook(channel))`)."""
        scorer.add_hook(self.hook(channel))

    def log(self, event: ScoreEvent, *, channel: Channel | None = None,
            ids: Sequence[str] | None = None, latency_ms: float | None = None,
            deployment: str | None = None, role: str | None = None) -> str:
        """Queue one scoring call's rows; never blocks and never raises for a full queue.

        Args:
            event: the scorer's event (`columns` are kept by reference: do not change them).
            channel: where the call came from (default: the logger's).
            ids: one id per input row (request or event keys); generated when None.
            latency_ms: the call's latency (default: the scorer's own `result.seconds`).
            deployment, role: the deployment the call was routed by and the model's role
                in it (every role's call for one request is logged with the request's ids).

        Returns the id of input row 0: `ids[0]`, or the generated call id, from which
        `records.row_id(call_id, i)` gives row i's (to return to the caller).
        """
        # Given ids name every row: no call id to generate (a µs saved per server request).
        call_id = "" if ids else new_id()
        result = event.result
        call = Call(event, self.channel if channel is None else channel, call_id, ids,
                    result.seconds * 1000.0 if latency_ms is None else latency_ms,
                    time.time_ns() // 1000, deployment, role)
        n = result.n_read
        with self._lock:
            # An empty queue takes a call of any size: a batch larger than the queue is
            # still logged when the sink keeps up.
            full = self._closed or (self._rows > 0 and self._rows + n > self.options.queue)
            if not full:
                self._queue.append(call)
                self._rows += n
                waiting = self._rows
        if full:
            self._drop(call)
        elif waiting >= WAKE_ROWS:
            self._wake.set()
        return str(ids[0]) if ids else call_id

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until the rows queued so far reached the sink (tests, `deploy compare`)."""
        deadline = time.monotonic() + timeout
        self._wake.set()
        while time.monotonic() < deadline:
            with self._lock:
                if not self._rows:
                    return
            time.sleep(0.005)

    def close(self, timeout: float | None = None) -> None:
        """Stop taking calls, write everything queued, close the sink. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._wake.set()
        self._thread.join(timeout)
        self.sink.close()

    def _drop(self, call: Call) -> None:
        kept = kept_rows(call, self.options)
        with self._lock:
            self.stats.offered += kept
            self.stats.dropped += kept
            self.stats.sampled_out += call.rows - kept if self.options.sample < 1 else 0
        self.metrics.dropped.labels(call.event.model, self.sink.kind).inc(kept)

    def _run(self) -> None:
        while True:
            self._wake.wait(self.options.flush)
            self._wake.clear()
            with self._lock:
                calls = list(self._queue)
                self._queue.clear()
                closing = self._closed
            if calls:
                self._write(calls)
            try:
                self.sink.flush()  # lets the sink close files by age with no new rows
            except Exception:
                log.exception("prediction log sink %s failed to flush", self.sink.kind)
            with self._lock:
                self._rows -= sum(c.rows for c in calls)
            if closing:
                return

    def _write(self, calls: list[Call]) -> None:
        try:
            out, skipped = batches(calls, self.options)
        except Exception:  # a bug here must not kill the thread: count the rows, say so
            log.exception("prediction log: cannot convert %d calls", len(calls))
            out, skipped = [], 0
            lost = sum(c.rows for c in calls)
            self._count(calls[0].event.model, offered=lost, dropped=lost, failed=lost)
        self._count(calls[0].event.model, sampled_out=skipped)
        for batch in out:
            model = str(batch.column("model")[0])
            try:
                self.sink.write(batch)
            except Exception:
                log.exception("prediction log sink %s failed: %d rows dropped",
                              self.sink.kind, batch.num_rows)
                self._count(model, offered=batch.num_rows, dropped=batch.num_rows,
                            failed=batch.num_rows)
            else:
                self._count(model, offered=batch.num_rows, written=batch.num_rows)

    def _count(self, model: str, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self.stats, name, getattr(self.stats, name) + n)
        if counts.get("dropped"):
            self.metrics.dropped.labels(model, self.sink.kind).inc(counts["dropped"])
        if counts.get("written"):
            self.metrics.written.labels(model, self.sink.kind).inc(counts["written"])


__all__ = ["LogMetrics", "LogStats", "PredictionLogger", "WAKE_ROWS"]
