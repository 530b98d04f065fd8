"""The scorer: every input shape, parity with the native model, rejects, flags, hooks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scorehouse
from scorehouse.demo import dirty_batch
from scorehouse.errors import InvalidInputError, ModelError
from scorehouse.scorer import Scorer

# Native: same library, same inputs, only float summation order may differ. ONNX: the parity
# gate's default tolerance (the compiled forest returns float32 probabilities).
TOL = {"native": 1e-12, "onnx": 1e-6}


@pytest.fixture(scope="module", params=["native", "onnx"])
def scorer(request, churn_artifact):
    return scorehouse.load(churn_artifact, trust=True, runtime=request.param)


def test_arrow_pandas_records_and_dict_agree_with_native(scorer, churn_model, features):
    X = features.head(200)
    native = churn_model.predict_proba(X)
    outs = [scorer.predict(pa.Table.from_pandas(X)), scorer.predict(X),
            scorer.predict(X.to_dict("records"))]
    for r in outs:
        assert r.n_read == r.n_scored == 200 and r.n_rejected == 0
        assert np.abs(r.output.probabilities - native).max() <= TOL[scorer.runtime.name]
    for i in (0, 17, 199):
        one = scorer.predict(X.iloc[i].to_dict())
        assert one.n_scored == 1
        assert np.abs(one.output.probabilities[0] - native[i]).max() <= TOL[scorer.runtime.name]
        assert one.output.labels[0] == churn_model.predict(X.iloc[[i]])[0]


def test_single_dict_path_does_not_validate_through_a_dataframe(scorer, features, monkeypatch):
    import scorehouse.scorer.scorer as mod

    def boom(*a, **k):
        raise AssertionError("batch path used for one dict")

    monkeypatch.setattr(mod, "validate_batch", boom)
    assert scorer.predict(features.iloc[0].to_dict()).n_scored == 1


def test_dirty_batch_accounts_for_every_row(scorer, churn_data):
    batch = dirty_batch(churn_data.head(1000))
    r = scorer.predict(batch)
    assert r.n_read == 1000 == r.n_scored + r.n_rejected
    assert r.reject_counts() == {"tenure": 3, "monthly_charges": 2}
    assert r.flag_counts()["unseen_category"] == {"plan": 4}
    assert r.flag_counts()["out_of_range"]["age"] == 3
    rejected = {x.row for x in r.rejects}
    assert not rejected & set(r.rows.tolist())
    df = r.to_pandas()
    assert list(df.columns) == ["row", "label", "probability_no", "probability_yes"]
    assert len(df) == r.n_scored and df["row"].is_monotonic_increasing
    assert r.to_arrow().num_rows == r.n_scored
    flagged = [rec for rec in r.to_records() if rec["flags"]]
    assert len(flagged) == r.n_flagged
    with pytest.raises(InvalidInputError, match=r"5 of 1000 row\(s\) rejected: row \d+"):
        r.raise_for_rejects()
    assert r.summary()["read"] == 1000


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 199), st.sampled_from(
    ["tenure", "plan", "monthly_charges", "age", "region"]),
    st.sampled_from([None, "", "x", -5, 1e9, True, "gold"])), max_size=30))
def test_read_equals_scored_plus_rejected(scorer, features, edits):
    rows = features.head(200).to_dict("records")
    for i, col, val in edits:
        rows[i][col] = val
    r = scorer.predict(rows)
    assert r.n_read == 200 == r.n_scored + r.n_rejected
    assert len(r.output.labels) == r.n_scored


def test_hooks_see_every_call_and_a_broken_hook_does_not_fail_scoring(scorer, features, caplog):
    seen = []
    s = Scorer(scorer.artifact)
    s.add_hook(lambda e: seen.append((e.model, e.result.n_scored, sorted(e.columns)[:1])))
    s.add_hook(lambda e: 1 / 0)
    s.predict(features.head(5))
    s.predict(features.iloc[0].to_dict())
    assert seen == [("churn", 5, ["age"]), ("churn", 1, ["age"])]
    assert "scoring hook" in caplog.text


class Fussy:
    """Raises on one kind of input, like a model with an unhandled category would."""

    classes_ = np.array([0, 1])

    def predict_proba(self, frame):
        if (frame["x"] == 13).any():
            raise ValueError("unlucky number")
        p = (frame["x"].to_numpy() % 2).astype(float)
        return np.column_stack([1 - p, p])

    def predict(self, frame):
        return self.predict_proba(frame).argmax(1)


def test_rows_the_model_fails_on_are_isolated_and_rejected(tmp_path):
    path = scorehouse.package(Fussy(), pd.DataFrame({"x": [x for x in range(20) if x != 13]}),
                              name="fussy",
                              path=tmp_path / "f.shz")
    s = scorehouse.load(path, trust=True)
    r = s.predict(pd.DataFrame({"x": [1, 2, 13, 4, 13, 5]}))
    assert r.rows.tolist() == [0, 1, 3, 5]
    assert r.output.labels.tolist() == [1, 0, 0, 1]
    assert [(x.row, x.column) for x in r.rejects] == [(2, None), (4, None)]
    assert "model error: ValueError: unlucky number" in r.rejects[0].reason
    one = s.predict({"x": 13})
    assert one.n_rejected == 1 and one.n_scored == 0
    with pytest.raises(ModelError, match="failed on every row"):
        s.predict(pd.DataFrame({"x": [13, 13, 13]}))
    with pytest.raises(ModelError, match="fails on 1 training row"):
        scorehouse.package(Fussy(), pd.DataFrame({"x": range(20)}), name="fussy",
                           path=tmp_path / "g.shz")


def test_empty_input_and_all_rejected_give_empty_predictions(scorer, features):
    r = scorer.predict(features.head(0))
    assert r.n_read == 0 and r.n_scored == 0 and r.output.probabilities.shape == (0, 2)
    r = scorer.predict([{"tenure": "x"}])
    assert r.n_rejected == 1 and r.to_pandas().empty


def test_scorer_describes_itself(scorer):
    assert "churn" in repr(scorer) and scorer.task == "binary"
    assert scorer.schema.names[0] == "tenure"


def test_artifact_layer_imports_on_its_own():
    # Reading an artifact needs none of the layers above it (schema, runtime, scorer,
    # registry, packaging, channels, CLI): a fresh interpreter that imports
    # scorehouse.artifact loads only the artifact package and the errors module.
    code = ("import sys, scorehouse.artifact as a; assert callable(a.read); "
            "print(' '.join(m for m in sys.modules if m.startswith('scorehouse.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = sorted({m.split(".")[1] for m in out.stdout.split()})
    assert loaded == ["artifact", "errors"]


def test_pick_keeps_what_the_whole_result_says(scorer, features):
    # A micro-batched request is answered with `pick(i)` of the batch's result: it must say
    # what the result says (an accepted parity difference, the columns check).
    whole = scorer.predict(features.head(3).to_dict("records"))
    whole.parity_accepted = "max difference 0.1 over tolerance 1e-06"
    one = whole.pick(1)
    assert one.rows.tolist() == [0] and one.n_read == 1
    assert one.output.labels.tolist() == whole.output.labels[1:2].tolist()
    assert one.parity_accepted == whole.parity_accepted
    assert one.column_check is whole.column_check and one.summary()["columns"]
