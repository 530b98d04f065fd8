"""The column-set policy (schema/policy.py) on every channel: absent optional columns are
flagged `absent_column` and counted, unknown columns are reported with a "did you mean",
and `--columns strict` refuses both, naming them.

The churn model's `total_charges` had missing values in training, so it is optional.
"""

from __future__ import annotations

import json

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import scorehouse
from conftest import Server
from scorehouse.cli.app import main
from scorehouse.demo.data import TARGET
from scorehouse.errors import InvalidInputError, SchemaError
from scorehouse.schema import ABSENT_COLUMN, ColumnPolicy, ColumnsError, check_names
from scorehouse.serve import ModelSet, create_app

OPTIONAL, TYPO = "total_charges", "totl_charges"


@pytest.fixture(scope="module")
def churn_artifact(strict_churn_artifact):
    """The churn model with `tenure` required: the demo pipeline imputes every column, which
    makes each optional (nullable); this module needs a required one."""
    return strict_churn_artifact


@pytest.fixture(scope="module")
def frame(churn_data) -> pd.DataFrame:
    return churn_data.drop(columns=[TARGET]).head(6).reset_index(drop=True)


def _plain(df: pd.DataFrame) -> list[dict]:
    return df.astype(object).where(df.notna(), None).to_dict("records")


def _without(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[OPTIONAL])


def _misspelt(df: pd.DataFrame) -> pd.DataFrame:
    return df.rename(columns={OPTIONAL: TYPO})


def _null(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(**{OPTIONAL: np.nan})


SHAPES = {"dataframe": lambda df: df, "arrow": lambda df: pa.Table.from_pandas(df),
          "records": _plain, "dict": lambda df: _plain(df.head(1))[0]}


def _p_yes(result) -> list[float]:
    return [r["probabilities"]["yes"] for r in result.to_records()]


# --- the policy itself -----------------------------------------------------------------------


def test_check_names_sorts_absent_and_unknown_and_suggests(scorer):
    names = [n for n in scorer.schema.names if n not in (OPTIONAL, "tenure")] + [TYPO, "id"]
    check = check_names(scorer.schema, names)
    assert check.absent_required == ("tenure",)
    assert check.absent_optional == (OPTIONAL,)
    assert [(u.name, u.did_you_mean) for u in check.unknown] == [("id", None), (TYPO, OPTIONAL)]
    assert f"{TYPO!r} (did you mean {OPTIONAL!r}?)" in check.describe()
    assert check_names(scorer.schema, scorer.schema.names).clean
    assert check_names(scorer.schema, [*scorer.schema.names, "Tenure "]).unknown[0].did_you_mean \
        == "tenure"
    many = check_names(scorer.schema, [*scorer.schema.names, *(f"x{i}" for i in range(5000))])
    assert len(many.unknown) == 20 and many.more_unknown == 4980
    assert many.describe().endswith("and 4980 more")
    with pytest.raises(SchemaError, match="lenient or strict"):
        ColumnPolicy.parse("loose")


# --- the scorer (every Python input shape) ----------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("change", [_without, _misspelt])
def test_absent_optional_column_is_flagged_and_counted(scorer, frame, shape, change):
    data = SHAPES[shape](change(frame))
    result = scorer.predict(data)
    n = 1 if shape == "dict" else len(frame)
    assert result.n_scored == n and not result.rejects
    # Scored as the missing value it is, but flagged on every row and counted.
    assert _p_yes(result) == _p_yes(scorer.predict(SHAPES[shape](_null(frame))))
    assert result.flag_counts()[ABSENT_COLUMN] == {OPTIONAL: n}
    assert result.n_flagged == n
    assert all({"kind": ABSENT_COLUMN, "column": OPTIONAL} in r["flags"]
               for r in result.to_records())
    assert result.column_check.absent_optional == (OPTIONAL,)
    unknown = [(u.name, u.did_you_mean) for u in result.column_check.unknown]
    assert unknown == ([(TYPO, OPTIONAL)] if change is _misspelt else [])
    assert result.summary()["columns"]["absent_optional"] == [OPTIONAL]


@pytest.mark.parametrize("shape", SHAPES)
def test_an_explicit_null_is_a_missing_value_not_an_absent_column(scorer, frame, shape):
    result = scorer.predict(SHAPES[shape](_null(frame)))
    assert ABSENT_COLUMN not in result.flag_counts() and result.column_check.clean


def test_records_flag_only_the_records_lacking_the_key(scorer, frame):
    rows = _plain(frame)
    del rows[2][OPTIONAL]
    rows[4] = {**{k: v for k, v in rows[4].items() if k != OPTIONAL}, TYPO: 190.0}
    rows[5][OPTIONAL] = None  # a deliberate missing value: silent
    result = scorer.predict(rows)
    assert result.flags[(ABSENT_COLUMN, OPTIONAL)].tolist() == [2, 4]
    assert [u.did_you_mean for u in result.column_check.unknown] == [OPTIONAL]
    # A required column lacking in one record rejects that record only, as a missing column.
    rows = _plain(frame)
    del rows[3]["tenure"]
    result = scorer.predict(rows)
    assert [(r.row, r.column, r.reason) for r in result.rejects] == \
        [(3, "tenure", "required column is missing from the input")]


def _extra(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(extra=1)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("change, named", [(_without, OPTIONAL), (_misspelt, TYPO),
                                           (_extra, "extra")])
def test_strict_refuses_naming_the_columns(churn_artifact, frame, shape, change, named):
    strict = scorehouse.Scorer(scorehouse.load(churn_artifact, trust=True).artifact,
                               columns="strict")
    with pytest.raises(ColumnsError) as refused:
        strict.predict(SHAPES[shape](change(frame)))
    assert isinstance(refused.value, InvalidInputError) and refused.value.exit_code == 4
    assert repr(named) in str(refused.value)
    assert refused.value.check.clean is False
    assert strict.predict(SHAPES[shape](_null(frame))).n_scored >= 1  # exact columns: scored


# --- batch files --------------------------------------------------------------------------------


def _write(df: pd.DataFrame, path, fmt: str) -> None:
    if fmt == "csv":
        df.to_csv(path, index=False)
    else:
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)


def _score(*args: str) -> int:
    try:
        main(["score", *args, "--trust"])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("change", [_without, _misspelt])
def test_batch_counts_absent_column_and_reports_the_typo(tmp_path, churn_artifact, frame, fmt,
                                                         change, capsys):
    src, out = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}"
    _write(change(frame), src, fmt)
    assert _score(str(churn_artifact), str(src), str(out)) == 0
    run = json.loads((tmp_path / f"out.{fmt}.run.json").read_text())
    assert run["counts"]["flagged"] == len(frame)
    assert run["flags"][ABSENT_COLUMN] == {OPTIONAL: len(frame)}
    assert run["columns"]["absent_optional"] == [OPTIONAL]
    err = capsys.readouterr().err
    assert f"{OPTIONAL} absent from the input" in err
    if change is _misspelt:
        assert run["columns"]["unknown"] == [{"column": TYPO, "did_you_mean": OPTIONAL}]
        assert f"unknown column {TYPO!r} ignored (did you mean {OPTIONAL!r}?)" in err


def test_batch_jsonl_flags_the_lines_lacking_the_key(tmp_path, churn_artifact, frame, scorer):
    rows = _plain(frame)
    del rows[1][OPTIONAL]
    rows[3] = {**{k: v for k, v in rows[3].items() if k != OPTIONAL}, TYPO: 190.0}
    rows[4][OPTIONAL] = None  # a deliberate missing value: silent
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert _score(str(churn_artifact), str(src), str(out)) == 0
    run = json.loads((tmp_path / "out.jsonl.run.json").read_text())
    assert run["flags"].get(ABSENT_COLUMN) == {OPTIONAL: 2}
    assert run["columns"]["unknown"] == [{"column": TYPO, "did_you_mean": OPTIONAL}]
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["probability_yes"] for r in scored] == _p_yes(scorer.predict(rows))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_batch_strict_refuses_up_front_with_exit_4(tmp_path, churn_artifact, frame, fmt, capsys):
    src, out = tmp_path / f"in.{fmt}", tmp_path / f"out.{fmt}"
    _write(_misspelt(frame), src, fmt)
    assert _score(str(churn_artifact), str(src), str(out), "--columns", "strict") == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and OPTIONAL in err[0] and f"did you mean {OPTIONAL!r}" in err[0]
    assert not out.exists()
    _write(frame, src, fmt)  # the schema's columns exactly: strict scores it
    assert _score(str(churn_artifact), str(src), str(out), "--columns", "strict") == 0
    assert len(pd.read_csv(out) if fmt == "csv" else pd.read_parquet(out)) == len(frame)


def test_cli_predict_strict_is_one_line_and_exit_4(tmp_path, churn_artifact, frame, capsys):
    record = json.dumps(_plain(_misspelt(frame.head(1)))[0])
    (tmp_path / "in.jsonl").write_text(record + "\n")
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(churn_artifact), "--trust", "--columns", "strict",
              "-i", str(tmp_path / "in.jsonl")])
    assert exit_.value.code == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "did you mean" in err[0]
    with pytest.raises(SystemExit) as exit_:  # with --json, the error is JSON on stdout
        main(["predict", str(churn_artifact), "--trust", "--columns", "strict", "--json", record])
    assert exit_.value.code == 4
    assert "did you mean" in json.loads(capsys.readouterr().out)["error"]
    main(["predict", str(churn_artifact), "--trust", "--json", record])  # lenient: scored
    out = json.loads(capsys.readouterr().out)
    assert out["predictions"][0]["flags"] == [{"kind": ABSENT_COLUMN, "column": OPTIONAL}]
    assert out["columns"]["unknown"] == [{"column": TYPO, "did_you_mean": OPTIONAL}]


# --- the server, each protocol ----------------------------------------------------------------


@pytest.fixture(scope="module", params=["lenient", "strict"])
def served(request, churn_artifact):
    app = create_app(ModelSet([str(churn_artifact)], None, trust=True), batching="off",
                     columns=ColumnPolicy(request.param))
    with Server(app) as s:
        yield request.param, s


def _request(route: str, rows: list[dict]) -> tuple[str, dict]:
    if route == "mlflow":
        return "/invocations", {"dataframe_records": rows}
    if route == "native":
        return "/models/churn/predict", {"records": rows}
    inputs = [{"name": c, "shape": [len(rows)], "datatype": "BYTES" if isinstance(rows[0][c], str)
               else "FP64", "data": [r[c] for r in rows]} for c in rows[0]]
    return "/v2/models/churn/infer", {"inputs": inputs}


def _flag_total(metrics: str) -> float:
    line = next((x for x in metrics.splitlines() if x.startswith("scorehouse_flags_total{")
                 and f'kind="{ABSENT_COLUMN}"' in x and f'column="{OPTIONAL}"' in x), None)
    return float(line.split()[-1]) if line else 0.0


@pytest.mark.parametrize("route", ["mlflow", "v2", "native"])
def test_server_flags_or_refuses_an_absent_optional_column(served, frame, route):
    policy, server = served
    rows = [{k: v for k, v in r.items() if v is not None or k == OPTIONAL}
            for r in _plain(_misspelt(frame.head(3)))]
    rows = [{k: (0.0 if v is None else v) for k, v in r.items()} for r in rows]  # V2: no nulls
    path, body = _request(route, rows)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        before = _flag_total(http.get("/metrics").text)
        answer = http.post(path, json=body)
        after = _flag_total(http.get("/metrics").text)
    if policy == "strict":
        assert answer.status_code == 400, answer.text
        columns = answer.json()["columns"]
        assert columns["absent_optional"] == [OPTIONAL]
        assert columns["unknown"] == [{"column": TYPO, "did_you_mean": OPTIONAL}]
        assert after == before
        return
    assert answer.status_code == 200, answer.text
    assert after - before == 3  # counted like unseen categories
    doc = answer.json()
    if route == "native":
        assert all({"kind": ABSENT_COLUMN, "column": OPTIONAL} in p["flags"]
                   for p in doc["predictions"])
        assert doc["columns"]["unknown"] == [{"column": TYPO, "did_you_mean": OPTIONAL}]
    if route == "v2":
        assert f"did you mean {OPTIONAL!r}" in doc["parameters"]["columns"]


def test_server_rejects_an_absent_required_column_under_both_policies(served, frame):
    policy, server = served
    rows = [{k: v for k, v in r.items() if k != "tenure"} for r in _plain(frame.head(2))]
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answer = http.post("/invocations", json={"dataframe_records": rows})
    assert answer.status_code == 400 and "tenure" in answer.text


# --- Spark -----------------------------------------------------------------------------------


def test_spark_counts_absent_column_and_strict_refuses(spark, churn_artifact, frame, tmp_path):
    from scorehouse.spark import score, totals_accumulator

    scorer = scorehouse.load(churn_artifact, trust=True)
    df = spark.createDataFrame(_misspelt(frame).astype({"days_since_login": float}))
    totals = totals_accumulator(spark)
    out = score(df, scorer, totals=totals).toPandas()
    assert out["error"].isna().all() and len(out) == len(frame)
    np.testing.assert_allclose(out["probability_yes"], _p_yes(scorer.predict(_null(frame))),
                               atol=1e-9)
    assert totals.value.flags[ABSENT_COLUMN] == {OPTIONAL: len(frame)}
    with pytest.raises(ColumnsError, match=f"did you mean {OPTIONAL!r}"):
        score(df, scorer, columns="strict")
    # `score --engine spark`: the run manifest counts the flag and names the typo.
    src, dst = tmp_path / "in.parquet", tmp_path / "out.parquet"
    _write(_misspelt(frame), src, "parquet")
    assert _score(str(churn_artifact), str(src), str(dst), "--engine", "spark") == 0
    run = json.loads((tmp_path / "out.parquet.run.json").read_text())
    assert run["flags"][ABSENT_COLUMN] == {OPTIONAL: len(frame)}
    assert run["columns"]["unknown"] == [{"column": TYPO, "did_you_mean": OPTIONAL}]
    assert _score(str(churn_artifact), str(src), str(dst), "--engine", "spark",
                  "--columns", "strict") == 4
