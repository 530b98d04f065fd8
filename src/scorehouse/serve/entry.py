"""The app factory uvicorn's worker processes import (`scorehouse serve --workers N`)."""

from __future__ import annotations

import json
import os

from starlette.applications import Starlette

from ..loading import is_path
from ..registry import Registry
from .app import create_app
from .models import ModelSet


def app_from_env() -> Starlette:
    """Build the app from the settings `scorehouse serve` left in $SCOREHOUSE_SERVE_ARGS."""
    args = json.loads(os.environ["SCOREHOUSE_SERVE_ARGS"])
    refs = args["refs"]
    registry = None if all(is_path(r) for r in refs) else Registry(args["registry"],
                                                                  args["artifacts"])
    return create_app(ModelSet(refs, registry, runtime=args["runtime"], trust=args["trust"]),
                      max_body=args["max_body"])
