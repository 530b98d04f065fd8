"""The compiled runtime: ONNX conversion at packaging, the parity gate, and the graph alone."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.tree import DecisionTreeClassifier

import scorehouse
from scorehouse import artifact as artifact_io
from scorehouse.demo.data import TARGET, churn_frame
from scorehouse.demo.run import preprocessor as _pre
from scorehouse.errors import ParityError
from scorehouse.schema import validate_batch

GATE = 1e-6  # the parity gate's default tolerance, on probabilities


@pytest.fixture(scope="module")
def data():
    df = churn_frame(2000, seed=11)
    X = df.drop(columns=[TARGET])
    assert X["payment_method"].isna().any()  # missing strings reach the string imputer
    return df, X, df[TARGET]


def _package(tmp_path, model, frame, name="m", **kw):
    path = scorehouse.package(model, frame, name=name, path=tmp_path / f"{name}.shz", **kw)
    return path, artifact_io.read(path, trust=True).manifest.to_dict()


def _pipelines():
    import lightgbm
    import xgboost

    return {
        "forest": lambda X: Pipeline([("f", _pre(X)), ("m", RandomForestClassifier(
            30, max_depth=8, random_state=0))]),
        "extra_trees": lambda X: Pipeline([("f", _pre(X)), ("m", ExtraTreesClassifier(
            30, max_depth=8, random_state=0))]),
        "tree": lambda X: Pipeline([("f", _pre(X)), ("m", DecisionTreeClassifier(max_depth=6))]),
        "logistic": lambda X: Pipeline([("f", _pre(X)), ("m", LogisticRegression(max_iter=500))]),
        "gradient_boosting": lambda X: Pipeline([("f", _pre(X)), ("m", GradientBoostingClassifier(
            n_estimators=30))]),
        "hist_gradient_boosting": lambda X: Pipeline([("f", _pre(X)), (
            "m", HistGradientBoostingClassifier(max_iter=30))]),
        "lightgbm": lambda X: Pipeline([("f", _pre(X)), ("m", lightgbm.LGBMClassifier(
            n_estimators=60, verbose=-1))]),
        # Dense one-hot here; XGBoost fed a sparse matrix is test_compile_matrix's (zeros = missing).
        "xgboost": lambda X: Pipeline([("f", _pre(X, dense=True)), ("m", xgboost.XGBClassifier(
            n_estimators=40, max_depth=4))]),
    }


@pytest.mark.parametrize("kind", list(_pipelines()))
def test_pipelines_compile_pass_the_gate_and_score_like_the_native_model(tmp_path, data, kind):
    df, X, y = data
    model = _pipelines()[kind](X).fit(X, (y == "yes").astype(int) if kind == "xgboost" else y)
    path, m = _package(tmp_path, model, df, target=TARGET)
    c = m["compiled"]
    assert c["status"] == "passed", c
    assert m["model"]["runtime"] == "onnx"
    assert c["parity"]["rows"] == len(df) and c["parity"]["label_flips"] == 0
    assert max(c["parity"]["max_abs_diff"].values()) <= GATE
    scorer = scorehouse.load(path, trust=True)
    assert scorer.runtime.name == "onnx"
    result = scorer.predict(pa.Table.from_pandas(X))
    native = model.predict_proba(X)
    assert np.abs(result.output.probabilities - native).max() <= GATE
    assert (result.output.labels == scorer.runtime.classes[native.argmax(1)]).all()
    for i in (0, 7, 1999):
        one = scorer.predict(X.iloc[i].to_dict())
        assert np.abs(one.output.probabilities[0] - native[i]).max() <= GATE


def test_multiclass_forest_and_regressors(tmp_path, data):
    df, X, _ = data
    Xm = X.drop(columns=["contract"])
    multi = Pipeline([("f", _pre(Xm)), ("m", RandomForestClassifier(20, max_depth=6,
                                                                      random_state=0))])
    multi.fit(Xm, X["contract"])
    path, m = _package(tmp_path, multi, Xm, name="multi")
    assert m["compiled"]["status"] == "passed" and m["task"] == "multiclass"
    out = scorehouse.load(path, trust=True).predict(Xm).output.probabilities
    assert out.shape[1] == 3 and np.abs(out - multi.predict_proba(Xm)).max() <= GATE

    for name, est in {"ridge": Ridge(), "gbr": GradientBoostingRegressor(n_estimators=30)}.items():
        Xr = X.drop(columns=["total_charges"])
        reg = Pipeline([("f", _pre(Xr)), ("m", est)]).fit(Xr, df["total_charges"].fillna(0))
        path, m = _package(tmp_path, reg, Xr, name=name)
        assert m["compiled"]["status"] == "passed", m["compiled"]
        assert m["compiled"]["parity"]["max_rel_diff"]["value"] <= GATE
        values = scorehouse.load(path, trust=True).predict(Xr).output.values
        np.testing.assert_allclose(values, reg.predict(Xr), rtol=GATE, atol=GATE)


def test_bare_boosters_compile_alone(tmp_path, data):
    import lightgbm
    import xgboost

    df, X, y = data
    num = X.select_dtypes("number")
    yb = (y == "yes").astype(int)
    models = {
        "lgbm_classifier": lightgbm.LGBMClassifier(n_estimators=80, verbose=-1).fit(num, y),
        "lgbm_booster": lightgbm.train({"objective": "multiclass", "num_class": 3, "verbose": -1},
                                       lightgbm.Dataset(num, label=df["support_calls"] % 3),
                                       num_boost_round=20),
        "xgb_classifier": xgboost.XGBClassifier(n_estimators=40, max_depth=4).fit(num, yb),
        "xgb_regressor": xgboost.XGBRegressor(n_estimators=40).fit(num.drop(columns=["age"]),
                                                                   num["age"]),
    }
    for name, model in models.items():
        frame = num.drop(columns=["age"]) if name == "xgb_regressor" else num
        path, m = _package(tmp_path, model, frame, name=name)
        assert m["compiled"]["status"] == "passed", (name, m["compiled"])
        out = scorehouse.load(path).predict(frame).output
        if name == "xgb_regressor":
            np.testing.assert_allclose(out.values, model.predict(frame), rtol=GATE)
        else:
            native = model.predict(frame) if name == "lgbm_booster" else model.predict_proba(frame)
            assert np.abs(out.probabilities - native).max() <= GATE, name


class Doubler(BaseEstimator, TransformerMixin):
    """A custom step no converter knows."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float) * 2


def test_a_step_without_a_converter_keeps_the_native_runtime_and_is_named(tmp_path, data):
    df, X, y = data
    num = X.select_dtypes("number")
    model = Pipeline([("impute", SimpleImputer()), ("double", Doubler()),
                      ("model", LogisticRegression(max_iter=2000))]).fit(num, y)
    path, m = _package(tmp_path, model, num)
    c = m["compiled"]
    assert c["status"] == "not converted" and c["step"] == "double"
    assert "no ONNX converter for Doubler" in c["reason"]
    assert m["model"]["runtime"] == "native" and "compiled/model.onnx" not in m["files"]
    scorer = scorehouse.load(path, trust=True)
    assert scorer.runtime.name == "native"
    with pytest.raises(scorehouse.errors.ModelError, match="no ONNX graph to run.*double"):
        scorehouse.load(path, trust=True, runtime="onnx")


def test_a_converter_error_names_the_step_inside_the_pipeline(tmp_path, data):
    df, X, y = data
    model = _pipelines()["logistic"](X)
    model.steps[0][1].transformers[0][1].steps[0][1].set_params(add_indicator=True)
    model.fit(X, y)
    _, m = _package(tmp_path, model, df, target=TARGET)
    c = m["compiled"]
    assert c["status"] == "not converted" and c["step"] == "f > num > impute", c
    assert "add_indicator" in c["reason"] and m["model"]["runtime"] == "native"


def test_datetime_input_is_named_as_the_step_that_cannot_convert(tmp_path, data):
    df, X, y = data
    frame = X.select_dtypes("number").assign(signup=pd.Timestamp("2024-01-01"))
    model = lambda f: np.zeros(len(f))  # noqa: E731
    path, m = _package(tmp_path, model, frame, task="regression")
    c = m["compiled"]
    assert c["status"] == "not converted" and c["step"] == "input column 'signup'"
    assert "datetime columns have no ONNX input type" in c["reason"]
    assert m["model"]["runtime"] == "native"


def test_gate_failure_keeps_native_and_records_why_and_onnx_needs_acceptance(tmp_path, data):
    df, X, y = data
    model = _pipelines()["forest"](X).fit(X, y)
    path, m = _package(tmp_path, model, df, target=TARGET, tolerance=0.0)
    c = m["compiled"]
    assert c["status"] == "failed parity" and m["model"]["runtime"] == "native"
    assert "exceeds the tolerance 0" in c["reason"]
    assert c["parity"]["passed"] is False and c["parity"]["tolerance"] == 0.0
    assert scorehouse.load(path, trust=True).runtime.name == "native"
    with pytest.raises(ParityError, match="exceeds the tolerance 0"):
        scorehouse.load(path, trust=True, runtime="onnx")
    forced = scorehouse.load(path, trust=True, runtime="onnx", accept_parity_difference=True)
    assert forced.runtime.name == "onnx" and forced.runtime.parity_accepted
    assert np.abs(forced.predict(X).output.probabilities - model.predict_proba(X)).max() <= GATE


def test_packaging_without_compile(tmp_path, data):
    df, X, y = data
    model = _pipelines()["logistic"](X).fit(X, y)
    _, m = _package(tmp_path, model, df, target=TARGET, compile=False)
    assert "compiled" not in m and m["model"]["runtime"] == "native"


@pytest.fixture(scope="module")
def forest_artifact(tmp_path_factory, data):
    df, X, y = data
    model = _pipelines()["forest"](X).fit(X, y)
    path = tmp_path_factory.mktemp("forest") / "forest.shz"
    scorehouse.package(model, df, name="forest", target=TARGET, path=path)
    return path, model


def test_single_row_path_builds_no_dataframe_and_no_column_arrays(forest_artifact, data,
                                                                  monkeypatch):
    import scorehouse.runtime.onnx as onnx_mod

    path, model = forest_artifact
    scorer = scorehouse.load(path, trust=True)
    row = data[1].iloc[3].to_dict()

    def boom(*a, **k):
        raise AssertionError("the single-row path built a DataFrame or a batch")

    monkeypatch.setattr(pd, "DataFrame", boom)
    monkeypatch.setattr(onnx_mod.OnnxRuntime, "predict", boom)
    result = scorer.predict(row)
    monkeypatch.undo()
    assert result.n_scored == 1
    assert np.abs(result.output.probabilities[0] -
                  model.predict_proba(data[1].iloc[[3]])[0]).max() <= GATE


@pytest.fixture
def session_runs(monkeypatch):
    """Every run of an ONNX Runtime session the runtime opens from now on, as
    (the session's intra-op threads, {input: shape fed})."""
    import scorehouse.runtime.onnx as onnx_mod

    runs: list[tuple[int, dict[str, tuple[int, ...]]]] = []
    opened = onnx_mod.session

    class Spy:
        def __init__(self, real):
            self.real = real

        def run(self, names, feed):
            threads = self.real.get_session_options().intra_op_num_threads
            runs.append((threads, {k: v.shape for k, v in feed.items()}))
            return self.real.run(names, feed)

        def __getattr__(self, name):
            return getattr(self.real, name)

    monkeypatch.setattr(onnx_mod, "session",
                        lambda model_bytes, threads=0: Spy(opened(model_bytes, threads)))
    return runs


def _graph_outputs(path, X, names):
    """The compiled graph's own outputs for X from a plain ONNX Runtime session, fed as the
    documented contract says: one (n, 1) input per column, '' for a missing string."""
    import onnxruntime as ort

    with zipfile.ZipFile(path) as z:
        sess = ort.InferenceSession(z.read("compiled/model.onnx"),
                                    providers=["CPUExecutionProvider"])
    feed = {}
    for i in sess.get_inputs():
        if i.type == "tensor(string)":
            feed[i.name] = np.array([[v if isinstance(v, str) else ""] for v in X[i.name]],
                                    dtype=object)
        else:
            feed[i.name] = X[i.name].to_numpy(np.float64, na_value=np.nan).reshape(-1, 1)
    return sess.run(names, feed)


def test_batch_path_feeds_whole_columns_in_one_session_run(forest_artifact, data, session_runs):
    path, _ = forest_artifact
    scorer = scorehouse.load(path, trust=True)
    scorer.runtime.prepare()  # cutting and checking the graph runs sessions: not the batch's
    assert scorer.runtime.tree_kernel() is not None  # so the run is the graph's prefix
    session_runs.clear()
    result = scorer.predict(pa.Table.from_pandas(data[1]))
    assert result.n_scored == 2000 and len(session_runs) == 1
    assert session_runs[0] == (0, {c: (2000, 1) for c in data[1].columns})


def test_the_onnx_file_runs_with_plain_onnxruntime(forest_artifact, data, tmp_path):
    path, model = forest_artifact
    X = data[1].head(300)
    manifest = artifact_io.read(path, trust=True).manifest.to_dict()
    with zipfile.ZipFile(path) as z:
        (tmp_path / "model.onnx").write_bytes(z.read("compiled/model.onnx"))
    X.to_json(tmp_path / "rows.json", orient="records")
    # A separate interpreter that never imports scorehouse: the documented contract only.
    script = """
import json, sys
import numpy as np, onnxruntime as ort
sess = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
rows = json.load(open(sys.argv[2]))
feed = {}
for i in sess.get_inputs():
    if i.type == "tensor(string)":
        feed[i.name] = np.array([[r[i.name] or ""] for r in rows], dtype=object)
    else:
        feed[i.name] = np.array([[np.nan if r[i.name] is None else r[i.name]] for r in rows],
                                dtype=np.float64)
label, proba = sess.run(["label", "probabilities"], feed)
assert "scorehouse" not in sys.modules
print(json.dumps({"label": label.tolist(), "proba": proba.tolist(),
                  "outputs": [o.name for o in sess.get_outputs()]}))
"""
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model.onnx"),
                          str(tmp_path / "rows.json")], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    got = json.loads(out.stdout)
    assert got["outputs"] == ["label", "probabilities"]
    assert [o["name"] for o in manifest["compiled"]["outputs"]] == ["label", "probabilities"]
    assert [i["name"] for i in manifest["compiled"]["inputs"]] == list(X.columns)
    assert np.abs(np.array(got["proba"]) - model.predict_proba(X)).max() <= GATE
    assert got["label"] == model.predict(X).tolist()


def test_large_batches_split_into_parallel_chunks_score_exactly_like_one_run(
        forest_artifact, data, monkeypatch, session_runs):
    import scorehouse.runtime.onnx as onnx_mod

    path, _ = forest_artifact
    scorer = scorehouse.load(path, trust=True)
    table = pa.Table.from_pandas(data[1])
    one_run = scorer.predict(table)
    (graph_labels,) = _graph_outputs(path, data[1], ["label"])
    # Shrink the chunks so 2,000 rows make 8 equal chunks of at most 256 rows (4 rounds of
    # two threads).
    monkeypatch.setattr(onnx_mod, "CHUNK_ROWS", 256)
    monkeypatch.setattr(onnx_mod, "PARALLEL_MIN_ROWS", 1000)
    scorer.runtime.workers = 2
    session_runs.clear()
    chunked = scorer.predict(table)
    # Each chunk is one run of a single-threaded session (the prefix; the tree kernel after).
    runs = [(threads, next(iter(shapes.values()))[0]) for threads, shapes in session_runs]
    assert sorted(runs) == [(1, 250)] * 8
    assert np.array_equal(chunked.output.probabilities, one_run.output.probabilities)
    assert chunked.output.labels.tolist() == one_run.output.labels.tolist() \
        == graph_labels.tolist()
    assert chunked.rows.tolist() == one_run.rows.tolist() == list(range(2000))
    small = scorer.predict(table.slice(0, 999))  # under the threshold: one run
    assert session_runs[8:] == [(0, {c: (999, 1) for c in data[1].columns})]
    assert np.array_equal(small.output.probabilities,
                                             one_run.output.probabilities[:999])


def test_an_error_in_a_chunk_reaches_the_scorer_which_isolates_as_for_one_run(
        forest_artifact, data, monkeypatch):
    import scorehouse.runtime.onnx as onnx_mod

    path, _ = forest_artifact
    scorer = scorehouse.load(path, trust=True)
    table = pa.Table.from_pandas(data[1])
    one_run = scorer.predict(table)
    monkeypatch.setattr(onnx_mod, "CHUNK_ROWS", 256)
    monkeypatch.setattr(onnx_mod, "PARALLEL_MIN_ROWS", 1000)
    scorer.runtime.workers = 2
    opened = onnx_mod.session

    class Failing:
        def run(self, names, feed):
            raise RuntimeError("boom")

    # The chunks' single-threaded sessions, opened on the first large batch, fail.
    monkeypatch.setattr(onnx_mod, "session", lambda model_bytes, threads=0:
                        Failing() if threads == 1 else opened(model_bytes, threads))
    with pytest.raises(RuntimeError, match="boom"):
        scorer.runtime.predict(validate_batch(scorer.schema, table).columns, 2000)
    # The scorer bisects: halves of 1,000 rows fail again, quarters of 500 run in one piece.
    result = scorer.predict(table)
    assert result.n_scored == 2000 and not result.rejects
    assert np.array_equal(result.output.probabilities, one_run.output.probabilities)


# --- the tree kernel (runtime/trees.py) -----------------------------------------------------


def _kernel_cases():
    import lightgbm
    import xgboost
    from sklearn.ensemble import ExtraTreesRegressor, RandomForestRegressor

    return {
        # name: (model factory, target kind, the kernel takes the graph's trees?)
        "forest": (lambda X: Pipeline([("f", _pre(X)), ("m", RandomForestClassifier(
            30, max_depth=8, random_state=0))]), "binary", True),
        "multiclass_extra_trees": (lambda X: Pipeline([("f", _pre(X)), ("m", ExtraTreesClassifier(
            20, max_depth=7, random_state=0))]), "multiclass", True),
        "forest_regressor": (lambda X: Pipeline([("f", _pre(X)), ("m", RandomForestRegressor(
            20, max_depth=7, random_state=0))]), "regression", True),
        "extra_trees_regressor": (lambda X: Pipeline([("f", _pre(X)), ("m", ExtraTreesRegressor(
            20, max_depth=7, random_state=0))]), "regression", True),
        "lightgbm_regressor": (lambda X: Pipeline([("f", _pre(X)), ("m", lightgbm.LGBMRegressor(
            n_estimators=40, verbose=-1))]), "regression", True),
        "xgboost_regressor": (lambda X: Pipeline([("f", _pre(X, dense=True)), (
            "m", xgboost.XGBRegressor(n_estimators=30, max_depth=4))]), "regression", True),
        # A sigmoid after the trees: the kernel declines, ONNX Runtime scores alone.
        "lightgbm_classifier": (lambda X: Pipeline([("f", _pre(X)), ("m", lightgbm.LGBMClassifier(
            n_estimators=40, verbose=-1))]), "binary", False),
    }


@pytest.mark.parametrize("kind", list(_kernel_cases()))
def test_the_tree_kernel_scores_like_the_native_model_or_declines(tmp_path, data, kind,
                                                                  monkeypatch):
    df, X, y = data
    factory, task, takes = _kernel_cases()[kind]
    if task == "multiclass":
        target = X["contract"]
        X = X.drop(columns=["contract"])
    elif task == "regression":  # values near 1: XGBoost adds its trees in float32
        target = X["monthly_charges"] / 100
        X = X.drop(columns=["monthly_charges"])
    else:
        target = y
    model = factory(X).fit(X, target)
    path, m = _package(tmp_path, model, X, name=kind)
    assert m["compiled"]["status"] == "passed", m["compiled"]
    scorer = scorehouse.load(path, trust=True)
    out = scorer.predict(X).output
    assert (scorer.runtime.tree_kernel() is not None) == takes, kind
    if task == "regression":
        np.testing.assert_allclose(out.values, model.predict(X), rtol=GATE, atol=GATE)
    else:
        native = model.predict_proba(X)
        assert np.abs(out.probabilities - native).max() <= GATE
        assert (out.labels == model.predict(X)).all()
    if takes:  # same rows through ONNX Runtime alone: the kernel changes no answer
        monkeypatch.setenv("SCOREHOUSE_TREE_KERNEL", "0")
        ort_alone = scorehouse.load(path, trust=True)
        assert ort_alone.runtime.tree_kernel() is None
        alone = ort_alone.predict(X).output
        got, want = (out.values, alone.values) if task == "regression" else \
            (out.probabilities, alone.probabilities)
        np.testing.assert_allclose(got, want, rtol=GATE, atol=GATE)


def test_the_tree_kernel_is_exact_where_onnx_runtime_rounds_to_float32(forest_artifact, data):
    path, model = forest_artifact
    scorer = scorehouse.load(path, trust=True)
    batch = scorer.predict(data[1]).output.probabilities
    assert scorer.runtime.tree_kernel() is not None
    # ORT's tree ensemble returns float32; the kernel adds the same float64 leaf values.
    assert np.abs(batch - model.predict_proba(data[1])).max() <= 1e-12


def test_a_kernel_that_disagrees_with_onnx_runtime_is_not_used(forest_artifact, data,
                                                                monkeypatch):
    import scorehouse.runtime.tree_cache as tree_cache
    from scorehouse.runtime.trees import split

    cuts = []

    def buggy_split(model_bytes):
        cut = split(model_bytes)
        cut.trees.leaf_values[:] *= 1.01  # a kernel bug, in effect
        cuts.append(cut)
        return cut

    monkeypatch.setattr(tree_cache, "split", buggy_split)
    path, model = forest_artifact
    scorer = scorehouse.load(path, trust=True)
    assert scorer.runtime.tree_kernel() is None  # checked against ONNX Runtime, declined
    assert len(cuts) == 1 and cuts[0].checked is not None and not cuts[0].checked
    assert np.abs(scorer.predict(data[1]).output.probabilities
                  - model.predict_proba(data[1])).max() <= GATE


def test_every_batch_size_takes_the_kernel_and_gets_the_same_digits(forest_artifact, data):
    path, model = forest_artifact
    scorer = scorehouse.load(path, trust=True)
    X = data[1].head(40)
    whole = scorer.predict(X).output.probabilities
    assert scorer.runtime.tree_kernel() is not None  # the kernel applies to this forest
    for size in (1, 2, 15, 16, 17):
        part = scorer.predict(X.head(size)).output.probabilities
        np.testing.assert_array_equal(part, whole[:size])
    one = scorer.predict(X.iloc[5].to_dict()).output.probabilities
    np.testing.assert_array_equal(one, whole[5:6])
    assert np.abs(whole - model.predict_proba(X)).max() <= 1e-12


def test_the_kernel_routes_nan_as_the_model_does(tmp_path, data):
    import lightgbm

    df, X, y = data
    numeric = X.select_dtypes("number").copy()
    numeric.iloc[::7, 0] = np.nan  # LightGBM learns a side for missing values per node
    numeric.iloc[::5, 1] = np.nan
    target = numeric.iloc[:, 2].fillna(0) / 100 + (y == y.iloc[0])
    model = lightgbm.LGBMRegressor(n_estimators=40, verbose=-1).fit(numeric, target)
    path, m = _package(tmp_path, model, numeric, name="nan_routing")
    assert m["compiled"]["status"] == "passed", m["compiled"]
    scorer = scorehouse.load(path, trust=True)
    out = scorer.predict(numeric).output.values
    cut = scorer.runtime.tree_kernel()
    assert cut is not None and cut.trees.any_missing
    np.testing.assert_allclose(out, model.predict(numeric), rtol=GATE, atol=GATE)
    filled = numeric.fillna(0.5)  # no NaN: the plain walk
    np.testing.assert_allclose(scorer.predict(filled).output.values, model.predict(filled),
                               rtol=GATE, atol=GATE)


def test_node_thresholds_decide_as_the_models_comparison_for_float32_rows():
    from scorehouse.runtime.trees import _records

    rng = np.random.default_rng(1)
    t = np.concatenate([rng.normal(size=2000) * 10.0 ** rng.integers(-30, 30, 2000),
                        [0.0, -0.0, 1e300, -1e300, 3.4028235e38, 1e-45, np.inf]])
    with np.errstate(over="ignore"):  # beyond float32's range: the infinities
        x32 = t.astype(np.float32)
        x = np.concatenate([x32, np.nextafter(x32, np.float32(np.inf)),
                            np.nextafter(x32, np.float32(-np.inf))]).astype(np.float64)
    for strict in (False, True):
        n64, n32 = _records(np.zeros(len(t), np.int64), t, np.zeros(2 * len(t), np.int32), strict)
        want = x[:, None] < t if strict else x[:, None] <= t
        assert ((x[:, None] <= n64["t"]) == want).all()
        assert ((x.astype(np.float32)[:, None] <= n32["t"]) == want).all()


def _cached_files():
    from scorehouse.config import home

    return sorted((home() / "cache" / "trees").glob("*.npz"))


def test_the_checked_cut_is_kept_on_disk_and_used_by_the_next_process(forest_artifact, data,
                                                                      monkeypatch):
    import scorehouse.runtime.tree_cache as tree_cache

    path, model = forest_artifact
    first = scorehouse.load(path, trust=True)
    want = first.predict(data[1]).output.probabilities
    assert first.runtime.tree_kernel() is not None and len(_cached_files()) == 1

    def no_cutting(model_bytes):
        raise AssertionError("the graph was cut again")

    monkeypatch.setattr(tree_cache, "split", no_cutting)
    second = scorehouse.load(path, trust=True)
    got = second.predict(data[1]).output.probabilities
    cut = second.runtime.tree_kernel()
    assert cut is not None and cut.checked
    assert np.array_equal(got, want)


def test_a_damaged_cache_file_is_computed_again(forest_artifact, data):
    path, model = forest_artifact
    scorehouse.load(path, trust=True).runtime.prepare()
    (cached,) = _cached_files()
    cached.write_bytes(b"not a numpy file")
    scorer = scorehouse.load(path, trust=True)
    out = scorer.predict(data[1]).output.probabilities
    assert scorer.runtime.tree_kernel() is not None
    assert np.abs(out - model.predict_proba(data[1])).max() <= GATE
    from scorehouse.runtime.tree_cache import _read

    assert _read(cached).checked  # replaced by a good one


def test_a_declined_graph_is_remembered(tmp_path, data, monkeypatch):
    import lightgbm

    import scorehouse.runtime.tree_cache as tree_cache

    df, X, y = data
    model = Pipeline([("f", _pre(X)), ("m", lightgbm.LGBMClassifier(
        n_estimators=20, verbose=-1))]).fit(X, y)
    path, _ = _package(tmp_path, model, X, name="boosted")
    scorehouse.load(path, trust=True).runtime.prepare()
    assert len(_cached_files()) == 1  # no cut (a sigmoid follows the trees), remembered

    def no_cutting(model_bytes):
        raise AssertionError("the graph was cut again")

    monkeypatch.setattr(tree_cache, "split", no_cutting)
    again = scorehouse.load(path, trust=True)
    again.runtime.prepare()
    assert again.runtime.tree_kernel() is None


def test_the_cache_can_be_turned_off(forest_artifact, data, monkeypatch):
    monkeypatch.setenv("SCOREHOUSE_TREE_CACHE", "0")
    scorer = scorehouse.load(forest_artifact[0], trust=True)
    scorer.runtime.prepare()
    assert scorer.runtime.tree_kernel() is not None and _cached_files() == []


def test_the_compiled_walk_is_reused_from_disk_by_the_next_process():
    import subprocess
    import sys

    code = ("import numpy as np; from scorehouse.runtime.tree_walk import walk; "
            "from scorehouse.runtime.trees import NODE32; nodes = np.zeros(1, NODE32); "
            "walk(np.zeros((2, 1), np.float32), nodes, np.zeros(1, bool), np.zeros(1, np.int32), "
            "np.zeros(1, np.int32), np.ones((1, 1)), np.zeros((2, 1)), 1024); "
            "print(sum(walk.stats.cache_hits.values()), sum(walk.stats.cache_misses.values()))")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    second = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True).stdout.split()
    assert second == ["1", "0"], second  # loaded, not compiled again
