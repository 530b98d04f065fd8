"""Where things live by default: one local folder ($SCOREHOUSE_HOME), overridable by URL."""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "SCOREHOUSE_HOME"
REGISTRY_ENV = "SCOREHOUSE_REGISTRY"
ARTIFACTS_ENV = "SCOREHOUSE_ARTIFACTS"


def home() -> Path:
    """The local folder for the embedded registry, artifacts and caches (~/.scorehouse)."""
    return Path(os.environ.get(HOME_ENV) or "~/.scorehouse").expanduser()


def registry_url(url: str | None = None) -> str:
    """The registry database URL: given, else $SCOREHOUSE_REGISTRY, else a SQLite file in home."""
    return url or os.environ.get(REGISTRY_ENV) or f"sqlite:///{home() / 'registry.db'}"


def artifacts_url(url: str | None = None) -> str:
    """The artifact store (any fsspec URL): given, else $SCOREHOUSE_ARTIFACTS, else home/artifacts."""
    return url or os.environ.get(ARTIFACTS_ENV) or str(home() / "artifacts")
