"""`scorehouse deploy compare` on a synthetic prediction log of a deployment whose every
role's row of a request shares the request's id: a champion, a challenger that agrees on
90% of the labels and scores 0.03 higher, a sharper shadow, a canary whose input drifts in
window 3, a few fallback and default answers, a decoy; late labels for three requests in
four. Figures are checked against hand computations and scikit-learn/scipy; the HTML
section is opened in a real browser."""

from __future__ import annotations

import datetime as dt
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn import metrics as skm

from conftest import offline_page, run_cli
from scorehouse.errors import NotFoundError, UsageError
from scorehouse.evaluation.canary import Finding
from scorehouse.evaluation.compare import compare_deployment
from scorehouse.evaluation.paired import (
    EXACT_BELOW,
    _weights,
    mcnemar,
    weighted_auc,
    weighted_mean,
    weighted_rmse,
)
from scorehouse.monitor import Labels
from scorehouse.monitor.log import Channel, ParquetSink, PredictionRecord, to_batch
from scorehouse.reports.comparison import build_comparison_report

N_PER, WINDOWS, SHIFTED = 500, 4, 3
N = N_PER * WINDOWS
SHIFT = 0.03              # the challenger's true mean shift of P(yes)
B_FLIPS, C_FLIPS = 120, 80  # champion yes -> challenger no, and the reverse: 90% agree
FALLBACKS, DEFAULTS = 10, 5  # extra requests answered by a fallback, by the default
CHAMPION, CHALLENGER = "champion churn/1", "challenger churn/2"
SHADOW, CANARY = "shadow churn/3", "canary churn/0"


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _rows(ids, times, role, model, version, p, labels, x):
    return [PredictionRecord(i, t, model, version, "native", Channel.SERVE, {"x": float(v)},
                             {"label": str(lab), "probability_no": float(1 - q),
                              "probability_yes": float(q)}, deployment="churn-api", role=role)
            for i, t, q, lab, v in zip(ids, times, p, labels, x, strict=True)]


def _synthetic(seed: int = 7) -> dict:
    """Every request scored by the champion, the challenger, the shadow and the canary
    (as a batch scoring every role would log them), archived by the decoy; then requests
    answered by a fallback or the default (the canary scored those too)."""
    rng = np.random.default_rng(seed)
    now = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    start = now - dt.timedelta(hours=WINDOWS + 1)
    window = np.repeat(np.arange(1, WINDOWS + 1), N_PER)
    x = rng.normal(0, 1, N) + np.where(window == SHIFTED, 1.5, 0.0)  # the input moves
    z = x - 0.5
    truth = np.where(rng.random(N) < _sigmoid(z), "yes", "no")
    champion = 0.05 + 0.88 * _sigmoid(z + rng.normal(0, 1.0, N))  # within [0.05, 0.93]
    challenger = champion + SHIFT + rng.normal(0, 0.004, N)  # no clipping needed
    shadow = _sigmoid(1.6 * z + rng.normal(0, 0.2, N))  # sharper and better
    canary = _sigmoid(0.8 * x)  # an old model of the input alone
    la = np.where(champion >= 0.5, "yes", "no")
    lb = la.copy()
    lb[rng.choice(np.flatnonzero(la == "yes"), B_FLIPS, replace=False)] = "no"
    lb[rng.choice(np.flatnonzero(la == "no"), C_FLIPS, replace=False)] = "yes"
    ids = [f"req-{i:05d}" for i in range(N)]
    times = [start + dt.timedelta(hours=int(window[i]) - 1, seconds=3 * (i % N_PER))
             for i in range(N)]
    recs = _rows(ids, times, "champion", "churn", 1, champion, la, x)
    recs += _rows(ids, times, "challenger", "churn", 2, challenger, lb, x)
    recs += _rows(ids, times, "shadow", "churn", 3, shadow, np.where(shadow >= .5, "yes", "no"), x)
    recs += _rows(ids, times, "canary", "churn", 0, canary, np.where(canary >= .5, "yes", "no"), x)
    recs += [PredictionRecord(i, t, "churn-api-decoy", None, "", Channel.SERVE, {"x": float(v)},
                              deployment="churn-api", role="decoy")
             for i, t, v in zip(ids, times, x, strict=True)]
    extra = [f"late-{i}" for i in range(FALLBACKS + DEFAULTS)]
    at = [times[-1] + dt.timedelta(seconds=1 + i) for i in range(len(extra))]
    p = np.full(len(extra), 0.4)
    recs += _rows(extra[:FALLBACKS], at[:FALLBACKS], "fallback", "churn", 9, p[:FALLBACKS],
                  ["no"] * FALLBACKS, np.zeros(FALLBACKS))
    recs += [PredictionRecord(i, t, "default", None, "rule", Channel.SERVE, {"x": 0.0},
                              {"label": "no"}, deployment="churn-api", role="default")
             for i, t in zip(extra[FALLBACKS:], at[FALLBACKS:], strict=True)]
    recs += _rows(extra, at, "canary", "churn", 0, p, ["no"] * len(extra), np.zeros(len(extra)))
    return {"records": recs, "ids": ids, "truth": truth, "champion": champion,
            "challenger": challenger, "shadow": shadow, "la": la, "lb": lb}


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """(the synthetic data, the log folder, the labels file): labels for 3 requests in 4."""
    data = _synthetic()
    folder = tmp_path_factory.mktemp("deploy-compare")
    sink = ParquetSink(folder / "log")
    sink.write(to_batch(data["records"]))
    sink.write(to_batch([PredictionRecord(  # another deployment's row: never read
        "other-1", dt.datetime.now(dt.timezone.utc), "churn", 1, "native", Channel.SERVE,
        {"x": 0.0}, {"label": "no"}, deployment="other-api", role="champion")]))
    sink.close()
    keep = np.arange(N) % 4 != 0
    labels = pd.DataFrame({"id": np.asarray(data["ids"])[keep], "y": data["truth"][keep]})
    labels.to_parquet(folder / "labels.parquet")
    data["labelled"] = keep
    return data, folder / "log", folder / "labels.parquet"


@pytest.fixture(scope="module")
def result(logged):
    _, log, labels = logged
    return compare_deployment("churn-api", source=log, labels=Labels(labels, "id", "y"))


# --- the statistics against hand computations -------------------------------------------

def test_mcnemar_is_exact_below_25_discordant_and_chi_squared_above():
    b, c = 3, 10  # 13 discordant: exact, 2 * P[Binomial(13, 1/2) <= 3]
    hand = 2 * sum(math.comb(13, k) for k in range(4)) / 2 ** 13
    exact = mcnemar(b, c)
    assert exact.method == "exact binomial" and exact.p_value == pytest.approx(hand, rel=1e-12)
    assert b + c < EXACT_BELOW and mcnemar(0, 0).p_value == 1.0
    big = mcnemar(40, 20)  # chi-squared(1) survival is erfc(sqrt(x / 2))
    x2 = (abs(40 - 20) - 1) ** 2 / 60
    assert big.statistic == pytest.approx(x2)
    assert big.p_value == pytest.approx(math.erfc(math.sqrt(x2 / 2)), rel=1e-12)


def test_replicated_metrics_are_sklearns_with_sample_weight():
    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 2, n)
    score = np.round(rng.random(n) * 0.6 + 0.3 * y, 2)  # rounded: ties count half
    w = _weights(rng, 5, n)
    right = (score >= 0.5) == y
    for i, weights in enumerate(w):
        assert weighted_auc(y, score)(w)[i] == pytest.approx(
            skm.roc_auc_score(y, score, sample_weight=weights), abs=1e-12)
        assert weighted_mean(right)(w)[i] == pytest.approx(
            skm.accuracy_score(y, score >= 0.5, sample_weight=weights), abs=1e-12)
        terms = -np.log(np.where(y == 1, score, 1 - score))
        assert weighted_mean(terms)(w)[i] == pytest.approx(skm.log_loss(
            y, np.column_stack([1 - score, score]), sample_weight=weights), abs=1e-12)
        assert weighted_rmse(score - y)(w)[i] == pytest.approx(skm.root_mean_squared_error(
            y, score, sample_weight=weights), abs=1e-12)


# --- the synthetic deployment --------------------------------------------------------------

def test_challenger_agreement_and_mcnemar_from_the_discordant_counts(logged, result):
    data = logged[0]
    pair = result.pair(CHAMPION, CHALLENGER)
    assert pair.shared == N and pair.agreement.rate == pytest.approx(0.9)
    a_yes, b_yes = data["la"] == "yes", data["lb"] == "yes"
    b, c = int((a_yes & ~b_yes).sum()), int((~a_yes & b_yes).sum())
    assert (b, c) == (B_FLIPS, C_FLIPS)
    got = pair.agreement.positive
    assert (got.b, got.c, got.method) == (b, c, "chi-squared, continuity corrected")
    x2 = (abs(b - c) - 1) ** 2 / (b + c)
    assert got.p_value == pytest.approx(math.erfc(math.sqrt(x2 / 2)), rel=1e-12)
    # With labels: McNemar of "is right" on the labelled requests.
    keep, truth = data["labelled"], data["truth"]
    ra, rb = data["la"][keep] == truth[keep], data["lb"][keep] == truth[keep]
    right = pair.agreement.correct
    assert (right.b, right.c) == (int((ra & ~rb).sum()), int((~ra & rb).sum()))


def test_paired_difference_interval_covers_the_true_shift(logged, result):
    data = logged[0]
    d = result.pair(CHAMPION, CHALLENGER).difference
    assert d.rows == N and d.low < SHIFT < d.high and d.high - d.low < 0.001
    # The Student t interval on paired differences is scipy's ttest_rel interval.
    ci = stats.ttest_rel(data["challenger"], data["champion"]).confidence_interval(0.95)
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high), rel=1e-9)
    q = result.pair(CHAMPION, CHALLENGER).quantiles
    assert q.paired and q.a == pytest.approx(tuple(np.quantile(data["champion"], q.levels)))
    assert all(abs(g - SHIFT) < 0.015 for g in q.differences[2:-2])  # the deciles


def test_canary_says_the_input_changed_in_window_3_only(result):
    (canary,) = result.canaries
    assert canary.canary == CANARY and canary.reference == "the canary's first window"
    findings = [w.finding for w in canary.windows]
    assert len(findings) == WINDOWS and findings[0] is Finding.REFERENCE
    assert findings[SHIFTED - 1] is Finding.INPUT_CHANGED
    assert "the input changed" in canary.windows[SHIFTED - 1].verdict
    for w in canary.windows[1:]:
        if w.index != SHIFTED:  # steady input: the sharper shadow is what differs
            assert w.finding is Finding.MODEL_DIFFERS and SHADOW in w.verdict
            assert CHALLENGER not in w.verdict  # a 0.03 shift is not a new behaviour
            assert "the new model behaves differently" in w.verdict


def test_late_labels_give_each_models_metrics_with_a_paired_bootstrap(logged, result):
    data = logged[0]
    keep, truth = data["labelled"], data["truth"]
    perf = result.pair(CHAMPION, SHADOW).performance
    assert perf.paired and perf.rows_a == perf.rows_b == keep.sum()
    assert (perf.replicates, perf.seed, perf.confidence) == (1000, 0, 0.95)
    auc = perf.metric("roc_auc")
    y = truth[keep] == "yes"
    assert auc.a == pytest.approx(skm.roc_auc_score(y, data["champion"][keep]))
    assert auc.b == pytest.approx(skm.roc_auc_score(y, data["shadow"][keep]))
    assert 0 < auc.low < auc.difference < auc.high and auc.better == SHADOW
    loss = perf.metric("log_loss")
    assert loss.high < 0 and loss.better == SHADOW  # lower is better
    assert result.labels.read == result.labels.matched == keep.sum()


def test_counts_roles_fallbacks_and_pairs(result):
    c = result.counts
    assert c.requests == N + FALLBACKS + DEFAULTS and c.unanswered == 0
    assert c.answers == {"champion": N, "challenger": N, "fallback": FALLBACKS,
                         "default": DEFAULTS}
    assert c.fallbacks == FALLBACKS + DEFAULTS
    assert c.off_path == 3 * N + FALLBACKS + DEFAULTS  # shadow, canary, decoy
    names = [a.name for a in result.arms]
    assert names[:2] == [CHAMPION, CHALLENGER] and names[-1] == "decoy churn-api-decoy"
    assert result.arms[-1].task is None  # the decoy scores nothing: in no pair
    default = result.pair("default default", CANARY)
    assert default.shared == DEFAULTS and default.difference is None  # no probability
    assert default.agreement.rate == 1.0


def test_an_ab_split_is_compared_unpaired(tmp_path):
    """A regressor's champion and challenger on different requests: distributions and
    performance each on the model's own requests (independent bootstrap)."""
    rng = np.random.default_rng(5)
    now = dt.datetime.now(dt.timezone.utc)
    truth = rng.normal(10, 2, 400)
    recs, labels = [], []
    for i, y in enumerate(truth):
        role, version, noise = ("challenger", 2, 0.5) if i % 4 == 0 else ("champion", 1, 2.0)
        recs.append(PredictionRecord(f"r{i}", now, "usage", version, "native", Channel.SCORE,
                                     {}, {"value": float(y + rng.normal(0, noise))},
                                     deployment="usage-api", role=role))
        labels.append((f"r{i}", y))
    sink = ParquetSink(tmp_path / "log")
    sink.write(to_batch(recs))
    sink.close()
    pd.DataFrame(labels, columns=["id", "usage"]).to_csv(tmp_path / "labels.csv", index=False)
    got = compare_deployment("usage-api", source=tmp_path / "log", replicates=200,
                             labels=Labels(tmp_path / "labels.csv", "id", "usage"))
    assert got.task == "regression" and got.score == "value" and not got.canaries
    pair = got.pair("champion usage/1", "challenger usage/2")
    assert pair.shared == 0 and pair.difference is None and pair.agreement is None
    assert not pair.quantiles.paired and (pair.quantiles.rows_a, pair.quantiles.rows_b) == (300, 100)
    perf = pair.performance
    assert not perf.paired and (perf.rows_a, perf.rows_b) == (300, 100)
    rmse = perf.metric("rmse")
    assert rmse.high < 0 and rmse.better == "challenger usage/2"
    assert "no canary" in " ".join(got.notes)


def test_errors_no_rows_and_a_bad_positive_class(logged):
    _, log, _ = logged
    with pytest.raises(NotFoundError, match="no logged rows of deployment 'nope'"):
        compare_deployment("nope", source=log)
    with pytest.raises(UsageError, match="maybe"):
        compare_deployment("churn-api", source=log, positive="maybe")


def test_canary_against_its_training_baseline_through_the_logger(tmp_path, capsys):
    """A registered model as champion and canary, each call logged by `PredictionLogger`
    under the requests' ids; the third window's inputs move. Against the canary's training
    baseline (from the registry) the first two windows are stable, the third changed."""
    from sklearn.linear_model import LogisticRegression

    import scorehouse
    from scorehouse.monitor import PredictionLogger

    def frame(n, seed, shift=0.0):
        rng = np.random.default_rng(seed)
        return pd.DataFrame({"x1": rng.normal(shift, 1, n), "x2": rng.normal(0, 1, n)})

    train = frame(2000, 1)
    noise = np.random.default_rng(2).normal(0, 1, len(train))
    y = np.where(train.x1 + 0.5 * train.x2 + noise > 0, "yes", "no")
    path = scorehouse.package(LogisticRegression().fit(train, y), train, name="lr",
                              path=tmp_path / "lr.shz", compile=False)
    root = ["--registry", f"sqlite:///{tmp_path / 'registry.db'}", "--artifacts",
            str(tmp_path / "artifacts")]
    reg = scorehouse.Registry(root[1], root[3])
    reg.register(path)
    scorer = reg.load("lr/1")
    call = {}
    with PredictionLogger(str(tmp_path / "log")) as logger:
        scorer.add_hook(lambda e: logger.log(e, ids=call["ids"], deployment="lr-api",
                                             role=call["role"]))
        for k, f in enumerate([frame(1000, 11), frame(1000, 12), frame(1000, 13, 1.0)]):
            for role in ("champion", "canary"):
                call.update(role=role, ids=[f"w{k}-{i}" for i in range(len(f))])
                scorer.predict(f)
    got = compare_deployment("lr-api", source=tmp_path / "log", window="1000rows",
                             canary_reference="training", registry=reg)
    (canary,) = got.canaries
    assert canary.reference == "training baseline of lr/1"
    assert [w.finding for w in canary.windows] == [Finding.STABLE, Finding.STABLE,
                                                   Finding.INPUT_CHANGED]
    assert got.pair("champion lr/1", "canary lr/1").agreement.rate == 1.0  # the same model
    code, out, _ = run_cli(*root, "deploy", "compare", "lr-api", "--source",
                           str(tmp_path / "log"), "--window", "1000rows", "--against",
                           "training", "--json", capsys=capsys)
    windows = json.loads(out)["canaries"][0]["windows"]
    assert code == 0 and windows[2]["finding"] == "input_changed"
    assert windows[2]["drift"]["method"] == "wasserstein"  # > 1000 training rows


# --- the CLI and the report --------------------------------------------------------------

def test_cli_json_text_and_not_found(logged, capsys):
    _, log, labels = logged
    code, out, _ = run_cli("deploy", "compare", "churn-api", "--source", str(log), "--since",
                           "24h", "--labels", str(labels), "--id", "id", "--target", "y",
                           "--json", capsys=capsys)
    data = json.loads(out)
    assert code == 0 and data["deployment"] == "churn-api" and data["score"] == "probability_yes"
    pair = next(p for p in data["pairs"] if (p["a"], p["b"]) == (CHAMPION, CHALLENGER))
    assert pair["agreement"]["rate"] == pytest.approx(0.9)
    assert pair["performance"]["metrics"][0]["metric"] == "roc_auc"
    findings = [w["finding"] for w in data["canaries"][0]["windows"]]
    assert findings[SHIFTED - 1] == "input_changed"
    code, out, _ = run_cli("deploy", "compare", "churn-api", "--source", str(log), capsys=capsys)
    assert code == 0 and "window 3: the input changed" in out and "McNemar" in out
    code, out, err = run_cli("deploy", "compare", "churn-api", "--source", str(log),
                             "--until", "2000-01-01", capsys=capsys)
    assert code == 3 and out == "" and len(err.strip().splitlines()) == 1
    assert "no logged rows of deployment 'churn-api'" in err


def test_comparison_section_renders_in_chromium(browser, result, tmp_path):
    path = tmp_path / "compare.html"
    html = build_comparison_report(result, path)
    assert "<script" not in html and "default-src 'none'" in html
    opened = offline_page(browser, path)
    page = opened.page
    section = page.locator("section#deployment-comparison")
    assert section.count() == 1 and section.locator("h2").inner_text() == "Deployment comparison"
    panels = section.locator(".pair")
    assert panels.count() == len([p for p in result.pairs if p.quantiles])
    for i in range(panels.count()):  # a drawn quantile-quantile plot per pair
        box = panels.nth(i).locator("svg").bounding_box()
        assert box and box["width"] > 150 and box["height"] > 150
    canary = section.locator(".canary")
    box = canary.locator("svg").bounding_box()
    assert canary.count() == 1 and box and box["width"] > 400 and box["height"] > 100
    findings = canary.locator("li").evaluate_all("els => els.map(e => e.dataset.finding)")
    assert findings[SHIFTED - 1] == "input_changed"
    assert "the input changed" in canary.locator("li").nth(SHIFTED - 1).inner_text()
    assert "better" in section.locator("table.performance").inner_text()
    page.close()
    assert opened.left == [] and opened.dialogs == []
