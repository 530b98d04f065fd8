"""The server's one route table: every path, its methods and the service method answering it.

Both transports read this table, so they cannot disagree on what exists: the raw-ASGI
fast path (`serve.fastpath`) matches requests against it, and the Starlette app
(`serve.app`) is built from it (Starlette then answers what the table does not hold:
404, 405 naming the allowed methods, /docs' static files).

A path is a template as Starlette writes it: `{name}` matches one path segment (no '/').
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum

GET = ("GET", "HEAD")
POST = ("POST",)


class Protocol(str, Enum):
    """The wire format of a route's answers, errors included."""

    MLFLOW = "mlflow"
    V2 = "v2"
    NATIVE = "native"


@dataclass(frozen=True)
class Route:
    """One path template, answered by `ScoringService.<handler>` for `methods`.

    `metric`: the route label of its requests in /metrics; such routes are guarded
    (readiness, API key, latency, errors as `protocol`'s JSON body). None: a plain page
    (health, metrics, docs), open to all and answered even before the models are loaded.
    """

    path: str
    handler: str
    methods: tuple[str, ...] = GET
    metric: str | None = None
    protocol: Protocol = Protocol.NATIVE
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(self.path))
        object.__setattr__(self, "pattern", re.compile(f"^{regex}$"))

    def match(self, path: str) -> dict[str, str] | None:
        """The path parameters when `path` fits this template (e.g. {"name": "churn"}), else None."""
        m = self.pattern.match(path)
        return None if m is None else m.groupdict()


MLFLOW, V2, NATIVE = Protocol.MLFLOW, Protocol.V2, Protocol.NATIVE

#: Every route of the server (each model route also under `/versions/{version}`: a pinned
#: version, see `serve.models`).
ROUTES: list[Route] = [
    Route("/ping", "ping"),
    Route("/health", "ping"),
    Route("/version", "version"),
    # MLflow's scoring protocol.
    Route("/invocations", "invocations", POST, "mlflow", MLFLOW),
    Route("/models/{name}/invocations", "invocations", POST, "mlflow", MLFLOW),
    Route("/models/{name}/versions/{version}/invocations", "invocations", POST, "mlflow", MLFLOW),
    # Open Inference Protocol (V2).
    Route("/v2", "server_metadata", GET, "v2_server", V2),
    Route("/v2/health/live", "live"),
    Route("/v2/health/ready", "ready"),
    Route("/v2/models/{model}", "model_metadata", GET, "v2_metadata", V2),
    Route("/v2/models/{model}/versions/{version}", "model_metadata", GET, "v2_metadata", V2),
    Route("/v2/models/{model}/ready", "model_ready", GET, "v2_ready", V2),
    Route("/v2/models/{model}/versions/{version}/ready", "model_ready", GET, "v2_ready", V2),
    Route("/v2/models/{model}/infer", "infer", POST, "v2_infer", V2),
    Route("/v2/models/{model}/versions/{version}/infer", "infer", POST, "v2_infer", V2),
    # Native.
    Route("/models/{name}/predict", "predict", POST, "predict", NATIVE),
    Route("/models/{name}/versions/{version}/predict", "predict", POST, "predict", NATIVE),
    # The server's own pages.
    Route("/metrics", "metrics_text"),
    Route("/openapi.json", "openapi"),
    Route("/docs", "docs"),
]


def find(method: str, path: str, routes: list[Route] = ROUTES
         ) -> tuple[Route, dict[str, str]] | None:
    """(the route answering `method` on `path`, its path parameters), or None when no route
    takes both (then Starlette answers: 404, or 405 naming the methods the path takes)."""
    for route in routes:
        if method in route.methods:
            params = route.match(path)
            if params is not None:
                return route, params
    return None
