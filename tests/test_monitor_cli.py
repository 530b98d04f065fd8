"""`scorehouse monitor log / quality / drift / feedback` on a real prediction log: a model
of each family scores training-like rows, then rows with two columns shifted, through a
`PredictionLogger` into a Parquet log; late labels arrive for both; the CLI reads it all."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

import scorehouse
from conftest import run_cli
from scorehouse.demo import churn_frame, train_pipeline
from scorehouse.demo.data import TARGET
from scorehouse.monitor import WindowSpec, decay, monitored, parse_time
from scorehouse.monitor.feedback import expected_calibration_error
from scorehouse.monitor.log import Channel, PredictionLogger, read_log

N = 4000            # rows per phase (clean, then shifted)
REJECTED = 40       # clean rows with an unreadable tenure
UNSEEN = 80         # clean rows with a plan training never saw
SHIFTED = ["age", "monthly_charges"]
#: Metrics are the same sklearn calls on the same rows: equal up to float summation order.
TOL = 1e-9


def _regressor(frame):
    """A linear model of data usage (the regression family)."""
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline

    from scorehouse.demo.run import preprocessor

    X = frame.drop(columns=["data_usage_gb", TARGET])
    return Pipeline([("features", preprocessor(X, dense=True)),
                     ("linear", LinearRegression())]).fit(X, frame["data_usage_gb"])


FAMILIES = {"classification": ("churn", TARGET), "regression": ("usage", "data_usage_gb")}


def _phases(target: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(clean rows with a few rejects and unseen plans, rows with SHIFTED shifted), both
    with their true target."""
    clean = churn_frame(N, seed=31)
    clean["tenure"] = clean["tenure"].astype(object)
    clean.loc[clean.index[:REJECTED], "tenure"] = "abc"
    clean.loc[clean.index[REJECTED:REJECTED + UNSEEN], "plan"] = "diamond"
    shifted = churn_frame(N, seed=32)
    shifted["monthly_charges"] = shifted["monthly_charges"] * 1.5
    shifted["age"] = shifted["age"] + 30
    return clean, shifted


@pytest.fixture(scope="module", params=list(FAMILIES))
def logged(request, tmp_path_factory):
    """(family, root CLI options, model name, log folder, labelled frame in log order)."""
    family = request.param
    name, target = FAMILIES[family]
    home = tmp_path_factory.mktemp(f"monitor-{family}")
    train = churn_frame(3000, seed=3)
    model = train_pipeline(train) if family == "classification" else _regressor(train)
    if family == "regression":
        train = train.drop(columns=[TARGET])
    path = scorehouse.package(model, train, name=name, target=target, path=home / f"{name}.shz")
    reg = scorehouse.Registry(f"sqlite:///{home / 'registry.db'}", str(home / "artifacts"))
    reg.register(path)
    scorer = reg.load(f"{name}/1")
    log = home / "predictions"
    with PredictionLogger(str(log)) as logger:
        logger.attach(scorer, Channel.SCORE)
        for frame in _phases(target):
            scorer.predict(frame.drop(columns=[TARGET, target], errors="ignore"))
    root = ["--registry", f"sqlite:///{home / 'registry.db'}", "--artifacts",
            str(home / "artifacts")]
    truth = pd.concat(_phases(target), ignore_index=True)[target]
    return family, root, name, log, truth


def cli(logged, capsys, *args):
    _, root, _, log, _ = logged
    return run_cli(*root, "monitor", *args, "--source", str(log), capsys=capsys)


def test_log_lists_recent_rows(logged, capsys):
    _, _, name, _, _ = logged
    code, out, _ = cli(logged, capsys, "log", f"{name}/1", "--limit", "5", "--json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 5 and rows[0]["time"] >= rows[-1]["time"]
    assert {r["channel"] for r in rows} == {"score"} and rows[0]["version"] == 1
    code, out, _ = cli(logged, capsys, "log", f"{name}/1", "--limit", "3")
    assert code == 0 and "3 most recent logged rows" in out


def test_drift_finds_the_shifted_columns_in_the_shifted_window_only(logged, capsys):
    _, _, name, _, _ = logged
    code, out, _ = cli(logged, capsys, "drift", f"{name}/1", "--window", f"{N}rows", "--json")
    assert code == 0
    clean, shifted = json.loads(out)["windows"]
    assert clean["drift"]["drifted_columns"] == []
    assert shifted["drift"]["drifted_columns"] == SHIFTED
    assert shifted["drift"]["n_current"] == N and clean["drift"]["n_current"] == N - REJECTED
    # Text: a table per window, and exit 0 although columns drifted (`check` gates).
    code, out, _ = cli(logged, capsys, "drift", f"{name}/1", "--window", f"{N}rows")
    assert code == 0 and "no data set drift: 2 of" in out and "age, monthly_charges" in out


def test_drift_against_a_window_of_the_log_itself(logged, capsys):
    """`--reference window:START..END`: the clean phase's rows as the reference; the clean
    window then matches it exactly and the shifted one drifts in the shifted columns."""
    _, _, name, log, _ = logged
    times = sorted(set(read_log(log).column("time").to_pylist()))
    clean_at, shifted_at = times[0], times[-1]
    span = f"window:{(clean_at - pd.Timedelta('1s')).isoformat()}..{shifted_at.isoformat()}"
    code, out, _ = cli(logged, capsys, "drift", f"{name}/1", "--window", f"{N}rows",
                       "--reference", span, "--json")
    assert code == 0, out
    clean, shifted = json.loads(out)["windows"]
    assert clean["drift"]["reference"].startswith("logged window ")
    assert clean["drift"]["drifted_columns"] == []
    assert set(SHIFTED) <= set(shifted["drift"]["drifted_columns"])
    distances = [c["statistic"] for c in clean["drift"]["columns"]
                 if c["method"] in ("psi", "jensenshannon", "wasserstein")]
    assert distances and all(d == pytest.approx(0, abs=1e-9) for d in distances)


def test_quality_rates_per_window(logged, capsys):
    _, _, name, _, _ = logged
    code, out, _ = cli(logged, capsys, "quality", f"{name}/1", "--window", f"{N}rows",
                       "--json")
    assert code == 0
    clean, shifted = json.loads(out)["windows"]
    checks = {(c["measure"], c["column"]): c for c in clean["quality"]["checks"]}
    assert checks["reject_rate", None]["value"] == pytest.approx(REJECTED / N)
    assert checks["unseen_rate", "plan"]["count"] == UNSEEN
    assert checks["unseen_rate", "plan"]["value"] == pytest.approx(UNSEEN / (N - REJECTED))
    assert clean["traffic"] == {**clean["traffic"], "rows": N, "rejected": REJECTED,
                                "calls": 1}
    assert clean["traffic"]["latency_p50_ms"] > 0
    breached = set(shifted["quality"]["breached"])
    assert {"out_of_range_rate:age", "out_of_range_rate:monthly_charges"} <= breached
    assert "reject_rate:*" not in breached


def _labels(logged, tmp_path, suffix):
    """The true targets of every logged row, with repeats, strangers and a hole."""
    family, _, name, log, truth = logged
    ids = read_log(log, model=name).column("id").to_pylist()
    assert len(ids) == 2 * N
    labels = pd.DataFrame({"rid": ids, "y": truth.to_numpy()})
    flip = "no" if labels.loc[7, "y"] == "yes" else "yes"
    conflicting = flip if family == "classification" else labels.loc[7, "y"] + 1.0
    extra = pd.DataFrame({"rid": [ids[5], "stranger-1", "stranger-2", "stranger-3",
                                  "no-target", ids[7]],
                          "y": [labels.loc[5, "y"], *labels.loc[:2, "y"], None, conflicting]})
    labels = pd.concat([labels, extra], ignore_index=True)
    path = tmp_path / f"labels{suffix}"
    if suffix == ".csv":
        labels.to_csv(path, index=False)
    else:
        labels.to_parquet(path, index=False)
    return path, labels


def _expected(logged, labels):
    """The joined rows computed here with pandas: last label per id, scored rows only."""
    _, _, name, log, _ = logged
    table = read_log(log, model=name).to_pandas()
    last = labels.dropna().drop_duplicates("rid", keep="last")
    joined = table.merge(last, left_on="id", right_on="rid")
    return joined[joined["reject"].isna()]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_feedback_metrics_match_sklearn_and_count_every_label(logged, capsys, tmp_path, suffix):
    family, _, name, _, _ = logged
    path, labels = _labels(logged, tmp_path, suffix)
    code, out, _ = cli(logged, capsys, "feedback", f"{name}/1", str(path), "--id", "rid",
                       "--target", "y", "--window", "all", "--json")
    assert code == 0
    report = json.loads(out)
    a = report["labels"]
    assert (a["read"], a["unmatched"], a["null_target"], a["duplicate_rows"],
            a["conflicting_ids"], a["matched_rejected"]) == (2 * N + 6, 3, 1, 2, 1, REJECTED)
    assert a["unmatched_ids"] == ["stranger-1", "stranger-2", "stranger-3"]
    assert a["read"] == a["null_id"] + a["null_target"] + a["duplicate_rows"] \
        + a["matched"] + a["unmatched"]
    (window,) = report["windows"]
    rows = _expected(logged, labels)
    assert window["rows"] == len(rows) == 2 * N - REJECTED
    if family == "classification":
        y, p = rows["y"].astype(str), rows["prediction.probability_yes"].to_numpy()
        want = {"accuracy": skm.accuracy_score(y, rows["prediction.label"]),
                "roc_auc": skm.roc_auc_score(y == "yes", p),
                "log_loss": skm.log_loss(y, rows[["prediction.probability_no",
                                                  "prediction.probability_yes"]], labels=["no", "yes"]),
                "ece": _ece_by_hand((y == "yes").to_numpy(), p)}
        assert set(report["reference"]) == {"accuracy", "log_loss", "roc_auc"}
    else:
        y, v = rows["y"].astype(float), rows["prediction.value"]
        want = {"rmse": skm.root_mean_squared_error(y, v), "mae": skm.mean_absolute_error(y, v)}
        assert report["reference"]["rmse"]["source"] == "training_rmse"
    for metric, value in want.items():
        assert window[metric] == pytest.approx(value, abs=TOL), metric


def _ece_by_hand(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE written out: 10 equal-width bins, the last one closed (as sklearn bins)."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    return sum(abs(y[which == b].mean() - p[which == b].mean()) * (which == b).mean()
               for b in range(bins) if (which == b).any())


def test_feedback_windows_and_text(logged, capsys, tmp_path):
    _, _, name, _, _ = logged
    path, _ = _labels(logged, tmp_path, ".parquet")
    code, out, _ = cli(logged, capsys, "feedback", f"{name}/1", str(path), "--id", "rid",
                       "--target", "y", "--window", f"{N}rows")
    assert code == 0 and "3 unmatched" in out and "stranger-1" in out
    assert "packaging figures: training_" in out
    report = decay(monitored(f"{name}/1", registry=scorehouse.Registry(*_where(logged))),
                   path, id_column="rid", target="y", window=WindowSpec.parse(f"{N}rows"),
                   source=logged[3])
    assert [w.rows for w in report.windows] == [N, N - REJECTED]


def _where(logged):
    root = logged[1]
    return root[1], root[3]


def test_ece_is_zero_for_a_calibrated_forecast():
    p = np.repeat([0.1, 0.5, 0.9], 1000)
    y = np.concatenate([np.arange(1000) < k for k in (100, 500, 900)]).astype(int)
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(y, np.full(3000, 0.5)) == pytest.approx(0.0, abs=1e-12)
    assert expected_calibration_error(1 - y, p) == pytest.approx(0.8 * 2 / 3, abs=1e-12)


@pytest.mark.parametrize(("args", "exit_code", "needle"), [
    (["feedback", "{name}/1", "{labels}", "--id", "nope", "--target", "y"], 4, "no column 'nope'"),
    (["feedback", "{name}/1", "{missing}", "--id", "rid", "--target", "y"], 3, "no such labels"),
    (["drift", "nosuch/1"], 3, "nosuch"),
    (["quality", "{name}/1", "--source", "{empty}"], 3, "no logged predictions"),
    (["drift", "{name}/1", "--window", "fortnight"], 2, "window 'fortnight'"),
    (["drift", "{name}/1", "--reference", "window:7d"], 2, "is not START..END"),
    (["drift", "{name}/1", "--reference", "window:1d..7d"], 2, "not before its end"),
    (["drift", "{name}/1", "--reference", "window:2001-01-01..2001-01-02"], 3,
     "no logged predictions"),
    (["log", "{name}/1", "--since", "yesterday-ish"], 2, "time 'yesterday-ish'"),
])
@pytest.mark.parametrize("as_json", [False, True])
def test_bad_inputs_are_one_line_errors(logged, capsys, tmp_path, args, exit_code, needle,
                                        as_json):
    _, root, name, log, _ = logged
    path, _ = _labels(logged, tmp_path, ".parquet")
    (tmp_path / "empty").mkdir()
    fill = {"name": name, "labels": str(path), "missing": str(tmp_path / "gone.parquet"),
            "empty": str(tmp_path / "empty")}
    argv = [a.format(**fill) for a in args]
    if "--source" not in argv:
        argv += ["--source", str(log)]
    code, out, err = run_cli(*root, "monitor", *argv, *(["--json"] if as_json else []),
                             capsys=capsys)
    assert code == exit_code
    if as_json:
        error = json.loads(out)
        assert error["exit_code"] == exit_code and needle in error["error"]
    else:
        assert err.startswith("error:") and len(err.strip().splitlines()) == 1, err
        assert needle in err


def test_since_accepts_ages_and_iso_times():
    assert parse_time("2026-11-30T08:00").tzinfo is not None
    now = parse_time("2026-11-30T08:00+00:00")
    assert parse_time("6h", now) == parse_time("2026-11-30T02:00+00:00")
