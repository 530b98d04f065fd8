"""Prometheus metrics of a streaming worker, read from its `Stats` when scraped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from .worker import StreamWorker

COUNTS = {"events": "Events read", "scored": "Events applied and scored",
          "duplicates": "Redelivered events already applied (not counted again)",
          "dead": "Events moved to the dead-letter stream", "retried": "Poison events left "
          "for another delivery", "conflicts": "Profiles changed by another worker meanwhile",
          "reconnects": "Broker connection failures survived"}


class StreamCollector:
    """Counters, scoring time and end-to-end lag quantiles of one worker."""

    def __init__(self, worker: StreamWorker):
        self.worker = worker

    def collect(self) -> Iterator[Any]:
        s = self.worker.stats
        for name, text in COUNTS.items():
            yield CounterMetricFamily(f"scorehouse_stream_{name}", text, value=getattr(s, name))
        yield CounterMetricFamily("scorehouse_stream_scoring_seconds",
                                  "Time spent scoring batches", value=s.scoring_seconds)
        lag = GaugeMetricFamily("scorehouse_stream_lag_milliseconds", "Event appended to score "
                                "written, over the last events", labels=["quantile"])
        window = np.array(s.lag_ms[-5000:]) if s.lag_ms else None
        for q in (0.5, 0.99):
            lag.add_metric([str(q)], float(np.quantile(window, q)) if window is not None else 0.0)
        yield lag


def serve_metrics(worker: StreamWorker, port: int, addr: str = "0.0.0.0") -> None:
    """Expose the worker's metrics on http://addr:port/metrics (a background thread), with
    its live drift and input quality (`monitor.live`) and prediction log counters."""
    registry = worker.live.registry if worker.live is not None else CollectorRegistry()
    registry.register(StreamCollector(worker))
    start_http_server(port, addr=addr, registry=registry)
