"""The AWS Lambda handler: every trigger's documented event answered as `serve` answers the
same request (same status, same body), direct invocations, settings from the environment, an
alias move, and the container entry point through awslambdaric against a local Runtime API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import pytest

from _lambda_events import TRIGGERS, alb, function_url, response_body, response_headers, rest_api
from _lambda_runtime import RuntimeApi
from conftest import Server
from scorehouse.errors import UsageError
from scorehouse.serve import ModelSet, create_app
from scorehouse.serve.settings import ServeSettings
from scorehouse.serverless import LambdaFunction
from scorehouse.serverless import function as lambda_function


@pytest.fixture(scope="module")
def function(churn_artifact):
    """The churn artifact behind the Lambda handler (models loaded, as at initialisation)."""
    fn = LambdaFunction.from_settings(ServeSettings(refs=[str(churn_artifact)], trust=True,
                                                    batching="off"))
    yield fn
    fn.close()


@pytest.fixture(scope="module")
def served(churn_artifact):
    """The same artifact served by `scorehouse serve`'s app on a local port."""
    with Server(create_app(ModelSet([str(churn_artifact)], trust=True), watch=False)) as s:
        yield s


def _requests(rows):
    """(method, path, body, headers) of requests in every protocol, good and bad."""
    cols = list(rows[0])
    bad = dict(rows[0], tenure="abc")
    v2 = {"inputs": [{"name": c, "shape": [3], "datatype": "BYTES" if isinstance(
        rows[0][c], str) else "FP64", "data": [r[c] for r in rows[:3]]} for c in cols]}
    csv = ",".join(cols) + "\n" + "\n".join(",".join("" if r[c] is None else str(r[c])
                                                     for c in cols) for r in rows[:4])
    js = {"content-type": "application/json"}
    return [
        ("POST", "/models/churn/predict", json.dumps(rows[0]), js),
        ("POST", "/models/churn/predict", json.dumps({"records": rows[:3]}), js),
        ("POST", "/invocations", json.dumps({"dataframe_split": {
            "columns": cols, "data": [[r[c] for c in cols] for r in rows[:5]]}}), js),
        ("POST", "/models/churn/invocations", csv, {"content-type": "text/csv"}),
        ("POST", "/v2/models/churn/infer", json.dumps(v2), js),
        ("GET", "/v2/health/ready", None, {}),
        ("GET", "/v2/models/churn", None, {}),
        ("POST", "/invocations", "{not json", js),
        ("POST", "/invocations", json.dumps({"dataframe_records": [bad]}), js),
        ("POST", "/models/nope/predict", json.dumps(rows[0]), js),
        ("GET", "/no/such/route", None, {}),
    ]


@pytest.mark.parametrize("trigger", sorted(TRIGGERS))
def test_every_trigger_answers_as_serve_does(trigger, function, served, rows):
    event_of = TRIGGERS[trigger]
    for method, path, body, headers in _requests(rows):
        want = httpx.request(method, served.url + path, content=body, headers=headers)
        got = function(event_of(method, path, body, headers), None)
        what = f"{trigger} {method} {path} {body and body[:40]}"
        assert got["statusCode"] == want.status_code, (what, got)
        assert response_body(got) == want.content, what
        assert response_headers(got).get("content-type") == want.headers.get("content-type")
        assert not got["isBase64Encoded"], what  # JSON answers stay text
    statuses = {r[1]: function(event_of(r[0], r[1], r[2], r[3]))["statusCode"]
                for r in _requests(rows)[-4:]}
    assert statuses == {"/invocations": 400, "/models/nope/predict": 404, "/no/such/route": 404}


@pytest.mark.parametrize("trigger", [function_url, rest_api, alb], ids=["function_url", "rest_api", "alb"])
def test_binary_v2_travels_base64_both_ways(trigger, function, served, rows):
    import tritonclient.http as tc

    row = next(r for r in rows if None not in r.values())
    tensors = []
    for c, v in row.items():
        kind = "BYTES" if isinstance(v, str) else "FP64"
        t = tc.InferInput(c, [1, 1], kind)
        t.set_data_from_numpy(np.array([[v.encode() if kind == "BYTES" else v]],
                                       dtype=object if kind == "BYTES" else np.float64))
        tensors.append(t)
    outputs = [tc.InferRequestedOutput("probabilities", binary_data=True)]
    body, length = tc.InferenceServerClient.generate_request_body(tensors, outputs=outputs)
    headers = {"Inference-Header-Content-Length": str(length),
               "Content-Type": "application/octet-stream"}
    want = httpx.post(f"{served.url}/v2/models/churn/infer", content=body, headers=headers)
    got = function(trigger("POST", "/v2/models/churn/infer", body, headers))
    assert got["statusCode"] == 200 == want.status_code
    assert got["isBase64Encoded"]  # binary tensors: base64 in the answer, as API Gateway wants
    assert response_body(got) == want.content
    header = response_headers(got)["inference-header-content-length"]
    result = tc.InferResult.from_response_body(response_body(got), header_length=int(header))
    assert result.as_numpy("probabilities").shape == (1, 2)


def test_direct_invocation_speaks_every_protocol(function, served, rows):
    cols = list(rows[0])
    split = {"dataframe_split": {"columns": cols, "data": [[r[c] for c in cols] for r in rows[:3]]}}
    v2 = _requests(rows)[4][2]
    cases = [  # (direct event, the same request to serve)
        ({"model": "churn", **rows[0]}, "/models/churn/predict", rows[0]),
        (dict(rows[0]), "/models/churn/predict", rows[0]),  # the only model
        ({"model": "churn", "records": rows[:2]}, "/models/churn/predict", {"records": rows[:2]}),
        (split, "/invocations", split),
        ({"model": "churn", "version": 1, **split}, "/models/churn/versions/1/invocations", split),
        ({"model": "churn", **json.loads(v2)}, "/v2/models/churn/infer", json.loads(v2)),
        ({"protocol": "native", "records": rows[:1]}, "/models/churn/predict",
         {"records": rows[:1]}),
        ({"model": "nope", **rows[0]}, "/models/nope/predict", rows[0]),
        ({"dataframe_records": [dict(rows[0], tenure="abc")]}, "/invocations",
         {"dataframe_records": [dict(rows[0], tenure="abc")]}),
        ({"model": "churn", "version": 7, **rows[0]}, "/models/churn/versions/7/predict", rows[0]),
    ]
    for event, path, body in cases:
        want = httpx.post(served.url + path, json=body)
        got = function(event, None)
        assert set(got) == {"statusCode", "headers", "body"}
        assert (got["statusCode"], got["body"]) == (want.status_code, want.json()), event
    refused = [(["a", "list"], 400, "JSON object"), ({"protocol": "soap"}, 400, "mlflow, v2"),
               ({"version": 2, "records": []}, 404, "has one version")]  # the only model
    for event, status, text in refused:
        got = function(event)
        assert got["statusCode"] == status and text in got["body"]["error"], got


def test_settings_come_from_the_environment(churn_artifact, monkeypatch, rows):
    env = {"SCOREHOUSE_MODELS": f" {churn_artifact}, ", "SCOREHOUSE_TRUST": "yes",
           "SCOREHOUSE_API_KEY": "k1 k2", "SCOREHOUSE_TIMEOUT": "5", "SCOREHOUSE_DRIFT": "0",
           "SCOREHOUSE_COLUMNS": "strict"}
    s = ServeSettings.from_env(env, batching="off")
    assert (s.refs, s.trust, s.api_keys, s.timeout, s.drift, s.columns, s.batching) == \
        ([str(churn_artifact)], True, ["k1", "k2"], 5.0, False, "strict", "off")
    assert ServeSettings.from_env({**env, "SCOREHOUSE_BATCHING": "on"}, batching="off").batching == "on"
    for bad, text in [({}, "SCOREHOUSE_MODELS"), ({**env, "SCOREHOUSE_TRUST": "maybe"}, "true or false"),
                      ({**env, "SCOREHOUSE_MAX_BODY": "1MB"}, "must be a number")]:
        with pytest.raises(UsageError, match=text):
            ServeSettings.from_env(bad)
    # The module-level handler builds its function from os.environ on first use, turning
    # the tree kernel off unless the variable is set (undone after the test either way).
    monkeypatch.setenv("SCOREHOUSE_TREE_KERNEL", "unset below")
    monkeypatch.delenv("SCOREHOUSE_TREE_KERNEL")
    monkeypatch.setattr(lambda_function, "_function", None)
    monkeypatch.delenv("SCOREHOUSE_MODELS", raising=False)
    with pytest.raises(UsageError, match="SCOREHOUSE_MODELS"):
        lambda_function.handler({"records": rows[:1]})
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from scorehouse.serverless import handler

    no_key = handler(rest_api("POST", "/models/churn/predict", json.dumps(rows[0])))
    assert no_key["statusCode"] == 401  # the API keys of the environment apply
    ok = handler(rest_api("POST", "/models/churn/predict", json.dumps(rows[0]),
                          {"Authorization": "Bearer k2"}))
    assert ok["statusCode"] == 200, ok
    assert os.environ["SCOREHOUSE_TREE_KERNEL"] == "0"
    assert lambda_function.default().service.models.get("churn").runtime.tree_kernel() is None
    lambda_function.default().close()


def test_a_moved_alias_is_followed_between_invocations(registry_home, rows):
    settings = ServeSettings(refs=["churn@production"], registry=registry_home.url,
                             artifacts=registry_home.store.url, batching="off")
    fn = LambdaFunction.from_settings(settings, refresh_every=0.01)
    # No watcher thread (a frozen Lambda environment would run it at random): the function
    # checks the registry between invocations instead.
    assert not [t.name for t in threading.enumerate() if t.name in ("scorehouse-watch",
                                                                  "scorehouse-deployments")]
    row = {k: (v if v is not None else 0) for k, v in rows[0].items()}
    assert fn({"model": "churn", **row})["body"]["version"] == 1
    registry_home.promote("churn/2", "production")
    try:
        time.sleep(0.02)
        assert fn({"model": "churn", **row})["body"]["version"] == 2
    finally:
        registry_home.promote("churn/1", "production")
        fn.close()


def _ric(api: RuntimeApi, models: str) -> subprocess.Popen:
    """`python -m scorehouse.serverless` (awslambdaric) polling `api`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SCOREHOUSE_", "AWS_"))}
    # The tree kernel on, as in this process: the answers are compared byte for byte.
    env.update(AWS_LAMBDA_RUNTIME_API=api.address, SCOREHOUSE_MODELS=models,
               SCOREHOUSE_TRUST="1", SCOREHOUSE_HOME=os.environ["SCOREHOUSE_HOME"],
               SCOREHOUSE_TREE_KERNEL="1")
    return subprocess.Popen([sys.executable, "-m", "scorehouse.serverless"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_container_entry_point_answers_through_awslambdaric(churn_artifact, function, rows):
    with RuntimeApi() as api:
        proc = _ric(api, str(churn_artifact))
        try:
            events = [function_url("POST", "/models/churn/predict", json.dumps(rows[0]),
                                   {"content-type": "application/json"}),
                      {"model": "churn", "records": rows[:2]},
                      function_url("POST", "/invocations", "{not json",
                                   {"content-type": "application/json"})]
            ids = [api.invoke(e) for e in events]
            for event, request_id in zip(events, ids, strict=True):
                kind, answer = api.result(request_id)
                want = function(event)
                assert kind == "response", answer
                if "requestContext" in event:
                    assert (answer["statusCode"], response_body(answer)) == \
                        (want["statusCode"], response_body(want))
                else:
                    assert (answer["statusCode"], answer["body"]) == (want["statusCode"], want["body"])
        finally:
            proc.kill()
            proc.wait(10)


def test_a_model_that_cannot_load_fails_the_initialisation(tmp_path):
    with RuntimeApi() as api:
        proc = _ric(api, str(tmp_path / "missing.shz"))
        try:
            error = api.wait_init_error()
            assert proc.wait(60) != 0
        finally:
            proc.kill()
    assert "missing.shz" in error["errorMessage"], error
