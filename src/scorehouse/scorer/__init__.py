"""The scorer: the one call path from rows in to predictions out."""

from .cache import Loaded, ScorerCache
from .result import Result, output_columns, prediction_schema
from .scorer import FILE_VERSION, Hook, ScoreEvent, Scorer

__all__ = ["Scorer", "Result", "ScoreEvent", "Hook", "output_columns", "prediction_schema",
           "FILE_VERSION", "ScorerCache", "Loaded"]
