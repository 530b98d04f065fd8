"""A compiled graph that failed the parity gate runs only when the user accepts the difference,
on every surface that takes a runtime choice; then every answer and the log say so."""

from __future__ import annotations

import json
import logging

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import scorehouse
from conftest import Server
from scorehouse.errors import ParityError
from scorehouse.serve import ModelSet, create_app
from test_cli import CLI, assert_error_line, assert_json_error, ok

RECORD = {"a": 0.3, "b": -1.2}
#: What the refusal quotes: the recorded status, rows, figures, and the way out.
FIGURES = ("failed parity on 400 rows", "exceeds the tolerance 1e-300", "--accept-parity-difference")


@pytest.fixture(scope="module")
def failed(tmp_path_factory):
    """An artifact whose compiled graph failed the gate: a tolerance no float graph meets.

    (A real divergence, such as HistGradientBoosting's native categories, depends on what
    the converters can do; this one fails the gate whatever they learn.)
    """
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = (X.a + X.b > 0).astype(int)
    path = tmp_path_factory.mktemp("parity") / "lr.shz"
    scorehouse.package(LogisticRegression().fit(X, y), X.assign(y=y), name="lr", target="y",
                       path=path, tolerance=1e-300)
    manifest = scorehouse.artifact.read(path, trust=True).manifest.to_dict()
    assert manifest["compiled"]["status"] == "failed parity", manifest["compiled"]
    assert manifest["model"]["runtime"] == "native"
    return path


@pytest.fixture(scope="module")
def registry(tmp_path_factory, failed):
    home = tmp_path_factory.mktemp("parity-home")
    reg = scorehouse.Registry(f"sqlite:///{home / 'registry.db'}", str(home / "artifacts"))
    reg.register(failed)
    return reg


def _refused(e: pytest.ExceptionInfo) -> None:
    for f in FIGURES:
        assert f in str(e.value)


@pytest.mark.parametrize("how", ["file", "registry", "registry_object"])
def test_load_refuses_onnx_with_the_recorded_figures(failed, registry, how):
    load = {"file": lambda **kw: scorehouse.load(failed, trust=True, **kw),
            "registry": lambda **kw: scorehouse.load("lr/1", registry=registry, **kw),
            "registry_object": lambda **kw: registry.load("lr/1", **kw)}[how]
    with pytest.raises(ParityError) as e:
        load(runtime="onnx")
    _refused(e)
    assert e.value.exit_code == 2
    assert load().runtime.name == "native"  # the default never needed the graph
    assert load(runtime="native").predict(RECORD).parity_accepted is None


@pytest.mark.parametrize("how", ["file", "registry"])
def test_accepted_difference_runs_and_is_reported_and_logged(failed, registry, how, caplog):
    with caplog.at_level(logging.WARNING, "scorehouse.runtime"):
        scorer = (scorehouse.load(failed, trust=True, runtime="onnx",
                                  accept_parity_difference=True) if how == "file" else
                  registry.load("lr/1", runtime="onnx", accept_parity_difference=True))
    assert scorer.runtime.name == "onnx"
    assert any("failed the parity gate" in r.getMessage() and "1e-300" in r.getMessage()
               for r in caplog.records)
    for result in (scorer.predict(RECORD), scorer.predict([RECORD, RECORD])):
        assert result.runtime == "onnx" and "failed parity on 400 rows" in result.parity_accepted
        assert result.summary()["parity_accepted"] == result.parity_accepted


def test_an_onnx_graph_that_passed_needs_no_acceptance(tmp_path):
    rng = np.random.default_rng(1)
    X = pd.DataFrame({"a": rng.normal(size=200), "b": rng.normal(size=200)})
    y = (X.a > 0).astype(int)
    path = scorehouse.package(LogisticRegression().fit(X, y), X.assign(y=y), name="ok",
                              target="y", path=tmp_path / "ok.shz")
    scorer = scorehouse.load(path, trust=True, runtime="onnx")
    assert scorer.predict(RECORD).parity_accepted is None


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    return CLI(tmp_path_factory.mktemp("cli-home"), tmp_path_factory.mktemp("cli-cwd"))


def test_cli_refuses_on_every_command_and_accepts_with_the_option(cli, failed, tmp_path):
    src = tmp_path / "in.csv"
    pd.DataFrame([RECORD, RECORD]).to_csv(src, index=False)
    a = str(failed)
    runs = cli.many({
        "predict": ["predict", a, "--trust", "--runtime", "onnx", "--json", json.dumps(RECORD)],
        "score": ["score", a, str(src), str(tmp_path / "out.csv"), "--trust", "--runtime", "onnx"],
        "serve": ["serve", a, "--trust", "--runtime", "onnx", "--port", "1"],
        "stream": ["stream", a, "--trust", "--runtime", "onnx", "--key", "id",
                   "--source", "redis://127.0.0.1:1/0?stream=never-read"],
        "predict_ok": ["predict", a, "--trust", "--runtime", "onnx", "--accept-parity-difference",
                       "--json", json.dumps(RECORD)],
        "score_ok": ["score", a, str(src), str(tmp_path / "ok.csv"), "--trust", "--runtime",
                     "onnx", "--accept-parity-difference", "--quiet"],
    })
    assert_json_error(runs["predict"], 2, "ParityError", *FIGURES)  # predict answers in JSON
    for command in ("score", "serve", "stream"):
        assert_error_line(runs[command], 2, *FIGURES)
    answer = ok(runs["predict_ok"])
    assert answer["runtime"] == "onnx" and "1e-300" in answer["parity_accepted"]
    assert "failed the parity gate" in runs["predict_ok"].err  # the log line, on stderr
    ok(runs["score_ok"])
    run = json.loads((tmp_path / "ok.csv.run.json").read_text())
    assert run["model"]["runtime"] == "onnx" and "1e-300" in run["model"]["parity_accepted"]
    assert "failed the parity gate" in runs["score_ok"].err


def test_server_refuses_to_load_and_reports_an_accepted_difference(failed, registry):
    for refs, reg in (([str(failed)], None), (["lr/1"], registry)):
        with pytest.raises(ParityError) as e:
            ModelSet(refs, reg, runtime="onnx", trust=True).load_all()
        _refused(e)
    models = ModelSet([str(failed)], runtime="onnx", trust=True, accept_parity_difference=True)
    with Server(create_app(models, batching="off")) as s, httpx.Client(base_url=s.url) as http:
        body = http.post("/models/lr/predict", json=RECORD).json()
        assert body["runtime"] == "onnx" and "1e-300" in body["parity_accepted"]
        meta = http.get("/v2/models/lr").json()
        assert meta["platform"].endswith("-onnx")


def test_a_pinned_version_that_failed_the_gate_is_refused_by_the_server(failed, tmp_path):
    reg = scorehouse.Registry(f"sqlite:///{tmp_path / 'registry.db'}", str(tmp_path / "store"))
    reg.register(failed)  # lr/1: failed the gate
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=400), "b": rng.normal(size=400)})
    y = (X.a + X.b > 0).astype(int)
    reg.register(scorehouse.package(LogisticRegression().fit(X, y), X.assign(y=y), name="lr",
                                    target="y", path=tmp_path / "lr2.shz"))  # lr/2: passed
    models = ModelSet(["lr/2"], reg, runtime="onnx")
    with Server(create_app(models, batching="off")) as s, httpx.Client(base_url=s.url) as http:
        assert http.post("/models/lr/predict", json=RECORD).status_code == 200
        r = http.post("/models/lr/versions/1/predict", json=RECORD)
        assert 400 <= r.status_code < 500
        for f in FIGURES:
            assert f in r.json()["error"]


def test_spark_driver_refuses_and_executors_keep_the_drivers_choice(failed):
    from scorehouse.spark.score import score
    from scorehouse.spark.shipment import pack, unpack

    with pytest.raises(ParityError):
        score(None, str(failed), runtime="onnx", trust=True)  # refused before any Spark work
    accepted = scorehouse.load(failed, trust=True, runtime="onnx", accept_parity_difference=True)
    shipment = pack(accepted)
    assert shipment.accept_parity_difference
    executor = unpack(shipment)
    assert executor.runtime.name == "onnx" and executor.runtime.parity_accepted
    forged = type(shipment)(**{**shipment.__dict__, "accept_parity_difference": False,
                               "ref": "other-ref"})
    with pytest.raises(ParityError):
        unpack(forged)
