"""The HTTP service, through a real uvicorn server on a local port and real HTTP clients."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import numpy as np
import pytest
import uvicorn

import scorehouse
from scorehouse.demo.data import TARGET
from scorehouse.serve import ModelSet, create_app

#: ONNX Runtime vs the native forest.
TOL = 1e-6


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """uvicorn serving an app in a background thread."""

    def __init__(self, app):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.time() + 60
        while not self.server.started:
            assert time.time() < deadline, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="module")
def registry_home(tmp_path_factory, churn_artifact):
    """A registry holding churn/1 (production) and churn/2."""
    home = tmp_path_factory.mktemp("serve-home")
    reg = scorehouse.Registry(f"sqlite:///{home / 'registry.db'}", str(home / "artifacts"))
    reg.register(churn_artifact)
    reg.register(churn_artifact)
    reg.promote("churn/1", "production")
    return reg


@pytest.fixture(scope="module")
def server(registry_home):
    models = ModelSet(["churn@production"], registry_home)
    with Server(create_app(models)) as s:
        yield s


@pytest.fixture
def http(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def rows(churn_data):
    X = churn_data.drop(columns=[TARGET]).head(20)
    return X.astype(object).where(X.notna(), None).to_dict("records")


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


def test_metrics_count_requests_rejects_and_flags(http, rows):
    http.post("/models/churn/predict", json=dict(rows[0], plan="platinum-plus"))
    http.post("/models/churn/predict", json=dict(rows[0], tenure="x"))
    text = http.get("/metrics").text
    assert 'scorehouse_request_seconds_bucket{le="0.0005",route="predict"}' in text
    assert 'scorehouse_rows_rejected_total{column="tenure",model="churn"}' in text
    assert 'scorehouse_flags_total{column="plan",kind="unseen_category",model="churn"}' in text
    assert 'scorehouse_model_version{model="churn"} 1.0' in text


def test_alias_move_swaps_the_model_without_failed_requests(registry_home, rows):
    models = ModelSet(["churn@production"], registry_home)
    app = create_app(models)
    errors, versions = [], set()
    stop = threading.Event()
    with Server(app) as s:
        models.close()  # drive the swap from the test, not the 2 s watcher
        models._stop.clear()

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
    assert errors == [] and versions == {1, 2}
