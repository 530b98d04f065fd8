"""The HTTP service: MLflow, Open Inference (V2) and native endpoints on one ModelSet.

Every endpoint decodes its wire format, calls the same `Scorer.predict`, and encodes the
result. Bad requests get a 4xx with a JSON body naming what is wrong.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .. import __version__
from ..errors import InvalidInputError, NotFoundError, ScorehouseError
from ..schema import ColumnPolicy, ColumnsError, check_input
from ..scorer import Result, Scorer
from .auth import ApiKeys, Unauthorized
from .batching import MicroBatcher, worth_it
from .codecs import jsonbody, mlflow, v2
from .limits import INLINE_BYTES, MAX_BODY, BodyReader, Limits, Offload, SlowClient, TimedOut, TooLarge
from .metrics import Metrics
from .models import ModelSet
from .openapi import DOCS_ASSETS, DOCS_HTML, document, example_record, swagger_ui_files
from .rejects import reject_fields, rejected

log = logging.getLogger("scorehouse.serve")

__all__ = ["MAX_BODY", "Limits", "TimedOut", "TooLarge", "create_app"]

#: Requests with at most this many rows are scored on the event loop (a thread hop costs
#: more than scoring them); larger ones in the thread pool.
INLINE_ROWS = 64
JSON = "application/json"


@dataclass
class Reply:
    """What a handler answers: status, body, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: dict[str, str] | None = None


def _json(data: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY))


@dataclass
class Call:
    """One request as the handlers see it, whichever way it came in."""

    params: dict[str, str]
    headers: Any  # case-insensitive mapping of header names (lower-case keys)
    read: Callable[[], Awaitable[bytes]]
    #: The model and version that answered (set once the route found them), for metrics.
    served: tuple[str, str] = ("", "")


#: A version in a path: ASCII digits, at most 9 (str.isdigit also takes '²' and '٣').
_VERSION = re.compile(r"[0-9]{1,9}")

#: The scoring routes, answered by raw ASGI (no framework layers on the hot path).
FAST_ROUTES = [
    (re.compile(r"^/invocations$"), "mlflow"),
    (re.compile(r"^/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/invocations$"), "mlflow"),
    (re.compile(r"^/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/predict$"), "predict"),
    (re.compile(r"^/v2/models/(?P<model>[^/]+)(?:/versions/(?P<version>[^/]+))?/infer$"),
     "v2_infer"),
]


class NotReady(ScorehouseError):
    """A request before the models are loaded."""


#: HTTP status of each error the handlers raise; any other ScorehouseError is a 400.
STATUS = ((Unauthorized, 401), (NotFoundError, 404), (SlowClient, 408), (TooLarge, 413),
          (TimedOut, 504), (NotReady, 503), (ScorehouseError, 400))


def _status(e: Exception) -> int:
    return next((code for kind, code in STATUS if isinstance(e, kind)), 500)


def create_app(models: ModelSet, *, max_body: int = MAX_BODY, watch: bool = True,
               api_keys: ApiKeys | None = None, timeout: float | None = None,
               batching: str = "auto", columns: ColumnPolicy = ColumnPolicy.LENIENT,
               limits: Limits | None = None) -> Any:
    """The ASGI app serving `models` (loaded at startup; readiness follows).

    `batching`: "auto" (micro-batch single records where start-up measurement shows it
    pays), "on" or "off"; `timeout`: seconds per request (504 beyond it); `columns`: the
    column policy of every request (strict: 400 naming absent and unknown columns);
    `limits`: every per-request limit (see `limits.Limits`; when given, `max_body` and
    `timeout` are not used).
    """
    limits = limits or Limits.from_env(max_body=max_body, timeout=timeout)
    offload = Offload(limits)
    bodies = BodyReader(limits)
    metrics = Metrics()
    keys = api_keys or ApiKeys()
    batcher = MicroBatcher(observe=metrics.batch_size.observe)
    batched: set[str] = set()
    state: dict[str, Any] = {"ready": False, "error": None}
    models.on_swap = lambda name, old, new: (metrics.swaps.labels(name).inc(),
                                             metrics.version.labels(name).set(new or 0))

    def rows_of(rows: Any) -> tuple[Any, int]:
        # (rows, how many), one record as a dict (what the micro-batcher and the one-row
        # fast path take); refused beyond the row limit.
        if isinstance(rows, list) and len(rows) == 1:
            rows = rows[0]
        n = rows.num_rows if hasattr(rows, "num_rows") else len(rows) if isinstance(rows, list) else 1
        limits.check_rows(n)
        return rows, n

    def predict(scorer: Scorer, rows: Any) -> Result:
        # Scoring where the caller already is (a worker thread for large bodies).
        rows, _ = rows_of(rows)
        result = scorer.predict(rows, columns=columns, max_rejects=limits.max_rejects)
        metrics.observe(result)
        return result

    async def score(scorer: Scorer, rows: Any) -> Result:
        # Scoring for a small body, on the event loop: micro-batched, inline or threaded.
        rows, n = rows_of(rows)
        if isinstance(rows, dict) and scorer.name in batched:
            # Each request's columns are its own, whatever it is batched with.
            check = check_input(scorer.schema, rows).enforce(columns)
            result = await batcher.score(scorer, rows)
            result.column_check = check
        elif n <= INLINE_ROWS:
            result = scorer.predict(rows, columns=columns, max_rejects=limits.max_rejects)
        else:
            result = await offload.threaded(
                lambda: scorer.predict(rows, columns=columns, max_rejects=limits.max_rejects))
        metrics.observe(result)
        return result

    async def pipeline(scorer: Scorer, body: bytes, decode: Callable[[], Any],
                       answer: Callable[[Result], Reply]) -> Reply:
        # decode -> score -> answer; a large body does all three in a worker thread.
        if len(body) > INLINE_BYTES:
            return await offload.run(len(body), lambda: answer(predict(scorer, decode())))
        return answer(await score(scorer, decode()))

    def endpoint(route: str, fn: Callable[[Call], Awaitable[Reply]]
                 ) -> Callable[[Call], Awaitable[Reply]]:
        # One place for readiness, keys, timing, counting and errors as JSON bodies.
        mlflow_style = route == "mlflow"

        in_flight = metrics.child(metrics.in_flight, route)

        async def handle(call: Call) -> Reply:
            start = time.perf_counter()
            in_flight.inc()
            try:
                if not state["ready"]:
                    raise NotReady(state["error"] or "models are still loading; retry shortly")
                keys.check(call.headers.get("authorization"))
                reply = await fn(call)
            except Exception as e:  # noqa: BLE001 - every error becomes a JSON answer
                reply = _error(e, mlflow_style)
            finally:
                in_flight.dec()
            metrics.request(route, reply.status, time.perf_counter() - start, *call.served)
            return reply
        return handle

    def model_of(call: Call) -> Scorer:
        name = call.params.get("name") or call.params.get("model")
        version = call.params.get("version")
        if name is None:
            if len(models.models) != 1:
                raise InvalidInputError("this server holds several models; POST to "
                                        "/models/{name}/invocations")
            name = next(iter(models.models))
        if version is not None and not _VERSION.fullmatch(version):
            raise NotFoundError(f"version {version!r} is not a number")
        scorer = models.get(name, int(version) if version is not None else None)
        call.served = (scorer.name, str(scorer.public_version))
        return scorer

    # --- MLflow -------------------------------------------------------------------------
    async def invocations(call: Call) -> Reply:
        scorer = model_of(call)
        body = await call.read()
        kind = call.headers.get("content-type") or JSON

        def answer(result: Result) -> Reply:
            if result.rejects:
                return _json({"error_code": "BAD_REQUEST", "message": str(rejected(result)),
                              **reject_fields(result)}, 400)
            return Reply(200, mlflow.encode(result))
        return await pipeline(scorer, body, lambda: mlflow.decode(body, kind), answer)

    # --- Open Inference Protocol (V2) ---------------------------------------------------
    async def server_metadata(call: Call) -> Reply:
        return _json({"name": "scorehouse", "version": __version__,
                      "extensions": ["binary_tensor_data", "model_repository"]})

    async def model_metadata(call: Call) -> Reply:
        return _json(v2.model_metadata(model_of(call)))

    async def model_ready(call: Call) -> Reply:
        return _json({"name": model_of(call).name, "ready": True})

    async def infer(call: Call) -> Reply:
        scorer = model_of(call)
        body = await call.read()
        decoded: dict[str, Any] = {}

        def decode() -> Any:
            # Unknown inputs are the column policy's to judge (reported, or refused when strict).
            table, decoded["doc"] = v2.decode(body, call.headers.get(v2.HEADER.lower()))
            return table

        def answer(result: Result) -> Reply:
            if result.rejects:
                raise rejected(result)
            payload, header = v2.encode(result, scorer, decoded["doc"])
            if header is None:
                return Reply(200, payload)
            return Reply(200, payload, "application/octet-stream", {v2.HEADER: str(header)})
        return await pipeline(scorer, body, decode, answer)

    # --- native -------------------------------------------------------------------------
    async def native(call: Call) -> Reply:
        scorer = model_of(call)
        body = await call.read()

        def decode() -> Any:
            data = jsonbody.loads(body)
            if isinstance(data, dict) and "records" in data:
                data = data["records"]
            if not isinstance(data, (dict, list)) or (isinstance(data, list) and not all(
                    isinstance(r, dict) for r in data)):
                raise InvalidInputError('send one record {"column": value, ...}, a list of '
                                        'them, or {"records": [...]}')
            return data

        def answer(result: Result) -> Reply:
            out = {"model": scorer.name, "version": scorer.public_version,
                   "runtime": result.runtime,
                   **({"parity_accepted": result.parity_accepted} if result.parity_accepted
                      else {}),
                   "predictions": result.to_records(), **reject_fields(result)}
            if not result.column_check.clean:
                out["columns"] = result.column_check.to_dict()
            return _json(out, 422 if result.rejects and not result.n_scored else 200)
        return await pipeline(scorer, body, decode, answer)

    handlers = {"mlflow": endpoint("mlflow", invocations), "predict": endpoint("predict", native),
                "v2_infer": endpoint("v2_infer", infer)}

    # --- plain pages (Starlette) ------------------------------------------------------------
    def view(handler: Callable[[Call], Awaitable[Reply]]) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            call = Call(dict(request.path_params), request.headers,
                        lambda: bodies.read(request.stream(), request.headers.get("content-length")))
            return _response(await handler(call))
        return run

    async def ping(request: Request) -> Response:
        return Response("\n", 200 if state["ready"] else 503)

    async def version(request: Request) -> Response:
        return Response(__version__, media_type="text/plain")

    async def live(request: Request) -> Response:
        return _response(_json({"live": True}))

    async def ready(request: Request) -> Response:
        ok = bool(state["ready"])
        body = {"ready": ok, **({"error": state["error"]} if state["error"] else {})}
        return _response(_json(body, 200 if ok else 503))

    async def openapi(request: Request) -> Response:
        return _response(_json(document({n: s.scorer for n, s in models.models.items()},
                                        keys.enabled)))

    async def docs(request: Request) -> Response:
        return Response(DOCS_HTML, media_type="text/html")

    async def metrics_endpoint(request: Request) -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        reply = _json({"error": f"{request.method} {request.url.path}: "
                                f"{'no such endpoint' if status == 404 else 'method not allowed'}"},
                      status)
        reply.headers = getattr(exc, "headers", None)  # a 405 names the methods in `Allow`
        return _response(reply)

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
        bodies.close()
        models.close()

    post = ["POST"]
    r = [
        Route("/ping", ping), Route("/health", ping), Route("/version", version),
        Route("/invocations", view(handlers["mlflow"]), methods=post),
        Route("/models/{name}/invocations", view(handlers["mlflow"]), methods=post),
        Route("/v2", view(endpoint("v2_server", server_metadata))),
        Route("/v2/health/live", live), Route("/v2/health/ready", ready),
        Route("/v2/models/{model}", view(endpoint("v2_metadata", model_metadata))),
        Route("/v2/models/{model}/versions/{version}",
              view(endpoint("v2_metadata", model_metadata))),
        Route("/v2/models/{model}/ready", view(endpoint("v2_ready", model_ready))),
        Route("/v2/models/{model}/versions/{version}/ready",
              view(endpoint("v2_ready", model_ready))),
        Route("/v2/models/{model}/infer", view(handlers["v2_infer"]), methods=post),
        Route("/v2/models/{model}/versions/{version}/infer", view(handlers["v2_infer"]),
              methods=post),
        Route("/models/{name}/predict", view(handlers["predict"]), methods=post),
        Route("/models/{name}/versions/{version}/predict", view(handlers["predict"]),
              methods=post),
        Route("/metrics", metrics_endpoint),
        Route("/openapi.json", openapi), Route("/docs", docs),
        Mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_files())),
    ]
    pages = Starlette(routes=r, lifespan=lifespan,
                      exception_handlers={404: not_found, 405: not_found})
    return _FastScoring(pages, handlers, bodies.read)


def _error(e: Exception, mlflow_style: bool) -> Reply:
    status = _status(e)
    message = str(e) if isinstance(e, ScorehouseError) else \
        f"internal error: {type(e).__name__}: {e}"
    if mlflow_style:
        code = "BAD_REQUEST" if status < 500 else "TIMEOUT" if status == 504 else \
            "UNAVAILABLE" if status == 503 else "INTERNAL_ERROR"
        reply = _json({"message": message, "error_code": code, **_columns(e)}, status)
    else:
        reply = _json({"error": message, **_columns(e)}, status)
    if status == 401:
        reply.headers = {"WWW-Authenticate": "Bearer"}
    elif status == 408:  # the rest of the body may never come: do not reuse the connection
        reply.headers = {"Connection": "close"}
    return reply


def _columns(e: Exception) -> dict[str, Any]:
    # A strict column refusal names the columns in fields a client can read, not only prose.
    return {"columns": e.check.to_dict()} if isinstance(e, ColumnsError) else {}


def _response(reply: Reply) -> Response:
    return Response(reply.body, reply.status, headers=reply.headers, media_type=reply.content_type)


class _Headers(dict):
    """Request headers from an ASGI scope, looked up by lower-case name."""

    def __init__(self, raw: list[tuple[bytes, bytes]]):
        super().__init__((k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in raw)


class _FastScoring:
    """Answers POSTs to the scoring routes in plain ASGI; everything else goes to `pages`."""

    def __init__(self, pages: Starlette, handlers: dict[str, Callable[[Call], Awaitable[Reply]]],
                 read_body: Callable[[AsyncIterator[bytes], str | None], Awaitable[bytes]]):
        self.pages, self.handlers, self.read_body = pages, handlers, read_body
        self.routes = [(pattern, handlers[name]) for pattern, name in FAST_ROUTES]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            for pattern, handler in self.routes:
                m = pattern.match(path)
                if m is not None:
                    await self._answer(scope, receive, send, handler,
                                       {k: v for k, v in m.groupdict().items() if v is not None})
                    return
        await self.pages(scope, receive, send)

    async def _answer(self, scope: dict[str, Any], receive: Any, send: Any,
                      handler: Callable[[Call], Awaitable[Reply]], params: dict[str, str]) -> None:
        headers = _Headers(scope["headers"])

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body"):
                    return

        reply = await handler(Call(params, headers,
                                   lambda: self.read_body(chunks(), headers.get("content-length"))))
        out = [(b"content-type", reply.content_type.encode()),
               (b"content-length", str(len(reply.body)).encode())]
        out += [(k.lower().encode(), v.encode()) for k, v in (reply.headers or {}).items()]
        await send({"type": "http.response.start", "status": reply.status, "headers": out})
        await send({"type": "http.response.body", "body": reply.body})
