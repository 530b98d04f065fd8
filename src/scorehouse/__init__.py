"""scorehouse: package a trained model, register every version, score it everywhere."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

from .errors import ScorehouseError  # noqa: E402

if TYPE_CHECKING:
    from .evaluation import retrain
    from .loading import load
    from .packaging import package
    from .registry import Registry
    from .scorer import Result, Scorer

__all__ = ["package", "load", "Registry", "Scorer", "Result", "retrain", "ScorehouseError",
           "__version__"]

# Imported on first use: a command that scores a file needs neither the registry's SQL
# stack nor packaging, and their imports cost a second at every start.
_LAZY = {"load": ".loading", "package": ".packaging", "Registry": ".registry",
         "Scorer": ".scorer", "Result": ".scorer", "retrain": ".evaluation"}


def __getattr__(name: str):
    """The public names above, and `scorehouse.spark` / `scorehouse.sql`, on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name in ("spark", "sql"):
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'scorehouse' has no attribute {name!r}")
