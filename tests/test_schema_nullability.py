"""Which inputs accept a missing value: missing in training, or filled by the model's imputer."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.compose import make_column_transformer
from sklearn.impute import KNNImputer, SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import scorehouse
from scorehouse.cli.app import main
from scorehouse.schema.validate import MISSING_VALUE

TOL = 1e-9


@pytest.fixture(scope="module")
def data() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(5)
    n = 300
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 9, n),
                          "c": rng.choice(["x", "y", "z"], n), "d": rng.normal(size=n)})
    return frame, (frame.a + frame.d > 0).astype(int).to_numpy()


def _package(model, frame, tmp_path, **kw):
    return scorehouse.load(str(scorehouse.package(model, frame, name="imp", path=tmp_path / "m.shz",
                                                  **kw)), trust=True)


def test_columns_an_imputer_fills_accept_nulls_with_the_native_output(data, tmp_path):
    frame, y = data
    prep = make_column_transformer(
        (SimpleImputer(strategy="median"), ["a", "b"]),
        (make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()), ["c"]),
        ("passthrough", ["d"]))
    model = make_pipeline(prep, LogisticRegression()).fit(frame, y)
    scorer = _package(model, frame, tmp_path)
    reasons = {c.name: (c.nullable, c.nullable_reason) for c in scorer.schema.columns}
    assert reasons["a"] == reasons["b"] == (
        True, "imputed by SimpleImputer (step 'columntransformer' > 'simpleimputer')")
    assert reasons["c"] == (
        True, "imputed by SimpleImputer (step 'columntransformer' > 'pipeline' > "
              "'simpleimputer')")
    assert reasons["d"] == (False, None)  # passthrough: nothing fills it
    rows = [{"a": None, "b": None, "c": None, "d": 0.3}, {"a": 1.0, "b": 4, "c": "y", "d": -1.0},
            {"a": np.nan, "b": "NA", "c": "x", "d": 0.0}]
    want = model.predict_proba(pd.DataFrame({
        "a": [np.nan, 1.0, np.nan], "b": [np.nan, 4, np.nan], "c": [np.nan, "y", "x"],
        "d": [0.3, -1.0, 0.0]}))
    df = pd.DataFrame(rows)
    for sent in (rows, df, pa.Table.from_pandas(df.astype({"b": object}).replace("NA", None))):
        r = scorer.predict(sent)
        assert r.n_scored == 3, r.rejects
        assert np.abs(r.output.probabilities - want).max() <= TOL
    one = scorer.predict(rows[0])
    assert np.abs(one.output.probabilities[0] - want[0]).max() <= TOL
    # The column nothing imputes is still required.
    r = scorer.predict({**rows[1], "d": None})
    assert [(x.column, x.reason) for x in r.rejects] == [("d", MISSING_VALUE)]


@pytest.mark.parametrize("imputer", [KNNImputer(), SimpleImputer(strategy="mean")])
def test_an_imputer_as_the_pipelines_first_step_covers_every_column(data, tmp_path, imputer):
    frame, y = data
    X = frame[["a", "b", "d"]]
    model = make_pipeline(imputer, LogisticRegression()).fit(X, y)
    scorer = _package(model, X, tmp_path)
    assert all(c.nullable and type(imputer).__name__ in c.nullable_reason
               for c in scorer.schema.columns)
    r = scorer.predict({"a": None, "b": 3, "d": 1.0})
    want = model.predict_proba(pd.DataFrame({"a": [np.nan], "b": [3], "d": [1.0]}))
    assert np.abs(r.output.probabilities - want).max() <= TOL


def test_no_imputer_or_one_for_another_marker_keeps_columns_required(data, tmp_path):
    frame, y = data
    X = frame[["a", "d"]]
    for model in (LogisticRegression().fit(X, y),
                  make_pipeline(SimpleImputer(missing_values=-1.0), LogisticRegression()).fit(X, y)):
        scorer = _package(model, X, tmp_path)
        assert not any(c.nullable for c in scorer.schema.columns)
        r = scorer.predict({"a": None, "d": 1.0})
        assert [(x.column, x.reason) for x in r.rejects] == [("a", MISSING_VALUE)]


def test_a_schema_override_wins_and_says_so(data, tmp_path):
    frame, y = data
    X = frame[["a", "d"]]
    model = make_pipeline(SimpleImputer(), LogisticRegression()).fit(X, y)
    scorer = _package(model, X, tmp_path, schema_overrides={"a": {"nullable": False}})
    assert (scorer.schema["a"].nullable, scorer.schema["a"].nullable_reason) == (False, None)
    scorer = _package(LogisticRegression().fit(X, y), X, tmp_path,
                      schema_overrides={"d": {"nullable": True}})
    assert scorer.schema["d"].nullable_reason == "set by a schema override"


def test_missing_in_training_is_a_reason_too_and_the_cli_lists_them(data, tmp_path, capsys):
    frame, y = data
    X = frame[["a", "d"]].assign(d=frame.d.where(frame.index % 7 != 0))
    model = make_pipeline(make_column_transformer((SimpleImputer(), ["d"]),
                                                  remainder="passthrough"),
                          LogisticRegression()).fit(X, y)
    joblib.dump(model, tmp_path / "model.joblib")
    X.to_parquet(tmp_path / "train.parquet")
    try:
        main(["package", str(tmp_path / "model.joblib"), "--train-data",
              str(tmp_path / "train.parquet"), "--name", "imp", "-o", str(tmp_path / "c.shz"),
              "--json"])
    except SystemExit as e:
        assert not e.code
    out = json.loads(capsys.readouterr().out)
    assert out["nullable"] == {"d": "missing in training"}
