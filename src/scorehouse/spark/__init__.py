"""Scoring on Apache Spark: the same artifact and Scorer, run on executors over Arrow batches."""

from .counts import totals_accumulator
from .score import ERROR, output_schema, score

__all__ = ["score", "output_schema", "totals_accumulator", "ERROR"]
