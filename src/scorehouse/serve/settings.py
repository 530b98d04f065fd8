"""The settings of `scorehouse serve`, as one typed object (JSON for worker processes)."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

from ..monitor.log import LogOptions
from .limits import MAX_BODY


@dataclass(frozen=True)
class ServeSettings:
    """What `scorehouse serve` was asked to serve, and how.

    `refs`: model references (`churn@production`, `fraud/3`, a `.shz` path); `registry`,
    `artifacts`: where registry references are found (None: the defaults); `runtime`: the
    runtime asked for (None: the artifact's choice); `batching`: "auto", "on" or "off";
    `columns`: the column policy ("lenient" or "strict"); byte, row and second limits as
    in `serve.limits.Limits` (`timeout` None: none; the others None: from the environment,
    else the defaults, see `Limits.from_env`); `pinned_cache`: pinned versions kept
    loaded (None: `$SCOREHOUSE_PINNED_CACHE` or the default); `log_to`, `log_sample`: the
    prediction log's URL and sampling rate (`log_to` None: `$SCOREHOUSE_LOG_TO` and the
    other `SCOREHOUSE_LOG_*` variables, else no log; see `log_options`); `drift`: keep live
    drift windows, exported on /metrics (off by default: a window's fold of buffered rows
    runs on the event loop and showed as tens of ms at p99 in bench_serve);
    `deployments`: names of registry deployments served beside (or instead of) `refs`.
    """

    refs: list[str]
    registry: str | None = None
    artifacts: str | None = None
    runtime: str | None = None
    trust: bool = False
    accept_parity_difference: bool = False
    max_body: int = MAX_BODY
    max_rows: int | None = None
    max_rejects: int | None = None
    timeout: float | None = 30.0
    read_timeout: float | None = None
    pinned_cache: int | None = None
    batching: str = "auto"
    api_keys: list[str] = field(default_factory=list)
    api_key_file: str | None = None
    columns: str = "lenient"
    log_to: str | None = None
    log_sample: float | None = None
    drift: bool = False
    deployments: list[str] = field(default_factory=list)

    def log_options(self) -> LogOptions | None:
        """The prediction log's options: `log_to` (its query and the SCOREHOUSE_LOG_*
        variables other than the URL apply too), else the environment's, else None (off);
        `log_sample` wins over both.

        Raises:
            UsageError: an option out of range or that does not parse.
        """
        overrides = {} if self.log_sample is None else {"sample": self.log_sample}
        if self.log_to is not None:
            return LogOptions.from_env({**os.environ, "SCOREHOUSE_LOG_TO": self.log_to},
                                       **overrides)
        return LogOptions.from_env(None, **overrides)

    def to_json(self) -> str:
        """These settings as JSON (`$SCOREHOUSE_SERVE_ARGS` of uvicorn's worker processes)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        """The settings `to_json` wrote."""
        return cls(**json.loads(text))
