"""The scoring service: one method per route of `serve.routes`, over one `DataPlane`.

The handlers are thin: a scoring route hands its request to the data plane with its
protocol, a metadata route reads the model, a page reads the server's state. `handle`
gives every guarded route (one with a metrics label) the same envelope: readiness, API
key, requests in flight, latency, and every error as a JSON body in the route's protocol,
with its HTTP status (`status_of`). Models load in the background at start-up (`lifespan`):
the server is live at once and ready when they are.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from .. import __version__
from ..errors import NotFoundError, ScorehouseError
from ..monitor.live import LiveMonitor
from ..monitor.log import Channel, LogOptions
from ..schema import ColumnPolicy, ColumnsError
from .auth import ApiKeys, Unauthorized
from .batching import worth_it
from .calls import Call, Reply, json_reply
from .dataplane import DataPlane
from .deployments import DeploymentSet
from .limits import BodyReader, Limits, SlowClient, TimedOut, TooLarge
from .metrics import Metrics
from .models import ModelSet
from .openapi import DOCS_HTML, document, example_record
from .protocols import WIRE, v2
from .routes import ROUTES, Protocol, Route

log = logging.getLogger("scorehouse.serve")


class NotReady(ScorehouseError):
    """A request before the models are loaded."""


#: HTTP status of each error the handlers raise; any other ScorehouseError is a 400.
STATUS = ((Unauthorized, 401), (NotFoundError, 404), (SlowClient, 408), (TooLarge, 413),
          (TimedOut, 504), (NotReady, 503), (ScorehouseError, 400))


def status_of(e: Exception) -> int:
    """The HTTP status answering error `e` (500 for anything not a ScorehouseError)."""
    return next((code for kind, code in STATUS if isinstance(e, kind)), 500)


def error_reply(e: Exception, protocol: Protocol) -> Reply:
    """Error `e` as `protocol`'s JSON error body, with its status; a strict column refusal
    names the columns in fields a client can read, not only in prose."""
    status = status_of(e)
    message = str(e) if isinstance(e, ScorehouseError) else \
        f"internal error: {type(e).__name__}: {e}"
    extra = {"columns": e.check.to_dict()} if isinstance(e, ColumnsError) else {}
    reply = json_reply(WIRE[protocol].error_body(message, status, extra), status)
    if status == 401:
        reply.headers = {"WWW-Authenticate": "Bearer"}
    elif status == 408:  # the rest of the body may never come: do not reuse the connection
        reply.headers = {"Connection": "close"}
    return reply


class ScoringService:
    """The handlers of every route over `models` (see the module docstring).

    `batching`: "auto" (micro-batch single records where start-up measurement shows it
    pays), "on" or "off"; `watch`: follow moved aliases and deployment changes in the
    background; `log`: the prediction log's options (None: no log); `drift`: keep live
    drift windows, exported on /metrics (see `monitor.live`); `deployments`: the
    deployments served beside (or instead of) the models.
    """

    def __init__(self, models: ModelSet, limits: Limits, *, keys: ApiKeys | None = None,
                 batching: str = "auto", columns: ColumnPolicy = ColumnPolicy.LENIENT,
                 watch: bool = True, log: LogOptions | None = None, drift: bool = False,
                 deployments: DeploymentSet | None = None):
        self.models, self.limits, self.batching, self.watch = models, limits, batching, watch
        self.metrics = Metrics()
        self.keys = keys or ApiKeys()
        self.bodies = BodyReader(limits)
        self.monitoring = LiveMonitor(log, Channel.SERVE, drift=drift, registry=self.metrics.registry)
        self.deployments = deployments or DeploymentSet([])
        self.deployments.bind(self.monitoring, self.metrics.registry)
        self.plane = DataPlane(models, limits, self.metrics, columns, self.monitoring,
                               self.deployments)
        self.is_ready = False
        self.load_error: str | None = None
        models.on_swap = self._swapped
        self._handlers: dict[str, Callable[[Call], Awaitable[Reply]]] = {
            r.handler: getattr(self, r.handler) for r in ROUTES}

    def _swapped(self, name: str, old: int | None, new: int | None) -> None:
        self.metrics.swaps.labels(name).inc()
        self.metrics.version.labels(name).set(new or 0)
        self.metrics.loaded(self.models.get(name))

    async def handle(self, route: Route, call: Call) -> Reply:
        """The answer of `route` to `call`; a guarded route's errors become its protocol's
        JSON error bodies (never raises for those)."""
        handler = self._handlers[route.handler]
        if route.metric is None:
            return await handler(call)
        start = time.perf_counter()
        in_flight = self.metrics.child(self.metrics.in_flight, route.metric)
        in_flight.inc()
        try:
            if not self.is_ready:
                raise NotReady(self.load_error or "models are still loading; retry shortly")
            self.keys.check(call.headers.get("authorization"))
            reply = await handler(call)
        except Exception as e:  # noqa: BLE001 - every error becomes a JSON answer
            reply = error_reply(e, route.protocol)
        finally:
            in_flight.dec()
        if call.request_id is not None:
            reply.headers = {**(reply.headers or {}), "X-Request-Id": call.request_id}
        if call.reply_headers:
            reply.headers = {**(reply.headers or {}), **call.reply_headers}
        self.metrics.request(route.metric, reply.status, time.perf_counter() - start,
                             *call.served)
        return reply

    # --- scoring, one method per protocol ------------------------------------------------
    async def invocations(self, call: Call) -> Reply:
        """MLflow's `POST /invocations`."""
        return await self.plane.infer(call, Protocol.MLFLOW)

    async def infer(self, call: Call) -> Reply:
        """V2's `POST /v2/models/{model}/infer`."""
        return await self.plane.infer(call, Protocol.V2)

    async def predict(self, call: Call) -> Reply:
        """Native `POST /models/{name}/predict`."""
        return await self.plane.infer(call, Protocol.NATIVE)

    # --- V2 metadata ---------------------------------------------------------------------
    async def server_metadata(self, call: Call) -> Reply:
        """`GET /v2`."""
        return json_reply(v2.server_metadata())

    async def model_metadata(self, call: Call) -> Reply:
        """`GET /v2/models/{model}`: inputs, outputs, versions (a deployment's: its
        champion's, under the deployment's name)."""
        rz = self.plane.deployment(call)
        if rz is None:
            return json_reply(v2.model_metadata(self.plane.model(call)))
        return json_reply({**v2.model_metadata(rz.scorers.get(rz.spec.champion)),
                           "name": rz.spec.name})

    async def model_ready(self, call: Call) -> Reply:
        """`GET /v2/models/{model}/ready`."""
        rz = self.plane.deployment(call)
        name = rz.spec.name if rz is not None else self.plane.model(call).name
        return json_reply({"name": name, "ready": True})

    # --- plain pages ---------------------------------------------------------------------
    async def ping(self, call: Call) -> Reply:
        """MLflow's `/ping` (and `/health`): 200 when ready, else 503."""
        return Reply(200 if self.is_ready else 503, b"\n", None)

    async def version(self, call: Call) -> Reply:
        """MLflow's `/version`: scorehouse's version as text."""
        return Reply(200, __version__.encode(), "text/plain; charset=utf-8")

    async def live(self, call: Call) -> Reply:
        """`/v2/health/live`: always true while the process answers."""
        return json_reply({"live": True})

    async def ready(self, call: Call) -> Reply:
        """`/v2/health/ready`: true once every model is loaded; the load error otherwise."""
        body: dict[str, Any] = {"ready": self.is_ready}
        if self.load_error:
            body["error"] = self.load_error
        return json_reply(body, 200 if self.is_ready else 503)

    async def openapi(self, call: Call) -> Reply:
        """`/openapi.json`: every route, with each model's schema."""
        served = {n: s.scorer for n, s in self.models.models.items()}
        served.update({n: rz.scorers.get(rz.spec.champion)  # the champion's inputs
                       for n, rz in self.deployments.served.items()})
        return json_reply(document(served, self.keys.enabled))

    async def docs(self, call: Call) -> Reply:
        """`/docs`: Swagger UI, its files served by this server."""
        return Reply(200, DOCS_HTML.encode(), "text/html; charset=utf-8")

    async def metrics_text(self, call: Call) -> Reply:
        """`/metrics`: Prometheus' text format."""
        return Reply(200, self.metrics.render(), "text/plain; version=0.0.4; charset=utf-8")

    # --- lifecycle -----------------------------------------------------------------------
    def prepare(self) -> None:
        """After loading: metrics, and whether micro-batching pays for each model."""
        for name, served in self.models.models.items():
            self.metrics.version.labels(name).set(served.version or 0)
            self.metrics.loaded(served.scorer)
            on = self.batching == "on" or (self.batching == "auto" and worth_it(
                served.scorer, example_record(served.scorer)))
            if on:
                self.plane.batched.add(name)
            self.metrics.batching.labels(name).set(1 if on else 0)
        if self.watch:
            self.models.watch()
            self.deployments.watch()
        if self.monitoring.logger is not None or self.deployments.served:
            # The prediction log keeps up to a second of calls alive in its queue, so they
            # survive into the oldest generation and trigger a full collection every few
            # seconds, each walking the whole heap of libraries and models (~0.1 s of the
            # event loop's time here). That heap lives as long as the server: frozen, out
            # of the collector's reach, a full collection walks only newer objects. (A
            # deployment's off-path queues and calls past their deadline do the same.)
            gc.collect()
            gc.freeze()
        self.is_ready = True

    def load(self) -> None:
        """Load the models and the deployments not loaded yet.

        Raises:
            ScorehouseError: as `ModelSet.load_all` and `DeploymentSet.load_all` (a name
                served both as a model and as a deployment, too).
        """
        if not self.models.ready.is_set():
            self.models.load_all()
        if not self.deployments.ready.is_set():
            self.deployments.load_all(set(self.models.models))

    def _load_then_prepare(self) -> None:
        try:
            self.load()
            self.prepare()
        except Exception as e:  # stay unready and say why on /v2/health/ready
            self.load_error = f"{type(e).__name__}: {e}"
            log.exception("loading models failed")

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        """Listen at once and load in the background: liveness is true, readiness follows.
        (An app built with everything loaded and prepared, as `scorehouse serve` builds it,
        is ready from its first request.)"""
        if not self.is_ready:
            threading.Thread(target=self._load_then_prepare, name="scorehouse-load",
                             daemon=True).start()
        yield
        self.bodies.close()
        self.models.close()
        self.deployments.close()
        self.monitoring.close()  # graceful shutdown: every logged row reaches the sink
