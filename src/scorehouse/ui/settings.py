"""The settings of the web console, as one typed object (JSON for server worker processes)."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class UiSettings:
    """What `scorehouse ui` (or `scorehouse serve --ui`) was asked for.

    `registry`, `artifacts`: the registry (None: the defaults, as for every command);
    `api_keys` (role reader), `deployer_keys` and `api_key_file` (one key a line with an
    optional `role=`, see `scorehouse.apikeys`): with any key, every page needs one;
    `allow_writes`: without keys, let anyone act (promote, roll back ...), else read-only;
    `secret`: signs session cookies and CSRF tokens (processes of one server must share
    it; empty: `with_secret` draws one); `log_source`: the Parquet prediction log the
    monitoring pages read (None: $SCOREHOUSE_HOME/predictions); `rules`: an alert rules
    file (TOML) for every model, or a folder of `<model>.toml`; `labels`: a folder of
    late labels `<model>.parquet` (or .csv) with columns `label_id` and `label_target`,
    for decay; `window`, `since`: the monitoring pages' default window and how far back
    they look (a day of hourly windows: a week of them is 168 windows to draw).
    """

    registry: str | None = None
    artifacts: str | None = None
    api_keys: list[str] = field(default_factory=list)
    deployer_keys: list[str] = field(default_factory=list)
    api_key_file: str | None = None
    allow_writes: bool = False
    secret: str = ""
    log_source: str | None = None
    rules: str | None = None
    labels: str | None = None
    label_id: str = "id"
    label_target: str = "label"
    window: str = "hour"
    since: str = "1d"

    @property
    def has_keys(self) -> bool:
        """True when any API key is configured."""
        return bool(self.api_keys or self.deployer_keys or self.api_key_file)

    def with_secret(self) -> UiSettings:
        """These settings with a fresh random `secret` when they have none."""
        if self.secret:
            return self
        return UiSettings(**{**asdict(self), "secret": secrets.token_hex(32)})

    def to_json(self) -> str:
        """These settings as JSON (an environment variable for worker processes)."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> UiSettings:
        """The settings `to_json` wrote."""
        return cls(**json.loads(text))


__all__ = ["UiSettings"]
