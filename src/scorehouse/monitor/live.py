"""Monitoring attached to a channel: the prediction log and live drift windows of every
scorer a server or stream worker uses, fed by the scorer's hook, and their Prometheus view.

    live = LiveMonitor(LogOptions.parse("parquet:"), Channel.SERVE, registry=metrics.registry)
    live.watch(scorer)                       # once per scorer: log + drift hook
    with row_ids(["req-1"]):                 # the ids of the rows the next call scores
        scorer.predict(record)
    live.close()                             # graceful shutdown: the log is flushed

Ids reach the hook through a context variable (`row_ids`), set by the channel around each
scoring call: the hook itself only sees the `ScoreEvent`. A call with no ids set gets the
logger's generated ones. A call made for a deployment is logged with its deployment and
role the same way (`row_role`, set around each model call of a routed request).

Drift windows: one `DriftState` per scorer (model and version), on the artifact's training
baseline bins. A window rotates every `window` seconds; a scrape computes drift and input
quality over the previous window merged with the current one (so between `window` and
2 x `window` seconds of traffic), against the training baseline:

    scorehouse_feature_drift{model,version,feature,method}   psi, jensenshannon,
        wasserstein (distances) and ks / chisquare (BH-adjusted p-values)
    scorehouse_feature_drifted{model,version,feature}        1 when the verdict is drift
    scorehouse_input_quality{model,version,measure,feature}  null_rate, unseen_rate,
        out_of_range_rate, absent_rate per feature; reject_rate with feature=""
    scorehouse_drift_window_rows{model,version}              rows read in the window
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from ..errors import ScorehouseError
from ..scorer import FILE_VERSION, ScoreEvent, Scorer
from .log import Channel, LogOptions, PredictionLogger
from .quality import input_quality
from .reference import Reference, baseline_reference, empty_state, training_baseline
from .state import DriftState

log = logging.getLogger("scorehouse.monitor")

#: Seconds a live drift window lasts before it rotates.
WINDOW_SECONDS = 600.0

#: The ids of the rows of the scoring call about to run in this context (None: generated).
ROW_IDS: ContextVar[Sequence[str] | None] = ContextVar("scorehouse_row_ids", default=None)


#: (deployment, role) of the scoring call about to run in this context (None: no deployment).
ROW_ROLE: ContextVar[tuple[str, str] | None] = ContextVar("scorehouse_row_role", default=None)
#: `ROW_ROLE` of a call that is no traffic (a batch's `--all-roles` extras): no hook sees it.
UNLOGGED = ("", "")


@contextlib.contextmanager
def row_role(deployment: str, role: str) -> Iterator[None]:
    """Log the scoring calls made inside the block as `role` of `deployment` (with `role`
    "": neither log them nor count them in drift windows)."""
    token = ROW_ROLE.set((deployment, role) if role else UNLOGGED)
    try:
        yield
    finally:
        ROW_ROLE.reset(token)


@contextlib.contextmanager
def row_ids(ids: Sequence[str] | None) -> Iterator[None]:
    """Give the scoring calls made inside the block these row ids (one per input row)."""
    token = ROW_IDS.set(ids)
    try:
        yield
    finally:
        ROW_IDS.reset(token)


class NumberedIds(Sequence[str]):
    """Ids `<prefix><sep><number>` of rows numbered `numbers[i]` (a sequence or array of
    ints; None: `i`), made only when
    read: a call of many rows costs nothing on the scoring thread."""

    def __init__(self, prefix: str, n: int, numbers: Any = None,
                 sep: str = "/") -> None:
        self.prefix, self.n, self.numbers, self.sep = prefix, n, numbers, sep

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self.n))]
        if not -self.n <= i < self.n:
            raise IndexError(i)
        i %= self.n
        number = int(self.numbers[i]) if self.numbers is not None else i
        return f"{self.prefix}{self.sep}{number}"


@dataclass
class _Window:
    """The live drift state of one scorer: the current and previous windows."""

    model: str
    version: str
    reference: Reference
    current: DriftState
    previous: DriftState | None
    started: float
    lock: threading.Lock
    #: The empty state (JSON) a new window starts from.
    empty: dict[str, Any]

    def observe(self, event: ScoreEvent, window: float) -> None:
        with self.lock:
            if time.monotonic() - self.started >= window:
                self.current.flush()
                self.previous, self.current = self.current, DriftState.from_json(self.empty)
                self.started = time.monotonic()
            self.current.observe(event)

    def merged(self) -> DriftState:
        with self.lock:
            self.current.flush()
            return self.current if self.previous is None else self.previous.merge(self.current)


class LiveMonitor:
    """The log and the drift windows of one channel process (see the module docstring).

    Args:
        log: where to log (None: no prediction log).
        channel: the channel the rows come from.
        drift: keep live drift windows (for scorers whose artifact has a baseline).
        registry: the Prometheus registry to export drift, quality and the log's counters
            to (None: a new one, `self.registry`).
        window: seconds a drift window lasts.

    Raises:
        UsageError, ConnectionFailedError: as `PredictionLogger` does for `log`.
    """

    def __init__(self, log_options: LogOptions | None, channel: Channel, *, drift: bool = True,
                 registry: CollectorRegistry | None = None,
                 window: float = WINDOW_SECONDS) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.channel, self.drift, self.window = Channel(channel), drift, window
        self.logger = None if log_options is None else PredictionLogger(
            log_options, channel=self.channel, registry=self.registry)
        self._windows: dict[tuple[str, str], _Window] = {}
        self._watched: weakref.WeakSet[Scorer] = weakref.WeakSet()
        self._hooks: list[tuple[weakref.ref[Scorer], Any]] = []
        self._lock = threading.Lock()
        if drift:
            self.registry.register(_DriftCollector(self))

    @property
    def active(self) -> bool:
        """True when there is anything to attach (a log, or drift windows)."""
        return self.logger is not None or self.drift

    def watch(self, scorer: Scorer) -> None:
        """Attach the log and a drift window to `scorer`, once (cheap to call per request)."""
        if scorer in self._watched:
            return
        with self._lock:
            if scorer in self._watched:
                return
            self._watched.add(scorer)
            window = self._window(scorer) if self.drift else None
            hook = self._hook(window)
            scorer.add_hook(hook)
            self._hooks.append((weakref.ref(scorer), hook))

    def _window(self, scorer: Scorer) -> _Window | None:
        try:
            baseline = training_baseline(scorer)
            reference = baseline_reference(baseline, scorer.schema)
            state = empty_state(baseline, scorer.schema)
        except ScorehouseError as e:
            log.info("no live drift for %s: %s", scorer.name, e)
            return None
        version = str(FILE_VERSION if scorer.version is None else scorer.version)
        w = _Window(scorer.name, version, reference, state, None, time.monotonic(),
                    threading.Lock(), state.to_json())
        self._windows[(scorer.name, version)] = w
        return w

    def _hook(self, window: _Window | None) -> Any:
        logger, channel, seconds = self.logger, self.channel, self.window

        def hook(event: ScoreEvent) -> None:
            routed = ROW_ROLE.get()
            if routed is UNLOGGED:
                return
            if logger is not None:
                if routed is None:
                    logger.log(event, channel=channel, ids=ROW_IDS.get())
                else:
                    logger.log(event, channel=channel, ids=ROW_IDS.get(),
                               deployment=routed[0], role=routed[1])
            if window is not None:
                window.observe(event, seconds)
        return hook

    def windows(self) -> list[tuple[str, str, DriftState, Reference]]:
        """(model, version, live window, training reference) of every watched scorer."""
        with self._lock:
            found = list(self._windows.values())
        return [(w.model, w.version, w.merged(), w.reference) for w in found]

    def flush(self) -> None:
        """Wait until the rows logged so far reached the sink."""
        if self.logger is not None:
            self.logger.flush()

    def close(self) -> None:
        """Detach from every watched scorer, flush and close the log (graceful shutdown).
        Idempotent."""
        with self._lock:
            hooks, self._hooks = self._hooks, []
        for ref, hook in hooks:
            scorer = ref()
            if scorer is not None and hook in scorer.hooks:
                scorer.hooks.remove(hook)
        if self.logger is not None:
            self.logger.close()


class _DriftCollector:
    """Computes drift and quality gauges of every live window at scrape time."""

    def __init__(self, live: LiveMonitor) -> None:
        self.live = live

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # no collect() at registration: the windows are empty then

    def collect(self) -> Iterator[GaugeMetricFamily]:
        drift = GaugeMetricFamily("scorehouse_feature_drift", "Drift of each feature and "
                                  "prediction in the live window against the training "
                                  "baseline, by method (distances; p-values for ks and "
                                  "chisquare)", labels=["model", "version", "feature", "method"])
        drifted = GaugeMetricFamily("scorehouse_feature_drifted", "1 when the feature's "
                                    "verdict is drift", labels=["model", "version", "feature"])
        quality = GaugeMetricFamily("scorehouse_input_quality", "Input quality rates of the "
                                    "live window (reject_rate for the window: feature='')",
                                    labels=["model", "version", "measure", "feature"])
        rows = GaugeMetricFamily("scorehouse_drift_window_rows", "Rows read in the live "
                                 "drift window", labels=["model", "version"])
        for model, version, state, reference in self.live.windows():
            rows.add_metric([model, version], state.read)
            if not state.read:
                continue
            for c in _dataset_drift(state, reference).columns:
                for method, value in (("psi", c.psi), ("jensenshannon", c.jensenshannon),
                                      ("wasserstein", c.wasserstein), (c.test, c.p_adjusted)):
                    if value is not None:
                        drift.add_metric([model, version, c.column, method], float(value))
                drifted.add_metric([model, version, c.column], 1.0 if c.drifted else 0.0)
            for q in input_quality(state, reference).checks:
                quality.add_metric([model, version, q.measure, q.column or ""], q.value)
        yield from (drift, drifted, quality, rows)


__all__ = ["LiveMonitor", "NumberedIds", "ROW_IDS", "ROW_ROLE", "UNLOGGED", "WINDOW_SECONDS",
           "row_ids", "row_role"]


def _dataset_drift(state: DriftState, reference: Reference) -> Any:
    # scipy's statistics load at the first scrape, not when a channel imports this module:
    # `scorehouse score` without --log-to pays nothing for them.
    from .drift import dataset_drift

    return dataset_drift(state, reference)
