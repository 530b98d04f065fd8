"""The HTTP service: MLflow, Open Inference (V2) and native endpoints on one ModelSet.

Every endpoint decodes its wire format, calls the same `Scorer.predict`, and encodes the
result. Bad requests get a 4xx with a JSON body naming what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import __version__
from ..errors import InvalidInputError, NotFoundError, ScorehouseError
from ..scorer import Result, Scorer
from .auth import ApiKeys, Unauthorized
from .batching import MicroBatcher, worth_it
from .codecs import mlflow, v2
from .metrics import Metrics
from .models import ModelSet
from .openapi import DOCS_HTML, document, example_record

log = logging.getLogger("scorehouse.serve")

#: Largest request body accepted, in bytes (413 beyond it).
MAX_BODY = 16 * 1024 * 1024
#: Requests with at most this many rows are scored on the event loop (a thread hop costs
#: more than scoring them); larger ones in the thread pool.
INLINE_ROWS = 64
JSON = "application/json"


def _json(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status,
                    media_type=JSON)


class TooLarge(ScorehouseError):
    """A request body over the size limit."""


class NotReady(ScorehouseError):
    """A request before the models are loaded."""


class TimedOut(ScorehouseError):
    """A request that took longer than the per-request timeout."""


def _status(e: Exception) -> int:
    if isinstance(e, Unauthorized):
        return 401
    if isinstance(e, NotFoundError):
        return 404
    if isinstance(e, TooLarge):
        return 413
    if isinstance(e, TimedOut):
        return 504
    if isinstance(e, NotReady):
        return 503
    if isinstance(e, InvalidInputError):
        return 400
    return 400 if isinstance(e, ScorehouseError) else 500


def create_app(models: ModelSet, *, max_body: int = MAX_BODY, watch: bool = True,
               api_keys: ApiKeys | None = None, timeout: float | None = None,
               batching: str = "auto") -> Starlette:
    """The ASGI app serving `models` (loaded at startup; readiness follows).

    `batching`: "auto" (micro-batch single records where start-up measurement shows it
    pays), "on" or "off"; `timeout`: seconds per request (504 beyond it).
    """
    metrics = Metrics()
    keys = api_keys or ApiKeys()
    batcher = MicroBatcher(observe=metrics.batch_size.observe)
    batched: set[str] = set()
    state: dict[str, Any] = {"ready": False, "error": None}
    models.on_swap = lambda name, old, new: (metrics.swaps.labels(name).inc(),
                                             metrics.version.labels(name).set(new or 0))

    async def body(request: Request) -> bytes:
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > max_body:
            raise TooLarge(f"request body of {length} bytes is over the limit of {max_body}")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body:
                raise TooLarge(f"request body is over the limit of {max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def score(scorer: Scorer, rows: Any) -> Result:
        if isinstance(rows, list) and len(rows) == 1:
            rows = rows[0]
        n = rows.num_rows if hasattr(rows, "num_rows") else len(rows) if isinstance(rows, list) else 1
        if isinstance(rows, dict) and scorer.name in batched:
            result = await batcher.score(scorer, rows)
        elif n <= INLINE_ROWS:
            result = scorer.predict(rows)
        else:
            work = run_in_threadpool(scorer.predict, rows)
            try:
                result = await (asyncio.wait_for(work, timeout) if timeout else work)
            except asyncio.TimeoutError:
                raise TimedOut(f"scoring {n} rows took longer than the {timeout:g} s request "
                               "timeout; send fewer rows per request") from None
        metrics.observe(result)
        return result

    def endpoint(route: str, fn: Callable[[Request], Awaitable[Response]]
                 ) -> Callable[[Request], Awaitable[Response]]:
        # One place for timing, counting and turning errors into JSON bodies.
        async def handle(request: Request) -> Response:
            start = time.perf_counter()
            try:
                if not state["ready"]:
                    raise NotReady(state["error"] or "models are still loading; retry shortly")
                keys.check(request.headers.get("authorization"))
                response = await fn(request)
            except Exception as e:  # noqa: BLE001 - every error becomes a JSON answer
                status = _status(e)
                known = isinstance(e, ScorehouseError)
                message = str(e) if known else f"internal error: {type(e).__name__}: {e}"
                key = "message" if route.startswith("mlflow") else "error"
                extra = {"error_code": "BAD_REQUEST" if status < 500 else
                         "TIMEOUT" if status == 504 else "UNAVAILABLE" if status == 503
                         else "INTERNAL_ERROR"} \
                    if route.startswith("mlflow") else {}
                response = _json({key: message, **extra}, status)
                if status == 401:
                    response.headers["WWW-Authenticate"] = "Bearer"
            metrics.requests.labels(route, str(response.status_code)).inc()
            metrics.latency.labels(route).observe(time.perf_counter() - start)
            return response
        return handle

    def model_of(request: Request) -> Scorer:
        name = request.path_params.get("name") or request.path_params.get("model")
        version = request.path_params.get("version")
        if name is None:
            if len(models.models) != 1:
                raise InvalidInputError("this server holds several models; POST to "
                                        "/models/{name}/invocations")
            name = next(iter(models.models))
        if version is not None and not str(version).isdigit():
            raise NotFoundError(f"version {version!r} is not a number")
        return models.get(name, int(version) if version is not None else None)

    def rejected(result: Result) -> InvalidInputError:
        shown = "; ".join(str(r) for r in result.rejects[:5])
        more = f" (and {len(result.rejects) - 5} more)" if len(result.rejects) > 5 else ""
        return InvalidInputError(f"{result.n_rejected} of {result.n_read} row(s) rejected: "
                                 f"{shown}{more}")

    # --- MLflow -------------------------------------------------------------------------
    async def invocations(request: Request) -> Response:
        scorer = model_of(request)
        rows = mlflow.decode(await body(request), request.headers.get("content-type", JSON))
        result = await score(scorer, rows)
        if result.rejects:
            return _json({"error_code": "BAD_REQUEST", "message": str(rejected(result)),
                          "rejects": [r.to_dict() for r in result.rejects]}, 400)
        return Response(mlflow.encode(result), media_type=JSON)

    async def ping(request: Request) -> Response:
        return Response("\n", 200 if state["ready"] else 503)

    async def version(request: Request) -> Response:
        return Response(__version__, media_type="text/plain")

    # --- Open Inference Protocol (V2) ---------------------------------------------------
    async def server_metadata(request: Request) -> Response:
        return _json({"name": "scorehouse", "version": __version__,
                      "extensions": ["binary_tensor_data", "model_repository"]})

    async def live(request: Request) -> Response:
        return _json({"live": True})

    async def ready(request: Request) -> Response:
        ok = bool(state["ready"])
        body = {"ready": ok, **({"error": state["error"]} if state["error"] else {})}
        return _json(body, 200 if ok else 503)

    async def model_metadata(request: Request) -> Response:
        return _json(v2.model_metadata(model_of(request)))

    async def model_ready(request: Request) -> Response:
        scorer = model_of(request)
        return _json({"name": scorer.name, "ready": True})

    async def infer(request: Request) -> Response:
        scorer = model_of(request)
        table, doc = v2.decode(await body(request), request.headers.get(v2.HEADER))
        unknown = [n for n in table.column_names if n not in scorer.schema.names]
        if unknown:
            raise InvalidInputError(f"unknown input(s) {', '.join(unknown)}; model "
                                    f"{scorer.name!r} takes {', '.join(scorer.schema.names)}")
        result = await score(scorer, table)
        if result.rejects:
            raise rejected(result)
        payload, header = v2.encode(result, scorer, doc)
        headers = {v2.HEADER: str(header)} if header is not None else None
        return Response(payload, media_type="application/octet-stream" if header else JSON,
                        headers=headers)

    # --- native -------------------------------------------------------------------------
    async def predict(request: Request) -> Response:
        scorer = model_of(request)
        try:
            data = orjson.loads(await body(request))
        except orjson.JSONDecodeError as e:
            raise InvalidInputError(f"the body is not valid JSON: {e}") from None
        if isinstance(data, dict) and "records" in data:
            data = data["records"]
        if not isinstance(data, (dict, list)) or (isinstance(data, list) and not all(
                isinstance(r, dict) for r in data)):
            raise InvalidInputError('send one record {"column": value, ...}, a list of them, '
                                    'or {"records": [...]}')
        result = await score(scorer, data)
        answer = {"model": scorer.name, "version": scorer.version, "runtime": result.runtime,
                  "predictions": result.to_records(),
                  "rejects": [r.to_dict() for r in result.rejects]}
        return _json(answer, 422 if result.rejects and not result.n_scored else 200)

    async def openapi(request: Request) -> Response:
        return _json(document({n: s.scorer for n, s in models.models.items()}, keys.enabled))

    async def docs(request: Request) -> Response:
        return Response(DOCS_HTML, media_type="text/html")

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return _json({"error": f"{request.method} {request.url.path}: "
                               f"{'no such endpoint' if status == 404 else 'method not allowed'}"},
                     status)

    def prepare() -> None:
        # After loading: metrics, and whether micro-batching pays for each model.
        for name, served in models.models.items():
            metrics.version.labels(name).set(served.version or 0)
            on = batching == "on" or (batching == "auto" and
                                      worth_it(served.scorer, example_record(served.scorer)))
            if on:
                batched.add(name)
            metrics.batching.labels(name).set(1 if on else 0)
        if watch:
            models.watch()
        state["ready"] = True

    def load_then_prepare() -> None:
        try:
            if not models.ready.is_set():
                models.load_all()
            prepare()
        except Exception as e:  # stay unready and say why on /v2/health/ready
            state["error"] = f"{type(e).__name__}: {e}"
            log.exception("loading models failed")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Listen at once and load in the background: liveness is true, readiness follows.
        loader = threading.Thread(target=load_then_prepare, name="scorehouse-load", daemon=True)
        loader.start()
        yield
        models.close()

    r = [
        Route("/ping", ping), Route("/health", ping), Route("/version", version),
        Route("/invocations", endpoint("mlflow", invocations), methods=["POST"]),
        Route("/models/{name}/invocations", endpoint("mlflow", invocations), methods=["POST"]),
        Route("/v2", endpoint("v2_server", server_metadata)),
        Route("/v2/health/live", live), Route("/v2/health/ready", ready),
        Route("/v2/models/{model}", endpoint("v2_metadata", model_metadata)),
        Route("/v2/models/{model}/versions/{version}", endpoint("v2_metadata", model_metadata)),
        Route("/v2/models/{model}/ready", endpoint("v2_ready", model_ready)),
        Route("/v2/models/{model}/versions/{version}/ready", endpoint("v2_ready", model_ready)),
        Route("/v2/models/{model}/infer", endpoint("v2_infer", infer), methods=["POST"]),
        Route("/v2/models/{model}/versions/{version}/infer", endpoint("v2_infer", infer),
              methods=["POST"]),
        Route("/models/{name}/predict", endpoint("predict", predict), methods=["POST"]),
        Route("/models/{name}/versions/{version}/predict", endpoint("predict", predict),
              methods=["POST"]),
        Route("/metrics", metrics_endpoint),
        Route("/openapi.json", openapi), Route("/docs", docs),
    ]
    return Starlette(routes=r, lifespan=lifespan,
                     exception_handlers={404: not_found, 405: not_found})
