"""The settings of `scorehouse serve`, as one typed object (JSON for worker processes)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

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
    loaded (None: `$SCOREHOUSE_PINNED_CACHE` or the default).
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

    def to_json(self) -> str:
        """These settings as JSON (`$SCOREHOUSE_SERVE_ARGS` of uvicorn's worker processes)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        """The settings `to_json` wrote."""
        return cls(**json.loads(text))
