"""Compile coverage: every estimator x preprocessing cell of `compile_matrix` compiles within
the parity gate or is declined naming the user's step, and the README's table is the matrix's.

Also the faults the matrix found, each across its family: encoders ahead of the numbers in a
ColumnTransformer (float/double), a graph ONNX Runtime refuses (the user's step is named),
XGBoost fed a sparse matrix (zeros are missing), LightGBM's own pandas categories.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import compile_matrix as cm
import scorehouse
from scorehouse import artifact as artifact_io
from scorehouse.packaging.compile import steps
from scorehouse.packaging.parity import TOLERANCE

#: Outcomes of the cells run so far in this session, by cell id (the README check reuses them).
_OUTCOMES: dict[str, cm.Outcome] = {}


def _native(model, X, task):
    return model.predict(X) if task == "regression" else model.predict_proba(X)


@pytest.mark.parametrize("cell", cm.cells(), ids=lambda c: c.id)
def test_cell_compiles_within_the_gate_or_is_declined_naming_the_users_step(cell, tmp_path):
    start = time.perf_counter()
    model, df = cell.model_and_frame()
    outcome = cm.verdict(cell, cm.package(cell, model, df, tmp_path), start)
    _OUTCOMES[cell.id] = outcome
    if not outcome.compiled:
        users = {path for path, _ in steps(model)} | {f"input column {c!r}" for c in df}
        assert outcome.step in users and outcome.step in outcome.reason, outcome
        return
    assert outcome.label_flips == 0 and outcome.max_diff <= TOLERANCE, outcome
    # The gate's verdict, checked independently: the ONNX runtime against the native model.
    scorer = scorehouse.load(tmp_path / f"{cell.id}.shz", trust=True)
    assert scorer.runtime.name == "onnx"
    X = df.drop(columns=[cm.TARGET])
    out, native = scorer.predict(X).output, _native(model, X, cell.task)
    if cell.task == "regression":
        assert (np.abs(out.values - native) / np.maximum(1, np.abs(native))).max() <= TOLERANCE
    else:
        assert np.abs(out.probabilities - native).max() <= TOLERANCE
        decided = np.abs(np.diff(np.sort(native, axis=1)[:, -2:], axis=1))[:, 0] > TOLERANCE
        expected = np.asarray(model.classes_)[native.argmax(1)]
        assert (out.labels[decided] == expected[decided]).all()


def test_the_readme_table_is_the_matrix_and_the_goal_is_met(tmp_path):
    for cell in cm.cells():  # cells not run in this session (e.g. with -k) run here
        if cell.id not in _OUTCOMES:
            _OUTCOMES[cell.id] = cm.run_cell(cell, tmp_path)
    outcomes = [_OUTCOMES[c.id] for c in cm.cells()]
    readme = (cm.ROOT / "README.md").read_text()
    assert cm.readme_block(readme) == cm.readme_table(outcomes), \
        "README's compile table is stale: run `python tests/compile_matrix.py --write`"
    assert sum(o.compiled for o in outcomes) >= 0.9 * len(outcomes)
    onehot_classifiers = [o for o in outcomes if o.cell.task != "regression"
                          and "onehot" in o.cell.preprocessing.name]
    assert onehot_classifiers and all(o.compiled for o in onehot_classifiers)
    assert cm.figure(outcomes) in (cm.ROOT / "BENCHMARKS.md").read_text()


# ------------------------------------------------------------ the faults, family by family


def _frame(n=400, seed=5):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"city": rng.choice(["a", "b", "c", "d"], n),
                       "tier": rng.choice(np.array(["x", "y", None], dtype=object), n),
                       "member": rng.choice(["no", "yes"], n),
                       "v": rng.normal(size=n).round(3),
                       "balance": np.where(rng.random(n) < 0.4, 0.0, rng.normal(50, 20, n))})
    score = (df.city == "a") + df.v + (df.balance > 50) - 0.5 * (df.tier == "y")
    df["y"] = np.where(score > score.median(), "yes", "no")
    df["k"] = pd.qcut(score + rng.normal(0, 0.3, n), 3, labels=["p", "q", "r"]).astype(str)
    return df


def _package(tmp_path, model, frame, name="m"):
    path = scorehouse.package(model, frame, name=name, path=tmp_path / f"{name}.shz")
    return path, artifact_io.read(path, trust=True).manifest.to_dict()["compiled"]


@pytest.mark.parametrize("target", ["y", "k"])
@pytest.mark.parametrize("encoder", ["onehot", "onehot_drop_first", "onehot_if_binary",
                                     "ordinal", "both"])
@pytest.mark.parametrize("estimator", ["logistic", "gradient_boosting", "lightgbm"])
def test_encoders_ahead_of_numbers_compile_in_any_column_order(tmp_path, target, encoder,
                                                               estimator):
    import lightgbm
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.preprocessing import OrdinalEncoder

    df = _frame()
    enc = {"onehot": [("oh", OneHotEncoder(handle_unknown="ignore"), ["city"])],
           "onehot_drop_first": [("oh", OneHotEncoder(drop="first", sparse_output=False),
                                  ["city"])],
           "onehot_if_binary": [("oh", OneHotEncoder(drop="if_binary"), ["city", "member"])],
           "ordinal": [("ord", OrdinalEncoder(), ["city"])],
           "both": [("ord", OrdinalEncoder(), ["city"]),
                    ("oh", OneHotEncoder(handle_unknown="ignore"), ["city"])]}[encoder]
    est = {"logistic": LogisticRegression(max_iter=2000),
           "gradient_boosting": GradientBoostingClassifier(n_estimators=15, random_state=0),
           "lightgbm": lightgbm.LGBMClassifier(n_estimators=15, verbose=-1)}[estimator]
    for order in (enc + [("num", StandardScaler(), ["v", "balance"])],
                  [("num", StandardScaler(), ["v", "balance"])] + enc):
        cols = ["city", "member", "v", "balance"]
        model = Pipeline([("pre", ColumnTransformer(order)), ("est", est)])
        model.fit(df[cols], df[target])
        path, c = _package(tmp_path, model, df[cols])
        assert c["status"] == "passed", (order[0][0], c)
        got = scorehouse.load(path, trust=True).predict(df[cols]).output.probabilities
        assert np.abs(got - model.predict_proba(df[cols])).max() <= TOLERANCE


class Halver(BaseEstimator, TransformerMixin):
    """A user's step with a converter registered by the user, one that writes a float tensor
    where it declares double: ONNX Runtime refuses the graph."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        return np.asarray(X, dtype=float) / 2


def _register_bad_halver():
    from onnx import TensorProto
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import DoubleTensorType

    def shapes(operator):
        operator.outputs[0].type = DoubleTensorType(operator.inputs[0].type.shape)

    def convert(scope, operator, container):
        container.add_node("Cast", operator.inputs[0].full_name, operator.outputs[0].full_name,
                           to=TensorProto.FLOAT, name=scope.get_unique_operator_name("Cast"))

    update_registered_converter(Halver, "TestBadHalver", shapes, convert)


@pytest.mark.parametrize("where", ["middle", "first of two", "inside a column transformer"])
def test_a_graph_onnx_runtime_refuses_names_the_users_step_not_onnxruntime(tmp_path, where):
    _register_bad_halver()
    df = _frame()
    X, y = df[["v", "balance"]], df["y"]
    if where == "middle":
        model = Pipeline([("scale", StandardScaler()), ("halve", Halver()),
                          ("model", LogisticRegression())])
        named = "halve"
    elif where == "first of two":
        model = Pipeline([("scale", StandardScaler()), ("halve", Halver()), ("again", Halver()),
                          ("model", LogisticRegression())])
        named = "halve"
    else:
        model = Pipeline([("pre", ColumnTransformer([("halve", Halver(), ["v"]),
                                                     ("keep", "passthrough", ["balance"])])),
                          ("model", LogisticRegression())])
        named = "pre"
    model.fit(X, y)
    path, c = _package(tmp_path, model, X)
    assert c["status"] == "not converted" and c["step"] == named, c
    assert "onnxruntime" not in c["step"]
    assert c["reason"].startswith(f"step {named!r} could not be converted: ONNX Runtime refuses")
    assert scorehouse.load(path, trust=True).runtime.name == "native"


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_xgboost_fed_a_sparse_matrix_reads_its_zeros_as_missing_like_xgboost(tmp_path, task):
    import xgboost

    df = _frame()
    cols = ["city", "v", "balance"]
    assert (df.balance == 0).mean() > 0.3  # zeros in a number column are missing too
    est, y = {"binary": (xgboost.XGBClassifier, (df.y == "yes").astype(int)),
              "multiclass": (xgboost.XGBClassifier, df.k.map({"p": 0, "q": 1, "r": 2})),
              "regression": (xgboost.XGBRegressor, df.v * 3 + df.balance / 10)}[task]
    pre = ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore"), ["city"]),
                             ("num", "passthrough", ["v", "balance"])], sparse_threshold=1.0)
    model = Pipeline([("pre", pre), ("est", est(n_estimators=20, max_depth=3, n_jobs=1))])
    model.fit(df[cols], y)
    assert model.named_steps["pre"].sparse_output_
    path, c = _package(tmp_path, model, df[cols])
    assert c["status"] == "passed", c
    rows = df[cols].assign(balance=np.where(np.arange(len(df)) % 2, 0.0, df.balance))
    out = scorehouse.load(path, trust=True).predict(rows).output
    native = _native(model, rows, task)
    got = out.values if task == "regression" else out.probabilities
    assert np.abs(got - native).max() <= TOLERANCE * max(1, np.abs(native).max())


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_lightgbm_pandas_categories_compile_and_read_unseen_and_missing_like_lightgbm(
        tmp_path, task):
    import lightgbm

    df = _frame()
    X = df[["city", "tier", "v"]].astype({"city": "category", "tier": "category"})
    cls = lightgbm.LGBMRegressor if task == "regression" else lightgbm.LGBMClassifier
    y = {"binary": df.y, "multiclass": df.k, "regression": df.v * 2 + (df.city == "b")}[task]
    model = cls(n_estimators=20, num_leaves=8, min_child_samples=5, verbose=-1).fit(X, y)
    path, c = _package(tmp_path, model, X)
    assert c["status"] == "passed", c
    assert [i["type"] for i in c["inputs"]] == ["string", "string", "double"]
    scorer = scorehouse.load(path, trust=True)
    # Unseen categories ("zz", "qq") and a missing one (None) are NaN to LightGBM.
    records = [{"city": "a", "tier": "x", "v": 0.1}, {"city": "zz", "tier": "y", "v": -1.0},
               {"city": "c", "tier": None, "v": 2.0}, {"city": "d", "tier": "qq", "v": 0.0}]
    frame = pd.DataFrame({c: pd.Categorical([r[c] if r[c] in X[c].cat.categories else None
                                             for r in records], X[c].cat.categories)
                          for c in ("city", "tier")}).assign(v=[r["v"] for r in records])
    native = _native(model, frame, task)
    for runtime in ("onnx", "native"):
        out = scorehouse.load(path, trust=True, runtime=runtime).predict(records).output
        got = out.values if task == "regression" else out.probabilities
        assert np.abs(got - native).max() <= TOLERANCE * max(1, np.abs(native).max()), runtime
    assert scorer.runtime.name == "onnx"
