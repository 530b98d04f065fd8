"""`scorehouse score REF IN OUT --engine spark`: Parquet in, scored and rejected Parquet out.

One pass of scoring: the scored query is persisted to executors' disks, then written twice
(predictions; refused rows with their reasons). Both go to temporary names on the output's
file system and are renamed into place only when both are complete, so a failed job leaves
nothing under a final name. Counts come from what was written: read = scored + rejected.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import ScorehouseError
from ..monitor.log import LogOptions
from ..scorer import Scorer, prediction_schema
from ..scorer.runs import (
    RunManifest,
    RunOptions,
    Totals,
    check_columns,
    kept_columns,
    run_folder,
)
from .counts import totals_accumulator
from .score import ERROR, score


@dataclass
class JobPaths:
    """Where a job writes: predictions, rejects (both Parquet folders) and the run manifest."""

    output: str
    rejects: str
    manifest: Path

    @classmethod
    def beside(cls, output: str, model: str, rejects: str | None = None,
               manifest: Path | None = None) -> JobPaths:
        """Paths for `output`: rejects default to `<output>.rejects.parquet`; the manifest to
        `<output>.run.json` on a local output, else `$SCOREHOUSE_HOME/runs/<model>-<stamp>/`."""
        local = "://" not in output or output.startswith("file://")
        return cls(output, rejects or f"{output}.rejects.parquet",
                   manifest or (Path(f"{output}.run.json") if local
                                else run_folder(model) / "run.json"))


def session(master: str | None = None, batch_rows: int | None = None) -> Any:
    """A SparkSession for the CLI (`local[*]` unless `master` or spark-submit says otherwise)."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("scorehouse")
    if master:
        builder = builder.master(master)
    if batch_rows:
        builder = builder.config("spark.sql.execution.arrow.maxRecordsPerBatch", str(batch_rows))
    return builder.getOrCreate()


def run_job(spark: Any, scorer: Scorer, source: str, paths: JobPaths, options: RunOptions,
            *, log: LogOptions | None = None, key: str | None = None) -> RunManifest:
    """Score the Parquet at `source` into `paths`; returns the run manifest (also written).

    `log`: log every row read, on the executors (`score`'s `log`); a row's id is its `key`
    column's value, else `<run id of the manifest>:<n>`.

    Raises:
        SchemaError, ColumnsError: the input's columns do not fit the model.
        ScorehouseError: a kept column is wrong, or the outputs could not be moved into
            place (then nothing is kept under a final name).
    """
    from pyspark import StorageLevel
    from pyspark.sql.functions import col

    started, clock = datetime.now(timezone.utc), time.perf_counter()
    df = spark.read.parquet(source)
    keep = kept_columns(options.keep, df.columns, scorer)  # checked before any work starts
    check = check_columns(scorer, df.columns, options.columns)
    totals = totals_accumulator(spark)
    run_id = uuid.uuid4().hex
    # All input columns ride along (a refused row is kept whole); persisted: scored, logged once.
    scored = score(df, scorer, df.columns, with_model=options.with_model,
                   batch_rows=options.chunk_rows, totals=totals, columns=options.columns,
                   log=log, log_key=key, run_id=run_id)
    scored = scored.persist(StorageLevel.DISK_ONLY)
    predictions = [*prediction_schema(scorer.task, scorer.classes).names,
                   *(["model", "model_version"] if options.with_model else [])]
    fs = _FileSystem(spark)
    tag = uuid.uuid4().hex[:8]
    partial_out, partial_rej = f"{paths.output}.partial-{tag}", f"{paths.rejects}.partial-{tag}"
    try:
        scored.where(col(ERROR).isNull()).select(*keep, *predictions).write.parquet(partial_out)
        scored.where(col(ERROR).isNotNull()).select(*df.columns, ERROR).write.parquet(partial_rej)
        n_scored = spark.read.parquet(partial_out).count()
        n_rejected = spark.read.parquet(partial_rej).count()
        n_read = df.count()
        if n_read != n_scored + n_rejected:  # pragma: no cover - an invariant
            raise ScorehouseError(f"internal error: read {n_read} != scored {n_scored} + "
                                  f"rejected {n_rejected}; please report it")
        fs.replace(partial_out, paths.output)
        fs.replace(partial_rej, paths.rejects)
    except BaseException:
        fs.delete(partial_out)
        fs.delete(partial_rej)
        raise
    finally:
        scored.unpersist()
    counted: Totals = totals.value
    # Exact counts from the outputs; flags and problems per column from the accumulator.
    counted.read, counted.scored, counted.rejected = n_read, n_scored, n_rejected
    counted.columns = check
    manifest = RunManifest.of(scorer, counted, {"uri": source, "format": "parquet"}, options,
                              started, time.perf_counter() - clock)
    manifest.run_id = run_id
    manifest.engine = {"engine": "spark", "master": spark.sparkContext.master}
    manifest.outputs = [{"uri": paths.output, "format": "parquet", "rows": n_scored}]
    manifest.rejects = {"uri": paths.rejects, "format": "parquet", "rows": n_rejected}
    manifest.write(paths.manifest)
    return manifest


class _FileSystem:
    """Renames and deletes through Hadoop's FileSystem, so any URL Spark writes to works."""

    def __init__(self, spark: Any):
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _fs(self, uri: str) -> tuple[Any, Any]:
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        return path.getFileSystem(self._conf), path

    def replace(self, source: str, target: str) -> None:
        """Move `source` to `target`, replacing what was there."""
        fs, dst = self._fs(target)
        if fs.exists(dst):
            fs.delete(dst, True)
        if not fs.rename(self._fs(source)[1], dst):
            raise ScorehouseError(f"could not move {source} to {target}")

    def delete(self, uri: str) -> None:
        """Remove `uri` if it exists."""
        fs, path = self._fs(uri)
        if fs.exists(path):
            fs.delete(path, True)
