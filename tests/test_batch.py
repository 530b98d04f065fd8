"""`scorehouse score`: files, folders, stdin/stdout, database tables and a Redis cache.

Most runs call the CLI's `main` in this process (no 2 s import per call); the stdin/stdout
and interrupted-run tests start the installed script, since they need real pipes and signals.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import shutil
import signal
import subprocess
import sysconfig
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scorehouse.batch.chunks import positions
from scorehouse.cli.app import main
from scorehouse.errors import ScorehouseError

SCRIPT = shutil.which("scorehouse", path=sysconfig.get_path("scripts")) or shutil.which("scorehouse")
#: ONNX Runtime vs the native forest: the compiled runtime's parity tolerance.
TOL = 1e-6


@pytest.fixture
def frame(features) -> pd.DataFrame:
    """The churn features with an id column, 3000 rows."""
    df = features.copy()
    df.insert(0, "customer_id", [f"C{i:05d}" for i in range(len(df))])
    return df


@pytest.fixture
def native(churn_model, features) -> np.ndarray:
    """P(yes) from the native pipeline, the parity reference."""
    return churn_model.predict_proba(features)[:, 1]


def score(*args: str, capsys=None) -> tuple[int, str]:
    """Run `scorehouse score ARGS --trust -q` in this process: (exit code, stdout)."""
    try:
        main(["score", *args, "--trust", "-q"])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr().out if capsys else ""
    return code, out


def manifest(output: Path) -> dict:
    return json.loads(Path(f"{output}.run.json").read_text())


def rejects(output: Path) -> list[dict]:
    with open(f"{output}.rejects.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def assert_parity(out: pd.DataFrame, native: np.ndarray, rows: np.ndarray | None = None) -> None:
    rows = out["row"].to_numpy() if rows is None else rows
    np.testing.assert_allclose(out["probability_yes"].to_numpy(float), native[rows], atol=TOL)


# --- files ---------------------------------------------------------------------------------------


def test_csv_to_csv_keeps_order_and_ids_and_matches_the_native_model(
        tmp_path, frame, native, churn_artifact):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.to_csv(src, index=False)
    code, _ = score(str(churn_artifact), str(src), str(out), "--keep", "customer_id",
                    "--with-model", "--chunk-rows", "500", "--workers", "2")
    assert code == 0
    got = pd.read_csv(out)
    assert list(got.columns) == ["row", "customer_id", "label", "probability_no",
                                 "probability_yes", "model", "model_version"]
    assert got["row"].tolist() == list(range(len(frame)))
    assert got["customer_id"].tolist() == frame["customer_id"].tolist()
    assert_parity(got, native)
    assert (got["model"] == "churn").all()
    m = manifest(out)
    assert m["counts"] == {"read": 3000, "scored": 3000, "rejected": 0, "flagged": 0}
    assert m["exit_code"] == 0 and m["model"]["name"] == "churn" and m["model"]["runtime"] == "onnx"
    assert m["input"]["sha256"] == _sha256(src)
    assert m["outputs"][0]["sha256"] == _sha256(out) and m["outputs"][0]["rows"] == 3000
    assert rejects(out) == [] and not list(tmp_path.glob(".*partial*"))


def _sha256(path: Path) -> str:
    import hashlib
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_rows_go_to_the_rejects_file_and_counts_add_up(tmp_path, frame, native,
                                                          churn_artifact):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.to_csv(src, index=False)
    lines = src.read_text().splitlines()
    header = lines[0]
    # Data rows are numbered from 0: line i+2 of the file holds row i.
    lines[1 + 5] = lines[1 + 5].replace(",", ",,", 1)            # one field too many
    lines[1 + 17] = "C00017,12,gold"                              # too few fields
    cells = lines[1 + 40].split(",")
    cells[header.split(",").index("tenure")] = "twelve"           # a wrong type
    lines[1 + 40] = ",".join(cells)
    src.write_text("\n".join(lines) + "\n")
    code, _ = score(str(churn_artifact), str(src), str(out), "--keep", "customer_id",
                    "--chunk-rows", "256")
    assert code == 4  # any reject is over the default --max-reject-rate 0
    got = pd.read_csv(out)
    bad = {r["row"]: r for r in rejects(out)}
    assert {"5", "17", "40"} <= set(bad)
    assert "expected 13 fields, found 14" in bad["5"]["reason"] and bad["5"]["column"] == ""
    assert "line 19" in bad["17"]["reason"] and "found 3" in bad["17"]["reason"]
    assert bad["40"]["column"] == "tenure" and "'twelve'" in bad["40"]["reason"]
    m = manifest(out)
    c = m["counts"]
    assert c["read"] == 3000 == c["scored"] + c["rejected"] and c["rejected"] == len(bad)
    assert len(got) == c["scored"] and not set(got["row"]) & {int(r) for r in bad}
    # Every scored row keeps its own position and id, and its native score.
    assert (got["customer_id"] == frame["customer_id"].iloc[got["row"]].to_numpy()).all()
    assert_parity(got, native)
    assert m["status"] == "rejects over threshold" and m["reject_rate"] == pytest.approx(
        c["rejected"] / 3000)


def test_reject_threshold_sets_the_exit_code(tmp_path, frame, churn_artifact):
    src = tmp_path / "in.csv"
    frame.assign(tenure=["x" if i % 100 == 0 else t for i, t in enumerate(frame["tenure"])]) \
        .to_csv(src, index=False)
    assert score(str(churn_artifact), str(src), str(tmp_path / "a.csv"))[0] == 4
    assert score(str(churn_artifact), str(src), str(tmp_path / "b.csv"),
                 "--max-reject-rate", "0.02")[0] == 0
    assert score(str(churn_artifact), str(src), str(tmp_path / "c.csv"),
                 "--max-reject-rate", "0.005")[0] == 4
    assert manifest(tmp_path / "b.csv")["counts"]["rejected"] == 30


def test_missing_column_fails_up_front_and_writes_nothing(tmp_path, frame, churn_model,
                                                          churn_data, capsys):
    import scorehouse
    from scorehouse.demo.data import TARGET

    # The demo pipeline imputes every column (so each accepts a missing value); a model that
    # requires `tenure`:
    artifact = scorehouse.package(churn_model, churn_data, name="churn", target=TARGET,
                                  path=tmp_path / "strict.shz", compile=False,
                                  schema_overrides={"tenure": {"nullable": False}})
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.drop(columns=["tenure"]).to_csv(src, index=False)
    code, _ = score(str(artifact), str(src), str(out))
    err = capsys.readouterr().err
    assert code == 4 and "no column(s) tenure" in err and "Traceback" not in err
    assert sorted(tmp_path.iterdir()) == sorted([src, artifact])


@pytest.mark.parametrize("header", [False, True], ids=["empty", "header-only"])
def test_empty_inputs_give_an_empty_output(tmp_path, frame, churn_artifact, header):
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_text(",".join(frame.columns) + "\n" if header else "")
    code, _ = score(str(churn_artifact), str(src), str(out))
    assert code == 0
    assert out.read_text().splitlines() == ['"row","label","probability_no","probability_yes"']
    assert manifest(out)["counts"] == {"read": 0, "scored": 0, "rejected": 0, "flagged": 0}


def test_gzip_and_zstd_csv_score_like_the_plain_file(tmp_path, frame, churn_artifact):
    plain = tmp_path / "in.csv"
    frame.to_csv(plain, index=False)
    with gzip.open(tmp_path / "in.csv.gz", "wb") as fh:
        fh.write(plain.read_bytes())
    with pa.output_stream(tmp_path / "in.csv.zst", compression="zstd") as fh:
        fh.write(plain.read_bytes())
    outs = []
    for name in ("in.csv", "in.csv.gz", "in.csv.zst"):
        out = tmp_path / f"{name}.out.csv"
        assert score(str(churn_artifact), str(tmp_path / name), str(out))[0] == 0
        outs.append(out.read_text())
    assert outs[0] == outs[1] == outs[2] and len(outs[0].splitlines()) == 3001


def test_parquet_folder_and_glob_in_parquet_out(tmp_path, frame, native, churn_artifact):
    folder = tmp_path / "parts"
    folder.mkdir()
    for i, part in enumerate(np.array_split(np.arange(len(frame)), 3)):
        frame.iloc[part].to_parquet(folder / f"part-{i}.parquet", index=False)
    for src in (str(folder), str(folder / "part-*.parquet")):
        out = tmp_path / "out.parquet"
        assert score(str(churn_artifact), src, str(out), "--keep", "all",
                     "--chunk-rows", "700")[0] == 0
        got = pq.read_table(out).to_pandas()
        assert len(got) == 3000 and got["row"].tolist() == list(range(3000))
        assert got["customer_id"].tolist() == frame["customer_id"].tolist()
        assert got["tenure"].dtype == frame["tenure"].dtype  # Parquet types pass through
        assert_parity(got, native)
    # Dictionaries only where values repeat: the label and the plan, not ids or probabilities.
    meta = pq.ParquetFile(out).metadata
    names = [meta.schema.column(i).name for i in range(meta.num_columns)]
    encoded = {n for i, n in enumerate(names)
               if "RLE_DICTIONARY" in meta.row_group(0).column(i).encodings}
    assert {"label", "plan"} <= encoded
    assert not encoded & {"customer_id", "probability_yes", "row"}


def test_parquet_text_columns_of_the_model_are_read_as_dictionaries_and_written_as_text(
        tmp_path, frame, churn_model, churn_artifact):
    from scorehouse.batch.addresses import open_input

    # Missing plans (which the model imputes) and unseen ones; the two files store their
    # text as string and large_string.
    frame = frame.assign(plan=[None if i % 50 == 0 else "diamond" if i % 70 == 0 else p
                               for i, p in enumerate(frame["plan"])])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    text = table.schema.field("plan").type
    other = pa.string() if text == pa.large_string() else pa.large_string()
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(table.slice(0, 1000), folder / "a.parquet")
    pq.write_table(table.slice(1000).cast(pa.schema(
        [f.with_type(other) if f.type == text else f for f in table.schema])),
        folder / "b.parquet")
    batches = list(open_input(str(folder), categorical=["plan", "region", "absent"]).batches)
    assert {b.schema.field("plan").type for b in batches} == {pa.dictionary(pa.int32(), text)}
    assert {b.schema.field("customer_id").type for b in batches} == {text}

    frame.to_csv(tmp_path / "in.csv", index=False)
    pq_out, csv_out = tmp_path / "out.parquet", tmp_path / "out.csv"
    for src, out in ((folder, pq_out), (tmp_path / "in.csv", csv_out)):
        assert score(str(churn_artifact), str(src), str(out), "--keep", "all",
                     "--chunk-rows", "700", "--max-reject-rate", "0.1")[0] == 0
    got = pq.read_table(pq_out)
    assert got.schema.field("plan").type == text  # the first file's type, not a dictionary
    want = [None if pd.isna(p) else p for p in frame["plan"]]
    assert got.num_rows == len(frame) and got["plan"].to_pylist() == want, "plan kept as sent"
    assert rejects(pq_out) == rejects(csv_out) == []
    got = got.to_pandas()
    assert_parity(got, churn_model.predict_proba(frame.drop(columns=["customer_id"]))[:, 1])
    from_csv = pd.read_csv(csv_out)
    np.testing.assert_array_equal(got["probability_yes"], from_csv["probability_yes"])
    assert got["label"].tolist() == from_csv["label"].tolist()
    assert manifest(pq_out)["flags"] == manifest(csv_out)["flags"]
    assert manifest(pq_out)["flags"]["unseen_category"]["plan"] == (frame["plan"] == "diamond").sum()


def test_parquet_is_read_in_bounded_memory_across_files_of_differing_schemas(tmp_path):
    from scorehouse.batch.addresses import open_input

    # 60 row groups of 10k rows: Arrow's allocations while reading must stay near one row
    # group, not grow with what was read (the dataset scanner and pre-buffering kept it).
    table = pa.table({"id": np.arange(600_000), "x": np.random.default_rng(1).random(600_000),
                      "s": np.array(["a", "bb", "ccc"])[np.arange(600_000) % 3]})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=10_000)
    one_group = table.slice(0, 10_000).nbytes
    before, peak, rows = pa.total_allocated_bytes(), 0, 0
    for batch in open_input(str(tmp_path / "a.parquet"), chunk_rows=10_000).batches:
        rows += batch.num_rows
        peak = max(peak, pa.total_allocated_bytes() - before)
    assert rows == 600_000 and peak < 10 * one_group, (peak, one_group)
    # A second file with its columns in another order, an int32 id and no `s`: read as the
    # first file's schema, `s` null.
    other = pa.table({"x": [0.5, 1.5], "id": pa.array([7, 8], pa.int32())})
    pq.write_table(other, tmp_path / "b.parquet")
    got = pa.Table.from_batches(list(open_input(str(tmp_path / "*.parquet")).batches))
    assert got.schema == table.schema and got.num_rows == 600_002
    assert got.slice(600_000).to_pylist() == [{"id": 7, "x": 0.5, "s": None},
                                              {"id": 8, "x": 1.5, "s": None}]
    # A file whose column cannot be read as the first file's type: named, with the column.
    pq.write_table(pa.table({"id": [9], "x": ["nine"]}), tmp_path / "c.parquet")
    with pytest.raises(ScorehouseError, match=r"column 'x' is string in .*c\.parquet"):
        list(open_input(str(tmp_path / "*.parquet")).batches)


def test_jsonl_in_with_malformed_lines(tmp_path, frame, native, churn_artifact):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    lines = [json.dumps({k: (None if pd.isna(v) else v) for k, v in rec.items()})
             for rec in frame.head(50).to_dict("records")]
    lines[3] = "{not json"
    lines[7] = "[1, 2]"
    src.write_text("\n".join(lines) + "\n\n")
    assert score(str(churn_artifact), str(src), str(out), "--keep", "customer_id",
                 "--max-reject-rate", "0.1")[0] == 0
    got = pd.read_json(out, lines=True)
    assert len(got) == 48 and 3 not in set(got["row"]) and 7 not in set(got["row"])
    assert_parity(got, native)
    bad = {r["row"]: r["reason"] for r in rejects(out)}
    assert bad.keys() == {"3", "7"} and "line 4: not valid JSON" in bad["3"]
    assert "a JSON list, not an object" in bad["7"]


def test_workers_and_chunk_sizes_do_not_change_the_output(tmp_path, frame, churn_artifact):
    src = tmp_path / "in.csv"
    frame.assign(tenure=["x" if i % 97 == 0 else t for i, t in enumerate(frame["tenure"])]) \
        .to_csv(src, index=False)
    texts = set()
    for workers, chunk in ((1, 100_000), (2, 128), (4, 333)):
        out = tmp_path / f"out-{workers}.csv"
        score(str(churn_artifact), str(src), str(out), "--workers", str(workers),
              "--chunk-rows", str(chunk), "--keep", "customer_id")
        texts.add(out.read_text())
        texts.add(Path(f"{out}.rejects.csv").read_text())
    assert len(texts) == 2  # one output text, one rejects text


def test_positions_keep_malformed_records_in_the_numbering():
    assert positions(0, 4, []).tolist() == [0, 1, 2, 3]
    assert positions(0, 4, [1]).tolist() == [0, 2, 3, 4]
    assert positions(0, 3, [0, 1]).tolist() == [2, 3, 4]
    assert positions(3, 2, [1, 6]).tolist() == [4, 5]  # rows 0,2,3 parsed before; 1 malformed
    assert positions(5, 2, [1, 6]).tolist() == [7, 8]


def test_unknown_format_and_missing_input_are_one_line_errors(tmp_path, churn_artifact, capsys):
    assert score(str(churn_artifact), str(tmp_path / "x.txt"), str(tmp_path / "o.csv"))[0] == 1
    assert "cannot tell the format" in capsys.readouterr().err
    assert score(str(churn_artifact), str(tmp_path / "nope.csv"), str(tmp_path / "o.csv"))[0] == 3
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "o.csv").exists()


def _cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREHOUSE_")}
    env["SCOREHOUSE_HOME"] = str(tmp_path / "home")
    return env


def test_stdin_to_stdout(tmp_path, frame, native, churn_artifact):
    data = frame.head(200).to_csv(index=False)
    p = subprocess.run([SCRIPT, "score", str(churn_artifact), "-", "-", "--format", "csv",
                        "--output-format", "csv", "--trust", "--keep", "customer_id"],
                       input=data, capture_output=True, text=True, env=_cli_env(tmp_path),
                       timeout=120)
    assert p.returncode == 0, p.stderr
    got = pd.read_csv(io.StringIO(p.stdout))
    assert len(got) == 200 and got["customer_id"].tolist() == frame["customer_id"][:200].tolist()
    assert_parity(got, native)
    assert "scored 200 of 200 rows" in p.stderr
    runs = list((tmp_path / "home" / "runs").glob("churn-*/run.json"))
    assert len(runs) == 1 and json.loads(runs[0].read_text())["counts"]["read"] == 200


def test_parquet_from_stdin_to_stdout(tmp_path, frame, native, churn_artifact):
    buffer = io.BytesIO()
    frame.head(300).to_parquet(buffer, index=False)
    p = subprocess.run([SCRIPT, "score", str(churn_artifact), "-", "-", "--format", "parquet",
                        "--output-format", "parquet", "--trust", "--keep", "customer_id,plan",
                        "--chunk-rows", "128"],
                       input=buffer.getvalue(), capture_output=True, env=_cli_env(tmp_path),
                       timeout=120)
    assert p.returncode == 0, p.stderr.decode()
    got = pq.read_table(io.BytesIO(p.stdout))
    assert got.schema.field("plan").type == pa.Table.from_pandas(frame).schema.field("plan").type
    got = got.to_pandas()
    assert got["row"].tolist() == list(range(300))
    assert got["plan"].tolist() == frame["plan"][:300].tolist()
    assert_parity(got, native)


def test_an_interrupted_run_leaves_no_output(tmp_path, frame, churn_artifact):
    out = tmp_path / "out.csv"
    p = subprocess.Popen([SCRIPT, "score", str(churn_artifact), "-", str(out), "--format", "csv",
                          "--trust", "--chunk-rows", "100"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_cli_env(tmp_path))
    assert p.stdin is not None
    p.stdin.write(frame.to_csv(index=False).encode())  # more is still to come: the run waits
    p.stdin.flush()
    deadline = time.time() + 60
    while not list(tmp_path.glob(".out.csv.partial-*")) and time.time() < deadline:
        time.sleep(0.1)
    assert list(tmp_path.glob(".out.csv.partial-*")), "the run never started writing"
    time.sleep(1.0)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert b"stopped by signal SIGTERM" in err and b"Traceback" not in err
    assert sorted(x.name for x in tmp_path.iterdir()) == []


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_kill_9_leaves_partials_a_rerun_removes_but_never_a_running_jobs(
        tmp_path, frame, churn_artifact, capsys, fmt):
    bad = frame.astype({"tenure": object})
    bad.loc[[5, 50], "tenure"] = "abc"  # two rejects, so there is a rejects file too
    data = bad.to_csv(index=False).encode()
    out = tmp_path / f"out.{fmt}"
    names = [out.name, f"{out.name}.rejects.csv", f"{out.name}.run.json"]

    def start() -> subprocess.Popen:
        # Fed from a pipe left open: the run writes its first chunks, then waits for more.
        p = subprocess.Popen([SCRIPT, "score", str(churn_artifact), "-", str(out), "--format",
                              "csv", "--trust", "--chunk-rows", "100", "-q",
                              "--max-reject-rate", "1"], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             env=_cli_env(tmp_path))
        assert p.stdin is not None
        p.stdin.write(data[: len(data) // 2])
        p.stdin.flush()
        deadline = time.time() + 60
        while len(partials(p.pid)) < 2:  # the output's and the rejects' partials
            assert time.time() < deadline and p.poll() is None, "the run never started writing"
            time.sleep(0.05)
        return p

    def partials(pid: int) -> list[str]:
        return sorted(x.name for x in tmp_path.iterdir() if x.name.endswith(f"-{pid}"))

    killed, running = start(), start()
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    left = partials(killed.pid)
    assert len(left) == 2 and all(x.startswith(".") and ".partial-" in x for x in left)
    assert not any((tmp_path / n).exists() for n in names)  # nothing under a final name
    # Partials no sweep may touch: another host's (a shared folder), whatever its pid.
    foreign = tmp_path / f".{out.name}.partial-otherhost-{killed.pid}"
    foreign.write_text("x")
    legacy = tmp_path / f".{out.name}.partial-{killed.pid}"  # before host names: this host's
    legacy.write_text("x")

    (tmp_path / "in.csv").write_bytes(data)
    code, _ = score(str(churn_artifact), str(tmp_path / "in.csv"), str(out),
                    "--max-reject-rate", "1", capsys=capsys)
    assert code == 0
    m = manifest(out)
    assert m["counts"]["read"] == len(frame) == m["counts"]["scored"] + m["counts"]["rejected"]
    assert [r["row"] for r in rejects(out)] == ["5", "50"]
    assert partials(killed.pid) == [foreign.name]  # the dead run's and the legacy one: gone
    assert len(partials(running.pid)) == 2  # the running job's: kept

    running.communicate(data[len(data) // 2:], timeout=120)  # it finishes, in place
    assert running.returncode == 0
    assert sorted(x.name for x in tmp_path.iterdir() if x.name not in ("in.csv", "home")) == sorted(
        [*names, foreign.name])
    assert manifest(out)["counts"]["read"] == len(frame)


# --- database tables -------------------------------------------------------------------------


def _db_urls(kind: str, tmp_path: Path, request) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'scores.db'}"
    if kind == "duckdb":
        return f"duckdb:///{tmp_path / 'scores.duckdb'}"
    return request.getfixturevalue("pg_url")


def _load_table(url: str, table: str, frame: pd.DataFrame) -> None:
    if url.startswith("duckdb"):
        import duckdb
        con = duckdb.connect(url.split(":///", 1)[1])
        con.register("f", frame)
        con.execute(f'CREATE TABLE "{table}" AS SELECT * FROM f')
        con.close()
        return
    import sqlalchemy as sa
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    frame.to_sql(table, engine, index=False)
    engine.dispose()


def _read_table(url: str, sql: str) -> pd.DataFrame:
    if url.startswith("duckdb"):
        import duckdb
        con = duckdb.connect(url.split(":///", 1)[1], read_only=True)
        try:
            return con.execute(sql).df()
        finally:
            con.close()
    import sqlalchemy as sa
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        return pd.read_sql(sql, engine)
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["postgresql", "sqlite", "duckdb"])
def test_table_to_table_with_upsert_on_key(kind, tmp_path, frame, native, churn_artifact, request):
    url = _db_urls(kind, tmp_path, request)
    dirty = frame.copy()
    dirty["tenure"] = dirty["tenure"].astype(str)  # a text column, as often in the wild
    dirty.loc[11, "tenure"] = "soon"  # a text value in a number column: one rejected row
    _load_table(url, "customers", dirty)
    args = (str(churn_artifact), f"{url}?table=customers", f"{url}?table=scores",
            "--key", "customer_id", "--with-model", "--chunk-rows", "400", "--max-reject-rate", "0.01")
    assert score(*args)[0] == 0
    assert score(*args)[0] == 0  # the second run updates the same rows instead of adding
    got = _read_table(url, 'SELECT * FROM scores ORDER BY "row"')
    # `row` is the position in the table as read; without ORDER BY a database may return
    # rows in any order, so rows are matched to the native scores by id.
    ids = got["customer_id"].str[1:].astype(int).to_numpy()
    assert len(got) == 2999 and got["customer_id"].is_unique and 11 not in set(ids)
    assert set(got.columns) == {"row", "customer_id", "label", "probability_no",
                                "probability_yes", "model", "model_version"}
    assert_parity(got, native, ids)
    runs = sorted((tmp_path / "home" / "runs").glob("churn-*/run.json"))
    m = json.loads(runs[-1].read_text())
    assert m["counts"] == {"read": 3000, "scored": 2999, "rejected": 1, "flagged": 0}
    assert m["outputs"][0]["table"] == "scores" and "customers" in m["input"]["uri"]


def test_query_input_and_a_failed_write_rolls_back(tmp_path, frame, churn_artifact, pg_url,
                                                   capsys):
    _load_table(pg_url, "customers", frame)
    q = "SELECT * FROM customers WHERE age >= 40"
    assert score(str(churn_artifact), pg_url, f"{pg_url}?table=older", "--query", q,
                 "--keep", "customer_id")[0] == 0
    n = int((frame["age"] >= 40).sum())
    assert len(_read_table(pg_url, "SELECT * FROM older")) == n
    # A table without a unique key cannot take an upsert: the run fails, nothing is added.
    code, _ = score(str(churn_artifact), pg_url, f"{pg_url}?table=older", "--query", q,
                    "--key", "customer_id", "--chunk-rows", "100")
    err = capsys.readouterr().err
    assert code == 1 and "needs a primary key or unique index on customer_id" in err, err
    assert len(_read_table(pg_url, "SELECT * FROM older")) == n


# --- the Redis cache -------------------------------------------------------------------------


def test_redis_cache_of_scores_and_lookup(tmp_path, frame, native, churn_artifact, redis_url,
                                          capsys):
    import redis

    src = tmp_path / "in.parquet"
    frame.to_parquet(src, index=False)
    client = redis.Redis.from_url(redis_url)
    client.delete(*client.keys("scorehouse:churn:*") or ["none"])
    code, _ = score(str(churn_artifact), str(src), "--to", redis_url, "--key", "customer_id",
                    "--ttl", "600")
    assert code == 0
    assert len(client.keys("scorehouse:churn:*")) == 3000
    h = client.hgetall("scorehouse:churn:C00042")
    assert float(h[b"probability_yes"]) == pytest.approx(native[42], abs=TOL)
    assert h[b"model"] == b"churn" and h[b"scored_at"] and 0 < client.ttl(
        "scorehouse:churn:C00042") <= 600
    main_code = 0
    try:
        main(["lookup", "churn", "C00042", "--redis", redis_url, "--json"])
    except SystemExit as e:
        main_code = int(e.code or 0)
    assert main_code == 0
    looked = json.loads(capsys.readouterr().out)
    assert looked["label"] == h[b"label"].decode()
    try:
        main(["lookup", "churn", "no-such-customer", "--redis", redis_url])
    except SystemExit as e:
        main_code = int(e.code or 0)
    assert main_code == 3 and "no cached scores" in capsys.readouterr().err


def test_progress_is_a_bar_on_a_terminal_and_lines_otherwise():
    from scorehouse.batch import Progress

    log = io.StringIO()
    p = Progress(1000, "bytes", stream=log, log_every=0)
    p.update(100, 200, 250)  # a quarter of the bytes read gave 200 rows: about 800 in all
    p.close()
    assert "100 rows scored (12% of about 800 rows)" in log.getvalue() and "rows/s" in log.getvalue()

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Terminal()
    bar = Progress(1000, "rows", stream=tty)
    bar.update(400, 400, None)
    bar.close()
    assert "rows/s" in tty.getvalue() and "ETA" in tty.getvalue()
    quiet = io.StringIO()
    Progress(10, "rows", stream=quiet, enabled=False, log_every=0).update(5, 5)
    assert quiet.getvalue() == ""


@pytest.mark.parametrize(("unit", "total", "scored", "parsed", "done", "percent"), [
    # The whole file read ahead of scoring: the bar follows rows scored, not bytes read.
    ("bytes", 10_000, 200, 1000, 10_000, 20),
    ("bytes", 10_000, 500, 500, 5_000, 50),
    ("rows", 1000, 800, 1000, 1000, 80),
])
def test_progress_follows_rows_scored_not_input_read(unit, total, scored, parsed, done, percent):
    from scorehouse.batch import Progress

    log = io.StringIO()
    p = Progress(total, unit, stream=log, log_every=0)
    p.update(scored, parsed, done)
    assert f"{scored:,} rows scored ({percent}% of about" in log.getvalue()


def test_progress_of_a_real_run_ends_at_every_row(tmp_path, scorer, features):
    from scorehouse.batch import Options, Progress, RejectsFile, open_input, open_output, run

    src = tmp_path / "in.csv"
    features.head(1500).to_csv(src, index=False)
    log = io.StringIO()
    source = open_input(str(src), chunk_rows=256)
    progress = Progress(source.total, source.unit, stream=log, log_every=0)
    out = tmp_path / "out.csv"
    run(scorer, source, [open_output(str(out))], RejectsFile(tmp_path / "rejects.csv"), None,
        Options(), progress)
    assert "1,500 rows scored (100% of about 1,500 rows)" in log.getvalue().splitlines()[-1]
