"""Spark: `scorehouse.spark.score` and `score --engine spark` on a real local[2] Spark.

Tolerances: executors run the same ONNX graph as the Python scorer, on a single-threaded
session, so probabilities agree to 1e-9; against the native pipeline they agree to 1e-6,
the compiled runtime's parity tolerance.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import scorehouse
from scorehouse.cli.app import main
from scorehouse.demo import churn_frame, train_pipeline
from scorehouse.demo.data import TARGET

SAME_GRAPH, NATIVE = 1e-9, 1e-6




@pytest.fixture
def frame(features) -> pd.DataFrame:
    """Churn features with an id, two bad rows (a missing tenure, a number that is text);
    tests of their rejects use `strict_churn_artifact` (tenure required)."""
    df = features.copy().astype({"tenure": object})
    df.insert(0, "id", np.arange(len(df)))
    df.loc[7, "tenure"] = None
    df.loc[11, "tenure"] = "about ten"
    df["tenure"] = df["tenure"].map(lambda v: None if v is None else str(v))
    return df


def test_parity_with_the_python_scorer_and_bad_rows_kept(spark, strict_churn_artifact, churn_model,
                                                          frame, features):
    scorer = scorehouse.load(strict_churn_artifact, trust=True)
    totals = scorehouse.spark.totals_accumulator(spark)
    out = scorehouse.spark.score(spark.createDataFrame(frame).repartition(3), str(strict_churn_artifact),
                                 keep=["id"], trust=True, totals=totals, batch_rows=700)
    got = out.toPandas().sort_values("id").reset_index(drop=True)

    assert len(got) == len(frame)  # refused rows are kept, with their reason
    bad = got[got["error"].notna()]
    assert bad["id"].tolist() == [7, 11]
    assert "tenure" in bad["error"][7] and "missing" in bad["error"][7]
    assert "tenure" in bad["error"][11] and "about ten" in bad["error"][11]
    assert bad["label"].isna().all() and bad["probability_yes"].isna().all()

    ok = got["error"].isna().to_numpy()
    expected = scorer.predict(frame.drop(columns=["id"]))
    assert expected.rows.tolist() == np.flatnonzero(ok).tolist()
    p = got["probability_yes"].to_numpy()[ok]
    assert np.max(np.abs(p - expected.columns()["probability_yes"])) <= SAME_GRAPH
    assert got["label"][ok].tolist() == list(expected.columns()["label"])
    native = churn_model.predict_proba(features)[:, 1][ok]
    assert np.max(np.abs(p - native)) <= NATIVE

    t = totals.value
    assert (t.read, t.scored, t.rejected) == (len(frame), len(frame) - 2, 2)
    assert t.rejects_by_column == {"tenure": 2}


def test_output_schema_comes_from_the_model_without_running_it(spark, churn_artifact, frame):
    sc = spark.sparkContext
    sc.setJobGroup("plan-only", "planning must not run a job")
    try:
        out = scorehouse.spark.score(spark.createDataFrame(frame), str(churn_artifact),
                                     keep=["id"], trust=True, with_model=True)
        fields = [(f.name, f.dataType.simpleString()) for f in out.schema.fields]
    finally:
        sc.setJobGroup("other", "")
    assert fields == [("id", "bigint"), ("label", "string"), ("probability_no", "double"),
                      ("probability_yes", "double"), ("model", "string"),
                      ("model_version", "bigint"), ("error", "string")]
    assert list(sc.statusTracker().getJobIdsForGroup("plan-only")) == []


def test_a_moved_alias_reaches_the_next_job(spark, tmp_path, churn_artifact, frame):
    other = tmp_path / "churn-v2.shz"
    data = churn_frame(800, seed=11)
    scorehouse.package(train_pipeline(data), data, name="churn", target=TARGET, path=other)
    reg = scorehouse.Registry(f"sqlite:///{tmp_path / 'registry.db'}", str(tmp_path / "store"))
    reg.register(churn_artifact)
    reg.register(other)
    reg.promote("churn/1", "production")
    df = spark.createDataFrame(frame.drop(index=[7, 11]).head(300))

    def job() -> pd.DataFrame:
        out = scorehouse.spark.score(df, "churn@production", keep=["id"], registry=reg,
                                     with_model=True)
        return out.toPandas().sort_values("id").reset_index(drop=True)

    first = job()
    reg.promote("churn/2", "production")
    second = job()
    assert set(first["model_version"]) == {1} and set(second["model_version"]) == {2}
    v2 = reg.load("churn/2").predict(frame.drop(index=[7, 11]).head(300).drop(columns=["id"]))
    assert np.max(np.abs(second["probability_yes"].to_numpy()
                         - v2.columns()["probability_yes"])) <= SAME_GRAPH
    assert not np.allclose(first["probability_yes"], second["probability_yes"])


def test_cli_engine_spark_writes_scores_rejects_and_a_manifest(spark, tmp_path, strict_churn_artifact,
                                                               frame, capsys):
    source = tmp_path / "customers"
    source.mkdir()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table.slice(0, 1500), source / "part-0.parquet")
    pq.write_table(table.slice(1500), source / "part-1.parquet")
    output = tmp_path / "scores.parquet"

    with pytest.raises(SystemExit) as done:
        main(["score", str(strict_churn_artifact), str(source), str(output), "--engine", "spark",
              "--master", "local[2]", "--keep", "id", "--with-model", "--trust", "--json"])
    assert done.value.code == 4  # two rejects, over the default --max-reject-rate 0
    m = json.loads(capsys.readouterr().out)
    assert m["counts"] == {"read": 3000, "scored": 2998, "rejected": 2, "flagged": 0}
    assert m["options"]["engine"] == "spark" and m["rejects_by_column"] == {"tenure": 2}
    assert json.loads(Path(f"{output}.run.json").read_text())["counts"] == m["counts"]

    scored = pq.read_table(output).to_pandas()
    assert list(scored.columns) == ["id", "label", "probability_no", "probability_yes", "model",
                                    "model_version"]
    assert len(scored) == 2998 and 7 not in set(scored["id"])
    rejected = pq.read_table(f"{output}.rejects.parquet").to_pandas().sort_values("id")
    assert rejected["id"].tolist() == [7, 11]
    assert list(rejected.columns) == [*frame.columns, "error"]  # the whole row, and why
    assert not list(tmp_path.glob("*.partial-*"))

    main_args = ["score", str(strict_churn_artifact), str(source), str(output), "--engine", "spark",
                 "--keep", "id", "--trust", "-q", "--max-reject-rate", "0.01"]
    main(main_args)  # exit 0 now (no SystemExit), and a second run replaces the first's output
    assert len(pq.read_table(output)) == 2998


def test_cli_engine_spark_logs_every_row_once_on_the_executors(spark, tmp_path,
                                                                strict_churn_artifact, frame,
                                                                capsys):
    from scorehouse.monitor.log import read_log

    source = tmp_path / "customers"
    source.mkdir()
    table = pa.Table.from_pandas(frame, preserve_index=False)
    for i, at in enumerate(range(0, 3000, 1000)):  # three files: at least three partitions
        pq.write_table(table.slice(at, 1000), source / f"part-{i}.parquet")
    root = tmp_path / "predictions"
    main(["score", str(strict_churn_artifact), str(source), str(tmp_path / "scores.parquet"),
          "--engine", "spark", "--master", "local[2]", "--keep", "id", "--key", "id",
          "--trust", "-q", "--max-reject-rate", "0.01", "--log-to", str(root)])
    log = read_log(root).to_pandas()
    assert len(log) == 3000 and sorted(log["id"]) == sorted(str(i) for i in frame["id"])
    assert set(log["channel"]) == {"spark"} and set(log["model"]) == {"churn"}
    rejected = log[log["reject"].notna()].sort_values("id")
    assert rejected["id"].tolist() == ["11", "7"] and rejected["prediction.label"].isna().all()
    assert log["reject"].isna().sum() == 2998 and log["prediction.label"].notna().sum() == 2998
    assert not list(root.rglob(".*"))  # every partition's logger closed its files

    # Without a key: `<run id>:<n>`, unique, the run id that of the manifest.
    main(["score", str(strict_churn_artifact), str(source), str(tmp_path / "again.parquet"),
          "--engine", "spark", "--master", "local[2]", "--trust", "--json",
          "--max-reject-rate", "0.01", "--log-to", str(tmp_path / "unkeyed")])
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    ids = read_log(tmp_path / "unkeyed").column("id").to_pylist()
    assert len(ids) == len(set(ids)) == 3000 and {i.split(":")[0] for i in ids} == {run_id}


def test_cli_engine_spark_refuses_what_it_cannot_do(spark, churn_artifact, tmp_path, frame,
                                                    capsys):
    with pytest.raises(SystemExit) as done:
        main(["score", str(churn_artifact), "-", str(tmp_path / "o.parquet"), "--engine", "spark",
              "--trust"])
    assert done.value.code == 2
    assert "--engine spark" in capsys.readouterr().err

    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), tmp_path / "in.parquet")
    with pytest.raises(SystemExit) as done:
        main(["score", str(churn_artifact), str(tmp_path / "in.parquet"),
              str(tmp_path / "o.parquet"), "--engine", "spark", "--keep", "id,nope", "--trust"])
    assert done.value.code == 1
    assert "nope" in capsys.readouterr().err
    assert not list(tmp_path.glob("o.parquet*"))


def test_batches_are_cut_and_merged_to_the_setting():
    from scorehouse.spark.score import _rebatched

    parts = [pa.record_batch({"x": pa.array(range(k), pa.int64())}) for k in (3, 10, 1, 0, 7)]
    sizes = [b.num_rows for b in _rebatched(iter(parts), 4)]
    assert sizes == [4, 4, 4, 4, 4, 1]
    values = [v for b in _rebatched(iter(parts), 4) for v in b.column(0).to_pylist()]
    assert values == [*range(3), *range(10), 0, *range(7)]


def test_a_shipment_is_loaded_once_per_process(churn_artifact):
    from scorehouse.spark.shipment import pack, unpack

    shipment = pack(scorehouse.load(churn_artifact, trust=True))
    first = unpack(shipment)
    assert unpack(shipment) is first
    assert first.runtime.name == "onnx" and not first.runtime.parallel_batches


def _without_venv_on_path() -> dict[str, str]:
    """The environment of a cron job: no activated virtualenv, no PYSPARK_PYTHON, a PATH whose
    `python3` (if any) is not the one scorehouse is installed in."""
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYSPARK_PYTHON", "PYSPARK_DRIVER_PYTHON", "VIRTUAL_ENV")}
    env["PATH"] = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                                  if p and Path(p).resolve() != Path(venv_bin).resolve())
    return env


@pytest.mark.slow  # a second Spark session with its own Python workers: ~30 s
def test_cli_by_absolute_path_outside_the_venv_runs_workers_on_its_own_python(
        spark, tmp_path, churn_artifact, features):
    import subprocess

    source = tmp_path / "in.parquet"
    features.head(200).to_parquet(source, index=False)
    output = tmp_path / "out.parquet"
    script = Path(sys.executable).with_name("scorehouse")
    done = subprocess.run([str(script), "score", str(churn_artifact), str(source), str(output),
                           "--engine", "spark", "--master", "local[1]", "--trust", "-q"],
                          env=_without_venv_on_path(), capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(pq.read_table(output)) == 200


def test_workers_keep_the_interpreter_the_user_chose(spark):
    sc = spark.sparkContext
    before = sc.pythonExec
    try:
        from scorehouse.spark.score import use_this_interpreter

        use_this_interpreter(sc)
        assert sc.pythonExec == os.environ.get("PYSPARK_PYTHON", sys.executable)
        os.environ["PYSPARK_PYTHON"] = "/opt/their/python"
        use_this_interpreter(sc)
        assert sc.pythonExec == "/opt/their/python"
    finally:
        os.environ["PYSPARK_PYTHON"] = before
        sc.pythonExec = before
