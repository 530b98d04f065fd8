"""What every prediction promises, whatever the model kind, runtime and batch size:
probabilities in [0, 1] summing to 1 (within 1e-12), and the same digits for a row alone as
in any batch."""

from __future__ import annotations

import warnings

import lightgbm
import numpy as np
import pandas as pd
import pytest
import xgboost
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression

import scorehouse
from scorehouse.runtime import proper_probabilities
from scorehouse.runtime.base import SUM_TOLERANCE

COLUMNS = ["a", "b", "c"]

CLASSIFIERS = {
    "logistic": lambda: LogisticRegression(max_iter=500),
    "forest": lambda: RandomForestClassifier(25, max_depth=6, random_state=0),
    "gradient_boosting": lambda: GradientBoostingClassifier(n_estimators=20, random_state=0),
    "hist_gradient_boosting": lambda: HistGradientBoostingClassifier(max_iter=20),
    "lightgbm": lambda: lightgbm.LGBMClassifier(n_estimators=20, verbose=-1),
    "xgboost": lambda: xgboost.XGBClassifier(n_estimators=20, max_depth=3),
}
REGRESSORS = {
    "forest": lambda: RandomForestRegressor(25, max_depth=6, random_state=0),
    "gradient_boosting": lambda: GradientBoostingRegressor(n_estimators=20, random_state=0),
    "hist_gradient_boosting": lambda: HistGradientBoostingRegressor(max_iter=20),
    "lightgbm": lambda: lightgbm.LGBMRegressor(n_estimators=20, verbose=-1),
    "xgboost": lambda: xgboost.XGBRegressor(n_estimators=20, max_depth=3),
}
RUNTIMES = ["native", "onnx"]

#: Rows of finite inputs, wide enough to reach the extreme leaves and saturated sigmoids.
values = st.floats(-1e4, 1e4, allow_nan=False, width=64)
batches = st.lists(st.tuples(values, values, values), min_size=1, max_size=40)


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(n, 3)) * [1.0, 10.0, 100.0], columns=COLUMNS)


_cache: dict[tuple, scorehouse.Scorer] = {}


def _scorer(tmp_path_factory, task: str, kind: str, classes: int, runtime: str):
    """The model packaged (and compiled) once per module; loaded with `runtime`."""
    key = (task, kind, classes, runtime)
    if key not in _cache:
        X = _frame(600, seed=classes)
        if task == "regression":
            y, model = X.a * 3 + X.b * 50 + np.sin(X.c) * 7 + 500, REGRESSORS[kind]()
        else:
            score = X.a + X.b / 10 + X.c / 100
            y = np.digitize(score, np.quantile(score, np.linspace(0, 1, classes + 1)[1:-1]))
            model = CLASSIFIERS[kind]()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y)
        path = tmp_path_factory.mktemp("inv") / f"{task}-{kind}-{classes}.shz"
        scorehouse.package(model, X.assign(y=y), name="m", target="y", path=path)
        # The invariants hold for any graph, even one the gate rejected.
        _cache[key] = scorehouse.load(path, trust=True, runtime=runtime,
                                      accept_parity_difference=True)
    return _cache[key]


def _rows(batch: list[tuple[float, float, float]]) -> list[dict[str, float]]:
    return [dict(zip(COLUMNS, r, strict=True)) for r in batch]


def _assert_proper(p: np.ndarray) -> None:
    assert p.dtype == np.float64
    assert np.all(p >= 0.0) and np.all(p <= 1.0), p[(p < 0).any(axis=1) | (p > 1).any(axis=1)]
    assert np.all(np.abs(p.sum(axis=1) - 1.0) <= SUM_TOLERANCE), p.sum(axis=1)


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("kind", list(CLASSIFIERS))
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches)
def test_probabilities_lie_in_0_1_and_sum_to_1_at_every_batch_size(
        tmp_path_factory, kind, classes, runtime, batch):
    scorer = _scorer(tmp_path_factory, "classification", kind, classes, runtime)
    rows = _rows(batch)
    whole = scorer.predict(rows)
    assert whole.n_scored == len(rows), whole.rejects
    _assert_proper(whole.output.probabilities)
    p = whole.output.probabilities
    top2 = np.sort(p, axis=1)[:, -2:]
    for i, row in enumerate(rows):
        one = scorer.predict(row)
        _assert_proper(one.output.probabilities)
        # Alone as in the batch: native libraries' own BLAS paths may move the last digit
        # (scikit-learn's multinomial LogisticRegression does, 2e-16); nothing more.
        np.testing.assert_allclose(one.output.probabilities[0], p[i], rtol=0,
                                   atol=SUM_TOLERANCE)
        if top2[i, 1] - top2[i, 0] > SUM_TOLERANCE:  # not a tie: the same label
            assert one.output.labels[0] == whole.output.labels[i]


@pytest.mark.parametrize("runtime", RUNTIMES)
@pytest.mark.parametrize("kind", list(REGRESSORS))
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=batches)
def test_a_row_gets_the_same_value_alone_and_in_any_batch(tmp_path_factory, kind, runtime,
                                                          batch):
    scorer = _scorer(tmp_path_factory, "regression", kind, 0, runtime)
    rows = _rows(batch)
    whole = scorer.predict(rows).output.values
    halves = np.concatenate([scorer.predict(rows[: len(rows) // 2]).output.values,
                             scorer.predict(rows[len(rows) // 2:]).output.values])
    alone = np.array([scorer.predict(r).output.values[0] for r in rows])
    np.testing.assert_array_equal(alone, whole)
    np.testing.assert_array_equal(halves, whole)


def test_compiled_tree_regressors_give_native_float64_digits_on_one_row(tmp_path_factory):
    """The reported case: 773.5814819335938 (float32, one row) vs 773.581485920832 (batch)."""
    for kind in ("forest", "lightgbm"):
        scorer = _scorer(tmp_path_factory, "regression", kind, 0, "onnx")
        assert scorer.runtime.name == "onnx" and scorer.runtime.tree_kernel() is not None
        X = _frame(30, seed=7)
        native = scorer.artifact.model().predict(X)
        one = scorer.predict(X.iloc[0].to_dict()).output.values[0]
        assert one != float(np.float32(one)) or one == native[0]  # not float32 digits
        assert abs(one - native[0]) <= 1e-9 * max(1.0, abs(native[0]))


@pytest.mark.parametrize("rows, want", [
    ([[1.0000000000000002, -2.220446049250313e-16]], [[1.0, 0.0]]),
    ([[-2.220446049250313e-16, 1.0000000000000002]], [[0.0, 1.0]]),
    ([[0.3, 0.3, 0.3]], [[1 / 3, 1 / 3, 1 / 3]]),
])
def test_rows_off_by_rounding_are_repaired(rows, want):
    out = proper_probabilities(np.array(rows))
    _assert_proper(out)
    np.testing.assert_allclose(out, want, rtol=0, atol=1e-15)


def test_proper_rows_keep_their_digits_and_nan_rows_stay_nan():
    good = np.array([[0.1, 0.2, 0.7], [1.0, 0.0, 0.0]])
    assert proper_probabilities(good) is good
    out = proper_probabilities(np.array([[np.nan, 0.5, 0.5], [0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]))
    assert np.isnan(out[0]).any() and np.isnan(out[1]).all()
    np.testing.assert_array_equal(out[2], [1 / 3, 1 / 3, 1 / 3])


class Sloppy(BaseEstimator, ClassifierMixin):
    """A model whose probabilities break the invariants: off by rounding, or NaN (a < -10)."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, X):
        a = np.asarray(X["a"], dtype=float)
        p = np.where(a[:, None] > 0, [1.0000000000000002, -2.220446049250313e-16],
                     [0.25, 0.75])
        p[a < -10] = np.nan
        return p

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


@pytest.mark.parametrize("as_batch", [True, False])
def test_the_scorer_repairs_rounding_and_rejects_nan_rows_naming_them(tmp_path, as_batch):
    X = pd.DataFrame({"a": [-2.0, -0.5, 0.5, 2.0] * 10, "b": 1.0})
    path = scorehouse.package(Sloppy().fit(X, [0, 1] * 20), X.assign(y=[0, 1] * 20), name="s",
                              target="y", path=tmp_path / "s.shz", compile=False,
                              task="binary", classes=[0, 1])
    scorer = scorehouse.load(path, trust=True)
    rows = [{"a": 1.0, "b": 1.0}, {"a": -30.0, "b": 1.0}, {"a": 0.0, "b": 1.0}]
    results = [scorer.predict(rows)] if as_batch else [scorer.predict(r) for r in rows]
    scored = np.concatenate([r.output.probabilities for r in results])
    _assert_proper(scored)
    np.testing.assert_array_equal(scored, [[1.0, 0.0], [0.25, 0.75]])
    rejects = [j for r in results for j in r.rejects]
    assert len(rejects) == 1 and "NaN" in rejects[0].problem
    assert sum(r.n_read for r in results) == sum(r.n_scored + r.n_rejected for r in results)
    if as_batch:
        assert rejects[0].row == 1 and list(results[0].rows) == [0, 2]


def test_a_compiled_forest_never_gives_1_plus_an_ulp(tmp_path):
    """The reported case: the tree kernel's [1 - s, s] with s a sum of leaf probabilities
    one ulp over 1 gave -4.4e-16 and 1.0000000000000004 (50 trees, 20,000 rows)."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(2000, 3)), columns=COLUMNS)
    y = (X.a + X.b > 0).astype(int)
    path = scorehouse.package(RandomForestClassifier(50, random_state=0).fit(X, y),
                              X.assign(y=y), name="f", target="y", path=tmp_path / "f.shz")
    scorer = scorehouse.load(path, trust=True)
    assert scorer.runtime.name == "onnx"
    rows = pd.DataFrame(rng.normal(size=(20000, 3)) * 3, columns=COLUMNS)
    _assert_proper(scorer.predict(rows).output.probabilities)
