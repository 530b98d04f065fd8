"""Spark figures: `scorehouse.spark.score` against the pandas UDF a careful user would write.

Data: `--rows` rows (default 2,000,000) of the 13-column churn table of bench_runtime
(numbers, strings, gaps) plus an integer `id`, written as a folder of 16 Parquet files.
Model: the forest pipeline of bench_runtime (impute + scale + one-hot + 100 trees, depth 10,
n_jobs=1 so two tasks do not fight over two cores), packaged with `scorehouse.package`.
Spark: local[2] (this machine's 2 cores), `spark.sql.execution.arrow.maxRecordsPerBatch`
= BATCH rows for both sides; scorehouse's `batch_rows` is the same figure.

a. scorehouse: `scorehouse.spark.score(df, artifact, keep=["id"])` (the artifact broadcast
   once, one Scorer per Python worker on the compiled runtime, mapInArrow).
b. baseline: `df.mapInPandas(fn)` where `fn` takes the native pipeline from a broadcast
   (unpickled once per worker) and calls `predict_proba` on each batch, returning id, label
   and one probability per class: the same columns as (a) minus (a)'s `error`.

Each side is timed from the action to its end: reading the Parquet, scoring every row and
handing every output row to Spark's `noop` sink (a write that stores nothing, so neither
side pays for Parquet encoding), best of `REPEAT`, after one untimed warm-up run on the
same data (Python workers started, models loaded). Parity: on a 20,000-row sample both
sides' P(yes) must agree within 1e-6 (asserted; the maximum difference is reported).

Goal: (a) rows/s >= 1.5x (b) rows/s.

Run: python bench/bench_spark.py [--rows 2000000] [--quick]   (--quick: 200k rows, prints only)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runtime import TRAIN_ROWS, frame, revision, train, yes  # noqa: E402
from report import machine, write_section  # noqa: E402

ROWS, QUICK_ROWS = 2_000_000, 200_000
FILES = 16
BATCH = 20_000
REPEAT, QUICK_REPEAT = 3, 1
GOAL = 1.5
TOL = 1e-6
SAMPLE = 20_000


def say(*args: Any) -> None:
    print(*args, flush=True)


def write_input(folder: Path, rows: int) -> None:
    """`rows` churn rows with an id, as FILES Parquet files (generated in 100k-row slices)."""
    from scorehouse.demo.data import TARGET

    folder.mkdir()
    per_file = -(-rows // FILES)
    for k in range(FILES):
        n = min(per_file, rows - k * per_file)
        if n <= 0:
            break
        X = frame(n, seed=100 + k).drop(columns=[TARGET])
        X.insert(0, "id", np.arange(k * per_file, k * per_file + n, dtype=np.int64))
        pq.write_table(pa.Table.from_pandas(X, preserve_index=False), folder / f"part-{k:02d}.parquet")


def spark_session() -> Any:
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (SparkSession.builder.master("local[2]").appName("bench-spark")
             .config("spark.ui.enabled", "false")
             .config("spark.driver.memory", "4g")
             .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(BATCH))
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def scorehouse_query(df: Any, artifact: Path) -> Any:
    import scorehouse

    return scorehouse.spark.score(df, str(artifact), keep=["id"], trust=True, batch_rows=BATCH)


def pandas_udf_query(spark: Any, df: Any, model: Any, classes: list[Any]) -> Any:
    """What a careful user writes: the native model broadcast once, predict_proba per batch."""
    import pandas as pd

    features = [c for c in df.columns if c != "id"]
    model_bc = spark.sparkContext.broadcast(model)
    schema = "id long, label string, " + ", ".join(f"probability_{c} double" for c in classes)

    def predict(batches):
        m = model_bc.value  # unpickled once per Python worker, then reused
        for pdf in batches:
            proba = m.predict_proba(pdf[features])
            out = pd.DataFrame({"id": pdf["id"], "label": m.classes_[proba.argmax(axis=1)]})
            for j, c in enumerate(classes):
                out[f"probability_{c}"] = proba[:, j]
            yield out

    return df.mapInPandas(predict, schema)


def timed(query: Any, repeat: int) -> float:
    """Best seconds of running `query` into the noop sink, after one untimed warm-up."""
    query.write.format("noop").mode("overwrite").save()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        query.write.format("noop").mode("overwrite").save()
        best = min(best, time.perf_counter() - t)
    return best


def parity(ours: Any, theirs: Any) -> float:
    """Max |P(yes) difference| between both sides on the first SAMPLE ids."""
    a = ours.where(f"id < {SAMPLE}").select("id", "probability_yes").toPandas().sort_values("id")
    b = theirs.where(f"id < {SAMPLE}").select("id", "probability_yes").toPandas().sort_values("id")
    assert a["id"].tolist() == b["id"].tolist() and len(a) == SAMPLE
    return float(np.max(np.abs(a["probability_yes"].to_numpy() - b["probability_yes"].to_numpy())))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    rows = args.rows or (QUICK_ROWS if args.quick else ROWS)
    repeat = QUICK_REPEAT if args.quick else REPEAT

    import scorehouse
    from scorehouse.demo.data import TARGET

    with tempfile.TemporaryDirectory(prefix="bench-spark-") as tmp:
        home = Path(tmp)
        os.environ["SCOREHOUSE_HOME"] = str(home / "home")
        say(f"training the forest pipeline on {TRAIN_ROWS:,} rows")
        train_data = frame(TRAIN_ROWS, seed=1)
        model = train("forest", train_data)
        artifact = scorehouse.package(model, train_data, name="churn", target=TARGET,
                                      path=home / "churn.shz")
        runtime = scorehouse.load(artifact, trust=True).runtime.name
        say(f"writing {rows:,} rows as {FILES} Parquet files")
        write_input(home / "customers", rows)

        spark = spark_session()
        df = spark.read.parquet(str(home / "customers"))
        ours = scorehouse_query(df, artifact)
        theirs = pandas_udf_query(spark, df, model, list(model.classes_))
        diff = parity(ours, theirs)
        assert diff <= TOL, f"parity: max |dP| {diff:.3g} > {TOL}"
        say(f"parity on {SAMPLE:,} rows: max |dP(yes)| = {diff:.2e}")
        t_ours = timed(ours, repeat)
        say(f"scorehouse: {t_ours:.2f} s, {rows / t_ours:,.0f} rows/s")
        t_theirs = timed(theirs, repeat)
        say(f"pandas UDF: {t_theirs:.2f} s, {rows / t_theirs:,.0f} rows/s")
        spark.stop()

    ratio = t_theirs / t_ours
    say(f"ratio: {ratio:.2f}x (goal {GOAL}x)")
    if args.quick:
        return
    body = f"""## Spark: scoring {rows:,} Parquet rows in local[2]

Measured by `python bench/bench_spark.py` on {machine()}, {revision()}.
Forest pipeline of the runtime section (n_jobs=1), scorehouse on the {runtime} runtime;
Arrow batches of {BATCH:,} rows on both sides; best of {REPEAT} runs into Spark's `noop`
sink after a warm-up run. Parity on {SAMPLE:,} rows: max |dP(yes)| = {diff:.2e} (<= {TOL}).

| | seconds | rows/s |
|---|---|---|
| scorehouse.spark.score (mapInArrow, compiled runtime) | {t_ours:.2f} | {rows / t_ours:,.0f} |
| pandas UDF (mapInPandas, native predict_proba) | {t_theirs:.2f} | {rows / t_theirs:,.0f} |

Ratio: **{ratio:.2f}x** (goal >= {GOAL}x: {yes(ratio >= GOAL)}).
"""
    write_section("spark", body)
    say("wrote the spark section of BENCHMARKS.md")


if __name__ == "__main__":
    main()
