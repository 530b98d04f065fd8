"""Categorical columns whose categories are ints, floats, bools or text, on every channel.

A LightGBM model trained on a pandas `category` column is scored through scorehouse and
compared with the model's own predict_proba on a frame holding the training categories
(tolerance 1e-9 on the native runtime, which runs the same library on the same values; 1e-6,
the parity gate's, where the model is compiled: LightGBM on text categories converts to ONNX).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import scorehouse
from scorehouse.artifact import Artifact, Manifest
from scorehouse.cli.app import main
from scorehouse.errors import SchemaError
from scorehouse.scorer import Scorer
from scorehouse.serve import ModelSet, create_app
from scorehouse.sql.postgres import install, python_paths

lgb = pytest.importorskip("lightgbm")

#: The native runtime runs the model's own library on the same values; a compiled graph
#: (text categories convert to ONNX) is held to the parity gate's tolerance.
TOLS = {"native": 1e-9, "onnx": 1e-6}
N = 600


@dataclass(frozen=True)
class Kind:
    """One category type: its training categories and the forms a client sends one in."""

    name: str
    categories: list[Any]
    #: (form name, raw value as sent, the training category it means)
    forms: list[tuple[str, Any, Any]]
    unseen: Any


KINDS = {
    "int": Kind("int", [11, 22, 33, 44],
                [("json number", 33, 33), ("json string", "33", 33), ("float 33.0", 33.0, 33),
                 ("text 33.0", "33.0", 33), ("padded text", " 22 ", 22)], 55),
    "float": Kind("float", [0.5, 1.5, 2.5, 3.5],
                  [("json number", 2.5, 2.5), ("json string", "2.5", 2.5),
                   ("integer-valued", 1.5, 1.5), ("text", "0.50", 0.5)], 9.5),
    "bool": Kind("bool", [False, True],
                 [("json bool", True, True), ("json string", "true", True), ("number", 0, False),
                  ("text", "False", False)], None),
    "text": Kind("text", ["a", "b", "c", "d"], [("json string", "c", "c")], "zz"),
}


def _train(kind: Kind) -> tuple[Any, pd.DataFrame]:
    rng = np.random.default_rng(0)
    color = rng.choice(["red", "green", "blue", "amber"], N)
    store = rng.choice(np.array(kind.categories, dtype=object), N)
    x = rng.normal(size=N)
    special = kind.categories[-2]  # a category with its own effect
    y = (((color == "red") | (store == special)) ^ (x > 1.2)).astype(int)
    frame = pd.DataFrame({"color": pd.Categorical(color),
                          "store": pd.Categorical(list(store), categories=kind.categories),
                          "x": x, "y": y})
    model = lgb.LGBMClassifier(n_estimators=30, num_leaves=8, min_child_samples=5,
                               verbose=-1).fit(frame[["color", "store", "x"]], frame.y)
    return model, frame


@pytest.fixture(scope="module", params=list(KINDS))
def case(request, tmp_path_factory):
    kind = KINDS[request.param]
    model, frame = _train(kind)
    path = scorehouse.package(model, frame, name=f"lgb{kind.name}", target="y",
                              path=tmp_path_factory.mktemp("cat") / f"lgb{kind.name}.shz")
    return kind, model, frame, path


def tol_of(path) -> float:
    return TOLS[scorehouse.load(str(path)).runtime.name]


def native(model, frame: pd.DataFrame, stores: list[Any]) -> np.ndarray:
    """The model's own P(1) for rows (color, store, x) given as training categories."""
    X = pd.DataFrame({"color": pd.Categorical(frame.color[: len(stores)].to_numpy(),
                                              categories=frame.color.cat.categories),
                      "store": pd.Categorical(stores, categories=frame.store.cat.categories),
                      "x": frame.x[: len(stores)].to_numpy()})
    return model.predict_proba(X)[:, 1]


def p1(result) -> np.ndarray:
    assert result.n_rejected == 0, result.rejects
    return result.output.probabilities[:, 1]


def test_schema_records_the_category_type(case):
    kind, _, _, path = case
    col = scorehouse.load(str(path)).schema["store"]
    assert col.category_type == kind.name and col.dtype == "category"
    assert len(col.categories) == len(kind.categories)


def test_training_frame_scores_like_the_model_with_no_label_flips(case):
    kind, model, frame, path = case
    tol = tol_of(path)
    scorer = scorehouse.load(str(path))
    X = frame[["color", "store", "x"]]
    want = model.predict_proba(X)[:, 1]
    got = p1(scorer.predict(X))
    assert np.abs(got - want).max() <= tol
    assert int(((got > 0.5) != (want > 0.5)).sum()) == 0


def _records(frame: pd.DataFrame, stores: list[Any]) -> list[dict[str, Any]]:
    return [{"color": c, "store": s, "x": float(x)}
            for c, s, x in zip(frame.color, stores, frame.x, strict=False)]


def test_every_input_form_through_the_python_api(case):
    kind, model, frame, path = case
    tol = tol_of(path)
    scorer = scorehouse.load(str(path))
    sent = [raw for _, raw, _ in kind.forms] * 3
    meant = [m for _, _, m in kind.forms] * 3
    want = native(model, frame, meant)
    recs = _records(frame, sent)
    assert np.abs(p1(scorer.predict(recs)) - want).max() <= tol, "records"
    for i, rec in enumerate(recs[: len(kind.forms)]):
        assert abs(p1(scorer.predict(rec))[0] - want[i]) <= tol, f"one dict: {kind.forms[i][0]}"
    # Typed columns: the training categories' own type, in pandas and in Arrow.
    typed = pd.DataFrame({"color": frame.color[: len(meant)].astype(str).to_numpy(),
                          "store": pd.array(meant), "x": frame.x[: len(meant)].to_numpy()})
    assert np.abs(p1(scorer.predict(typed)) - want).max() <= tol, "DataFrame"
    assert np.abs(p1(scorer.predict(pa.Table.from_pandas(typed))) - want).max() <= tol, "Arrow"
    as_text = typed.assign(store=[str(v) for v in meant])  # e.g. a CSV read as text
    assert np.abs(p1(scorer.predict(as_text)) - want).max() <= tol, "text column"


def test_an_unknown_category_is_flagged_unseen_and_a_wrong_type_rejected(case):
    kind, _, frame, path = case
    scorer = scorehouse.load(str(path))
    if kind.unseen is not None:
        r = scorer.predict(_records(frame, [kind.categories[0], kind.unseen]))
        assert r.n_scored == 2 and r.flag_counts()["unseen_category"] == {"store": 1}
    if kind.name != "text":
        r = scorer.predict(_records(frame, [kind.categories[0], "abc"]))
        assert r.n_scored == 1 and [(x.row, x.column) for x in r.rejects] == [(1, "store")]
        assert "abc" in r.rejects[0].reason and kind.name in r.rejects[0].reason


def _score_cli(*args: str) -> int:
    try:
        main(["score", *args, "--trust", "-q"])
    except SystemExit as e:
        return int(e.code or 0)
    return 0


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_scorehouse_score_csv_and_parquet(case, fmt, tmp_path):
    kind, model, frame, path = case
    tol = tol_of(path)
    meant = [m for _, _, m in kind.forms] * 4
    want = native(model, frame, meant)
    src, out = tmp_path / f"in.{fmt}", tmp_path / "out.csv"
    df = pd.DataFrame({"color": frame.color[: len(meant)].astype(str).to_numpy(),
                       "store": pd.array(meant), "x": frame.x[: len(meant)].to_numpy()})
    if fmt == "csv":
        df.to_csv(src, index=False)
    else:  # a typed Parquet column (int64, double, bool, string)
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), src)
    assert _score_cli(str(path), str(src), str(out)) == 0
    got = pd.read_csv(out)["probability_1"].to_numpy()
    assert np.abs(got - want).max() <= tol


def test_rest_server_over_http(case):
    from conftest import Server  # the uvicorn-in-a-thread helper of the server tests

    kind, model, frame, path = case
    tol = tol_of(path)
    sent = [raw for _, raw, _ in kind.forms]
    want = native(model, frame, [m for _, _, m in kind.forms])
    recs = _records(frame, sent)
    with Server(create_app(ModelSet([str(path)], trust=True))) as s, \
            httpx.Client(base_url=s.url, timeout=30) as http:
        r = http.post("/invocations", json={"dataframe_records": recs})
        assert r.status_code == 200, r.text
        got = [p["probability_1"] for p in r.json()["predictions"]]
        assert np.abs(np.array(got) - want).max() <= tol
        name = f"lgb{kind.name}"
        r = http.post(f"/models/{name}/predict", json={"records": recs})
        assert r.status_code == 200, r.text
        got = [p["probabilities"]["1"] for p in r.json()["predictions"]]
        assert np.abs(np.array(got) - want).max() <= tol


def test_postgresql_functions(case, pg_url, tmp_path):
    kind, model, frame, path = case
    tol = tol_of(path)
    reg = scorehouse.Registry()
    reg.register(path)
    reg.promote(f"lgb{kind.name}/1", "production")
    name = f"lgb{kind.name}"
    # The database server imports scorehouse from this tree, then from the venv.
    here = str(Path(scorehouse.__file__).resolve().parents[1])
    install(pg_url, [f"{name}@production"], registry=reg, python_path=[here, *python_paths()])
    meant = [m for _, _, m in kind.forms] * 2
    want = native(model, frame, meant)
    sql_type = {"int": "bigint", "float": "float8", "bool": "boolean", "text": "text"}[kind.name]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE t (id int PRIMARY KEY, color text, store {sql_type}, "
                     "x float8)")
        for i, m in enumerate(meant):
            conn.execute("INSERT INTO t VALUES (%s, %s, %s, %s)",
                         [i, str(frame.color.iloc[i]), m, float(frame.x.iloc[i])])
        typed = conn.execute(f"SELECT (scorehouse.score_{name}(color, store, x)).probability_1 "
                             "FROM t ORDER BY id").fetchall()
        assert np.abs(np.array([r[0] for r in typed]) - want).max() <= tol
        by_json = conn.execute("SELECT scorehouse.score(%s, row_to_json(t)::jsonb) FROM t "
                               "ORDER BY id", [name]).fetchall()
        got = [r[0]["probabilities"]["1"] for r in by_json]
        assert np.abs(np.array(got) - want).max() <= tol
        batch = conn.execute("SELECT key::int, prediction, error FROM scorehouse.score_query("
                             "%s, 'SELECT * FROM t', 'id') ORDER BY 1", [name]).fetchall()
        assert all(e is None for *_, e in batch), batch
        got = [p["probabilities"]["1"] for _, p, _ in batch]
        assert np.abs(np.array(got) - want).max() <= tol


# --- packaging: refuse what cannot be carried; old manifests --------------------------------


def test_packaging_refuses_a_schema_that_loses_the_category_type(tmp_path):
    model, frame = _train(KINDS["int"])
    # The schema as written before category types: the categories as text only.
    with pytest.raises(SchemaError, match=r"'store' \(training dtype category of int64"):
        scorehouse.package(model, frame, name="old", target="y", path=tmp_path / "a.shz",
                           schema_overrides={"store": {"category_type": None}})


def test_a_categorical_of_dates_is_refused_at_packaging(tmp_path):
    from sklearn.dummy import DummyClassifier

    frame = pd.DataFrame({"d": pd.Categorical(pd.to_datetime(["2026-01-01", "2026-01-02"])),
                          "y": [0, 1]})
    model = DummyClassifier().fit(np.zeros((2, 1)), frame.y)
    with pytest.raises(SchemaError, match="column 'd' is a categorical of datetime64"):
        scorehouse.package(model, frame, name="dates", target="y", path=tmp_path / "d.shz")


def test_a_manifest_written_before_category_types_scores_as_before(tmp_path):
    # Text categories: the case manifests without category types scored right.
    model, frame = _train(KINDS["text"])
    path = scorehouse.package(model, frame, name="old", target="y", path=tmp_path / "o.shz")
    art = scorehouse.load(str(path)).artifact
    manifest = json.loads(json.dumps(art.manifest.to_dict()))
    for c in manifest["input_schema"]["columns"]:
        for new in ("category_type", "timezone", "nullable_reason"):
            c.pop(new, None)
        if c.get("categories") is not None:
            c["categories"] = sorted(c["categories"])  # as they were stored
    old = Scorer(Artifact(Manifest.from_dict(manifest), art.files, "", "old", trusted_by="user"))
    tol = TOLS[old.runtime.name]
    X = frame[["color", "store", "x"]]
    assert np.abs(p1(old.predict(X)) - model.predict_proba(X)[:, 1]).max() <= tol
    assert np.abs(p1(old.predict(_records(frame, list(frame.store))))
                  - model.predict_proba(X)[:, 1]).max() <= tol


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_training_data_that_lost_the_category_dtype_takes_the_models_categories(fmt, tmp_path):
    model, frame = _train(KINDS["int"])
    src = tmp_path / f"train.{fmt}"
    plain = frame.assign(color=frame.color.astype(str), store=frame.store.astype("int64"))
    if fmt == "csv":
        plain.to_csv(src, index=False)
    else:  # no pandas metadata: the integers come back as int64
        pq.write_table(pa.Table.from_pandas(plain, preserve_index=False).replace_schema_metadata(),
                       src)
    path = scorehouse.package(model, str(src), name="lgbfile", target="y",
                              path=tmp_path / "m.shz")
    scorer = scorehouse.load(str(path))
    tol = TOLS[scorer.runtime.name]
    col = scorer.schema["store"]
    assert (col.dtype, col.category_type, col.categories) == ("category", "int",
                                                             ("11", "22", "33", "44"))
    X = frame[["color", "store", "x"]]
    assert np.abs(p1(scorer.predict(plain)) - model.predict_proba(X)[:, 1]).max() <= tol
