"""Prometheus metrics of one server: requests, latency and requests in flight per route, model
and version; rows scored and rejected, input problems and flags; the process itself.

Names follow Prometheus' conventions (https://prometheus.io/docs/practices/naming/): counters
end in `_total` and count one thing each (rows rejected and input problems are two counters,
since one row can have many problems); no `*_created` series; `process_*` and
`python_*` from prometheus-client's own collectors.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

from ..scorer import FILE_VERSION, Result, Scorer

#: Latency buckets in seconds, from 100 µs: single-row scoring takes a fraction of a ms.
BUCKETS = (0.0001, 0.00025, 0.0005, 0.00075, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
           0.25, 0.5, 1.0, 2.5, 10.0)

# A `*_created` series per counter doubles what a scraper stores for nothing a rate needs.
disable_created_metrics()


class Metrics:
    """The server's metrics, in a registry of their own (several apps in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            r.register(collector)  # process_* (CPU, memory, open files), python_*
        served = ["route", "model", "version"]  # model and version: "" off the model routes
        self.requests = Counter("scorehouse_requests", "HTTP requests, by route, model, "
                                "version and status", [*served, "status"], registry=r)
        self.latency = Histogram("scorehouse_request_seconds", "Request latency in seconds, by "
                                 "route, model and version", served, buckets=BUCKETS, registry=r)
        self.in_flight = Gauge("scorehouse_requests_in_flight", "Requests being answered now, "
                               "by route", ["route"], registry=r)
        self.rows = Counter("scorehouse_rows_scored", "Rows scored", ["model", "version"],
                            registry=r)
        self.rejected_rows = Counter("scorehouse_rows_rejected", "Rows refused (a row with "
                                     "several problems counts once)", ["model", "version"],
                                     registry=r)
        self.problems = Counter("scorehouse_input_problems", "Problems found in input rows, by "
                                "column and kind (one row can have several)",
                                ["model", "column", "kind"], registry=r)
        self.unseen = Counter("scorehouse_flags", "Scored rows flagged, by kind and column",
                              ["model", "kind", "column"], registry=r)
        self.version = Gauge("scorehouse_model_version", "Model version being served",
                             ["model"], registry=r)
        self.batch_size = Histogram("scorehouse_batch_size", "Records per micro-batch",
                                    buckets=(1, 2, 4, 8, 16, 32, 64), registry=r)
        self.batching = Gauge("scorehouse_batching_enabled", "1 when single records are "
                              "micro-batched for this model", ["model"], registry=r)
        self.load_seconds = Gauge("scorehouse_model_load_seconds", "Seconds the served "
                                  "version took to load and prepare", ["model", "version"],
                                  registry=r)
        self.load_memory = Gauge("scorehouse_model_load_memory_bytes", "Resident memory the "
                                 "process grew by while loading the served version (bytes; "
                                 "process_resident_memory_bytes is the whole process)",
                                 ["model", "version"], registry=r)
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

    def request(self, route: str, status: int, seconds: float, model: str = "",
                version: str = "") -> None:
        """Count one request and its latency (`model`, `version`: the model that answered)."""
        self.child(self.requests, route, model, version, str(status)).inc()
        self.child(self.latency, route, model, version).observe(seconds)

    def observe(self, result: Result) -> None:
        """Count one scoring call's rows scored and rejected, input problems and flags."""
        version = str(FILE_VERSION if result.version is None else result.version)  # as served
        self.child(self.rows, result.model, version).inc(result.n_scored)
        if result.rejects:  # one count per column and kind, however many rows were bad
            self.child(self.rejected_rows, result.model, version).inc(result.n_rejected)
            for column, kinds in result.problem_counts().items():
                for kind, n in kinds.items():
                    self.problems.labels(result.model, column, kind).inc(n)
        if result.flags:
            for kind, cols in result.flag_counts().items():
                for col, n in cols.items():
                    self.unseen.labels(result.model, kind, col).inc(n)

    def loaded(self, scorer: Scorer) -> None:
        """Export what loading `scorer` cost (`ScorerCache`'s measure), if it was measured."""
        cost = scorer.load_cost
        if cost is None:
            return
        version = str(FILE_VERSION if scorer.version is None else scorer.version)
        self.load_seconds.labels(scorer.name, version).set(cost.seconds)
        self.load_memory.labels(scorer.name, version).set(cost.memory_bytes)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
