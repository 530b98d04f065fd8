"""`NaN`, `Infinity` and `-Infinity` as Python clients write them, on every JSON surface.

Python's `json.dumps`, MLflow's scoring client and tritonclient (JSON tensors) write a missing
float as the bare token `NaN`. Each surface must read it as the schema says: `NaN` is a
missing value (scored like `null`), an infinity is the "infinite value" reject of its row;
never a 400 "not valid JSON" for the whole request.
"""

from __future__ import annotations

import json
import math

import httpx
import numpy as np
import pytest

import scorehouse
from _stream import REDUCER
from conftest import Server
from scorehouse.cli.app import main
from scorehouse.demo.data import TARGET
from scorehouse.serve import ModelSet, create_app
from scorehouse.serve.codecs import jsonbody
from scorehouse.stream import RedisEvents, RedisProfiles, StreamWorker, from_spec

#: The nullable number column the tokens go into.
COLUMN = "total_charges"
TOKENS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


@pytest.fixture(scope="module")
def records(churn_data) -> list[dict]:
    """Two valid churn records, plain Python values (None for missing)."""
    X = churn_data.drop(columns=[TARGET]).head(2)
    return X.astype(object).where(X.notna(), None).to_dict("records")


@pytest.fixture(scope="module")
def server(churn_artifact):
    with Server(create_app(ModelSet([str(churn_artifact)], None, trust=True))) as s:
        yield s


def _with(records: list[dict], value: float) -> list[dict]:
    """The records, the second one holding `value` in COLUMN."""
    return [records[0], {**records[1], COLUMN: value}]


def _mlflow(kind: str, rows: list[dict]) -> dict:
    if kind == "dataframe_split":
        cols = list(rows[0])
        return {"dataframe_split": {"columns": cols, "data": [[r[c] for c in cols] for r in rows]}}
    return {kind: rows}


def _v2(rows: list[dict]) -> dict:
    inputs = []
    for c in rows[0]:
        values = [r[c] for r in rows]
        text = any(isinstance(v, str) for v in values)
        inputs.append({"name": c, "shape": [len(rows), 1], "datatype": "BYTES" if text else "FP64",
                       "data": values})
    return {"inputs": inputs}


def _post(http: httpx.Client, surface: str, rows: list[dict]) -> httpx.Response:
    """POST `rows` to one surface, serialised with Python's json.dumps (NaN tokens and all)."""
    if surface.startswith("mlflow:"):
        path, doc = "/invocations", _mlflow(surface.split(":")[1], rows)
    elif surface == "v2":
        path, doc = "/v2/models/churn/infer", _v2(rows)
    else:
        path, doc = "/models/churn/predict", {"records": rows}
    body = json.dumps(doc)
    odd = any(isinstance(v, float) and not math.isfinite(v) for r in rows for v in r.values())
    assert any(t in body for t in TOKENS) == odd  # the body carries the bare tokens
    return http.post(path, content=body, headers={"content-type": "application/json"})


def _p1(surface: str, answer: dict) -> list[float]:
    """P(yes) of each row of an answer."""
    if surface.startswith("mlflow:"):
        return [p["probability_yes"] for p in answer["predictions"]]
    if surface == "v2":
        probabilities = next(o for o in answer["outputs"] if o["name"] == "probabilities")
        return list(np.asarray(probabilities["data"]).reshape(-1, 2)[:, 1])
    return [p["probabilities"]["yes"] for p in answer["predictions"]]


SURFACES = ["mlflow:dataframe_split", "mlflow:dataframe_records", "mlflow:instances", "v2",
            "native"]


@pytest.mark.parametrize("surface", SURFACES)
def test_nan_token_is_a_missing_value_on_each_server_route(server, records, surface):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        sent_nan = _post(http, surface, _with(records, math.nan))
        sent_null = _post(http, surface, _with(records, None))
    assert sent_nan.status_code == 200, sent_nan.text
    assert sent_null.status_code == 200, sent_null.text
    assert _p1(surface, sent_nan.json()) == _p1(surface, sent_null.json())


@pytest.mark.parametrize("surface", SURFACES)
@pytest.mark.parametrize("token", ["Infinity", "-Infinity"])
def test_infinity_token_rejects_its_row_naming_the_column(server, records, surface, token):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        answer = _post(http, surface, _with(records, TOKENS[token]))
    text = answer.text
    assert "not valid JSON" not in text
    assert "infinite value" in text and COLUMN in text
    if surface == "native":  # the route that scores what it can: row 0 still gets its score
        assert answer.status_code == 200
        body = answer.json()
        assert [p["row"] for p in body["predictions"]] == [0]
        assert body["rejects"][0]["row"] == 1 and body["rejects"][0]["column"] == COLUMN
    else:  # MLflow and V2 answer a request with any rejected row with a 400 naming it
        assert answer.status_code == 400


@pytest.mark.parametrize("body, why", [
    (b'{"records": [{"tenure": NaN', "not valid JSON"),  # truncated, with a token in it
    (b'{"records": [{"plan": "\\ud800", "total_charges": NaN}]}', "not valid JSON"),
    (b"[" * 5000 + b"NaN" + b"]" * 5000, "not valid JSON"),
])
def test_a_body_still_invalid_with_the_tokens_is_a_400_saying_so(server, body, why):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        for path in ("/models/churn/predict", "/invocations", "/v2/models/churn/infer"):
            answer = http.post(path, content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 400, (path, answer.text)
            assert why in answer.text and "null" in answer.text


def test_jsonbody_reads_the_tokens_and_leaves_strict_json_to_orjson():
    assert jsonbody.loads(b'{"a": 1.5, "b": null}') == {"a": 1.5, "b": None}
    doc = jsonbody.loads(b'{"a": NaN, "b": Infinity, "c": -Infinity, "d": "NaN"}')
    assert math.isnan(doc["a"]) and doc["b"] == math.inf and doc["c"] == -math.inf
    assert doc["d"] == "NaN"


@pytest.mark.parametrize("form", ["--json", "-i"])
def test_cli_predict_reads_the_tokens(tmp_path, churn_artifact, records, capsys, form):
    rows = _with(records, math.nan) + [{**records[0], COLUMN: math.inf}]
    if form == "--json":
        arg = json.dumps(rows)
    else:
        arg = str(tmp_path / "rows.jsonl")
        (tmp_path / "rows.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(churn_artifact), "--trust", form, arg])
    assert exit_.value.code == 4  # the Infinity row is rejected; the others are scored
    out = json.loads(capsys.readouterr().out)
    assert [p["row"] for p in out["predictions"]] == [0, 1]
    assert out["rejects"] == [{"row": 2, "column": COLUMN, "reason": "infinite value",
                               "value": math.inf}]
    expected = scorehouse.load(churn_artifact, trust=True).predict(_with(records, None))
    assert [p["probabilities"]["yes"] for p in out["predictions"]] == \
        [p["probabilities"]["yes"] for p in expected.to_records()]


def test_batch_jsonl_reads_the_tokens(tmp_path, churn_artifact, records):
    src, out = tmp_path / "in.jsonl", tmp_path / "out.csv"
    rows = _with(records, math.nan) + [{**records[0], COLUMN: -math.inf}]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(SystemExit) as exit_:
        main(["score", str(churn_artifact), str(src), str(out), "--trust", "-q"])
    assert exit_.value.code == 4
    run = json.loads((tmp_path / "out.csv.run.json").read_text())
    assert run["counts"] == {"read": 3, "scored": 2, "rejected": 1, "flagged": run["counts"]["flagged"]}
    assert run["rejects_by_column"] == {COLUMN: 1}
    expected = scorehouse.load(churn_artifact, trust=True).predict(_with(records, None))
    got = [float(line.split(",")[-1]) for line in out.read_text().splitlines()[1:]]
    np.testing.assert_allclose(got, expected.to_pandas()["probability_yes"], atol=1e-12)


def test_redis_stream_payload_with_nan_is_scored_as_missing(r, redis_url, scorer, records):
    profile = {k: str(v) for k, v in records[1].items() if v is not None}
    r.hset("profile:7", mapping=profile)
    # The event, as a Python producer writes it: json.dumps with a NaN.
    r.xadd("events", {"data": json.dumps({"customer_id": 7, "type": "call",
                                          COLUMN: math.nan})})
    spec = {**REDUCER, "last": {**REDUCER["last"], COLUMN: COLUMN}}
    worker = StreamWorker(scorer, RedisEvents(f"{redis_url}?stream=events", "g", "w1"),
                          RedisProfiles(redis_url), from_spec(spec), key="customer_id",
                          output_stream="scores")
    stats = worker.run(until_idle=True)
    assert (stats.events, stats.scored, stats.dead) == (1, 1, 0)
    stored = {k.decode(): v.decode() for k, v in r.hgetall("profile:7").items()}
    expected = dict(records[1], support_calls=int(records[1]["support_calls"]) + 1)
    expected[COLUMN] = None
    p_yes = scorer.predict(expected).to_records()[0]["probabilities"]["yes"]
    assert float(stored["churn_score"]) == pytest.approx(p_yes, abs=1e-9)
