"""Holdout evaluation and promotion gates: metrics against scikit-learn's own, segments,
rejected rows, storage on SQLite and PostgreSQL, each kind of gate, and the CLI
(`evaluate`, `gates set/show/check`, `promote` refused and forced).

Tolerance: the evaluations here score with the native runtime, so the figures must equal
scikit-learn's on the same rows to 1e-9 (relative); only summation order may differ.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression

import scorehouse
from scorehouse.demo import churn_frame
from scorehouse.demo.data import TARGET
from scorehouse.errors import ConflictError, UsageError
from scorehouse.evaluation import (
    Evaluation,
    GatePolicy,
    GatesRefused,
    Rule,
    Verdict,
    check_gates,
    evaluate,
    promote,
    schema_breaks,
)
from scorehouse.evaluation.metrics import calibration
from scorehouse.registry import Registry
from scorehouse.schema import Schema
from test_cli import CLI, ok

REL = 1e-9


def _frame(X: np.ndarray, y, names=("a", "b", "c", "d")) -> pd.DataFrame:
    df = pd.DataFrame(X, columns=list(names)[: X.shape[1]])
    df["y"] = y
    return df


@pytest.fixture(scope="module")
def families(tmp_path_factory, churn_model, churn_data):
    """{family: (artifact, fitted model, holdout frame, target)} for binary, multiclass
    and regression models."""
    d = tmp_path_factory.mktemp("families")
    X, y = make_classification(1200, 4, n_informative=3, n_redundant=0, n_classes=3,
                               random_state=1)
    kinds = np.array(["ash", "birch", "cedar"])[y]
    train = _frame(X[:800], kinds[:800])
    multi = LogisticRegression(max_iter=500).fit(train.drop(columns=["y"]), train["y"])
    Xr, yr = make_regression(1200, 4, noise=10.0, random_state=2)
    yr = yr + 500.0  # no zero target: MAPE defined
    rtrain = _frame(Xr[:800], yr[:800])
    reg = LinearRegression().fit(rtrain.drop(columns=["y"]), rtrain["y"])
    return {
        "binary": (scorehouse.package(churn_model, churn_data, name="churn", target=TARGET,
                                      path=d / "churn.shz"), churn_model,
                   churn_frame(700, seed=11), TARGET),
        "multiclass": (scorehouse.package(multi, train, name="trees",
                                          target="y", path=d / "trees.shz"), multi,
                       _frame(X[800:], kinds[800:]), "y"),
        "regression": (scorehouse.package(reg, rtrain, name="price",
                                          target="y", path=d / "price.shz"), reg,
                       _frame(Xr[800:], yr[800:]), "y"),
    }


def _evaluate(artifact, frame: pd.DataFrame, target: str, tmp_path, segments=()) -> Evaluation:
    path = tmp_path / "holdout.parquet"
    frame.to_parquet(path)
    scorer = scorehouse.load(artifact, trust=True, runtime="native")
    return evaluate(scorer, path, target, segments)


def _expected(family: str, model, frame: pd.DataFrame, target: str) -> dict[str, float]:
    X, y = frame.drop(columns=[target]), frame[target].to_numpy()
    if family == "regression":
        p = model.predict(X)
        return {"rmse": skm.root_mean_squared_error(y, p), "mae": skm.mean_absolute_error(y, p),
                "r2": skm.r2_score(y, p), "mape": skm.mean_absolute_percentage_error(y, p)}
    proba, labels, classes = model.predict_proba(X), model.predict(X), list(model.classes_)
    out = {"log_loss": skm.log_loss(y, proba, labels=classes),
           "accuracy": skm.accuracy_score(y, labels)}
    if family == "binary":
        y01, p = (y == classes[-1]).astype(int), proba[:, -1]
        out.update(roc_auc=skm.roc_auc_score(y01, p), pr_auc=skm.average_precision_score(y01, p),
                   brier=skm.brier_score_loss(y01, p), f1=skm.f1_score(y01, labels == classes[-1]))
    else:
        out.update(roc_auc=skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes),
                   brier=skm.brier_score_loss(y, proba, labels=classes),
                   f1=skm.f1_score(y, labels, average="macro"))
    return out


@pytest.mark.parametrize("family", ["binary", "multiclass", "regression"])
def test_metrics_equal_sklearn_on_the_same_rows(families, family, tmp_path):
    artifact, model, frame, target = families[family]
    e = _evaluate(artifact, frame, target, tmp_path)
    assert (e.counts.read, e.counts.scored, e.counts.rejected) == (len(frame), len(frame), 0)
    for name, value in _expected(family, model, frame, target).items():
        assert e.metrics.get(name) == pytest.approx(value, rel=REL), name
    assert e.metrics.absent == {}
    kinds = {c.kind for c in e.curves}
    if family == "regression":
        assert kinds == {"residuals", "residual_quantiles", "calibration"}
        assert sum(e.curve("residuals").counts) == len(frame)
    else:
        assert {"roc", "pr", "calibration"} <= kinds
        assert all(len(c.x) <= 200 for c in e.curves)
        assert sum(e.curve("calibration").counts) == len(frame)
    if family == "multiclass":
        assert set(e.per_class) == {"ash", "birch", "cedar"}
        y01 = (frame["y"] == "birch").astype(int)
        p = model.predict_proba(frame.drop(columns=["y"]))[:, 1]
        assert e.per_class["birch"].get("roc_auc") == pytest.approx(skm.roc_auc_score(y01, p),
                                                                    rel=REL)
    assert Evaluation.from_dict(e.to_dict()) == e


def test_ece_is_the_weighted_gap_of_sklearns_calibration_curve():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=5000)
    y = (rng.uniform(size=5000) < p ** 1.5).astype(int)
    ece, frac, mean, counts = calibration(y, p)
    bins = np.minimum((p * 10).astype(int), 9)  # equal-width bins, as calibration_curve cuts
    by_hand = sum((bins == b).sum() / len(p) * abs(y[bins == b].mean() - p[bins == b].mean())
                  for b in range(10))
    assert counts.sum() == len(p) and ece == pytest.approx(by_hand, rel=1e-6)


def test_segments_are_the_metrics_of_their_rows(families, tmp_path):
    artifact, model, frame, target = families["binary"]
    e = _evaluate(artifact, frame, target, tmp_path, segments=["plan"])
    assert {s.value for s in e.segments} == set(frame["plan"].dropna().astype(str)) | (
        {"<null>"} if frame["plan"].isna().any() else set())
    assert sum(s.metrics.rows for s in e.segments) == e.counts.evaluated
    for s in e.segments:
        if s.value == "<null>":
            continue
        part = frame[frame["plan"] == s.value]
        assert s.metrics.get("accuracy") == pytest.approx(
            _expected("binary", model, part, target)["accuracy"], rel=REL)


def test_rejected_rows_are_counted_never_dropped(families, tmp_path):
    artifact, _, frame, target = families["binary"]
    frame = frame.astype({"tenure": object})
    frame.loc[[3, 7, 9], "tenure"] = "abc"
    frame.loc[[4], target] = None
    path = tmp_path / "holdout.csv"
    frame.to_csv(path, index=False)
    e = evaluate(scorehouse.load(artifact, trust=True), path, target)
    c = e.counts
    assert (c.read, c.rejected, c.excluded) == (len(frame), 3, 1)
    assert c.read == c.scored + c.rejected and c.evaluated == c.scored - c.excluded
    assert sum(n for k, n in c.rejects.items() if k.startswith("tenure")) == 3
    assert c.exclusions == {"missing target": 1}
    assert e.metrics.rows == c.evaluated


def test_mape_absent_with_zero_targets_and_says_why(families, tmp_path):
    artifact, _, frame, target = families["regression"]
    frame = frame.copy()
    frame.loc[frame.index[:2], target] = 0.0
    e = _evaluate(artifact, frame, target, tmp_path)
    assert e.metrics.get("mape") is None and "2 target(s) are zero" in e.metrics.absent["mape"]


def test_missing_target_column_is_a_usage_error(families, tmp_path):
    artifact, _, frame, _ = families["binary"]
    with pytest.raises(UsageError, match="no column 'nope'"):
        _evaluate(artifact, frame, "nope", tmp_path)


# --- stored on the registry: SQLite and PostgreSQL -----------------------------------------


def test_evaluation_and_policy_stored_and_read_back(registry_url, tmp_path, families):
    artifact, _, frame, target = families["binary"]
    e = _evaluate(artifact, frame, target, tmp_path, segments=["region"])
    reg = Registry(registry_url, artifacts=str(tmp_path / "store"))
    try:
        reg.register(artifact)
        assert reg.evaluations("churn/1") == [] and reg.latest_evaluation("churn@latest") is None
        rec = reg.record_evaluation("churn/1", e, user="ana")
        back = reg.evaluations("churn@latest")
        assert [r.id for r in back] == [rec.id] and back[0].user == "ana"
        assert Evaluation.from_dict(back[0].result) == e
        policy = GatePolicy.build(["roc_auc >= 0.6"], latency_ms=5.0)
        reg.set_gate_policy("churn", "production", policy, reason="q3", user="ana")
        reg.set_gate_policy("churn", "production", None, reason="off", user="bo")
        assert reg.gate_policy("churn", "production") is None
        reg.set_gate_policy("churn", "production", policy, reason="on again")
        assert GatePolicy.from_dict(reg.gate_policy("churn", "production").policy) == policy
        assert [(h.reason, h.policy is None) for h in reg.gate_policy_history("churn")] == [
            ("q3", False), ("off", True), ("on again", False)]
    finally:
        reg.close()


# --- gates ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gated(tmp_path_factory, families):
    """A SQLite registry: churn/1 @production and churn/2, both evaluated; toy/1 and toy/2
    (toy/2 needs a new column)."""
    d = tmp_path_factory.mktemp("gated")
    artifact, _, frame, target = families["binary"]
    frame.to_parquet(d / "holdout.parquet")
    reg = Registry(f"sqlite:///{d / 'r.db'}", artifacts=str(d / "store"))
    for _ in range(2):
        mv = reg.register(artifact)
        reg.record_evaluation(mv.ref, evaluate(reg.load(mv.ref), d / "holdout.parquet", target))
    reg.promote("churn/1", "production")
    rng = np.random.default_rng(4)
    toy = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    toy["y"] = (toy["a"] > 0).map({True: "yes", False: "no"})
    for i, cols in enumerate((["a", "b"], ["a", "b", "c"])):
        m = LogisticRegression().fit(toy[cols], toy["y"])
        reg.register(scorehouse.package(m, toy[[*cols, "y"]], name="toy", target="y",
                                        path=d / f"toy{i}.shz"))
    reg.promote("toy/1", "production")
    yield reg
    reg.close()


@pytest.mark.parametrize("policy, verdict", [
    (GatePolicy.build(["roc_auc >= 0.5"]), Verdict.PASS),
    (GatePolicy.build(["roc_auc >= 0.999"]), Verdict.FAIL),
    (GatePolicy.build(["roc_auc >= production - 0.01"]), Verdict.PASS),
    (GatePolicy.build(["log_loss <= production * 0.5"]), Verdict.FAIL),
    (GatePolicy.build(["rmse <= 3"]), Verdict.FAIL),  # not measured for a binary model
    (GatePolicy(parity=True), Verdict.PASS),
    (GatePolicy(latency_ms=2000.0, latency_calls=20), Verdict.PASS),
    (GatePolicy(latency_ms=1e-6, latency_calls=20), Verdict.FAIL),
    (GatePolicy(schema_compatible=True), Verdict.PASS),
    (GatePolicy(max_drift_share=1.0), Verdict.PASS),
], ids=["absolute-pass", "absolute-refuse", "relative-pass", "relative-refuse", "unmeasured",
        "parity", "latency-pass", "latency-refuse", "schema-pass", "drift-pass"])
def test_gate_kinds(gated, policy, verdict):
    report = check_gates(gated, "churn/2", "production", policy)
    assert [r.verdict for r in report.results] == [verdict], report.to_dict()
    assert report.passed is (verdict is Verdict.PASS)
    assert gated.resolve("churn@production").version == 1  # checking moves nothing


def test_relative_rule_without_current_version_skips(gated):
    report = check_gates(gated, "churn/2", "staging",
                         GatePolicy.build(["roc_auc >= staging - 0.01"]))
    assert report.results[0].verdict is Verdict.SKIP and report.passed


def test_schema_gate_refuses_a_new_required_column(gated):
    result = check_gates(gated, "toy/2", "production", GatePolicy(schema_compatible=True))
    assert result.results[0].verdict is Verdict.FAIL
    assert "new required column c" in result.results[0].detail


def test_schema_breaks_names_narrowed_categories():
    old = Schema.from_dict({"columns": [{"name": "plan", "type": "string",
                                         "categories": ["a", "b", "c"]}]})
    new = Schema.from_dict({"columns": [{"name": "plan", "type": "string",
                                         "categories": ["a", "b"]}]})
    assert schema_breaks(old, new) == ["plan no longer accepts c"]
    assert schema_breaks(new, old) == []  # widened: compatible


def test_drift_gate_refuses_a_shifted_holdout(gated, families, tmp_path):
    artifact, _, frame, target = families["binary"]
    shifted = frame.assign(tenure=frame["tenure"] + 40, monthly_charges=frame["monthly_charges"] * 3,
                           age=frame["age"] + 30, support_calls=frame["support_calls"] + 6)
    e = _evaluate(artifact, shifted, target, tmp_path)
    assert e.drift.share >= 0.25 and "tenure" in e.drift.drifted_columns
    mv = gated.register(artifact)
    gated.record_evaluation(mv.ref, e)
    report = check_gates(gated, mv.ref, "production", GatePolicy(max_drift_share=0.2))
    assert report.results[0].verdict is Verdict.FAIL and "tenure" in report.results[0].detail


@pytest.mark.parametrize("text", ["roc_auc >= = 3", "roc_auc", "auc >= 0.7",
                                  "roc_auc >= production ** 2", "__import__('os') >= 1"])
def test_bad_rule_is_a_usage_error_naming_it(text):
    with pytest.raises(UsageError, match="gate rule"):
        Rule.parse(text)


def test_promote_through_gates_refuses_forces_and_records(gated):
    gated.set_gate_policy("churn", "canary", GatePolicy.build(["roc_auc >= 0.999"]))
    with pytest.raises(GatesRefused) as refused:
        promote(gated, "churn/2", "canary")
    assert isinstance(refused.value, ConflictError) and refused.value.exit_code == 6
    with pytest.raises(UsageError):
        promote(gated, "churn/2", "canary", force=True)
    done = promote(gated, "churn/2", "canary", force=True, reason="risk accepted", user="ana")
    assert done.forced and done.move.version == 2
    event = gated.history("churn", "canary")[-1]
    assert event.reason.startswith("forced past failing gates (roc_auc >= 0.999)")
    assert [g["verdict"] for g in event.gates] == ["fail"]
    # No policy: promote is Registry.promote, and its event keeps no gates.
    assert promote(gated, "churn/2", "staging").report.policy is False
    assert gated.history("churn", "staging")[-1].gates is None


# --- the CLI -------------------------------------------------------------------------------


def test_cli_evaluate_gates_and_promote(tmp_path, families):
    artifact, _, frame, target = families["binary"]
    frame.to_parquet(tmp_path / "holdout.parquet")
    cli = CLI(tmp_path / "home", tmp_path)
    for _ in range(2):
        ok(cli("register", str(artifact)))
    out = ok(cli("evaluate", "churn/1", "holdout.parquet", "--target", target, "--segment",
                 "plan", "--json"))
    assert out["counts"]["read"] == len(frame) and out["stored"] == 1
    text = ok(cli("evaluate", "churn/2", "holdout.parquet", "--target", target))
    assert "roc_auc" in text and "stored as evaluation 2 of churn/2" in text
    ok(cli("promote", "churn/1", "production"))
    r = cli("gates", "set", "churn", "production", "--rule", "roc_auc >= = 1")
    assert r.code == 2 and "roc_auc >= = 1" in r.err
    ok(cli("gates", "set", "churn", "production", "--rule", "roc_auc >= 0.999", "--parity",
           "-m", "strict"))
    r = cli("gates", "check", "churn/2", "--alias", "production")
    assert r.code == 6 and "FAIL" in r.out and "parity" in r.out, str(r)
    r = cli("promote", "churn/2", "production")
    assert r.code == 6 and "roc_auc >= 0.999" in r.out and "FAIL" in r.out, str(r)
    assert "error:" in r.err
    ok(cli("promote", "churn/2", "production", "--force", "-m", "board said so"))
    events = ok(cli("models", "history", "churn", "--json"))
    forced = events[-1]
    assert forced["reason"].endswith("board said so") and forced["gates"][0]["verdict"] == "fail"
    ok(cli("gates", "set", "churn", "production", "--rule", "roc_auc >= production - 0.05"))
    assert ok(cli("gates", "check", "churn/1", "--alias", "production", "--json"))["passed"]
    shown = ok(cli("gates", "show", "churn", "production", "--json"))
    assert [h["reason"] for h in shown] == ["strict", ""]
