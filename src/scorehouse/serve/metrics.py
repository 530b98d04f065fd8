"""Prometheus metrics of one server: requests, latency, rejected inputs, unseen categories."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from ..scorer import FILE_VERSION, Result

#: Latency buckets in seconds, from 100 µs: single-row scoring takes a fraction of a ms.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
           0.25, 0.5, 1.0, 2.5, 10.0)


class Metrics:
    """The server's metrics, in a registry of their own (several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("scorehouse_requests", "HTTP requests by route and status",
                                ["route", "status"], registry=r)
        self.latency = Histogram("scorehouse_request_seconds", "Request latency by route",
                                 ["route"], buckets=BUCKETS, registry=r)
        self.rows = Counter("scorehouse_rows_scored", "Rows scored", ["model", "version"],
                            registry=r)
        self.rejected = Counter("scorehouse_rows_rejected", "Rejected input problems by column",
                                ["model", "column"], registry=r)
        self.unseen = Counter("scorehouse_flags", "Scored rows flagged, by kind and column",
                              ["model", "kind", "column"], registry=r)
        self.version = Gauge("scorehouse_model_version", "Model version being served",
                             ["model"], registry=r)
        self.batch_size = Histogram("scorehouse_batch_size", "Records per micro-batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.batching = Gauge("scorehouse_batching_enabled", "1 when single records are "
                              "micro-batched for this model", ["model"], registry=r)
        self.swaps = Counter("scorehouse_model_swaps", "Versions switched to without restart",
                             ["model"], registry=r)

        self._children: dict[tuple, object] = {}

    def child(self, metric: object, *labels: str) -> Any:
        """`metric.labels(*labels)`, looked up once (the lookup costs more than the count)."""
        key = (id(metric), *labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)  # type: ignore[attr-defined]
        return found

    def request(self, route: str, status: int, seconds: float) -> None:
        """Count one request and its latency."""
        self.child(self.requests, route, str(status)).inc()
        self.child(self.latency, route).observe(seconds)

    def observe(self, result: Result) -> None:
        """Count one scoring call's rows, rejects and flags."""
        version = FILE_VERSION if result.version is None else result.version  # as served
        self.child(self.rows, result.model, str(version)).inc(result.n_scored)
        if result.rejects:  # one count per column, however many rows were bad
            for column, n in result.reject_counts().items():
                self.rejected.labels(result.model, "<row>" if column == "<model>" else column).inc(n)
        if result.flags:
            for kind, cols in result.flag_counts().items():
                for col, n in cols.items():
                    self.unseen.labels(result.model, kind, col).inc(n)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
