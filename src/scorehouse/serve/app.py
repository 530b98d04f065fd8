"""The HTTP service: MLflow, Open Inference (V2) and native endpoints on one ModelSet.

`create_app` assembles the pieces: the route table (`routes`), the service answering it
(`service.ScoringService`, over `dataplane.DataPlane` and one module per wire format in
`protocols`), the raw-ASGI transport that answers the table's routes (`fastpath`), and a
Starlette app built from the same table for everything else (404 and 405 answers, /docs'
files, lifespan).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount
from starlette.routing import Route as StarletteRoute
from starlette.staticfiles import StaticFiles

from ..monitor.log import LogOptions
from ..schema import ColumnPolicy
from .auth import ApiKeys
from .calls import Call, Reply, json_reply
from .deployments import DeploymentSet
from .fastpath import FastPath
from .limits import MAX_BODY, Limits, TimedOut, TooLarge
from .models import ModelSet
from .openapi import DOCS_ASSETS, swagger_ui_files
from .routes import ROUTES, Route
from .service import ScoringService

__all__ = ["MAX_BODY", "Limits", "TimedOut", "TooLarge", "create_app"]


def create_app(models: ModelSet, *, max_body: int = MAX_BODY, watch: bool = True,
               api_keys: ApiKeys | None = None, timeout: float | None = None,
               batching: str = "auto", columns: ColumnPolicy = ColumnPolicy.LENIENT,
               limits: Limits | None = None, log: LogOptions | None = None,
               drift: bool = False, mounts: Mapping[str, Any] | None = None,
               deployments: DeploymentSet | None = None) -> FastPath:
    """The ASGI app serving `models` (loaded at startup; readiness follows).

    `batching`: "auto" (micro-batch single records where start-up measurement shows it
    pays), "on" or "off"; `timeout`: seconds per request (504 beyond it); `columns`: the
    column policy of every request (strict: 400 naming absent and unknown columns);
    `limits`: every per-request limit (see `limits.Limits`; when given, `max_body` and
    `timeout` are not used); `log`: the prediction log of every scored row (None: none);
    `drift`: live drift windows on /metrics; `mounts`: other ASGI apps by path prefix
    (`scorehouse serve --ui` mounts the web console at /ui: this package never imports
    it); `deployments`: deployments served beside the models (each under its name, on
    every protocol). `.pages` of the app is the Starlette app of the same routes.
    """
    limits = limits or Limits.from_env(max_body=max_body, timeout=timeout)
    service = ScoringService(models, limits, keys=api_keys, batching=batching,
                             columns=columns, watch=watch, log=log, drift=drift,
                             deployments=deployments)
    routes: list[BaseRoute] = [StarletteRoute(r.path, _page(service, r), methods=list(r.methods))
                               for r in ROUTES]
    routes.append(Mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_files())))
    routes += [Mount(prefix, app) for prefix, app in (mounts or {}).items()]
    pages = Starlette(routes=routes, lifespan=service.lifespan,
                      exception_handlers={404: _not_found, 405: _not_found})
    return FastPath(pages, service, ROUTES)


def _page(service: ScoringService, route: Route) -> Any:
    # A route of the table as a Starlette endpoint (the fast path answers these first; this
    # makes `.pages` a whole app on its own).
    async def run(request: Request) -> Response:
        def read() -> Any:
            return service.bodies.read(request.stream(), request.headers.get("content-length"))

        return _response(await service.handle(route, Call(request.path_params, request.headers,
                                                          read)))
    return run


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    what = "no such endpoint" if status == 404 else "method not allowed"
    reply = json_reply({"error": f"{request.method} {request.url.path}: {what}"}, status)
    reply.headers = getattr(exc, "headers", None)  # a 405 names the methods in `Allow`
    return _response(reply)


def _response(reply: Reply) -> Response:
    response = Response(reply.body, reply.status, headers=reply.headers)
    if reply.content_type is not None:
        response.headers["content-type"] = reply.content_type
    return response
