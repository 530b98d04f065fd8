"""The HTTP service, through a real uvicorn server on a local port and real HTTP clients."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import numpy as np
import pytest
import uvicorn

import scorehouse
from conftest import Server, free_port
from scorehouse.demo.data import TARGET
from scorehouse.serve import ModelSet, create_app

#: ONNX Runtime vs the native forest.
TOL = 1e-6


@pytest.fixture(scope="module")
def expected(churn_model, churn_data):
    return churn_model.predict_proba(churn_data.drop(columns=[TARGET]).head(20))[:, 1]


def test_mlflow_formats_give_the_native_scores(http, rows, expected):
    cols = list(rows[0])
    bodies = {
        "dataframe_split": {"dataframe_split": {"columns": cols,
                                                "data": [[r[c] for c in cols] for r in rows]}},
        "dataframe_records": {"dataframe_records": rows},
        "instances": {"instances": rows},
        "inputs": {"inputs": {c: [r[c] for r in rows] for c in cols}},
    }
    for kind, body in bodies.items():
        r = http.post("/invocations", json=body)
        assert r.status_code == 200, (kind, r.text)
        p = [row["probability_yes"] for row in r.json()["predictions"]]
        np.testing.assert_allclose(p, expected, atol=TOL, err_msg=kind)
    csv_body = ",".join(cols) + "\n" + "\n".join(
        ",".join("" if r[c] is None else str(r[c]) for c in cols) for r in rows)
    r = http.post("/models/churn/invocations", content=csv_body,
                  headers={"content-type": "text/csv"})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose([x["probability_yes"] for x in r.json()["predictions"]],
                               expected, atol=TOL)


def test_bad_requests_get_4xx_json_naming_the_problem(http, rows):
    bad = dict(rows[0], tenure="abc")
    cases = [
        ("/invocations", {"content": b"{not json", "headers": {"content-type": "application/json"}},
         400, "not valid JSON"),
        ("/invocations", {"json": {"something": []}}, 400, "exactly one of"),
        ("/invocations", {"json": {"dataframe_records": [bad]}}, 400, "column 'tenure'"),
        ("/models/nope/invocations", {"json": {"instances": rows}}, 404, "not served"),
        ("/v2/models/churn/infer", {"json": {"inputs": []}}, 400, "non-empty list"),
        ("/v2/models/churn/versions/abc/infer", {"json": {"inputs": []}}, 404, "not a number"),
        ("/models/churn/predict", {"json": [1, 2]}, 400, "send one record"),
        ("/models/churn/predict", {"json": bad}, 422, ""),
        ("/nope", {"json": {}}, 404, "no such endpoint"),
    ]
    for path, kw, status, fragment in cases:
        r = http.post(path, **kw)
        assert r.status_code == status, (path, r.status_code, r.text)
        body = r.json()
        text = body.get("error") or body.get("message") or str(body.get("rejects"))
        assert fragment in text, (path, body)
    r = http.get("/invocations")
    assert r.status_code == 405 and "error" in r.json()


def test_native_predict_returns_labels_probabilities_version_and_flags(http, rows, expected):
    r = http.post("/models/churn/predict", json=rows[0])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "churn" and body["version"] == 1
    assert body["predictions"][0]["probabilities"]["yes"] == pytest.approx(expected[0], abs=TOL)
    unseen = dict(rows[1], plan="platinum-plus")
    r = http.post("/models/churn/predict", json={"records": [unseen, dict(rows[2], tenure="x")]})
    body = r.json()
    assert r.status_code == 200 and body["predictions"][0]["flags"] == [
        {"kind": "unseen_category", "column": "plan"}]
    assert body["rejects"][0]["row"] == 1 and body["rejects"][0]["column"] == "tenure"
    pinned = http.post("/models/churn/versions/2/predict", json=rows[0]).json()
    assert pinned["version"] == 2


def test_v2_json_and_metadata(http, rows, expected):
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").json() == {"ready": True}
    meta = http.get("/v2/models/churn").json()
    assert meta["name"] == "churn" and {i["name"] for i in meta["inputs"]} == set(rows[0])
    assert [o["name"] for o in meta["outputs"]] == ["label", "probabilities"]
    types = {i["name"]: i["datatype"] for i in meta["inputs"]}
    inputs = [{"name": c, "shape": [len(rows), 1], "datatype": types[c],
               "data": [r[c] for r in rows]} for c in rows[0]]
    r = http.post("/v2/models/churn/infer", json={"id": "42", "inputs": inputs})
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert r.json()["id"] == "42" and out["probabilities"]["shape"] == [20, 2]
    p = np.array(out["probabilities"]["data"]).reshape(20, 2)[:, 1]
    np.testing.assert_allclose(p, expected, atol=TOL)


def test_v2_with_tritonclient_defaults_binary_in_and_out(server, rows, expected):
    import tritonclient.http as tc

    meta = httpx.get(f"{server.url}/v2/models/churn").json()
    client = tc.InferenceServerClient(server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("churn")
    inputs = []
    for spec in meta["inputs"]:
        c = spec["name"]
        values = [r[c] for r in rows]
        if spec["datatype"] == "BYTES":
            arr = np.array([b"" if v is None else str(v).encode() for v in values], dtype=object)
        else:
            arr = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            spec = dict(spec, datatype="FP64")
        t = tc.InferInput(c, [len(rows), 1], spec["datatype"])
        t.set_data_from_numpy(arr.reshape(-1, 1))  # binary_data=True by default
        inputs.append(t)
    result = client.infer("churn", inputs)  # no outputs named: all, as binary data
    np.testing.assert_allclose(result.as_numpy("probabilities")[:, 1], expected, atol=TOL)
    labels = result.as_numpy("label")
    assert labels.shape == (20,) and {x.decode() for x in labels} <= {"yes", "no"}


def test_one_row_scores_alike_in_every_protocol(server, http, rows, expected):
    """One row, as each kind of client sends it (V2: one tensor per column, the shape the
    one-row path reads; binary as tritonclient writes it), gets the same probability."""
    import tritonclient.http as tc

    i, row = next((i, r) for i, r in enumerate(rows) if None not in r.values())
    types = {t["name"]: t["datatype"] for t in http.get("/v2/models/churn").json()["inputs"]}
    tensors = []
    for c, v in row.items():
        t = tc.InferInput(c, [1, 1], types[c])
        t.set_data_from_numpy(np.array([[str(v).encode() if types[c] == "BYTES" else v]],
                                       dtype={"BYTES": object, "INT64": np.int64}.get(
                                           types[c], np.float64)))
        tensors.append(t)
    binary, length = tc.InferenceServerClient.generate_request_body(tensors)
    answers = {
        "mlflow": http.post("/invocations", json={"dataframe_records": [row]}),
        "native": http.post("/models/churn/predict", json=row),
        "v2 json": http.post("/v2/models/churn/infer", json={"inputs": [
            {"name": c, "shape": [1], "datatype": types[c], "data": [v]} for c, v in row.items()]}),
        "v2 binary": http.post("/v2/models/churn/infer", content=binary,
                               headers={"Inference-Header-Content-Length": str(length)}),
    }
    assert {k: r.status_code for k, r in answers.items()} == dict.fromkeys(answers, 200)
    got = {"mlflow": answers["mlflow"].json()["predictions"][0]["probability_yes"],
           "native": answers["native"].json()["predictions"][0]["probabilities"]["yes"],
           "v2 json": {o["name"]: o for o in answers["v2 json"].json()["outputs"]}
           ["probabilities"]["data"][1]}
    v2_binary = answers["v2 binary"]
    result = tc.InferResult.from_response_body(
        v2_binary.content, header_length=int(v2_binary.headers["Inference-Header-Content-Length"]))
    got["v2 binary"] = float(result.as_numpy("probabilities")[0, 1])
    for kind, p in got.items():
        assert p == pytest.approx(expected[i], abs=TOL), kind


def _samples(text: str, name: str) -> dict[frozenset, float]:
    """{labels: value} of one metric family in Prometheus' text format."""
    from prometheus_client.parser import text_string_to_metric_families

    return {frozenset(s.labels.items()): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == name}


def test_metrics_count_requests_rejects_and_flags(http, rows):
    before = http.get("/metrics").text
    http.post("/models/churn/predict", json=dict(rows[0], plan="platinum-plus"))
    http.post("/models/churn/predict", json=dict(rows[0], tenure="x"))
    # One row with three problems: one row rejected, three problems counted.
    http.post("/models/churn/predict", json={k: v for k, v in rows[0].items()
                                             if k not in ("tenure", "age", "plan")})
    text = http.get("/metrics").text
    assert 'scorehouse_request_seconds_bucket{le="0.0005",model="churn",route="predict",version="1"}' \
        in text
    served = {("route", "predict"), ("model", "churn"), ("version", "1")}
    ok = _samples(text, "scorehouse_requests_total")
    assert ok[frozenset({*served, ("status", "200")})] >= 1
    assert ok[frozenset({*served, ("status", "422")})] >= 2  # every row rejected
    rejected = _samples(text, "scorehouse_rows_rejected_total")
    was = _samples(before, "scorehouse_rows_rejected_total")
    key = frozenset({("model", "churn"), ("version", "1")})
    assert rejected[key] - was.get(key, 0) == 2
    problems = _samples(text, "scorehouse_input_problems_total")
    for column, kind in (("tenure", "invalid value"), ("tenure", "missing column"),
                         ("age", "missing column"), ("plan", "missing column")):
        assert problems[frozenset({("model", "churn"), ("column", column), ("kind", kind)})] >= 1
    assert 'scorehouse_flags_total{column="plan",kind="unseen_category",model="churn"}' in text
    assert 'scorehouse_model_version{model="churn"} 1.0' in text


def test_metrics_follow_prometheus_conventions(http, rows):
    http.post("/models/churn/predict", json=rows[0])
    text = http.get("/metrics").text
    assert "_created" not in text  # no *_created series
    for family in ("process_cpu_seconds_total", "process_resident_memory_bytes",
                   "process_open_fds", "python_gc_objects_collected_total"):
        assert family in text, family
    assert 'scorehouse_requests_in_flight{route="predict"} 0.0' in text
    # What loading the served version cost, for the operations team (resources per load).
    load = _samples(text, "scorehouse_model_load_seconds")
    memory = _samples(text, "scorehouse_model_load_memory_bytes")
    key = frozenset({("model", "churn"), ("version", "1")})
    assert 0 < load[key] < 60 and memory[key] >= 0
    # Every counter's samples end in _total.
    from prometheus_client.parser import text_string_to_metric_families

    for f in text_string_to_metric_families(text):
        if f.type == "counter" and f.name.startswith("scorehouse"):
            assert all(s.name.endswith("_total") for s in f.samples), f.name


def test_alias_move_swaps_the_model_without_failed_requests(registry_home, rows):
    models = ModelSet(["churn@production"], registry_home)
    app = create_app(models, watch=False)  # the test moves the alias and calls refresh()
    errors, versions = [], set()
    stop = threading.Event()
    with Server(app) as s:
        def load() -> None:
            with httpx.Client(base_url=s.url, timeout=10) as c:
                while not stop.is_set():
                    r = c.post("/models/churn/predict", json=rows[0])
                    if r.status_code != 200:
                        errors.append(r.text)
                    else:
                        versions.add(r.json()["version"])

        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        registry_home.promote("churn/2", "production")
        assert models.refresh() == [("churn", 1, 2)]
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join()
        registry_home.promote("churn/1", "production")
        text = httpx.get(f"{s.url}/metrics").text
    assert errors == [] and versions == {1, 2}
    swapped_in = frozenset({("model", "churn"), ("version", "2")})
    assert _samples(text, "scorehouse_model_load_seconds")[swapped_in] > 0


# --- operations ------------------------------------------------------------------------------


class SlowModels(ModelSet):
    """A ModelSet whose loading takes a second, to observe readiness before it ends."""

    def load_all(self) -> None:
        time.sleep(1.0)
        super().load_all()


def test_live_at_once_ready_after_loading(registry_home, rows):
    app = create_app(SlowModels(["churn@production"], registry_home), watch=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.02)
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/v2/health/live").status_code == 200
        assert httpx.get(f"{url}/v2/health/ready").status_code == 503
        r = httpx.post(f"{url}/models/churn/predict", json=rows[0])
        assert r.status_code == 503 and "loading" in r.json()["error"]
        deadline = time.time() + 30
        while httpx.get(f"{url}/v2/health/ready").status_code != 200:
            assert time.time() < deadline
            time.sleep(0.05)
        assert httpx.post(f"{url}/models/churn/predict", json=rows[0]).status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_api_keys_are_required_and_revocable_without_restart(registry_home, rows, tmp_path):
    from scorehouse.serve.auth import ApiKeys

    keys = tmp_path / "keys.txt"
    keys.write_text("# team keys\nalpha-key\nbeta-key\n")
    app = create_app(ModelSet(["churn@production"], registry_home), watch=False,
                     api_keys=ApiKeys(path=keys))
    with Server(app) as s:
        url = f"{s.url}/models/churn/predict"
        r = httpx.post(url, json=rows[0])
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert "missing API key" in r.json()["error"]
        bad = httpx.post(url, json=rows[0], headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401 and bad.json()["error"] == "invalid API key"
        good = {"Authorization": "Bearer beta-key"}
        assert httpx.post(url, json=rows[0], headers=good).status_code == 200
        keys.write_text("alpha-key\n")  # revoke beta
        assert httpx.post(url, json=rows[0], headers=good).status_code == 401
        assert httpx.post(url, json=rows[0],
                          headers={"Authorization": "Bearer alpha-key"}).status_code == 200
        assert httpx.get(f"{s.url}/v2/health/ready").status_code == 200  # probes stay open
        assert httpx.get(f"{s.url}/openapi.json").json()["security"] == [{"bearer": []}]


def test_size_limit_and_timeout(registry_home, rows):
    app = create_app(ModelSet(["churn@production"], registry_home), watch=False,
                     max_body=40_000, timeout=1e-6)
    with Server(app) as s:
        big = httpx.post(f"{s.url}/models/churn/predict", json=rows * 100)
        assert big.status_code == 413 and "over the limit" in big.json()["error"]
        slow = httpx.post(f"{s.url}/models/churn/predict", json=rows * 4)  # 80 rows: threaded
        assert slow.status_code == 504 and "request timeout" in slow.json()["error"]


def test_micro_batching_groups_concurrent_single_records(registry_home, rows, expected):
    app = create_app(ModelSet(["churn@production"], registry_home), watch=False,
                     batching="on")
    results: dict[int, float] = {}
    with Server(app) as s:
        def call(i: int) -> None:
            with httpx.Client(base_url=s.url) as c:
                for _ in range(5):
                    r = c.post("/models/churn/predict", json=rows[i])
                    assert r.status_code == 200, r.text
                    results[i] = r.json()["predictions"][0]["probabilities"]["yes"]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        text = httpx.get(f"{s.url}/metrics").text
    np.testing.assert_allclose([results[i] for i in range(16)], expected[:16], atol=TOL)
    count = _metric(text, "scorehouse_batch_size_count")
    assert count < 80 and _metric(text, "scorehouse_batch_size_sum") == 80  # some batched
    assert 'scorehouse_batching_enabled{model="churn"} 1.0' in text


def _metric(text: str, name: str) -> float:
    return float(next(line.split()[-1] for line in text.splitlines() if line.startswith(name)))


def test_several_models_on_one_server(registry_home, churn_model, churn_data, tmp_path, rows):
    other = scorehouse.package(churn_model, churn_data, name="retention", target=TARGET,
                               path=tmp_path / "retention.shz")
    models = ModelSet(["churn@production", str(other)], registry_home, trust=True)
    with Server(create_app(models, watch=False)) as s:
        r = httpx.post(f"{s.url}/invocations", json={"instances": rows[:2]})
        assert r.status_code == 400 and "several models" in r.json()["message"]
        for name in ("churn", "retention"):
            r = httpx.post(f"{s.url}/models/{name}/invocations", json={"instances": rows[:2]})
            assert r.status_code == 200 and len(r.json()["predictions"]) == 2
        assert httpx.get(f"{s.url}/v2/models/retention/ready").json()["ready"] is True


# The schemathesis run (positive and negative, with and without API keys) is in
# tests/test_serve_limits.py.


def test_cli_serve_finishes_in_flight_requests_on_sigterm(churn_artifact, churn_data, tmp_path):
    import os
    import shutil
    import signal
    import subprocess
    import sysconfig

    script = shutil.which("scorehouse", path=sysconfig.get_path("scripts"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREHOUSE_")}
    env["SCOREHOUSE_HOME"] = str(tmp_path)
    bad = subprocess.run([script, "serve", "nope@production"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 3 and bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    port = free_port()
    p = subprocess.Popen([script, "serve", str(churn_artifact), "--trust", "--port", str(port),
                          "--max-body", str(200 * 1024 * 1024), "--timeout", "120"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline and p.poll() is None, p.stderr.read().decode()
            time.sleep(0.1)
        X = churn_data.drop(columns=[TARGET])
        big = X.sample(100_000, replace=True, random_state=0)
        body = {"dataframe_split": json.loads(big.to_json(orient="split", index=False))}
        answer: dict = {}

        def call() -> None:
            answer["r"] = httpx.post(f"{url}/invocations", json=body, timeout=120)

        t = threading.Thread(target=call)
        t.start()
        time.sleep(1.0)  # the request is being read or scored
        p.send_signal(signal.SIGTERM)
        t.join(timeout=120)
        assert answer["r"].status_code == 200 and len(answer["r"].json()["predictions"]) == 100_000
        # uvicorn re-raises the signal once it has drained, as servers conventionally do.
        assert p.wait(timeout=60) in (0, -signal.SIGTERM)
        assert b"Traceback" not in p.stderr.read()
    finally:
        if p.poll() is None:
            p.kill()


def test_the_watcher_follows_an_alias_move(registry_home):
    swaps = []
    models = ModelSet(["churn@production"], registry_home,
                      on_swap=lambda *a: swaps.append(a))
    models.load_all()
    models.watch(every=0.1)
    try:
        registry_home.promote("churn/2", "production")
        deadline = time.time() + 20
        # The watcher switches the scorer, then reports the swap: wait for both.
        while models.get("churn").version != 2 or not swaps:
            assert time.time() < deadline, "the alias move was not picked up"
            time.sleep(0.05)
        assert swaps == [("churn", 1, 2)]
    finally:
        models.close()
        registry_home.promote("churn/1", "production")


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_serve_on_a_busy_port_is_one_line_and_exit_1(churn_artifact, tmp_path, workers):
    import os
    import shutil
    import subprocess
    import sysconfig

    script = shutil.which("scorehouse", path=sysconfig.get_path("scripts"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREHOUSE_")}
    env["SCOREHOUSE_HOME"] = str(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([script, "serve", str(churn_artifact), "--trust", "--port",
                               str(port), "--workers", str(workers)], env=env,
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot listen on 127.0.0.1:{port}")
    assert "--port" in lines[0] and "serving" not in done.stderr
