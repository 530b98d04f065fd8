"""The deployments a server answers (`scorehouse serve --deployment NAME`, repeatable).

Each deployment is a `routing.Rendezvous` over a scorer cache of its own (one scorer per
model reference of its spec), loaded at start-up like the served models. A watcher (the
alias watcher's mechanism and interval, `models.WATCH_EVERY`) reads each deployment from
the registry: a new revision (weights, a challenger promoted, a shadow added, a rollback)
is applied with `Rendezvous.use` (its new models loaded first, then the spec switched in
one assignment); a reference whose alias moved is reloaded with `Rendezvous.refresh`
(the cache's hot swap). Requests in flight finish on what they started with.

Prediction log (`--log-to`): every role's call for a request is logged under the
request's id with `deployment` and `role`: the scorers' log hook names the role
(`monitor.live.row_role`, entered by the rendezvous around each model call, in the thread
that runs it), so the answering model's row, the fallbacks' and the shadows' and canaries'
(off the response path) are logged by the same hook. A model that missed the deadline
logs its row when it finishes, with its own role (its `latency_ms` says how late). The
decoy, which scores nothing, is logged from `on_off_path`: one row per input row, with
`model` = the deployment's name, `role` = "decoy", no version, `runtime` = "none", the
record as received (decoded from the protocol, before any schema coercion) as JSON text in
one column, `input.@record` (`41` and `"41"` stay apart, an absent field stays absent; one
string column, so it never clashes with a model's typed `input.<column>` when the log's
models are read together), and a null `prediction.value`. The default's answer is
logged the same way (`log_default`, called by the data plane when the default answered),
role "default", its answer per row in `prediction.value`, as batch and streams log it.

Metrics (`/metrics`, per deployment): answers by the role and model that answered,
fallbacks by cause (deadline or error), the answer's latency by role, off-path calls by
role and outcome, off-path calls skipped (pool full), the revision in force and the
changes picked up.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from ..errors import ScorehouseError
from ..monitor.live import LiveMonitor, NumberedIds, row_ids, row_role
from ..monitor.log import Channel
from ..monitor.routed import default_answers, unscored_event
from ..routing import OffPathResult, Rendezvous, Role, Routed
from ..routing.registered import current_sha256, read
from ..scorer import Scorer, ScorerCache
from .metrics import BUCKETS
from .models import WATCH_EVERY, watcher

if TYPE_CHECKING:  # SQLAlchemy and Alembic load only when a deployment is served
    import numpy as np

    from ..registry import Registry

log = logging.getLogger("scorehouse.serve")


class DeploymentMetrics:
    """The deployments' Prometheus metrics, in the server's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.answers = Counter("scorehouse_deployment_answers", "Requests a deployment "
                               "answered, by the role, model and version that answered "
                               "(model and version empty for the default)",
                               ["deployment", "role", "model", "version"], registry=r)
        self.fallbacks = Counter("scorehouse_deployment_fallbacks", "Answers a fallback or the "
                                 "default gave, by why the chosen model did not (deadline, "
                                 "error)", ["deployment", "cause"], registry=r)
        self.seconds = Histogram("scorehouse_deployment_answer_seconds", "From the decision "
                                 "to the answer, by the role that answered",
                                 ["deployment", "role"], buckets=BUCKETS, registry=r)
        self.off_path = Counter("scorehouse_deployment_off_path", "Off-path calls done, by "
                                "role and outcome (scored, error, archived)",
                                ["deployment", "role", "outcome"], registry=r)
        self.skipped = Counter("scorehouse_deployment_off_path_skipped", "Off-path calls "
                               "skipped because the off-path pool was full",
                               ["deployment", "role"], registry=r)
        self.revision = Gauge("scorehouse_deployment_revision", "Revision of the deployment's "
                              "spec in force", ["deployment"], registry=r)
        self.changes = Counter("scorehouse_deployment_changes", "Changes taken without a "
                               "restart: spec revisions, and models reloaded after an alias "
                               "moved", ["deployment", "kind"], registry=r)

    def answered(self, name: str, routed: Routed) -> None:
        """Count one request's answer (and its skipped off-path roles)."""
        a = routed.answer
        version = "" if a.model is None else str(a.version if a.version is not None else 1)
        self.answers.labels(name, a.role.value, a.model or "", version).inc()
        self.seconds.labels(name, a.role.value).observe(a.latency_ms / 1000)
        if a.fallback:
            first = a.reason.split("; ", 1)[0]
            self.fallbacks.labels(name, "deadline" if "missed the" in first else "error").inc()
        for role in routed.skipped:
            self.skipped.labels(name, role.value).inc()


class DeploymentSet:
    """Deployments by name, each a `Rendezvous`; see the module docstring.

    Args:
        names: the deployments to serve (stored in `registry`).
        registry: where they and their models are.
        runtime, accept_parity_difference: as for served models.
        workers, off_path_workers, max_pending: each `Rendezvous`'s pools (see it; records
            gather off the path for `routing.offpath.LINGER` s before one call scores them,
            so a busy server has hundreds waiting: more are skipped and counted).
    """

    def __init__(self, names: list[str], registry: Registry | None = None, *,
                 runtime: str | None = None, accept_parity_difference: bool = False,
                 workers: int = 8, off_path_workers: int = 2, max_pending: int = 1024):
        self.names = list(dict.fromkeys(names))
        self.registry = registry
        self.runtime, self.accept_parity_difference = runtime, accept_parity_difference
        self.options = {"workers": workers, "off_path_workers": off_path_workers,
                        "max_pending": max_pending}
        self.served: dict[str, Rendezvous] = {}
        self.revisions: dict[str, int] = {}
        self.ready = threading.Event()
        self.live: LiveMonitor | None = None
        self.metrics: DeploymentMetrics | None = None
        self._stop = threading.Event()
        self._refreshing = threading.Lock()
        self._watcher: threading.Thread | None = None

    def _registry(self) -> Registry:
        if self.registry is None:
            from ..registry import Registry

            self.registry = Registry()
        return self.registry

    def bind(self, live: LiveMonitor | None, registry: CollectorRegistry) -> None:
        """Attach the server's monitoring (log and drift hooks of every scorer, also those
        loaded already) and make the metrics in the server's Prometheus `registry`."""
        self.live = live if live is not None and live.active else None
        self.metrics = DeploymentMetrics(registry)
        for name, rz in self.served.items():
            self.metrics.revision.labels(name).set(self.revisions[name])
            if self.live is not None:
                for entry in rz.scorers.snapshot().values():
                    self.live.watch(entry.scorer)

    def _load(self, ref: str) -> Scorer:
        scorer = self._registry().load(ref, runtime=self.runtime,
                                       accept_parity_difference=self.accept_parity_difference)
        if self.live is not None:  # hooked before the cache publishes it
            self.live.watch(scorer)
        return scorer

    def load_all(self, taken: set[str] | frozenset[str] = frozenset()) -> None:
        """Load every deployment and every model it names; ready once all are.

        Raises:
            ScorehouseError: a deployment named like a served model (`taken`).
            NotFoundError: no such deployment, or a model it names.
            Whatever loading a model raises.
        """
        for name in self.names:
            if name in taken:
                raise ScorehouseError(f"{name!r} is both a served model and a deployment; "
                                      "serve one of them (the name is the path of both)")
            if name in self.served:
                continue
            stored, spec = read(self._registry(), name)
            cache: ScorerCache[str] = ScorerCache(self._load)
            for ref in spec.refs():
                cache.get(ref)
            self.served[name] = Rendezvous(
                spec, cache, on_off_path=functools.partial(self._off_path, name),
                around=functools.partial(_role_of, name), **self.options)
            self.revisions[name] = stored.revision
            if self.metrics is not None:
                self.metrics.revision.labels(name).set(stored.revision)
            log.info("deployment %s (revision %d): %s", name, stored.revision,
                     ", ".join(f"{role.value} {ref}" for role, ref in spec.roles()))
        self.ready.set()

    def refresh(self) -> list[str]:
        """Apply what changed in the registry since the last look: a deployment's new
        revision (`Rendezvous.use`), models whose alias moved (`Rendezvous.refresh`).
        Returns one line per change.

        Raises:
            Whatever reading the registry or loading a model raises (what is in force
            stays; the next look tries again).
        """
        changes = []
        with self._refreshing:
            for name, rz in list(self.served.items()):
                stored, spec = read(self._registry(), name)
                if stored.revision != self.revisions[name]:
                    rz.use(spec)  # its models loaded first; requests keep flowing
                    self.revisions[name] = stored.revision
                    changes.append(f"{name}: revision {stored.revision} in force")
                    self._changed(name, "spec", stored.revision)
                for ref in rz.refresh(current_sha256(self._registry())):
                    changes.append(f"{name}: {ref} reloaded (its alias moved)")
                    self._changed(name, "alias", None)
        for line in changes:
            log.info("deployment %s", line)
        return changes

    def _changed(self, name: str, kind: str, revision: int | None) -> None:
        if self.metrics is not None:
            self.metrics.changes.labels(name, kind).inc()
            if revision is not None:
                self.metrics.revision.labels(name).set(revision)

    def watch(self, every: float = WATCH_EVERY) -> None:
        """`refresh` every `every` seconds in the background (once started, idempotent)."""
        if self._watcher is None and self.served:
            self._watcher = watcher(every, self._stop, self.refresh, "deployments",
                                    "checking the registry for deployment changes failed")

    def close(self) -> None:
        """Stop watching; stop the pools (hung calls finish on their own)."""
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        for rz in self.served.values():
            rz.close(wait=False)

    # --- off the response path ------------------------------------------------------------

    def log_default(self, name: str, request_id: str, rows: Any, values: Sequence[Any]
                    ) -> None:
        """Log the default's answer to a request: its rows as received (one record, a list
        of them or an Arrow table), `values` the default's answer per row, under the
        request's id, role default (as batch and streams log it)."""
        self._log_unscored(name, Role.DEFAULT, request_id, rows, default_answers(values))

    def _off_path(self, name: str, out: OffPathResult) -> None:
        """Count one off-path call; archive the decoy's record in the prediction log."""
        if self.metrics is not None:
            outcome = "archived" if out.role is Role.DECOY else "error" if out.error else "scored"
            self.metrics.off_path.labels(name, out.role.value, outcome).inc()
        if out.role is Role.DECOY and out.record is not None:
            self._log_unscored(name, Role.DECOY, out.request_id, out.record)

    def _log_unscored(self, name: str, role: Role, request_id: str, rows: Any,
                      values: np.ndarray | None = None) -> None:
        # Rows no model scored: `monitor.routed.unscored_event`, one id per row.
        logger = self.live.logger if self.live is not None else None
        if logger is None:
            return
        event = unscored_event(name, _records(rows), values)
        n = event.result.n_read
        ids = [request_id] if n == 1 else NumberedIds(request_id, n)
        logger.log(event, channel=Channel.SERVE, ids=ids, latency_ms=0.0, deployment=name,
                   role=role.value)


@contextlib.contextmanager
def _role_of(name: str, role: Role, ids: Sequence[str] | None) -> Iterator[None]:
    """The context of one model call of deployment `name` (the log hook reads it): its
    role, and the rows' ids when they are not the request's (an off-path batch)."""
    with row_role(name, role.value):
        if ids is None:
            yield
        else:
            with row_ids(ids):
                yield


def _records(rows: Any) -> list[Mapping[str, Any]]:
    """A request's rows as received (one record, a list of them or an Arrow table) as
    records."""
    if isinstance(rows, Mapping):
        return [rows]
    return rows.to_pylist() if hasattr(rows, "to_pylist") else list(rows)


__all__ = ["DeploymentMetrics", "DeploymentSet"]
