"""`score(spark_df, "churn@production")`: predictions as a Spark DataFrame, built on mapInArrow.

Rows cross the JVM/Python boundary as Arrow batches; each batch goes through the Scorer once.
The output has one row per input row, in the input's order within each partition: the kept
columns, the prediction columns (null for a refused row), optionally the model and its
version, and `error` (null when scored; else each problem, naming its column and reason).

With `log`, every row read (scored and refused) goes to the prediction log once per
computation of the partition: each task opens a logger from the options shipped with the
model, names its rows (`LogPlan`) and closes the logger, flushed, at the partition's end.
A Parquet sink's folder must be reachable from every executor under the same path (a
shared file system; any folder in local mode); a task Spark retries logs its rows again.
"""

from __future__ import annotations

import functools
import os
import sys
import uuid
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ..loading import load
from ..monitor.live import LiveMonitor, NumberedIds, row_ids
from ..monitor.log import Channel, LogOptions
from ..registry import Registry
from ..registry.refs import ModelRef
from ..schema import ColumnPolicy
from ..scorer import Scorer, prediction_schema
from ..scorer.runs import ALL, Totals, check_columns, kept_columns
from .shipment import LogPlan, Shipment, pack, unpack

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

#: Rows scored per call on an executor: batches Spark hands over are merged or cut to this.
BATCH_ROWS = 20_000
#: The column that says why a row was not scored.
ERROR = "error"


def score(df: DataFrame, ref: str | ModelRef | Scorer, keep: Sequence[str] | None = None, *,
          registry: Registry | None = None, runtime: str | None = None, trust: bool = False,
          with_model: bool = False, batch_rows: int = BATCH_ROWS,
          totals: Any = None, columns: ColumnPolicy | str | None = None,
          accept_parity_difference: bool = False, log: LogOptions | None = None,
          log_key: str | None = None, run_id: str | None = None) -> DataFrame:
    """Score a Spark DataFrame with `ref` (resolved now, on the driver) or a loaded Scorer;
    lazy, like any query.

    `totals`, an accumulator from `totals_accumulator(spark)`, gathers the counts and flags.
    `columns`: the column policy ("lenient" or "strict", see `schema.policy`), applied to
    `df`'s columns here, on the driver: a required column absent is a SchemaError, and under
    strict an absent optional or an unknown column is a ColumnsError.
    `log`: log every row read on the executors (see the module docstring); a row's id is
    its `log_key` column's value, else `<run_id>:<n>` (`LogPlan`; run_id default: a new one).
    """
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    scorer = ref if isinstance(ref, Scorer) else load(
        ref, registry=registry, runtime=runtime,
        trust=trust, accept_parity_difference=accept_parity_difference)
    check_columns(scorer, df.columns, ColumnPolicy.parse(columns))
    kept = kept_columns(ALL if keep == ALL else keep, df.columns, scorer)
    taken = kept + [c.name for c in scorer.schema.columns
                    if c.name in df.columns and c.name not in kept]
    if log is not None and log_key is not None and log_key not in taken:
        taken.append(log_key)  # read for the ids only: not in the output
    out = output_schema(scorer, df.select(*taken).schema, kept, with_model)
    use_this_interpreter(df.sparkSession.sparkContext)
    plan = None if log is None else LogPlan(log, run_id or uuid.uuid4().hex, log_key)
    shipment = df.sparkSession.sparkContext.broadcast(pack(scorer, plan))
    run = functools.partial(_score_partition, shipment, kept, out, batch_rows, totals)
    return df.select(*taken).mapInArrow(run, _spark_schema(out))


def use_this_interpreter(sc: Any) -> None:
    """Make Python workers run the interpreter scorehouse runs in, unless the user chose one
    (PYSPARK_PYTHON, or the session's `spark.pyspark.python`).

    Why: PySpark's driver fixes the workers' interpreter when the SparkContext starts, from
    PYSPARK_PYTHON alone (default `python3`, whatever PATH finds) and, in a local session,
    ignores `spark.pyspark.python`. A cron line calling `<venv>/bin/scorehouse` by full path
    would start workers on a `python3` that has no scorehouse. A UDF built after this takes
    the interpreter from the context (`sc.pythonExec`), so setting it here is enough.
    """
    chosen = os.environ.get("PYSPARK_PYTHON") or sc.getConf().get("spark.pyspark.python")
    sc.pythonExec = chosen or sys.executable


def output_schema(scorer: Scorer, inputs: Any, kept: Sequence[str], with_model: bool
                  ) -> pa.Schema:
    """The Arrow schema of `score`'s output, from the model alone (no sample run)."""
    from pyspark.sql.pandas.types import to_arrow_type

    fields = [pa.field(n, to_arrow_type(inputs[n].dataType)) for n in kept]
    fields += list(prediction_schema(scorer.task, scorer.classes))
    if with_model:
        fields += [pa.field("model", pa.string()), pa.field("model_version", pa.int64())]
    return pa.schema([*fields, pa.field(ERROR, pa.string())])


def _spark_schema(schema: pa.Schema) -> Any:
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import StructField, StructType

    return StructType([StructField(f.name, from_arrow_type(f.type), True) for f in schema])


def _score_partition(shipment: Any, kept: list[str], schema: pa.Schema, batch_rows: int,
                     totals: Any, batches: Iterator[pa.RecordBatch]
                     ) -> Iterator[pa.RecordBatch]:
    # Runs on an executor: the broadcast is read and the model loaded once per process.
    scorer = unpack(shipment.value)
    plan: LogPlan | None = shipment.value.log
    tally = Totals()
    live = None
    if plan is not None:  # one logger per partition, detached and flushed at its end
        live = LiveMonitor(plan.options, Channel.SPARK, drift=False)
        live.watch(scorer)
    try:
        start = _partition() << 33  # as Spark's monotonically_increasing_id()
        for batch in _rebatched(batches, batch_rows):
            with row_ids(None if plan is None else _log_ids(plan, batch, start)):
                out = _scored(scorer, shipment.value, batch, kept, schema, tally)
            start += batch.num_rows
            yield out
    finally:
        if live is not None:
            live.close()
    if totals is not None:
        totals.add(tally)


def _partition() -> int:
    """The partition this task computes (0 outside a Spark task)."""
    from pyspark import TaskContext

    context = TaskContext.get()
    return context.partitionId() if context is not None else 0


def _log_ids(plan: LogPlan, batch: pa.RecordBatch, start: int) -> Sequence[str]:
    """The log ids of `batch`'s rows, the first of which is row number `start`."""
    numbered = NumberedIds(plan.run_id, batch.num_rows,
                           np.arange(start, start + batch.num_rows), sep=":")
    if plan.key is None or plan.key not in batch.schema.names:
        return numbered
    values = batch.column(plan.key).to_pylist()
    return [numbered[i] if v is None else str(v) for i, v in enumerate(values)]


def _rebatched(batches: Iterator[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of exactly `rows` rows (the last one may be shorter)."""
    held: list[pa.RecordBatch] = []
    n = 0
    for batch in batches:
        held.append(batch)
        n += batch.num_rows
        while n >= rows:
            merged = pa.Table.from_batches(held).combine_chunks()
            yield merged.slice(0, rows).to_batches()[0]
            rest = merged.slice(rows)
            held, n = rest.to_batches(), rest.num_rows
    if n:
        yield pa.Table.from_batches(held).combine_chunks().to_batches()[0]


def _scored(scorer: Scorer, shipment: Shipment, batch: pa.RecordBatch, kept: list[str],
            schema: pa.Schema, tally: Totals) -> pa.RecordBatch:
    """One output batch of `schema` (see `output_schema`): every input row, in order."""
    n = batch.num_rows
    result = scorer.predict(batch)
    tally.add_result(result)
    predictions = result.columns()
    arrays: list[pa.Array] = [batch.column(name) for name in kept]
    arrays += [_spread(predictions[f.name], result.rows, n, f.type) for f in schema
               if f.name in predictions]
    if "model" in schema.names:
        arrays += [pa.array([shipment.name] * n, pa.string()),
                   pa.array([shipment.version] * n, pa.int64())]
    problems: list[Any] = [None] * n
    for r in result.rejects:
        problems[r.row] = r.problem if problems[r.row] is None else f"{problems[r.row]}; {r.problem}"
    arrays.append(pa.array(problems, pa.string()))
    return pa.RecordBatch.from_arrays(arrays, names=schema.names)


def _spread(values: np.ndarray, rows: np.ndarray, n: int, kind: pa.DataType) -> pa.Array:
    """`values` of the scored `rows` placed in an n-row column, null elsewhere."""
    if len(rows) == n:
        return pa.array(_plain(values), kind)
    full = np.full(n, None, dtype=object)
    full[rows] = _plain(values)
    return pa.array(full, kind)


def _plain(values: np.ndarray) -> Any:
    # Labels come as object arrays of numpy scalars; Arrow wants Python values there.
    return values.tolist() if values.dtype == object else values
