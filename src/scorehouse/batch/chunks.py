"""One input chunk scored: the output table (pass-through + predictions) and its rejects,
by a `Plan`: one model (`ModelPlan`), or a deployment (`deployed.DeploymentPlan`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from ..monitor.live import ROW_IDS
from ..schema import ColumnCheck, ColumnPolicy
from ..scorer import Result, Scorer, prediction_schema
from ..scorer.runs import RunManifest, check_columns, kept_columns

#: The prediction log's ids of a chunk's rows, from the chunk and its input positions.
ChunkIds = Callable[[pa.RecordBatch, np.ndarray], Sequence[str]]


@dataclass
class RejectRow:
    """A rejected input row: its position in the input, the column, why, and the value."""

    row: int
    column: str | None
    reason: str
    value: str | None = None


@dataclass
class Scored:
    """What scoring one chunk produced; counts add up: read = scored + rejected."""

    table: pa.Table
    rejects: list[RejectRow]
    read: int
    scored: int
    rejected: int
    flagged: int
    flags: dict[str, dict[str, int]] = field(default_factory=dict)


class Plan(Protocol):
    """How a run scores its chunks. `scorer` is the model the manifest names (a
    deployment's champion); `score` runs in the run's worker threads."""

    scorer: Scorer

    def check_columns(self, available: Sequence[str], policy: ColumnPolicy) -> ColumnCheck:
        """The input's columns checked before anything is scored (`runs.check_columns`)."""

    def kept(self, keep: Sequence[str] | None, available: Sequence[str]) -> list[str]:
        """The input columns passed through (`runs.kept_columns`)."""

    def schema(self, kept: pa.Schema) -> pa.Schema:
        """The output's columns, given the kept ones."""

    def score(self, batch: pa.RecordBatch, where: np.ndarray, keep: list[str],
              schema: pa.Schema) -> Scored:
        """One chunk whose rows sit at input positions `where`."""

    def finish(self, manifest: RunManifest) -> None:
        """Add what the plan knows to the finished run's manifest."""


@dataclass
class ModelPlan:
    """One model scores every row (`score_chunk`); `ids` names rows for the log."""

    scorer: Scorer
    with_model: bool = False
    ids: ChunkIds | None = None

    def check_columns(self, available: Sequence[str], policy: ColumnPolicy) -> ColumnCheck:
        """`runs.check_columns` with this model."""
        return check_columns(self.scorer, available, policy)

    def kept(self, keep: Sequence[str] | None, available: Sequence[str]) -> list[str]:
        """`runs.kept_columns` with this model."""
        return kept_columns(keep, available, self.scorer)

    def schema(self, kept: pa.Schema) -> pa.Schema:
        """`output_schema` of this model."""
        return output_schema(self.scorer, kept, self.with_model)

    def score(self, batch: pa.RecordBatch, where: np.ndarray, keep: list[str],
              schema: pa.Schema) -> Scored:
        """`score_chunk` with this model."""
        return score_chunk(self.scorer, batch, where, keep, schema, self.with_model, self.ids)

    def finish(self, manifest: Any) -> None:
        """Nothing to add."""


def positions(first_good: int, n: int, malformed: Sequence[int]) -> np.ndarray:
    """Input positions of `n` parsed rows that follow `first_good` parsed rows.

    Malformed records keep their place in the input numbering although the parser dropped
    them: the k-th parsed row sits after every malformed position at or before it.
    """
    good = np.arange(first_good, first_good + n, dtype=np.int64)
    if not len(malformed):
        return good
    m = np.sort(np.asarray(malformed, dtype=np.int64))
    shifted = m - np.arange(len(m))  # how many parsed rows precede each malformed record
    return good + np.searchsorted(shifted, good, side="right")


def output_schema(scorer: Scorer, kept: pa.Schema, with_model: bool) -> pa.Schema:
    """Columns of the output for a model: row, kept columns, predictions, model columns."""
    fields = [pa.field("row", pa.int64()), *kept, *prediction_schema(scorer.task, scorer.classes)]
    if with_model:
        fields += [pa.field("model", pa.string()), pa.field("model_version", pa.int64())]
    return pa.schema(fields)


def score_chunk(scorer: Scorer, batch: pa.RecordBatch, where: np.ndarray, keep: list[str],
                schema: pa.Schema, with_model: bool, ids: ChunkIds | None = None) -> Scored:
    """Score one batch whose rows sit at input positions `where`; `ids` names its rows
    for the prediction log's hook."""
    token = ROW_IDS.set(ids(batch, where)) if ids is not None else None
    try:
        result = scorer.predict(batch)
    finally:
        if token is not None:
            ROW_IDS.reset(token)
    rows = result.rows
    columns: list[pa.Array] = [pa.array(where[rows], pa.int64())]
    taken = pa.array(rows, pa.int64())
    columns += [batch.column(n).take(taken) for n in keep]
    columns += _prediction_arrays(result, schema)
    if with_model:
        columns += [pa.array([scorer.name] * len(rows), pa.string()),
                    pa.array([scorer.version] * len(rows), pa.int64())]
    table = pa.Table.from_arrays(columns, schema=with_kept_types(schema, batch, keep))
    rejects = [RejectRow(int(where[r.row]), r.column, r.reason, text(r.value))
               for r in result.rejects]
    return Scored(table, rejects, result.n_read, result.n_scored, result.n_rejected,
                  result.n_flagged, result.flag_counts())


def with_kept_types(schema: pa.Schema, batch: pa.RecordBatch, keep: list[str]) -> pa.Schema:
    """`schema` with the kept columns of the chunk's own types (a dictionary's text:
    from_arrays decodes it); the sink makes later chunks match the first."""
    for n in keep:
        t = batch.schema.field(n).type
        t = t.value_type if pa.types.is_dictionary(t) else t
        schema = schema.set(schema.get_field_index(n), pa.field(n, t))
    return schema


def _prediction_arrays(result: Result, schema: pa.Schema) -> list[pa.Array]:
    arrays = []
    for name, values in result.columns().items():
        # pyarrow reads NumPy scalars inside object arrays (labels) as their Python values.
        arrays.append(pa.array(values, schema.field(name).type, from_pandas=True))
    return arrays


def text(value: object) -> str | None:
    """A rejected value as the rejects file shows it (None stays None)."""
    if value is None:
        return None
    return value if isinstance(value, str) else repr(value.item() if isinstance(value, np.generic)
                                                     else value)
