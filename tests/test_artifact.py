"""The artifact: every model kind round-trips, tampering and untrusted pickles are refused."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import scorehouse
from scorehouse import artifact as artifact_io
from scorehouse.artifact import VersionMismatchWarning
from scorehouse.demo.data import TARGET
from scorehouse.errors import (
    ArtifactError,
    IntegrityError,
    SignatureError,
    TrustError,
    UnsupportedModelError,
)

# Probabilities from a reloaded artifact must equal the in-memory model's: same library,
# same inputs, so the only allowed difference is float summation order.
TOL = 1e-6  # models compile to ONNX by default: the parity gate's tolerance


def _rewrite(path: Path, name: str, data: bytes) -> None:
    with zipfile.ZipFile(path) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    entries[name] = data
    with zipfile.ZipFile(path, "w") as zf:
        for k, v in entries.items():
            zf.writestr(k, v)


def test_manifest_holds_schema_lineage_baseline_and_hashes(churn_artifact, churn_data):
    art = artifact_io.read(churn_artifact, trust=True)
    m = art.manifest.to_dict()
    assert m["name"] == "churn" and m["task"] == "binary" and m["classes"] == ["no", "yes"]
    assert m["model"] == {**m["model"], "flavor": "sklearn", "pickled": True}
    names = [c["name"] for c in m["input_schema"]["columns"]]
    assert names == [c for c in churn_data.columns if c != TARGET]
    assert [c["name"] for c in m["output_schema"]] == ["label", "probability_no",
                                                       "probability_yes"]
    lin = m["lineage"]
    assert lin["training_data"]["rows"] == len(churn_data)
    assert lin["training_data"]["fingerprint"].startswith("sha256:")
    assert 0.5 < lin["metrics"]["training_roc_auc"] <= 1.0
    assert "scikit-learn" in lin["libraries"] and lin["created_by"] and lin["created_at"]
    base = m["baseline"]
    assert set(base["inputs"]) == set(names)
    assert base["inputs"]["total_charges"]["null_rate"] > 0
    assert set(base["inputs"]["plan"]["frequencies"]) == set(churn_data["plan"].unique())
    assert len(base["inputs"]["tenure"]["histogram"]["fractions"]) >= 5
    assert set(base["predictions"]["probability"]) == {"no", "yes"}
    # The training recipe (packaged with its target): the unfitted pipeline, pickled.
    assert set(m["files"]) == {"model/model.pkl", "compiled/model.onnx", "recipe/estimator.pkl"}
    assert m["recipe"] == {"features": names, "target": TARGET,
                           "holdout": {"fraction": 0.2, "seed": 0},
                           "estimator": "sklearn.pipeline.Pipeline", "file": "recipe/estimator.pkl"}
    assert "scikit-learn" in m["environment"]["requirements"]


def test_round_trip_zip_and_folder_give_identical_predictions(tmp_path, churn_model, churn_data,
                                                              features):
    zipped = scorehouse.package(churn_model, churn_data, name="churn", target=TARGET,
                                path=tmp_path / "c.shz")
    folder = scorehouse.package(churn_model, churn_data, name="churn", target=TARGET,
                                path=tmp_path / "c_folder")
    assert folder.is_dir() and (folder / "MANIFEST.json").exists()
    native = churn_model.predict_proba(features)
    for p in (zipped, folder):
        result = scorehouse.load(p, trust=True).predict(features)
        assert result.n_scored == len(features) and not result.rejects
        assert np.abs(result.output.probabilities - native).max() <= TOL
        assert list(result.output.labels) == list(churn_model.predict(features))


def test_packaging_is_reproducible_apart_from_creation_time(tmp_path, churn_model, churn_data):
    a = scorehouse.package(churn_model, churn_data, name="churn", path=tmp_path / "a.shz")
    b = scorehouse.package(churn_model, churn_data, name="churn", path=tmp_path / "b.shz")
    ma, mb = (artifact_io.read(p, trust=True).manifest.to_dict() for p in (a, b))
    assert ma["files"] == mb["files"]
    assert ma["lineage"]["training_data"] == mb["lineage"]["training_data"]


def test_tampered_model_file_is_refused(tmp_path, churn_artifact):
    bad = tmp_path / "bad.shz"
    bad.write_bytes(churn_artifact.read_bytes())
    _rewrite(bad, "model/model.pkl", b"not the model")
    with pytest.raises(IntegrityError, match="model/model.pkl does not match its size"):
        artifact_io.read(bad, trust=True)


def test_tampered_manifest_and_extra_files_are_refused(tmp_path, churn_artifact):
    art = artifact_io.read(churn_artifact, trust=True)
    extra = tmp_path / "extra.shz"
    extra.write_bytes(churn_artifact.read_bytes())
    _rewrite(extra, "model/evil.py", b"import os")
    with pytest.raises(IntegrityError, match="does not list"):
        artifact_io.read(extra, trust=True)
    wrong = tmp_path / "wrong.shz"
    wrong.write_bytes(churn_artifact.read_bytes())
    m = dict(art.manifest.to_dict(), classes=["yes", "no"])
    _rewrite(wrong, "MANIFEST.json", json.dumps(m).encode())
    with pytest.raises(IntegrityError, match="does not match the registry's record"):
        artifact_io.read(wrong, expected_sha256=art.manifest_sha256)
    missing = tmp_path / "missing.shz"
    with zipfile.ZipFile(missing, "w") as zf:
        zf.writestr("MANIFEST.json", json.dumps(art.manifest.to_dict()))
    with pytest.raises(IntegrityError, match="is missing"):
        artifact_io.read(missing, trust=True)
    notzip = tmp_path / "x.shz"
    notzip.write_text("hello")
    with pytest.raises(ArtifactError, match="not a zip"):
        artifact_io.read(notzip)


def test_pickled_artifact_needs_trust_registry_or_signature(tmp_path, churn_artifact,
                                                             monkeypatch):
    with pytest.raises(TrustError, match="pickled Python code"):
        scorehouse.load(churn_artifact)
    assert scorehouse.load(churn_artifact, trust=True).predict  # explicit trust
    signed = tmp_path / "signed.shz"
    signed.write_bytes(churn_artifact.read_bytes())
    artifact_io.resign(signed, "team-secret")
    assert artifact_io.read(signed, key="team-secret").trusted_by == "signature"
    monkeypatch.setenv("SCOREHOUSE_SIGNING_KEY", "team-secret")
    assert scorehouse.load(signed).predict  # the key from the environment
    with pytest.raises(SignatureError, match="does not verify"):
        artifact_io.read(signed, key="other-secret")
    with pytest.raises(SignatureError, match="not signed"):
        artifact_io.read(churn_artifact, key="team-secret")


def test_signature_covers_every_file(tmp_path, churn_model, churn_data):
    p = scorehouse.package(churn_model, churn_data, name="churn", path=tmp_path / "s.shz",
                           key="k1")
    assert artifact_io.read(p, key="k1").trusted_by == "signature"
    _rewrite(p, "model/model.pkl", b"swapped")
    with pytest.raises(IntegrityError):
        artifact_io.read(p, key="k1")


def test_version_mismatch_warns_clearly(tmp_path, churn_artifact):
    art = artifact_io.read(churn_artifact, trust=True)
    m = json.loads(json.dumps(art.manifest.to_dict()))
    m["environment"]["requirements"]["scikit-learn"] = "0.20.0"
    m["environment"]["requirements"]["not-a-real-package-xyz"] = "1.0"
    p = tmp_path / "old.shz"
    artifact_io.write({k: v for k, v in m.items() if k != "files"}, art.files, p)
    with pytest.warns(VersionMismatchWarning) as seen:
        artifact_io.read(p, trust=True)
    text = str(seen[0].message)
    assert "scikit-learn is" in text and "packaged with 0.20.0" in text
    assert "not-a-real-package-xyz==1.0 is needed but not installed" in text


# --- every model kind ------------------------------------------------------------------------


def _double_charges(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(monthly_charges=frame["monthly_charges"] * 2)


@pytest.fixture(scope="module")
def small(churn_data):
    df = churn_data.dropna().head(1500).reset_index(drop=True)
    return df, df.drop(columns=[TARGET]), (df[TARGET] == "yes").astype(int)


def _package_and_load(tmp_path, model, frame, **kw):
    path = scorehouse.package(model, frame, name="m", path=tmp_path / "m.shz", **kw)
    return scorehouse.load(path, trust=True), artifact_io.read(path, trust=True).manifest.to_dict()


def test_sklearn_pipeline_with_custom_function_transformer(tmp_path, small):
    df, X, _ = small
    cat = ["plan", "contract", "payment_method", "region"]
    model = Pipeline([
        ("double", FunctionTransformer(_double_charges)),
        ("prep", ColumnTransformer([("oh", OneHotEncoder(handle_unknown="ignore"), cat)],
                                   remainder=StandardScaler())),
        ("lr", LogisticRegression(max_iter=2000)),
    ]).fit(X, df[TARGET])
    scorer, m = _package_and_load(tmp_path, model, df, target=TARGET)
    assert m["model"]["flavor"] == "sklearn"
    out = scorer.predict(X).output.probabilities
    assert np.abs(out - model.predict_proba(X)).max() <= TOL


def test_sklearn_regressor(tmp_path, small):
    df, X, _ = small
    num = X.select_dtypes("number")
    model = RandomForestRegressor(20, random_state=0).fit(num, df["total_charges"])
    scorer, m = _package_and_load(tmp_path, model, num.assign(total=df["total_charges"]))
    assert m["task"] == "regression" and m["output_schema"] == [{"name": "value",
                                                                 "type": "number"}]
    np.testing.assert_allclose(scorer.predict(num).output.values, model.predict(num), atol=TOL)


def test_lightgbm_sklearn_wrapper_and_booster_with_categoricals(tmp_path, small):
    lgb = pytest.importorskip("lightgbm")
    df, X, y = small
    Xc = X.astype({c: "category" for c in ["plan", "contract", "payment_method", "region"]})
    clf = lgb.LGBMClassifier(n_estimators=30, verbose=-1).fit(Xc, y)
    scorer, m = _package_and_load(tmp_path, clf, Xc)
    assert m["model"]["flavor"] == "lightgbm" and not m["model"]["pickled"]
    # LightGBM's own categories compile too (text inputs coded as LightGBM codes them).
    assert set(m["files"]) == {"model/model.lgb.txt", "compiled/model.onnx"}
    assert m["compiled"]["status"] == "passed" and scorer.runtime.name == "onnx"
    np.testing.assert_allclose(scorer.predict(Xc).output.probabilities, clf.predict_proba(Xc),
                               atol=TOL)
    # Plain records (strings, not pandas categories) score identically.
    records = X.head(50).to_dict("records")
    np.testing.assert_allclose(scorer.predict(records).output.probabilities,
                               clf.predict_proba(Xc.head(50)), atol=TOL)
    scorehouse.load(tmp_path / "m.shz")  # no pickle: loads without trust
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1},
                        lgb.Dataset(X.select_dtypes("number"), label=df["support_calls"] % 3),
                        num_boost_round=10)
    num = X.select_dtypes("number")
    scorer, m = _package_and_load(tmp_path / "b", booster, num)
    assert m["task"] == "multiclass" and m["classes"] == [0, 1, 2]
    np.testing.assert_allclose(scorer.predict(num).output.probabilities, booster.predict(num),
                               atol=TOL)


def test_xgboost_classifier_and_regressor(tmp_path, small):
    xgb = pytest.importorskip("xgboost")
    df, X, y = small
    num = X.select_dtypes("number")
    clf = xgb.XGBClassifier(n_estimators=25, max_depth=3).fit(num, y)
    scorer, m = _package_and_load(tmp_path, clf, num)
    assert m["model"]["flavor"] == "xgboost" and set(m["files"]) == {"model/model.ubj",
                                                                    "compiled/model.onnx"}
    np.testing.assert_allclose(scorer.predict(num).output.probabilities, clf.predict_proba(num),
                               atol=TOL)  # XGBoost sums in float32, ONNX in double
    reg = xgb.XGBRegressor(n_estimators=25).fit(num, df["total_charges"])
    scorer, m = _package_and_load(tmp_path / "r", reg, num)
    assert m["task"] == "regression"
    np.testing.assert_allclose(scorer.predict(num).output.values, reg.predict(num), rtol=1e-6)


def test_onnx_model_file(tmp_path, small):
    pytest.importorskip("onnxruntime")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    df, X, y = small
    num = X.select_dtypes("number").astype("float32")
    lr = LogisticRegression(max_iter=2000).fit(num, y)
    proto = skl2onnx.convert_sklearn(lr, initial_types=[("X", FloatTensorType([None,
                                                                               num.shape[1]]))])
    onnx_path = tmp_path / "lr.onnx"
    onnx_path.write_bytes(proto.SerializeToString())
    scorer, m = _package_and_load(tmp_path, str(onnx_path), num)
    assert m["model"]["flavor"] == "onnx" and m["classes"] == [0, 1]
    np.testing.assert_allclose(scorer.predict(num).output.probabilities, lr.predict_proba(num),
                               atol=1e-5)  # the graph computes in float32


class Thresholder:
    """A plain Python model: no library, just predict/predict_proba."""

    classes_ = np.array(["low", "high"])

    def predict_proba(self, frame):
        p = 1 / (1 + np.exp(-(frame["support_calls"].to_numpy() - 1.5)))
        return np.column_stack([1 - p, p])

    def predict(self, frame):
        return self.classes_[(self.predict_proba(frame)[:, 1] > 0.5).astype(int)]


def test_plain_python_object_and_callable(tmp_path, small):
    _, X, _ = small
    scorer, m = _package_and_load(tmp_path, Thresholder(), X[["support_calls"]])
    assert m["model"]["flavor"] == "python" and m["classes"] == ["low", "high"]
    r = scorer.predict([{"support_calls": 0}, {"support_calls": 5}])
    assert list(r.output.labels) == ["low", "high"]

    def double(frame):
        return frame["age"].to_numpy() * 2.0

    scorer, m = _package_and_load(tmp_path / "f", double, X[["age"]])
    assert m["task"] == "regression"
    assert scorer.predict({"age": 21}).output.values[0] == 42.0


def test_unsupported_and_ambiguous_models_are_clear_errors(tmp_path, small):
    _, X, _ = small
    with pytest.raises(UnsupportedModelError, match="cannot package a builtins.int"):
        scorehouse.package(42, X, name="x", path=tmp_path / "x.shz")

    class Opaque:
        def predict_proba(self, frame):
            return np.tile([1.0, 0.0], (len(frame), 1))  # a valid (if dull) distribution

        def predict(self, frame):
            return np.zeros(len(frame), dtype=int)

    with pytest.raises(UnsupportedModelError, match="class labels are unknown"):
        scorehouse.package(Opaque(), X, name="x", task="binary", path=tmp_path / "x.shz")
    p = scorehouse.package(Opaque(), X, name="x", task="binary", classes=[0, 1],
                           path=tmp_path / "x.shz")
    assert artifact_io.read(p, trust=True).manifest.to_dict()["classes"] == [0, 1]
