"""Version identity: the version a server reports is the one it accepts, on every protocol,
for a model served from a file (version 1, its only one) and from the registry (its number)."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

import scorehouse
from conftest import Server
from scorehouse.demo.data import TARGET
from scorehouse.serve import ModelSet, create_app


@pytest.fixture(scope="module")
def registry(tmp_path_factory, churn_artifact):
    """churn/1 and churn/2, production on 2: a registry number that is not the file's 1."""
    home = tmp_path_factory.mktemp("versions-home")
    reg = scorehouse.Registry(f"sqlite:///{home / 'registry.db'}", str(home / "artifacts"))
    reg.register(churn_artifact)
    reg.register(churn_artifact, allow_duplicate=True)
    reg.promote("churn/2", "production")
    return reg


@pytest.fixture(scope="module", params=["file", "registry"])
def served(request, churn_artifact, registry):
    """(base URL, the version the model must report and accept)."""
    if request.param == "file":
        models, version = ModelSet([str(churn_artifact)], trust=True), 1
    else:
        models, version = ModelSet(["churn@production"], registry), 2
    with Server(create_app(models, batching="off")) as s:
        yield s.url, version


@pytest.fixture(scope="module")
def row(churn_data):
    X = churn_data.drop(columns=[TARGET]).head(1)
    return X.astype(object).where(X.notna(), None).to_dict("records")[0]


def _v2_body(http: httpx.Client, row: dict) -> dict:
    types = {i["name"]: i["datatype"] for i in http.get("/v2/models/churn").json()["inputs"]}
    return {"inputs": [{"name": c, "shape": [1, 1], "datatype": types[c], "data": [v]}
                       for c, v in row.items()]}


def _v2(http: httpx.Client, path: str, row: dict) -> tuple[int, dict, str | None]:
    r = http.post(f"/v2/models/churn{path}/infer", json=_v2_body(http, row))
    return r.status_code, r.json(), r.json().get("model_version")


def _mlflow(http: httpx.Client, path: str, row: dict) -> tuple[int, dict, str | None]:
    r = http.post(f"/models/churn{path}/invocations", json={"dataframe_records": [row]})
    return r.status_code, r.json(), None  # MLflow's answer carries no version


def _native(http: httpx.Client, path: str, row: dict) -> tuple[int, dict, str | None]:
    r = http.post(f"/models/churn{path}/predict", json=row)
    version = r.json().get("version")
    return r.status_code, r.json(), None if version is None else str(version)


PROTOCOLS = {"v2": _v2, "mlflow": _mlflow, "native": _native}


def _advertised(http: httpx.Client) -> str:
    versions = http.get("/v2/models/churn").json()["versions"]
    assert len(versions) == 1
    return versions[0]


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_the_advertised_version_is_reported_and_accepted(served, row, protocol):
    url, version = served
    call = PROTOCOLS[protocol]
    with httpx.Client(base_url=url, timeout=30) as http:
        advertised = _advertised(http)
        assert advertised == str(version)
        plain = call(http, "", row)
        pinned = call(http, f"/versions/{advertised}", row)
    for status, body, reported in (plain, pinned):
        assert status == 200, body
        assert reported in (None, advertised)  # None: a protocol without a version field
    if protocol != "mlflow":
        assert plain[2] == pinned[2] == advertised
    assert plain[1] == pinned[1]  # the same model answered


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_a_version_that_does_not_exist_is_a_404_naming_what_exists(served, row, protocol):
    url, version = served
    with httpx.Client(base_url=url, timeout=30) as http:
        status, body, _ = PROTOCOLS[protocol](http, "/versions/99", row)
    assert status == 404
    message = body.get("error") or body.get("message")
    assert "99" in message and "None" not in message
    if version == 1:  # a file: says its one version
        assert "one version, 1" in message


def test_v2_metadata_ready_and_metrics_agree_on_the_version(served):
    url, version = served
    with httpx.Client(base_url=url, timeout=30) as http:
        v = _advertised(http)
        meta = http.get(f"/v2/models/churn/versions/{v}")
        assert meta.status_code == 200 and meta.json()["versions"] == [v]
        assert http.get(f"/v2/models/churn/versions/{v}/ready").json()["ready"] is True
        metrics = http.get("/metrics").text
    gauge = [ln for ln in metrics.splitlines()
             if ln.startswith("scorehouse_model_version{") and 'model="churn"' in ln]
    assert gauge and float(gauge[0].rsplit(" ", 1)[1]) == version


def test_tritonclient_can_use_the_version_it_reads_from_metadata(served, row):
    import tritonclient.http as tc

    url, _ = served
    client = tc.InferenceServerClient(url.removeprefix("http://"))
    meta = client.get_model_metadata("churn")
    inputs = []
    for spec in meta["inputs"]:
        v = row[spec["name"]]
        if spec["datatype"] == "BYTES":
            arr, dtype = np.array([b"" if v is None else str(v).encode()], dtype=object), "BYTES"
        else:
            arr, dtype = np.array([np.nan if v is None else v], dtype=np.float64), "FP64"
        t = tc.InferInput(spec["name"], [1, 1], dtype)
        t.set_data_from_numpy(arr.reshape(-1, 1))
        inputs.append(t)
    answer = client.infer("churn", inputs, model_version=meta["versions"][0])
    assert answer.get_response()["model_version"] == meta["versions"][0]
    assert answer.as_numpy("probabilities").shape == (1, 2)
