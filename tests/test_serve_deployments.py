"""`scorehouse serve --deployment NAME` (issue 22): deployments on every protocol through
a real uvicorn server and real HTTP clients: who answered (body and headers), fallbacks and
the default, one decision per request, bad input, metrics, every role's row in the
prediction log, and changes in the registry taken under load with zero failed requests.

The models are tiny Python callables packaged as artifacts (closures, so that cloudpickle
carries them by value to a `scorehouse serve` process): `m` versions 1..3 answer 2x, 3x and
4x; `boom` raises and `slow` sleeps 0.5 s for a negative x; `shadow` and `canary` answer 10x
and 100x.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import scorehouse
from conftest import SCRIPT, CliServer, Server, cli_env
from scorehouse.monitor.log import LogOptions, read_log
from scorehouse.registry import Registry
from scorehouse.routing import DeploymentSpec, Router, registered
from scorehouse.routing.flags import SpecChanges
from scorehouse.serve import DeploymentSet, ModelSet, create_app

# --- models and the registry ---------------------------------------------------------------


def _times(k: float):
    def model(frame):
        return frame["x"].to_numpy() * k
    return model


def _failing(how: str):
    def model(frame):
        import time as t

        if (frame["x"] < 0).any():
            if how == "slow":
                t.sleep(0.5)  # far past the deadlines used here
            else:
                raise RuntimeError("boom on a negative x")
        return frame["x"].to_numpy() * 5.0
    return model


SPECS = [
    {"name": "api", "champion": "m@production", "shadows": ["shadow/1"],
     "canaries": ["canary/1"], "decoy": True},
    {"name": "safe", "champion": "slow/1", "fallbacks": ["boom/1"], "deadline_ms": 50,
     "default": {"rule": "0.5 if x < -5 else 0.25"}},
    {"name": "fb", "champion": "slow/1", "fallbacks": ["m/1"], "deadline_ms": 50},
    {"name": "bare", "champion": "boom/1"},
    {"name": "split", "champion": "m/1", "challengers": [{"model": "m/2", "weight": 0.5}],
     "sticky_by": "customer_id", "route_by": {"field": "tenant", "models": {"t3": "m/3"}}},
]


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    """A registry at its default place in a home folder: m/1..3 (m@production = m/1), boom,
    slow, shadow, canary, and the deployments of SPECS."""
    home = tmp_path_factory.mktemp("deploy-serve")
    train = pd.DataFrame({"x": np.arange(20, dtype=float)})
    reg = Registry(f"sqlite:///{home / 'registry.db'}", str(home / "artifacts"))
    models = [("m", _times(2.0)), ("m", _times(3.0)), ("m", _times(4.0)),
              ("boom", _failing("boom")), ("slow", _failing("slow")),
              ("shadow", _times(10.0)), ("canary", _times(100.0))]
    for i, (name, fn) in enumerate(models):
        path = scorehouse.package(fn, train, name=name, path=home / f"{name}-{i}.shz",
                                  compile=False)
        reg.register(path)
    reg.promote("m/1", "production")
    for spec in SPECS:
        registered.create(reg, DeploymentSpec.from_dict(spec))
    reg.close()
    return home


@pytest.fixture
def reg(home):
    r = Registry(f"sqlite:///{home / 'registry.db'}", str(home / "artifacts"))
    yield r
    r.close()


def _app(reg, names, models=(), **options):
    return create_app(ModelSet(list(models), reg), deployments=DeploymentSet(names, reg),
                      **options)


@pytest.fixture(scope="module")
def server(home):
    """Every deployment of SPECS beside the model `canary`, in this process."""
    r = Registry(f"sqlite:///{home / 'registry.db'}", str(home / "artifacts"))
    with Server(_app(r, [s["name"] for s in SPECS], ["canary/1"], watch=False)) as s:
        yield s
    r.close()


def _post(to: str | httpx.Client, protocol: str, name: str, rows: list[dict], **headers):
    """One request of `rows` to deployment `name` in `protocol` (`to`: a base URL or a
    client of one); (response, values)."""
    def post(path: str, **kw):
        return to.post(path, **kw) if isinstance(to, httpx.Client) else httpx.post(to + path, **kw)

    if protocol == "mlflow":
        r = post(f"/models/{name}/invocations", json={"dataframe_records": rows},
                 headers=headers)
        values = [p.get("value") for p in r.json().get("predictions", [])]
    elif protocol == "v2":
        inputs = [{"name": c, "shape": [len(rows)],
                   "datatype": "BYTES" if isinstance(rows[0][c], str) else "FP64",
                   "data": [row[c] for row in rows]} for c in rows[0]]
        r = post(f"/v2/models/{name}/infer", json={"inputs": inputs}, headers=headers)
        values = next((o["data"] for o in r.json().get("outputs", [])), [])
    else:
        r = post(f"/models/{name}/predict", json=rows[0] if len(rows) == 1 else rows,
                 headers=headers)
        values = [p.get("value") for p in r.json().get("predictions", [])]
    return r, values


def _who(r: httpx.Response, protocol: str) -> dict:
    """The body's "who answered" part, whatever the protocol."""
    body = r.json()
    return body["parameters"] if protocol == "v2" else body["answered_by"]


PROTOCOLS = ["mlflow", "v2", "native"]


# --- answers -------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_protocol_says_who_answered_in_body_and_headers(server, protocol):
    r, values = _post(server.url, protocol, "api", [{"x": 1.5}], **{"x-request-id": "req-7"})
    assert r.status_code == 200, r.text
    assert values == [3.0]
    assert r.headers["scorehouse-answered-by"] == "m/1 champion"
    assert r.headers["scorehouse-deployment"] == "api" and "scorehouse-fallback" not in r.headers
    assert r.headers["x-request-id"] == "req-7"
    who = _who(r, protocol)
    assert {k: who[k] for k in ("deployment", "role", "model", "version", "fallback",
                                "request_id", "ref")} == \
        {"deployment": "api", "role": "champion", "model": "m", "version": 1,
         "fallback": False, "request_id": "req-7", "ref": "m@production"}
    if protocol == "v2":
        assert (r.json()["model_name"], r.json()["model_version"]) == ("api", "1")
    if protocol == "native":
        assert (r.json()["model"], r.json()["version"]) == ("m", 1)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_fallback_and_default_answer_and_say_why(server, protocol):
    r, values = _post(server.url, protocol, "fb", [{"x": -1.0}])
    assert r.status_code == 200 and values == [-2.0], r.text
    assert r.headers["scorehouse-answered-by"] == "m/1 fallback"
    assert "slow/1 missed the 50 ms deadline" in r.headers["scorehouse-fallback"]
    assert r.headers["x-request-id"]  # generated when not given
    who = _who(r, protocol)
    assert who["fallback"] is True and who["role"] == "fallback"
    assert who["request_id"] == r.headers["x-request-id"]
    # slow misses its deadline, boom raises: the rule answers each row.
    r, values = _post(server.url, protocol, "safe", [{"x": -1.0}, {"x": -9.0}])
    assert r.status_code == 200 and values == [0.25, 0.5], r.text
    assert r.headers["scorehouse-answered-by"] == "default"
    why = r.headers["scorehouse-fallback"]
    assert "slow/1 missed the 50 ms deadline" in why and "boom on a negative x" in why
    who = _who(r, protocol)
    assert who["role"] == "default" and who.get("model") is None and who["fallback"] is True


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_no_answer_and_no_default_is_answered_as_a_failing_model_is(server, protocol):
    """Every step failed and there is no default: a 400 in the protocol's error body, as
    serve answers a model that fails on every row of a request (a ModelError)."""
    r, _ = _post(server.url, protocol, "bare", [{"x": -1.0}, {"x": -2.0}])
    assert r.status_code == 400, r.text
    text = r.json().get("message") or r.json().get("error")
    assert "no model answered" in text and "boom on a negative x" in text
    assert r.headers["scorehouse-deployment"] == "bare"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_bad_input_is_rejected_as_for_a_model(server, protocol):
    r, _ = _post(server.url, protocol, "api", [{"x": "not a number"}])
    assert r.status_code == (422 if protocol == "native" else 400), r.text
    assert "x" in r.text and r.headers["scorehouse-answered-by"] == "m/1 champion"
    r = httpx.post(f"{server.url}/models/api/predict", content=b"{not json")
    assert r.status_code == 400 and "error" in r.json()
    r = httpx.post(f"{server.url}/models/api/versions/2/predict", json={"x": 1})
    assert r.status_code == 404 and "deployment" in r.json()["error"]
    r = httpx.post(f"{server.url}/models/nope/predict", json={"x": 1})
    assert r.status_code == 404 and "deployments: api" in r.json()["error"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_request_of_many_rows_is_one_decision_on_its_first_row(server, protocol):
    router = Router(DeploymentSpec.from_dict(SPECS[-1]))
    keys = [f"c{i}" for i in range(40)]
    by_model = {k: router.model_for(k).ref for k in keys}
    assert set(by_model.values()) == {"m/1", "m/2"}
    for first in (keys[0], next(k for k in keys if by_model[k] != by_model[keys[0]])):
        rows = [{"x": 1.0, "customer_id": k} for k in [first, *keys[1:6]]]
        r, values = _post(server.url, protocol, "split", rows)
        assert r.status_code == 200, r.text
        version = int(by_model[first][-1])
        assert values == [1.0 + version] * len(rows)  # m/v answers (v + 1) x, every row
        assert r.headers["scorehouse-answered-by"] == f"m/{version} " + (
            "champion" if version == 1 else "challenger")
    rows = [{"x": 1.0, "customer_id": "c1", "tenant": "t3"}] * 2
    r, values = _post(server.url, protocol, "split", rows)
    assert values == [4.0, 4.0] and r.headers["scorehouse-answered-by"] == "m/3 routed"
    rows = [{"x": 1.0, "customer_id": "c1", "tenant": t} for t in ("t3", "t1")]
    r, _ = _post(server.url, protocol, "split", rows)
    assert r.status_code == 400 and "routes by 'tenant'" in r.text


def test_models_and_deployments_side_by_side(server):
    r = httpx.post(f"{server.url}/models/canary/predict", json={"x": 1})
    assert r.json()["predictions"][0]["value"] == 100.0 and "answered_by" not in r.json()
    assert "scorehouse-answered-by" not in r.headers
    r = httpx.post(f"{server.url}/invocations", json={"instances": [{"x": 1}]})
    assert r.status_code == 400 and "several models" in r.json()["message"]
    meta = httpx.get(f"{server.url}/v2/models/api").json()
    assert meta["name"] == "api" and [i["name"] for i in meta["inputs"]] == ["x"]
    assert httpx.get(f"{server.url}/v2/models/split/ready").json() == {"name": "split",
                                                                       "ready": True}
    paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
    assert "/models/api/predict" in paths and "/models/canary/predict" in paths


def _samples(text: str, name: str) -> dict[tuple, float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {tuple(sorted(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples if s.name == name}


def test_metrics_count_answers_fallbacks_and_off_path_work(server):
    for _ in range(3):
        _post(server.url, "native", "api", [{"x": 1.0}])
    _post(server.url, "native", "fb", [{"x": -1.0}])
    _post(server.url, "native", "bare", [{"x": 3.0}])
    deadline = time.time() + 10
    while True:  # off-path calls finish after the answers
        text = httpx.get(f"{server.url}/metrics").text
        off = _samples(text, "scorehouse_deployment_off_path_total")
        if sum(v for k, v in off.items() if ("deployment", "api") in k) >= 9:
            break
        assert time.time() < deadline, off
        time.sleep(0.05)
    answers = _samples(text, "scorehouse_deployment_answers_total")
    assert answers[(("deployment", "api"), ("model", "m"), ("role", "champion"),
                    ("version", "1"))] >= 3
    assert answers[(("deployment", "fb"), ("model", "m"), ("role", "fallback"),
                    ("version", "1"))] >= 1
    fallbacks = _samples(text, "scorehouse_deployment_fallbacks_total")
    assert fallbacks[(("cause", "deadline"), ("deployment", "fb"))] >= 1
    for role, outcome in (("shadow", "scored"), ("canary", "scored"), ("decoy", "archived")):
        assert off[(("deployment", "api"), ("outcome", outcome), ("role", role))] >= 3
    assert _samples(text, "scorehouse_deployment_revision")[(("deployment", "api"),)] == 1
    assert "scorehouse_deployment_answer_seconds_bucket" in text


def test_a_full_off_path_pool_skips_and_is_counted(reg):
    deployments = DeploymentSet(["api"], reg, off_path_workers=1, max_pending=1)
    with Server(create_app(ModelSet([], reg), deployments=deployments, watch=False)) as s:
        with httpx.Client(base_url=s.url) as c:
            for _ in range(20):  # three off-path calls each, one may wait
                assert c.post("/models/api/predict", json={"x": 1}).status_code == 200
            skipped = _samples(c.get("/metrics").text,
                               "scorehouse_deployment_off_path_skipped_total")
    assert sum(skipped.values()) > 0


# --- the prediction log --------------------------------------------------------------------


def test_every_roles_row_is_logged_under_the_request_id(reg, tmp_path):
    log = LogOptions.parse(str(tmp_path / "log"))
    app = _app(reg, ["api", "fb", "safe"], watch=False, log=log)
    with Server(app) as s:
        for protocol in PROTOCOLS:
            r, _ = _post(s.url, protocol, "api", [{"x": 1.0}], **{"x-request-id": f"r-{protocol}"})
            assert r.status_code == 200
        _post(s.url, "native", "api", [{"x": 2.0}, {"x": 3.0}], **{"x-request-id": "r-many"})
        _post(s.url, "native", "fb", [{"x": -1.0}], **{"x-request-id": "r-fb"})
        _post(s.url, "native", "safe", [{"x": -1.0}, {"x": -9.0}], **{"x-request-id": "r-safe"})
        logger = app.service.monitoring.logger
        deadline = time.time() + 20
        # 4 roles x 5 rows for api; fb: the fallback's row, then the late champion's; safe:
        # the default's 2 rows, the failed fallback's 2 (refused), the late champion's 2.
        while logger.stats.written < 28:
            assert time.time() < deadline, logger.stats
            logger.flush()
            time.sleep(0.05)
    rows = read_log(tmp_path / "log").to_pylist()  # closed at shutdown: everything flushed
    roles: dict[str, set] = {}
    for row in rows:
        assert row["deployment"] in ("api", "fb", "safe") and row["channel"] == "serve"
        roles.setdefault(row["id"], set()).add(row["role"])
    every = {"champion", "shadow", "canary", "decoy"}
    for rid in ("r-mlflow", "r-v2", "r-native", "r-many/0", "r-many/1"):
        assert roles[rid] == every, (rid, roles.get(rid))
    # The fallback answered; the champion that missed the deadline logs its row too, late.
    assert roles["r-fb"] == {"fallback", "champion"}
    shadow = next(r for r in rows if r["id"] == "r-many/1" and r["role"] == "shadow")
    assert (shadow["model"], shadow["prediction.value"], shadow["input.x"]) == ("shadow", 30.0, 3.0)
    decoys = {r["id"]: r for r in rows if r["role"] == "decoy"}
    assert decoys["r-native"]["model"] == "api" and decoys["r-native"]["version"] is None
    assert decoys["r-native"]["prediction.value"] is None
    # As received: the record's JSON text, one string column whatever the models' inputs.
    assert json.loads(decoys["r-many/0"]["input.@record"]) == {"x": 2.0}
    assert json.loads(decoys["r-v2"]["input.@record"]) == {"x": 1.0}
    assert decoys["r-v2"]["input.x"] is None
    # The default answered: its rows as received and its answer, as batch and streams log it.
    assert roles["r-safe/0"] == roles["r-safe/1"] == {"default", "champion", "fallback"}
    defaults = {r["id"]: r for r in rows if r["role"] == "default"}
    assert [defaults[f"r-safe/{i}"]["prediction.value"] for i in (0, 1)] == [0.25, 0.5]
    assert json.loads(defaults["r-safe/1"]["input.@record"]) == {"x": -9.0}
    assert defaults["r-safe/0"]["model"] == "safe" and defaults["r-safe/0"]["version"] is None


# --- changes under load --------------------------------------------------------------------


def test_changes_in_the_registry_apply_under_load_with_no_failed_request(reg):
    name = "live"
    registered.create(reg, DeploymentSpec.from_dict({"name": name, "champion": "m@production"}))
    deployments = DeploymentSet([name], reg)
    app = create_app(ModelSet([], reg), deployments=deployments, watch=False)
    errors: list[str] = []
    seen: set[str] = set()
    answered: list[int] = []
    stop = threading.Event()
    with Server(app) as s:
        deployments.watch(every=0.05)

        def load(protocol: str) -> None:
            with httpx.Client(base_url=s.url, timeout=10) as c:
                while not stop.is_set():
                    r, values = _post(c, protocol, name, [{"x": 1.0}])
                    if r.status_code != 200 or len(values) != 1:
                        errors.append(f"{r.status_code} {r.text[:200]}")
                    else:
                        seen.add(r.headers["scorehouse-answered-by"])
                        answered.append(1)

        threads = [threading.Thread(target=load, args=(p,)) for p in PROTOCOLS * 2]
        for t in threads:
            t.start()

        def until(answered_by: str, revision: int | None = None) -> None:
            """Until an answer by `answered_by` (after `revision` is in force: answers
            seen before do not count)."""
            deadline = time.time() + 20
            while revision is not None and deployments.revisions[name] != revision:
                assert time.time() < deadline and not errors, (revision, errors)
                time.sleep(0.02)
            if revision is not None:
                seen.clear()
            while answered_by not in seen:
                assert time.time() < deadline and not errors, (answered_by, seen, errors)
                time.sleep(0.02)

        try:
            until("m/1 champion")
            registered.change(reg, name, SpecChanges(challengers=["m/2=0.5"]))  # an A/B split
            until("m/2 challenger", 2)
            registered.change(reg, name, SpecChanges(promote="m/2"))  # challenger promoted
            until("m/2 champion", 3)
            registered.change(reg, name, SpecChanges(shadows=["shadow/1"]))  # a shadow added
            until("m/2 champion", 4)
            registered.change(reg, name, SpecChanges(champion="m@production"))
            until("m/1 champion", 5)
            reg.promote("m/3", "production")  # the alias moves
            until("m/3 champion")
        finally:
            stop.set()
            for t in threads:
                t.join()
            reg.promote("m/1", "production")
    assert errors == [] and len(answered) > 20, (errors, len(answered))
    assert deployments.revisions[name] == 5
    assert deployments.served[name].spec.shadows == ("shadow/1",)


# --- the CLI -------------------------------------------------------------------------------


def test_cli_serves_several_deployments_and_refuses_unknown_ones(home, tmp_path):
    server = CliServer(["--deployment", "api", "--deployment", "fb"], home)
    try:
        server.wait_ready()
        r, values = _post(server.url, "native", "fb", [{"x": -1.0}])
        assert values == [-2.0] and r.headers["scorehouse-answered-by"] == "m/1 fallback"
        r, values = _post(server.url, "v2", "api", [{"x": 2.0}])
        assert values == [4.0] and r.json()["parameters"]["role"] == "champion"
    finally:
        assert "Traceback" not in server.stop()
    env = cli_env(home)
    for args, code, words in ((["--deployment", "nope"], 3, "no deployment named 'nope'"),
                              ([], 2, "--deployment NAME")):
        done = subprocess.run([SCRIPT, "serve", *args, "--port", "1"], env=env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == code and words in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
