"""The settings of `scorehouse serve`, as one typed object (JSON for worker processes)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import UsageError
from ..monitor.log import LogOptions
from .limits import MAX_BODY

#: The settings `ServeSettings.from_env` reads: field -> (variable, kind). `refs` comes from
#: SCOREHOUSE_MODELS; the row, reject, read-timeout, pinned-cache and prediction-log
#: variables are read where they are used (`Limits.from_env`, `ModelSet`, `LogOptions`).
ENV: dict[str, tuple[str, str]] = {
    "registry": ("SCOREHOUSE_REGISTRY", "str"), "artifacts": ("SCOREHOUSE_ARTIFACTS", "str"),
    "runtime": ("SCOREHOUSE_RUNTIME", "str"), "trust": ("SCOREHOUSE_TRUST", "bool"),
    "accept_parity_difference": ("SCOREHOUSE_ACCEPT_PARITY_DIFFERENCE", "bool"),
    "max_body": ("SCOREHOUSE_MAX_BODY", "int"), "timeout": ("SCOREHOUSE_TIMEOUT", "float"),
    "batching": ("SCOREHOUSE_BATCHING", "str"), "api_keys": ("SCOREHOUSE_API_KEY", "list"),
    "api_key_file": ("SCOREHOUSE_API_KEY_FILE", "str"), "columns": ("SCOREHOUSE_COLUMNS", "str"),
    "drift": ("SCOREHOUSE_DRIFT", "bool"),
}
MODELS_ENV = "SCOREHOUSE_MODELS"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **defaults: Any) -> ServeSettings:
        """Settings from environment variables, as a container or a serverless function gets
        them: SCOREHOUSE_MODELS (references separated by spaces or commas) and the
        variables of `ENV`; `defaults` stand where a variable is unset or empty.

        Raises:
            UsageError: SCOREHOUSE_MODELS unset or empty, or a variable that does not parse.
        """
        env = os.environ if env is None else env
        refs = [r for r in re.split(r"[\s,]+", env.get(MODELS_ENV, "")) if r]
        if not refs:
            raise UsageError(f"${MODELS_ENV} names no model: set it to one or more references "
                             "(churn@production fraud/3 /var/task/model.shz)")
        values = {k: v for k, v in defaults.items() if k in {f.name for f in fields(cls)}}
        for key, (var, kind) in ENV.items():
            raw = env.get(var, "").strip()
            if raw:
                values[key] = _parsed(var, raw, kind)
        return cls(refs=refs, **values)


def _parsed(var: str, raw: str, kind: str) -> Any:
    """The value of variable `var` as `kind` (UsageError naming it when it does not parse)."""
    if kind == "list":
        return [v for v in re.split(r"[\s,]+", raw) if v]
    if kind == "bool":
        if raw.lower() not in _TRUE + _FALSE:
            raise UsageError(f"${var} must be true or false, got {raw!r}")
        return raw.lower() in _TRUE
    if kind in ("int", "float"):
        try:
            return int(raw) if kind == "int" else float(raw)
        except ValueError:
            raise UsageError(f"${var} must be a number, got {raw!r}") from None
    return raw
