"""Row counts gathered from executors with a Spark accumulator of run `Totals`.

Spark applies accumulator updates made inside a query once per task attempt, so a retried
task counts again; the job takes read, scored and rejected from its written outputs instead
and uses these for the flags and the problems per column.
"""

from __future__ import annotations

from typing import Any

from ..scorer.runs import Totals


class _TotalsParam:
    """AccumulatorParam for Totals (duck-typed: pyspark need not be imported to define it)."""

    def zero(self, value: Totals) -> Totals:
        return Totals()

    def addInPlace(self, a: Totals, b: Totals) -> Totals:  # noqa: N802 - Spark's name
        a.add(b)
        return a


def totals_accumulator(spark: Any) -> Any:
    """A Spark accumulator that `score(..., totals=…)` adds each task's Totals to."""
    return spark.sparkContext.accumulator(Totals(), _TotalsParam())
