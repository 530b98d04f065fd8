"""The prediction log and live drift attached to every channel: serve (each protocol),
predict, score, stream; ids per channel; /metrics drift; no row lost on SIGTERM."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from _stream import REDUCER, redis_events, redis_profiles
from conftest import CliServer, Server, run_cli
from scorehouse.demo.data import TARGET
from scorehouse.monitor import LogOptions, read_log


def _logged(folder, n: int, timeout: float = 20.0):
    """The log's rows once at least `n` are readable (closed files only)."""
    deadline = time.time() + timeout
    while True:
        table = read_log(folder)
        if table.num_rows >= n or time.time() > deadline:
            return table
        time.sleep(0.1)


def _by_id(table) -> dict[str, dict]:
    return {r["id"]: r for r in table.to_pylist()}


@pytest.fixture(scope="module")
def logged_server(registry_home, tmp_path_factory):
    """churn@production served in this process, logging to a Parquet folder whose files
    close within a fraction of a second (so a test reads them while it runs)."""
    from scorehouse.serve import ModelSet, create_app

    folder = tmp_path_factory.mktemp("predlog")
    options = LogOptions.parse(str(folder), flush=0.05, rotate_seconds=0.1)
    with Server(create_app(ModelSet(["churn@production"], registry_home), log=options,
                           batching="off", drift=True)) as s:
        s.folder = folder
        yield s


def _request(protocol: str, rows: list[dict], request_id: str | None):
    """(path, JSON body, headers) of a scoring request in `protocol`."""
    headers = {"X-Request-Id": request_id} if request_id else {}
    if protocol == "mlflow":
        return "/invocations", {"dataframe_records": rows}, headers
    if protocol == "native":
        return "/models/churn/predict", {"records": rows}, headers
    columns = list(rows[0])
    inputs = [{"name": c, "shape": [len(rows)], "datatype": "FP64" if isinstance(
        rows[0][c], float) else "INT64" if isinstance(rows[0][c], int) else "BYTES",
        "data": [r[c] for r in rows]} for c in columns]
    return "/v2/models/churn/infer", {"inputs": inputs}, headers


@pytest.mark.parametrize("protocol", ["mlflow", "v2", "native"])
@pytest.mark.parametrize("given", [True, False], ids=["header-id", "generated-id"])
def test_serve_logs_every_row_under_the_id_it_answers(logged_server, rows, protocol, given):
    full = [r for r in rows if all(v is not None for v in r.values())][:3]
    wanted = f"req-{protocol}-{given}" if given else None
    for batch in (full[:1], full):
        path, body, headers = _request(protocol, batch, wanted)
        r = httpx.post(logged_server.url + path, json=body, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        rid = r.headers["x-request-id"]
        assert rid == wanted if given else len(rid) == 36
        if protocol == "v2":
            assert r.json()["id"] == rid
        elif protocol == "native":
            assert r.json()["request_id"] == rid
        ids = [rid] if len(batch) == 1 else [f"{rid}/{i}" for i in range(len(batch))]
        deadline = time.time() + 20
        while not set(ids) <= set(_by_id(read_log(logged_server.folder))):
            assert time.time() < deadline, f"{ids} not logged"
            time.sleep(0.1)
        logged = _by_id(read_log(logged_server.folder))
        for i, row_id in enumerate(ids):
            got = logged[row_id]
            assert (got["model"], got["version"], got["channel"]) == ("churn", 1, "serve")
            assert got["input.tenure"] == batch[i]["tenure"] and got["reject"] is None
            assert 0 <= got["prediction.probability_yes"] <= 1


def test_native_body_id_and_rejected_rows(logged_server, rows):
    bad = dict(rows[0], tenure="not a number")
    r = httpx.post(logged_server.url + "/models/churn/predict",
                   json={"id": "body-7", "records": [rows[0], bad]}, timeout=30)
    assert r.status_code == 200 and r.json()["request_id"] == "body-7"
    deadline = time.time() + 20
    while "body-7/1" not in _by_id(read_log(logged_server.folder)):
        assert time.time() < deadline
        time.sleep(0.1)
    logged = _by_id(read_log(logged_server.folder))
    assert "tenure" in logged["body-7/1"]["reject"]
    assert logged["body-7/0"]["reject"] is None
    # A logging server froze the heap it started with (see ScoringService.prepare): the
    # log's queued calls then trigger cheap full collections only.
    import gc
    assert gc.get_freeze_count() > 0


def test_metrics_show_drift_after_shifted_rows(logged_server, churn_data):
    X = churn_data.drop(columns=[TARGET]).head(300)
    shifted = X.assign(tenure=X["tenure"] + 200, monthly_charges=X["monthly_charges"] * 5)
    records = shifted.astype(object).where(shifted.notna(), None).to_dict("records")
    r = httpx.post(logged_server.url + "/models/churn/predict", json=records, timeout=30)
    assert r.status_code == 200
    text = httpx.get(logged_server.url + "/metrics").text
    lines = {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
             for line in text.splitlines() if line.startswith("scorehouse_")}
    key = 'scorehouse_feature_drift{feature="tenure",method="wasserstein",model="churn",' \
          'version="1"}'
    assert lines[key] > 0.1, [k for k in lines if "drift" in k][:10]
    assert lines['scorehouse_feature_drifted{feature="tenure",model="churn",version="1"}'] == 1
    assert lines['scorehouse_feature_drifted{feature="plan",model="churn",version="1"}'] == 0
    assert 'scorehouse_input_quality{feature="tenure",measure="out_of_range_rate",' \
           'model="churn",version="1"}' in lines


def test_score_logs_every_row_with_rejects_and_run_ids(churn_artifact, churn_data, tmp_path,
                                                       capsys):
    X = churn_data.drop(columns=[TARGET]).head(50).copy()
    X["tenure"] = X["tenure"].astype(object)
    X.loc[3, "tenure"] = "oops"
    X.insert(0, "cid", [f"C{i:03d}" for i in range(50)])
    X.to_csv(tmp_path / "in.csv", index=False)
    folder = tmp_path / "log"
    for key in (None, "cid"):
        args = ["score", str(churn_artifact), str(tmp_path / "in.csv"), str(tmp_path / "o.csv"),
                "--log-to", str(folder), "--max-reject-rate", "1", "--json", "-q", "--trust"]
        code, out, err = run_cli(*args, *(["--key", key] if key else []), capsys=capsys)
        assert code == 0, err
        run_id = json.loads(out)["run_id"]
        logged = _by_id(read_log(folder))
        ids = [f"C{i:03d}" for i in range(50)] if key else [f"{run_id}:{i}" for i in range(50)]
        assert set(ids) <= set(logged)
        assert "tenure" in logged[ids[3]]["reject"] and logged[ids[4]]["reject"] is None
        assert {logged[i]["channel"] for i in ids} == {"score"}


def test_predict_logs_under_the_request_id_it_prints(churn_artifact, rows, tmp_path, capsys):
    folder = tmp_path / "log"
    code, out, err = run_cli("predict", str(churn_artifact), "--trust", "--json", json.dumps(rows[:2]),
                             "--log-to", str(folder), capsys=capsys)
    assert code == 0, err
    rid = json.loads(out)["request_id"]
    logged = _by_id(read_log(folder))
    assert {f"{rid}/0", f"{rid}/1"} <= set(logged)
    assert logged[f"{rid}/0"]["channel"] == "predict"


def test_stream_logs_each_scored_event_under_its_id(r, redis_url, scorer, churn_data, tmp_path):
    from scorehouse.stream import WorkerOptions, open_worker

    redis_profiles(r, churn_data, 10)
    redis_events(r, 60, 10)
    event_ids = {e[0].decode() for e in r.xrange("events")}
    folder = tmp_path / "log"
    worker = open_worker(scorer, WorkerOptions(
        f"{redis_url}?stream=events", "customer_id", reducer=json.dumps(REDUCER),
        log=LogOptions.parse(str(folder))))
    stats = worker.run(until_idle=True)
    worker.close()
    assert stats.scored == 60
    logged = read_log(folder)
    assert set(logged.column("id").to_pylist()) == event_ids
    assert set(logged.column("channel").to_pylist()) == {"stream"}
    window = worker.live.windows()[0]
    assert window[2].read >= 60


def test_sigterm_of_a_serving_process_loses_no_logged_row(churn_artifact, rows, tmp_path):
    folder = tmp_path / "log"
    server = CliServer([str(churn_artifact), "--trust", "--log-to", str(folder)],
                       tmp_path / "home")
    try:
        server.wait_ready()
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for i in range(200):
                ok = c.post("/models/churn/predict", json=rows[i % 10],
                            headers={"X-Request-Id": f"t{i}"})
                assert ok.status_code == 200
    finally:
        err = server.stop()  # SIGTERM: uvicorn's graceful shutdown closes the log
    assert server.proc.returncode in (0, -15), err  # uvicorn re-raises SIGTERM once shut down
    ids = set(read_log(folder).column("id").to_pylist())
    assert ids == {f"t{i}" for i in range(200)}
