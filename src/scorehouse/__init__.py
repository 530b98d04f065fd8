"""scorehouse: package a trained model, register every version, score it everywhere."""

__version__ = "0.1.0"

from .errors import ScorehouseError  # noqa: E402
from .loading import load  # noqa: E402
from .packaging import package  # noqa: E402
from .registry import Registry  # noqa: E402
from .scorer import Result, Scorer  # noqa: E402

__all__ = ["package", "load", "Registry", "Scorer", "Result", "ScorehouseError", "__version__"]


def __getattr__(name: str):
    """`scorehouse.spark` and `scorehouse.sql` on first use (they are not needed to score)."""
    if name in ("spark", "sql"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'scorehouse' has no attribute {name!r}")
