"""Drift sketches, drift statistics and input quality against the training baseline."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.spatial.distance import jensenshannon

from scorehouse.demo import churn_frame
from scorehouse.demo.data import TARGET
from scorehouse.monitor import (
    CategorySketch,
    DriftOptions,
    DriftState,
    Method,
    NumericSketch,
    baseline_reference,
    dataset_drift,
    empty_state,
    exact_numeric_drift,
    input_quality,
    training_baseline,
    window_reference,
)
from scorehouse.monitor.drift import chi_squared, js_distance, ks_binned, psi


@pytest.fixture
def watched(scorer):
    """The churn scorer with an empty drift state on its baseline, fed by its hook."""
    baseline = training_baseline(scorer)
    state = empty_state(baseline, scorer.schema)
    scorer.add_hook(state.observe)
    return scorer, state, baseline_reference(baseline, scorer.schema)


def fresh(n=20_000, seed=5):
    """New rows from the training distribution (another seed of the demo generator)."""
    return churn_frame(n, seed=seed).drop(columns=[TARGET])


def shift_numeric(f):
    f = f.copy()
    f["monthly_charges"] = f["monthly_charges"] * 1.4
    return f


def change_mix(f):
    f = f.copy()
    rng = np.random.default_rng(0)
    f["contract"] = rng.choice(["month-to-month", "one-year", "two-year"], len(f),
                               p=[0.15, 0.25, 0.6])
    return f


def new_category(f):
    f = f.copy()
    f.loc[f.index[: len(f) // 4], "region"] = "overseas"
    return f


@pytest.mark.parametrize("n", [2_000, 20_000])
def test_no_drift_on_the_training_distribution(watched, n):
    scorer, state, ref = watched
    scorer.predict(fresh(n))
    result = dataset_drift(state, ref)
    assert result.drifted_columns == []
    assert not result.drifted
    assert result.n_current == n
    assert {c.column for c in result.columns} >= set(scorer.schema.names)


@pytest.mark.parametrize(("change", "column"), [
    (shift_numeric, "monthly_charges"), (change_mix, "contract"), (new_category, "region")])
def test_drift_is_found_in_the_changed_column_only(watched, change, column):
    scorer, state, ref = watched
    scorer.predict(change(fresh()))
    result = dataset_drift(state, ref)
    assert result.drifted_columns == [column]
    c = result.column(column)
    assert c.drifted and c.statistic >= c.threshold and c.effect_size > 0.1
    assert c.p_adjusted < 1e-6 and c.psi > 0.1
    assert not result.drifted  # 1 of 12 columns is below the 0.5 share
    json.dumps(result.to_dict())


def test_dataset_drift_when_half_the_columns_drift(watched):
    scorer, state, ref = watched
    f = fresh()
    for col in ["tenure", "monthly_charges", "total_charges", "age", "data_usage_gb",
                "days_since_login"]:
        f[col] = f[col] * 2 + 10
    scorer.predict(f)
    result = dataset_drift(state, ref)
    assert result.share == 0.5 and result.drifted


def test_single_rows_are_buffered_and_count_the_same(scorer):
    baseline = training_baseline(scorer)
    rows, whole = empty_state(baseline, scorer.schema), empty_state(baseline, scorer.schema)
    f = fresh(1500)
    whole.update({k: f[k].to_numpy() for k in f.columns})
    scorer.add_hook(rows.observe)
    for record in f.astype(object).where(f.notna(), None).to_dict("records"):
        scorer.predict(record)
    rows.flush()
    for name in scorer.schema.names:
        a, b = rows.sketches[name], whole.sketches[name]
        assert np.array_equal(a.counts, b.counts) and a.nulls == b.nulls, name
    assert rows.read == 1500 and rows.sketches["prediction.label"].n == 1500


@pytest.mark.parametrize("parts", [2, 3, 7])
def test_merge_of_split_sketches_is_the_sketch_of_the_whole(scorer, parts):
    baseline = training_baseline(scorer)
    f = new_category(shift_numeric(fresh(6000)))
    f.loc[f.index[::5], "plan"] = [f"plan-{i}" for i in range(len(f.index[::5]))]  # > cap
    whole = empty_state(baseline, scorer.schema)
    whole.update({k: f[k].to_numpy() for k in f.columns})
    states = []
    for chunk in np.array_split(np.arange(len(f)), parts):
        s = empty_state(baseline, scorer.schema)
        s.update({k: pa.array(f[k].to_numpy()[chunk], from_pandas=True)  # Arrow input
                      for k in f.columns})
        s.count_rows(len(chunk), 1, {"age": 2})
        states.append(DriftState.from_json(json.loads(json.dumps(s.to_json()))))
    left = states[0]
    for s in states[1:]:
        left = left.merge(s)
    right = states[-1]
    for s in reversed(states[:-1]):
        right = s.merge(right)
    for merged in (left, right):
        assert merged.to_json()["sketches"] == whole.to_json()["sketches"]
        assert (merged.read, merged.rejected, merged.absent) == (6000, parts, {"age": 2 * parts})
    plan = whole.sketches["plan"]
    assert isinstance(plan, CategorySketch) and plan.n_unseen == len(f.index[::5])
    assert len(plan.unseen) == plan.cap + 1 and "__other__" in plan.unseen


def test_numeric_sketch_cells_follow_numpy_histogram():
    s = NumericSketch.empty([0.0, 1.0, 2.0, 4.0])
    s.update(np.array([-1.0, 0.0, 0.5, 1.0, 2.0, 3.9, 4.0, 4.1, np.nan, np.inf]))
    assert s.counts.tolist() == [1, 2, 1, 3, 1]  # below, [0,1), [1,2), [2,4], above
    assert s.nulls == 2 and (s.low, s.high) == (-1.0, 4.1)
    inside = np.array([0.0, 0.5, 1.0, 2.0, 3.9, 4.0])
    assert s.counts[1:-1].tolist() == np.histogram(inside, [0.0, 1.0, 2.0, 4.0])[0].tolist()


def test_category_sketch_counts_booleans_and_unseen():
    s = CategorySketch.empty(["False", "True"], boolean=True)
    s.update(np.array([True, None, False, True], dtype=object))
    s.update(np.array([True, False]))
    assert s.counts.tolist() == [2, 3] and s.nulls == 1
    c = CategorySketch.empty(["a", "b"], cap=1)
    c.update(["a", "z", "y", None, "y"])
    assert c.counts.tolist() == [1, 0] and c.unseen == {"y": 2, "__other__": 1}


def test_psi_and_js_match_hand_computed_values():
    ref, cur = np.array([50.0, 50.0]), np.array([25.0, 75.0])
    # PSI = (0.25-0.5) ln(0.25/0.5) + (0.75-0.5) ln(0.75/0.5)
    assert psi(ref, cur) == pytest.approx(0.25 * np.log(2) + 0.25 * np.log(1.5))
    # JS: M = (0.375, 0.625); divergence = mean of the KL divergences to M, natural log.
    m = np.array([0.375, 0.625])
    kl_ref = float((np.array([0.5, 0.5]) * np.log(np.array([0.5, 0.5]) / m)).sum())
    kl_cur = float((np.array([0.25, 0.75]) * np.log(np.array([0.25, 0.75]) / m)).sum())
    js = np.sqrt((kl_ref + kl_cur) / 2)
    assert js_distance(ref, cur) == pytest.approx(js) == pytest.approx(jensenshannon(ref, cur))
    assert psi(ref, ref) == 0.0


def test_psi_floors_empty_cells():
    # A category absent in the reference: its share is taken as 1e-4, not 0.
    value = psi(np.array([100.0, 0.0]), np.array([90.0, 10.0]))
    expected = (0.9 - 1) * np.log(0.9) + (0.1 - 1e-4) * np.log(0.1 / 1e-4)
    assert value == pytest.approx(expected)


def test_binned_ks_and_chi_squared_against_scipy_on_raw_values():
    from scipy import stats

    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 5, 4000), rng.integers(0, 5, 3000) + (rng.random(3000) < 0.3)
    ca, cb = np.bincount(a, minlength=6), np.bincount(b, minlength=6)
    d, p = ks_binned(ca.astype(float), cb.astype(float))
    assert d == pytest.approx(stats.ks_2samp(a, b).statistic)
    p_chi, v = chi_squared(ca.astype(float), cb.astype(float))
    assert p_chi == pytest.approx(stats.chi2_contingency(np.vstack([ca, cb])[:, :6],
                                                         correction=False).pvalue)
    assert 0 < v < 1 and p < 0.05


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cells", [2, 3, 11, 40])
def test_chi_squared_equals_scipys_contingency_test_and_cramers_v(seed, cells):
    from scipy import stats

    rng = np.random.default_rng(seed)
    # Reference counts as a baseline keeps them (fractional after rescaling) and current
    # counts with empty cells on either side.
    ref = rng.random(cells) * rng.integers(1, 5000)
    cur = rng.integers(0, 300, cells).astype(float)
    ref[rng.random(cells) < 0.15] = 0.0
    cur[rng.random(cells) < 0.15] = 0.0
    table = np.vstack([ref, cur])
    table = table[:, table.sum(axis=0) > 0]
    p, v = chi_squared(ref, cur)
    if table.shape[1] < 2 or cur.sum() == 0 or ref.sum() == 0:
        return  # nothing to test (column_drift never asks)
    assert p == pytest.approx(stats.chi2_contingency(table, correction=False).pvalue,
                              rel=1e-12, abs=1e-300)
    rounded = np.round(table)
    rounded = rounded[:, rounded.sum(axis=0) > 0].astype(np.int64)
    assert v == pytest.approx(stats.contingency.association(rounded, method="cramer"),
                              rel=1e-12)


def test_benjamini_hochberg_keeps_a_borderline_column_from_drifting():
    # Four numeric features on three bins, 1500 rows each; only 'a' moved, a little:
    # its KS p-value is just under 0.05, and four tests at once lift it above.
    def state(moved):
        out = DriftState({k: NumericSketch.empty([0.0, 1.0, 2.0, 3.0]) for k in "abcd"})
        for k, sketch in out.sketches.items():
            counts = [425, 500, 575] if moved and k == "a" else [500, 500, 500]
            sketch.update(np.repeat([0.5, 1.5, 2.5], counts))
        return out

    ref = window_reference(state(False))
    ks = DriftOptions(num_method=Method.KS)
    raw = dataset_drift(state(True), ref, DriftOptions(num_method=Method.KS, correction=None))
    corrected = dataset_drift(state(True), ref, ks)
    assert raw.column("a").p_value < 0.05 and raw.drifted_columns == ["a"]
    assert corrected.column("a").p_adjusted == pytest.approx(4 * raw.column("a").p_value)
    assert corrected.drifted_columns == []


def test_a_reference_window_or_another_version_can_be_the_reference(watched, scorer):
    scorer_, state, ref = watched
    scorer_.predict(fresh())
    last_week = empty_state(training_baseline(scorer), scorer.schema)
    last_week.update({k: v.to_numpy() for k, v in shift_numeric(fresh(seed=8)).items()})
    result = dataset_drift(state, window_reference(last_week))
    assert result.drifted_columns == ["monthly_charges"]
    other = training_baseline(scorer)
    other["inputs"]["age"]["histogram"]["edges"] = list(range(18, 90, 7))
    other["inputs"]["age"]["histogram"]["fractions"] = [0.1] * 10
    shifted = baseline_reference(other, scorer.schema, "version 2")
    assert dataset_drift(state, shifted).column("age").approximate


def test_exact_numeric_drift_on_raw_values():
    rng = np.random.default_rng(2)
    out = exact_numeric_drift(rng.normal(0, 1, 5000), rng.normal(0.5, 1, 5000))
    assert out["p_value"] < 1e-10 and out["wasserstein"] == pytest.approx(0.5, abs=0.06)


def test_quality_rates_on_nulls_unseen_out_of_range_rejects_and_absent(watched):
    scorer, state, ref = watched
    f = fresh(1000)
    f.loc[f.index[:100], "plan"] = "diamond"          # 10% unseen
    f.loc[f.index[:50], "monthly_charges"] = 1000.0   # 5% above the training max
    f.loc[f.index[:200], "age"] = None                # 20% null
    f = f.astype({"tenure": object})
    f.loc[f.index[:10], "tenure"] = "unknown"         # rejected by the schema
    scorer.predict(f)
    scorer.predict(fresh(100).drop(columns=["region"]), columns="lenient")
    q = input_quality(state, ref)
    assert q.read == 1100 and q.rejected == 10
    assert q.rate("reject_rate") == pytest.approx(10 / 1100)
    assert q.rate("unseen_rate", "plan") == pytest.approx(90 / 1090)
    m = next(c for c in scorer.schema.columns if c.name == "monthly_charges")
    charges = pd.concat([f["monthly_charges"][10:], fresh(100)["monthly_charges"]])
    outside = int(((charges < m.min) | (charges > m.max)).sum())
    assert outside >= 40
    assert q.rate("out_of_range_rate", "monthly_charges") == pytest.approx(outside / 1090)
    assert q.rate("null_rate", "age") == pytest.approx(190 / 1090)
    assert q.rate("absent_rate", "region") == pytest.approx(100 / 1090)
    assert q.rate("null_rate", "region") == 0.0
    breached = {(c.measure, c.column) for c in q.breached}
    # 10 rejects of 1100 rows (0.9%) stay under the 1% limit.
    assert breached == {("unseen_rate", "plan"), ("null_rate", "age"),
                        ("out_of_range_rate", "monthly_charges"), ("absent_rate", "region")}
    json.dumps(q.to_dict())


def test_training_baseline_is_required(scorer):
    from scorehouse.errors import ArtifactError

    with pytest.raises(ArtifactError, match="no training baseline"):
        training_baseline({"name": "x"})
    assert training_baseline(scorer.artifact)["rows"] == 3000
