"""Building the app from `scorehouse serve` settings, in the CLI or in each worker process."""

from __future__ import annotations

import json
import os
from typing import Any

from starlette.applications import Starlette

from ..loading import is_path
from ..registry import Registry
from ..schema import ColumnPolicy
from .app import create_app
from .auth import ApiKeys
from .models import ModelSet


def app_from_settings(s: dict[str, Any], preload: bool = False) -> Starlette:
    """The app for the settings of `scorehouse serve` (models load at start-up, or now)."""
    refs = s["refs"]
    registry = None if all(is_path(r) for r in refs) else Registry(s["registry"], s["artifacts"])
    keys = ApiKeys(s["api_keys"], s["api_key_file"])
    models = ModelSet(refs, registry, runtime=s["runtime"], trust=s["trust"],
                      accept_parity_difference=s.get("accept_parity_difference", False))
    if preload:
        models.load_all()
    return create_app(models,
                      max_body=s["max_body"], timeout=s["timeout"], batching=s["batching"],
                      api_keys=keys, columns=ColumnPolicy.parse(s.get("columns")))


def app_from_env() -> Starlette:
    """What uvicorn's worker processes import: settings from $SCOREHOUSE_SERVE_ARGS."""
    return app_from_settings(json.loads(os.environ["SCOREHOUSE_SERVE_ARGS"]))
