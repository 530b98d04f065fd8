"""Retraining (issue 23): the training recipe kept at packaging, and `retrain` refitting it
on new data into a new version with parent lineage, evaluated beside its parent on one
holdout and made the challenger through that alias's gates.

Each flavor of recipe is covered: a scikit-learn pipeline (its unfitted clone pickled in
the artifact), LightGBM and XGBoost (their parameters as JSON: no pickle), and a user's
`module:function`. Models are small and packaged without ONNX compilation, so each
retrain takes about a second.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

import scorehouse
from scorehouse import artifact as artifact_io
from scorehouse.artifact import ESTIMATOR_FILE, HoldoutSplit
from scorehouse.artifact.recipe import json_params, unfitted_estimator
from scorehouse.demo import churn_frame
from scorehouse.demo.data import TARGET
from scorehouse.demo.run import preprocessor
from scorehouse.errors import IntegrityError, NotFoundError, TrustError, UsageError
from scorehouse.evaluation import GatePolicy, retrain
from scorehouse.registry import Registry
from test_cli import CLI, assert_error_line

NUMERIC = ["tenure", "monthly_charges", "total_charges", "support_calls", "complaints", "age",
           "data_usage_gb", "days_since_login"]
CATEGORIES = ["plan", "contract", "payment_method", "region"]


def _pipeline(frame: pd.DataFrame):
    X = frame.drop(columns=[TARGET])
    return Pipeline([("features", preprocessor(X)),
                     ("model", LogisticRegression(max_iter=300))]).fit(X, frame[TARGET])


def _lightgbm(frame: pd.DataFrame):
    import lightgbm as lgb

    X = frame.drop(columns=[TARGET]).astype({c: "category" for c in CATEGORIES})
    return lgb.LGBMClassifier(n_estimators=20, num_leaves=8, n_jobs=1, verbose=-1).fit(X, frame[TARGET])


def _xgboost(frame: pd.DataFrame):
    import xgboost as xgb

    return xgb.XGBClassifier(n_estimators=20, max_depth=3, n_jobs=1).fit(frame[NUMERIC], frame[TARGET])


#: flavor -> how a model of it is trained on a churn frame (`_data`'s).
MODELS = {"sklearn": _pipeline, "lightgbm": _lightgbm, "xgboost": _xgboost}


def _data(rows: int, seed: int, flavor: str = "sklearn") -> pd.DataFrame:
    frame = churn_frame(rows, seed=seed)
    if flavor == "xgboost":  # a 0/1 target; the text columns stay, the recipe reads NUMERIC
        frame[TARGET] = (frame[TARGET] == "yes").astype(int)
    return frame


@pytest.fixture
def reg(tmp_path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'registry.db'}", str(tmp_path / "artifacts"))


def _registered(reg: Registry, tmp_path, flavor: str, name: str = "churn", **kw):
    """`name`/1 at @production: a `flavor` model trained on 1,200 rows, packaged with its
    target (and so its recipe)."""
    train = _data(1200, 3, flavor)
    model = MODELS[flavor](train)
    frame = train if flavor != "xgboost" else train[[*NUMERIC, TARGET]]
    path = scorehouse.package(model, frame, name=name, target=TARGET, compile=False,
                              path=tmp_path / f"{name}.shz", **kw)
    mv = reg.register(path)
    reg.promote(mv.ref, "production")
    return mv, train


@pytest.mark.parametrize("flavor", ["sklearn", "lightgbm", "xgboost"])
def test_a_retrain_becomes_the_challenger_with_its_parent_in_its_lineage(reg, tmp_path, flavor):
    parent, _ = _registered(reg, tmp_path, flavor)
    reg.set_gate_policy("churn", "challenger",
                        GatePolicy.build(["roc_auc >= production - 0.3", "log_loss < 5"]))
    new = tmp_path / "new.parquet"
    _data(1500, 4, flavor).to_parquet(new)
    done = retrain("churn@production", new, registry=reg, reason="nightly")
    assert (done.parent, done.version, done.alias) == ("churn/1", "churn/2", "challenger")
    assert not done.noop and not done.refused and done.exit_code == 0
    assert done.train_rows == 1200 and done.split == "20% of rows, seed 0"
    assert reg.resolve("churn@challenger").version == 2
    assert reg.resolve("churn@production").version == 1  # production never moves
    lineage = reg.lineage("churn/2")
    assert lineage["parent"] == "churn/1"
    assert lineage["retrain_data"]["rows"] == 1500 and lineage["retrain_data"]["source"] == str(new)
    assert lineage["training_data"]["rows"] == 1200
    # The new version and its parent were evaluated on the same 300 held-out rows, kept on
    # each version: the relative gate compared them there.
    assert set(done.evaluations) == {"churn/2", "churn/1"}
    for ref in ("churn/2", "churn/1"):
        stored = reg.latest_evaluation(ref)
        assert stored is not None and stored.holdout_sha256 == done.holdout.sha256
        assert done.evaluations[ref].counts.evaluated == 300
    assert done.report is not None and done.report.passed
    assert [r.verdict.value for r in done.report.results] == ["pass", "pass"]
    assert "different holdout" not in done.report.results[0].detail
    event = reg.history("churn", "challenger")[-1]
    assert event.version == 2 and event.reason == f"retrained from churn/1 on {new}: nightly"
    # The new version keeps the recipe, so it can be retrained in turn.
    art, _ = reg.load_artifact("churn/2")
    assert art.manifest.recipe == reg.load_artifact("churn/1")[0].manifest.recipe
    rows = _data(20, 5, flavor).drop(columns=[TARGET])
    assert reg.load("churn@challenger").predict(rows).n_scored == 20


@pytest.mark.parametrize("flavor", ["lightgbm", "xgboost"])
def test_a_booster_recipe_is_json_and_needs_no_pickle(tmp_path, flavor):
    train = _data(600, 3, flavor)
    frame = train if flavor != "xgboost" else train[[*NUMERIC, TARGET]]
    path = scorehouse.package(MODELS[flavor](train), frame, name="m", target=TARGET,
                              compile=False, path=tmp_path / "m.shz")
    art = artifact_io.read(path)  # no trust needed: nothing in it is unpickled
    recipe = art.manifest.recipe
    assert recipe is not None and recipe.params is not None and recipe.file is None
    assert ESTIMATOR_FILE not in art.files and recipe.estimator.startswith(f"{flavor}.")
    fresh = unfitted_estimator(art)
    assert fresh.get_params()["n_estimators"] == 20 and not hasattr(fresh, "n_features_in_")
    if flavor == "xgboost":  # NaN survives JSON
        assert math.isnan(fresh.get_params()["missing"])
        assert json.loads(art.manifest.to_bytes())["recipe"]["params"]["missing"] == \
            {"float": "nan"}


def test_a_booster_parameter_json_cannot_hold_leaves_no_recipe_and_says_why(tmp_path):
    import lightgbm as lgb

    train = _data(600, 3, "xgboost")[[*NUMERIC, TARGET]]  # a 0/1 target
    model = lgb.LGBMClassifier(n_estimators=5, n_jobs=1, verbose=-1,
                               class_weight={0: 1.0, 1: 3.0}).fit(train[NUMERIC], train[TARGET])
    with pytest.warns(UserWarning, match="parameter 'class_weight'.*recipe='package.module"):
        path = scorehouse.package(model, train, name="m", target=TARGET, compile=False,
                                  path=tmp_path / "m.shz")
    assert artifact_io.read(path).manifest.recipe is None


def test_a_pickled_recipe_is_read_only_from_a_trusted_artifact(tmp_path, churn_data):
    path = scorehouse.package(_pipeline(churn_data), churn_data, name="m", target=TARGET,
                              compile=False, path=tmp_path / "m.shz",
                              holdout=HoldoutSplit(fraction=0.25, seed=7))
    art = artifact_io.read(path, require_trust=False)
    assert art.manifest.recipe.split.describe() == "25% of rows, seed 7"
    assert art.manifest.recipe.file == ESTIMATOR_FILE and ESTIMATOR_FILE in art.manifest.files
    with pytest.raises(TrustError, match="unpickling the training recipe"):
        unfitted_estimator(art)
    fresh = unfitted_estimator(artifact_io.read(path, trust=True))
    assert not hasattr(fresh, "classes_") and fresh.get_params()["model__max_iter"] == 300


def test_a_pickle_slipped_into_an_unpickled_flavor_is_refused(tmp_path):
    train = _data(600, 3, "lightgbm")
    path = scorehouse.package(_lightgbm(train), train, name="m", target=TARGET, compile=False,
                              path=tmp_path / "m.shz")
    art = artifact_io.read(path)
    bad = tmp_path / "bad.shz"  # every hash right, but a LightGBM artifact holds no pickle
    artifact_io.write(art.manifest, {**art.files, ESTIMATOR_FILE: b"anything"}, bad)
    with pytest.raises(IntegrityError, match="does not use.*recipe/estimator.pkl"):
        artifact_io.read(bad)


def test_refused_gates_leave_the_alias_and_keep_the_version(reg, tmp_path):
    _registered(reg, tmp_path, "sklearn")
    reg.promote("churn/1", "challenger")
    reg.set_gate_policy("churn", "challenger", GatePolicy.build(["roc_auc >= 0.999"]))
    new = tmp_path / "new.parquet"
    _data(1000, 4).to_parquet(new)
    done = retrain("churn@production", new, registry=reg)
    assert done.refused and done.exit_code == 6 and done.move is None
    assert [r.verdict.value for r in done.report.failing] == ["fail"]
    assert reg.resolve("churn@challenger").version == 1
    assert [v.ref for v in reg.versions("churn")] == ["churn/1", "churn/2"]
    assert reg.lineage("churn/2")["parent"] == "churn/1"


def test_an_alias_other_than_challenger_moves_only_through_gates(reg, tmp_path):
    _registered(reg, tmp_path, "sklearn")
    new = tmp_path / "new.parquet"
    _data(1000, 4).to_parquet(new)
    with pytest.raises(UsageError, match="churn@production has no gate policy"):
        retrain("churn/1", new, alias="production", registry=reg)
    assert len(reg.versions("churn")) == 1  # refused before fitting anything


def test_the_same_data_twice_is_a_no_op(reg, tmp_path):
    parent, train = _registered(reg, tmp_path, "sklearn")
    new = tmp_path / "new.parquet"
    _data(1000, 4).to_parquet(new)
    first = retrain("churn@production", new, registry=reg)
    again = retrain("churn@production", new, registry=reg)
    assert first.version == "churn/2"
    assert again.noop and again.same_as == "churn/2" and again.exit_code == 0
    assert again.current == "churn/2"  # the challenger already
    assert again.to_dict()["noop"] is True and again.to_dict()["version"] is None
    # The parent's own training data, and the data its retrain saw, are no-ops too.
    assert retrain("churn/1", train, registry=reg).same_as == "churn/1"
    assert retrain("churn/2", new, registry=reg).same_as == "churn/2"
    assert len(reg.versions("churn")) == 2
    with pytest.raises(NotFoundError, match="no data file"):
        retrain("churn/1", tmp_path / "missing.parquet", registry=reg)


def test_a_holdout_file_overrides_the_split(reg, tmp_path):
    _registered(reg, tmp_path, "sklearn")
    new, held = tmp_path / "new.parquet", tmp_path / "held.parquet"
    _data(1000, 4).to_parquet(new)
    _data(250, 6).to_parquet(held)
    done = retrain("churn/1", new, holdout=held, registry=reg)
    assert done.train_rows == 1000 and done.split == f"the file {held}"
    assert done.holdout.path == str(held) and done.evaluations["churn/2"].counts.read == 250


def test_a_module_function_recipe(reg, tmp_path, monkeypatch):
    (tmp_path / "my_recipes.py").write_text(
        "from sklearn.linear_model import LogisticRegression\n"
        f"COLUMNS = {NUMERIC!r}\n"
        "def fit(train, target):\n"
        "    X = train[COLUMNS].fillna(0)\n"
        "    return LogisticRegression(max_iter=2000).fit(X, train[target])\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_recipes

    train = _data(800, 3).dropna()
    model = my_recipes.fit(train, TARGET)
    path = scorehouse.package(model, train[[*NUMERIC, TARGET]], name="fn", target=TARGET,
                              recipe="my_recipes:fit", compile=False, path=tmp_path / "fn.shz")
    assert artifact_io.read(path, trust=True).manifest.recipe.function == "my_recipes:fit"
    reg.register(path)
    new = tmp_path / "new.parquet"
    _data(1000, 4).dropna().to_parquet(new)
    done = retrain("fn/1", new, registry=reg)
    assert done.version == "fn/2" and reg.resolve("fn@challenger").version == 2
    art, _ = reg.load_artifact("fn/2")
    assert art.manifest.recipe.function == "my_recipes:fit"
    assert art.manifest.lineage.parent == "fn/1"
    with pytest.raises(UsageError, match="cannot import 'nowhere'"):
        scorehouse.package(model, train, name="fn", target=TARGET, recipe="nowhere:fit",
                           compile=False, path=tmp_path / "x.shz")


def test_json_params_name_what_json_cannot_hold():
    assert json_params({"a": 1, "b": [0.5, None], "c": float("inf")})[0] == \
        {"a": 1, "b": [0.5, None], "c": {"float": "inf"}}
    assert json_params({"a": np.int64(3)})[0] == {"a": 3}
    assert json_params({"objective": len})[0] is None
    assert "parameter 'w'" in json_params({"w": {1: 2.0}})[1]


def test_cli_retrain_no_recipe_refusal_and_no_op(tmp_path, churn_data):
    """The CLI: a version without a recipe is one error line (exit 2); gates that refuse
    exit 6 with the new version registered; the same data again is a no-op (exit 0)."""
    reg = Registry()  # the CLI's: $SCOREHOUSE_HOME is tmp_path / "home"
    for path, kw in (("bare.shz", {"recipe": False}), ("churn.shz", {"target": TARGET})):
        reg.register(scorehouse.package(_pipeline(churn_data), churn_data, name="churn",
                                        compile=False, path=tmp_path / path, **kw))
    reg.set_gate_policy("churn", "challenger", GatePolicy.build(["roc_auc >= 0.999"]))
    _data(1000, 4).to_parquet(tmp_path / "new.parquet")
    cli = CLI(tmp_path / "home", tmp_path)
    r = cli("retrain", "churn/1", "--data", "new.parquet")
    assert_error_line(r, 2, "churn/1 was packaged without a training recipe")
    r = cli("retrain", "churn/2", "--data", "new.parquet")
    assert r.code == 6, str(r)
    assert "registered churn/3" in r.out and "FAIL" in r.out
    assert "churn/3 stays registered and @challenger is not set" in r.err
    r = cli("retrain", "churn/2", "--data", "new.parquet", "--json")
    assert r.code == 0, str(r)
    assert r.json()["noop"] is True and r.json()["same_as"] == "churn/3"
    assert r.json()["current"] is None  # the refused retrain never took @challenger
