"""What one request may cost `scorehouse serve`, and its smaller holes: bounded answers to the
worst requests the limits allow (health probes stay fast, memory bounded), slow clients,
TLS, exposure warnings, pinned versions (LRU, archived refused), API-key files, OpenAPI
types, 405s, and schemathesis (positive and negative) over every route."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import scorehouse
from conftest import SCRIPT, CliServer, Server, cli_env, is_json
from scorehouse.schema import validate_batch
from scorehouse.serve import ModelSet, create_app
from scorehouse.serve.auth import ApiKeys, keys_in
from scorehouse.serve.limits import MAX_BODY, MAX_REJECTS, MAX_ROWS, READ_TIMEOUT, Limits

#: Required numeric columns of the wide test model (a reject per column per bad row).
WIDE = 40


@pytest.fixture(scope="module")
def wide_model(tmp_path_factory) -> Path:
    """A logistic regression on WIDE required number columns, labels 'no'/'yes'."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    df = pd.DataFrame({f"c{i}": rng.normal(size=300) for i in range(WIDE)})
    df["t"] = np.where(df.c0 > 0, "yes", "no")
    path = tmp_path_factory.mktemp("wide") / "wide.shz"
    return scorehouse.package(LogisticRegression().fit(df.drop(columns="t"), df.t), df,
                              name="wide", target="t", path=path)


@pytest.fixture(scope="module")
def wide_server(wide_model, tmp_path_factory):
    """The wide model served by the CLI with the default limits."""
    s = CliServer([str(wide_model), "--trust"], tmp_path_factory.mktemp("wide-home"))
    try:
        s.wait_ready()
        yield s
    finally:
        s.stop()


def _pad(prefix: bytes, unit: bytes, suffix: bytes, size: int = MAX_BODY) -> bytes:
    """prefix + unit repeated + suffix, as close to `size` bytes as the unit allows."""
    return prefix + unit * ((size - len(prefix) - len(suffix)) // len(unit)) + suffix


def _csv_missing_columns(n: int) -> bytes:
    return b"c0,c1\n" + b"1,x\n" * n


_BAD_RECORD = {f"c{i}": "x" for i in range(WIDE)}
#: One-string V2 tensor elements that fit in the body limit.
_V2_ROWS = (MAX_BODY - 100) // 4
#: All-bad records that fit in the body limit.
_BAD_ROWS = (MAX_BODY - 2) // (len(json.dumps(_BAD_RECORD)) + 2)


#: The worst requests the default limits allow: (route, content type, body, expected status,
#: {column: {reason: problems}} expected in the summary, or None).
WORST = {
    "empty records, max_rows of them": (
        "/invocations", "application/json",
        json.dumps({"dataframe_records": [{}] * MAX_ROWS}).encode(), 400,
        {f"c{i}": {"missing column": MAX_ROWS} for i in range(WIDE)}),
    "all-bad rows, native list at the body limit": (
        "/models/wide/predict", "application/json", json.dumps([_BAD_RECORD] * _BAD_ROWS).encode(),
        422, {f"c{i}": {"invalid value": _BAD_ROWS} for i in range(WIDE)}),
    "nested arrays in one value, at the body limit": (
        "/invocations", "application/json",
        _pad(b'{"dataframe_records":[{"c0":[', b"[],", b"[]]}]}"), 400, None),
    "bad strings, dataframe_split at the body limit": (
        "/invocations", "application/json",
        _pad(b'{"dataframe_split":{"columns":["c0"],"data":[', b'["x"],', b'["x"]]}}'), 413,
        None),
    "CSV rows missing 38 of 40 columns": (
        "/invocations", "text/csv", _csv_missing_columns(MAX_ROWS), 400,
        {"c1": {"invalid value": MAX_ROWS},
         **{f"c{i}": {"missing column": MAX_ROWS} for i in range(2, WIDE)}}),
    "V2 strings at the body limit": (
        "/v2/models/wide/infer", "application/json",
        b'{"inputs":[{"name":"c0","datatype":"BYTES","shape":[%d],"data":[%s"x"]}]}'
        % (_V2_ROWS, b'"x",' * (_V2_ROWS - 1)), 413, None),
}


@pytest.mark.parametrize("case", list(WORST))
def test_the_worst_requests_get_small_answers_and_health_probes_stay_fast(wide_server, case):
    path, kind, body, status, summary = WORST[case]
    assert len(body) <= MAX_BODY
    before = wide_server.peak_rss_mb()
    worst, stop = [0.0], threading.Event()

    def probe() -> None:
        with httpx.Client(base_url=wide_server.url) as c:
            while not stop.is_set():
                t = time.perf_counter()
                assert c.get("/v2/health/live", timeout=30).status_code == 200
                worst[0] = max(worst[0], time.perf_counter() - t)
                time.sleep(0.01)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        time.sleep(0.2)
        started = time.perf_counter()
        r = httpx.post(f"{wide_server.url}{path}", content=body, timeout=60,
                       headers={"content-type": kind})
        took = time.perf_counter() - started
        time.sleep(0.1)
    finally:
        stop.set()
        prober.join()
    assert r.status_code == status, r.text[:300]
    # Bounded answer: at most MAX_REJECTS rejects of at most ~200 characters each.
    assert len(r.content) < 64 * 1024, len(r.content)
    answer = r.json()
    if summary is not None:
        assert len(answer["rejects"]) == MAX_REJECTS
        assert answer["problems_by_column"] == summary
        assert answer["problems"] == sum(n for c in summary.values() for n in c.values())
    # A request holding the event loop would make a probe wait about as long as the request
    # itself; the bound is relative to it (with a floor for noise), not a timing goal.
    assert worst[0] < max(0.25, took / 2), \
        f"a health probe waited {worst[0] * 1000:.0f} ms of the request's {took * 1000:.0f} ms"
    # The server's peak memory grows by a bounded amount (the body's objects, not one per
    # bad cell): measured ~50-90 MB over the loaded model for these at the defaults.
    assert wide_server.peak_rss_mb() - before < 300


def test_rejects_amplification_repro_shape_is_a_small_400(wide_server):
    # The reproducer's request, within the row limit: every row misses every column.
    body = json.dumps({"dataframe_records": [{}] * 50_000}).encode()
    r = httpx.post(f"{wide_server.url}/invocations", content=body, timeout=60,
                   headers={"content-type": "application/json"})
    assert r.status_code == 400 and len(r.content) < 10 * len(body) / 10
    answer = r.json()
    assert answer["rejected_rows"] == 50_000 and answer["problems"] == 50_000 * WIDE
    assert f"(and {50_000 * WIDE - 5} more)" in answer["message"]
    metrics = httpx.get(f"{wide_server.url}/metrics").text
    assert 'scorehouse_input_problems_total{column="c7",kind="missing column",model="wide"}' \
        in metrics
    rows = re.search(r'scorehouse_rows_rejected_total\{model="wide",version="1"\} (\S+)', metrics)
    assert rows and float(rows.group(1)) >= 50_000  # rows; earlier tests' count too


def test_row_limit_and_reject_cap_follow_the_limits_given(registry_home, rows, monkeypatch):
    monkeypatch.setenv("SCOREHOUSE_MAX_REJECTS", "3")  # the environment fills what is not given
    limits = Limits.from_env(max_rows=10)
    assert (limits.max_rows, limits.max_rejects, limits.max_body) == (10, 3, MAX_BODY)
    app = create_app(ModelSet(["churn@production"], registry_home), watch=False, limits=limits)
    with Server(app) as s:
        r = httpx.post(f"{s.url}/models/churn/predict", json=rows[:1] * 11)
        assert r.status_code == 413 and "11 rows, over the limit of 10" in r.json()["error"]
        bad = [dict(x, tenure="abc") for x in rows[:8]]
        r = httpx.post(f"{s.url}/invocations", json={"dataframe_records": bad})
        answer = r.json()
        assert r.status_code == 400 and len(answer["rejects"]) == 3
        assert answer["problems_by_column"] == {"tenure": {"invalid value": 8}}
        assert "8 of 8 row(s) rejected" in answer["message"] and "(and 5 more)" in answer["message"]


# --- the reject cap in the scoring core ------------------------------------------------------


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict("records")


@pytest.mark.parametrize("form", ["records", "pandas", "arrow"])
@pytest.mark.parametrize("problem", ["missing column", "invalid value", "missing value"])
def test_max_rejects_keeps_the_first_and_counts_all(form, problem):
    import pyarrow as pa

    from scorehouse.schema import Schema

    schema = Schema.from_dict({"columns": [
        {"name": "a", "type": "number", "nullable": False},
        {"name": "b", "type": "integer", "nullable": False}]})
    n = 1000
    values = {"missing column": None, "invalid value": ["x"] * n, "missing value": [None] * n}
    frame = pd.DataFrame({"a": np.arange(n, dtype=float)})
    if values[problem] is not None:
        frame["b"] = pd.Series(values[problem], dtype=object)
    data = {"records": _records(frame), "pandas": frame,
            "arrow": pa.Table.from_pandas(frame, preserve_index=False)}[form]
    capped = validate_batch(schema, data, max_rejects=10)
    full = validate_batch(schema, data)
    assert [r.row for r in capped.rejects] == list(range(10))
    assert {r.kind for r in capped.rejects} == {problem}
    assert capped.rejects == full.rejects[:10] and len(full.rejects) == n
    assert capped.tally is not None and capped.tally.rows == n
    assert capped.tally.counts == {("b", problem): n} and full.tally is None
    assert len(capped.rows) == len(full.rows) == 0


def test_a_capped_result_counts_rows_and_problems(scorer, features):
    bad = features.head(300).astype(object)
    bad.loc[::2, "tenure"] = "abc"
    result = scorer.predict(bad, max_rejects=7)
    assert len(result.rejects) == 7 and result.n_rejected == 150 and result.n_problems == 150
    assert result.n_scored == 150 and result.n_read == 300
    assert result.problem_counts() == {"tenure": {"invalid value": 150}}
    assert result.reject_counts() == {"tenure": 150}
    uncapped = scorer.predict(bad)
    assert uncapped.tally is None and len(uncapped.rejects) == 150
    assert uncapped.problem_counts() == result.problem_counts()


# --- slow clients, TLS, exposure -------------------------------------------------------------


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(15)
    answer = b""
    while chunk := sock.recv(4096):  # until the server closes the connection
        answer += chunk
    sock.close()
    return answer


def test_clients_that_stall_are_dropped_after_the_read_timeout(churn_artifact, tmp_path, rows):
    s = CliServer([str(churn_artifact), "--trust", "--read-timeout", "1"], tmp_path)
    try:
        s.wait_ready()
        heads, bodies = [], []
        for _ in range(10):  # several of each at once: none holds up the others
            sock = socket.create_connection(("127.0.0.1", s.port))
            sock.sendall(b"POST /models/churn/predict HTTP/1.1\r\nHost: x\r\nContent-Ty")
            heads.append(sock)
            sock = socket.create_connection(("127.0.0.1", s.port))
            sock.sendall(b"POST /models/churn/predict HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"ten")
            bodies.append(sock)
        silent = socket.create_connection(("127.0.0.1", s.port))  # connects, sends nothing
        start = time.time()
        assert httpx.post(f"{s.url}/models/churn/predict", json=rows[0]).status_code == 200
        assert httpx.get(f"{s.url}/v2/health/live").status_code == 200
        for sock in bodies:
            head, _, body = _read_all(sock).partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), head[:200]
            assert b"did not arrive within 1 s" in body and is_json(body.decode())
        for sock in [*heads, silent]:
            assert _read_all(sock) == b""  # closed without an answer
        assert time.time() - start < 10
        assert httpx.post(f"{s.url}/models/churn/predict", json=rows[0]).status_code == 200
    finally:
        s.stop()
    assert READ_TIMEOUT == 30.0


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def test_tls_serving_with_a_self_signed_certificate(churn_artifact, tmp_path, rows):
    import ssl

    cert, key = _self_signed(tmp_path)
    trusted = ssl.create_default_context(cafile=str(cert))
    s = CliServer([str(churn_artifact), "--trust", "--ssl-certfile", str(cert),
                   "--ssl-keyfile", str(key)], tmp_path, scheme="https")
    try:
        s.wait_ready(verify=trusted)
        r = httpx.post(f"{s.url}/models/churn/predict", json=rows[0], verify=trusted)
        assert r.status_code == 200 and r.json()["model"] == "churn"
        with pytest.raises(httpx.TransportError):  # plain HTTP gets no answer
            httpx.get(f"http://127.0.0.1:{s.port}/v2/health/live", timeout=5)
    finally:
        err = s.stop()
    assert "https://127.0.0.1" in err and "WARNING" not in err
    bad = subprocess.run([SCRIPT, "serve", str(churn_artifact), "--trust", "--ssl-certfile",
                          str(key)], env=cli_env(tmp_path), capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode != 0 and "cannot use the TLS certificate" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_listening_beyond_loopback_without_keys_or_tls_warns_loudly(churn_artifact, tmp_path):
    from scorehouse.serve.entry import exposure_warning

    assert exposure_warning("127.0.0.1", False, False) is None
    assert exposure_warning("::1", False, False) is None
    assert exposure_warning("0.0.0.0", True, True) is None
    assert "no API key" in exposure_warning("0.0.0.0", False, True)
    assert "API keys included" in exposure_warning("10.1.2.3", True, False)
    s = CliServer([str(churn_artifact), "--trust", "--host", "0.0.0.0"], tmp_path)
    try:
        s.wait_ready()
    finally:
        err = s.stop()
    assert "WARNING" in err and "listening on 0.0.0.0" in err and "no API key" in err


# --- pinned versions -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def four_versions(tmp_path_factory, churn_artifact):
    """churn/1 (production), /2, /3 and /4 (archived)."""
    home = tmp_path_factory.mktemp("pinned-home")
    reg = scorehouse.Registry(f"sqlite:///{home / 'registry.db'}", str(home / "artifacts"))
    for _ in range(4):
        reg.register(churn_artifact, allow_duplicate=True)
    reg.promote("churn/1", "production")
    reg.archive("churn/4", reason="withdrawn")
    return reg


def test_archived_versions_are_refused_on_every_pinned_route(four_versions, rows):
    models = ModelSet(["churn@production"], four_versions)
    with Server(create_app(models, watch=False)) as s:
        meta = httpx.get(f"{s.url}/v2/models/churn").json()
        types = {i["name"]: i["datatype"] for i in meta["inputs"]}
        infer = {"inputs": [{"name": c, "shape": [1], "datatype": types[c], "data": [rows[0][c]]}
                            for c in rows[0]]}
        calls = [("post", "/models/churn/versions/{v}/predict", {"json": rows[0]}),
                 ("post", "/models/churn/versions/{v}/invocations",
                  {"json": {"dataframe_records": rows[:1]}}),
                 ("get", "/v2/models/churn/versions/{v}", {}),
                 ("get", "/v2/models/churn/versions/{v}/ready", {}),
                 ("post", "/v2/models/churn/versions/{v}/infer", {"json": infer})]
        for method, path, kw in calls:
            ok = getattr(httpx, method)(s.url + path.format(v=2), **kw)
            assert ok.status_code == 200, (path, ok.text)
            r = getattr(httpx, method)(s.url + path.format(v=4), **kw)
            text = r.json().get("error") or r.json().get("message")
            assert r.status_code == 404 and "churn/4 is archived" in text, (path, r.text)
        # Archived after it was loaded: the registry check drops it.
        assert httpx.post(f"{s.url}/models/churn/versions/3/predict", json=rows[0]).is_success
        four_versions.archive("churn/3", reason="withdrawn later")
        try:
            assert models.drop_archived() == ["churn/3"]
            r = httpx.post(f"{s.url}/models/churn/versions/3/predict", json=rows[0])
            assert r.status_code == 404 and "archived" in r.json()["error"]
        finally:
            four_versions.restore("churn/3")


def test_pinned_versions_are_an_lru_of_documented_size(four_versions, monkeypatch):
    from scorehouse.serve.models import PINNED_CACHE

    assert PINNED_CACHE == 4
    models = ModelSet(["churn@production"], four_versions, pinned_cache=2)
    models.load_all()
    served = models.models["churn"]
    for version in (2, 3, 2, 1):  # 1 is the current version: no cache entry
        assert models.get("churn", version).version == version
    assert set(served.pinned) == {2, 3}
    four_versions.restore("churn/4")
    try:
        models.get("churn", 4)
        assert set(served.pinned) == {2, 4}  # 3 was the least recently used
    finally:
        four_versions.archive("churn/4", reason="withdrawn")
    monkeypatch.setenv("SCOREHOUSE_PINNED_CACHE", "0")
    off = ModelSet(["churn@production"], four_versions)
    off.load_all()
    with pytest.raises(scorehouse.errors.NotFoundError, match="turned off"):
        off.get("churn", 2)
    monkeypatch.setenv("SCOREHOUSE_PINNED_CACHE", "lots")
    with pytest.raises(scorehouse.errors.ScorehouseError, match="whole number"):
        ModelSet(["churn@production"], four_versions)


# --- API keys, OpenAPI, 405 ------------------------------------------------------------------


@pytest.mark.parametrize("text, keys", [
    ("alpha\n   # old-key (revoked)\n\n  beta  \n", ["alpha", "beta"]),
    ("#all\n\t# tabbed\ngamma # the ops team\ndelta\t# tabbed note\n", ["gamma", "delta"]),
    ("\n\n   \n", []),
])
def test_key_file_comments_and_blank_lines_are_not_keys(text, keys, tmp_path):
    assert keys_in(text) == keys
    path = tmp_path / "keys.txt"
    path.write_text(text)
    api = ApiKeys(path=path)
    for key in keys:
        api.check(f"Bearer {key}")
    for line in text.splitlines():
        if line.strip() and line.strip() not in keys:
            with pytest.raises(scorehouse.serve.auth.Unauthorized):
                api.check(f"Bearer {line.strip()}")


def test_openapi_types_the_label_as_served(tmp_path):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(1)
    df = pd.DataFrame({"x": rng.normal(size=200), "y": rng.normal(size=200)})
    paths = {}
    for name, target in (("text", np.where(df.x > 0, "yes", "no")),
                         ("ints", np.where(df.x > 0, 3, 7))):
        frame = df.assign(t=target)
        paths[name] = str(scorehouse.package(LogisticRegression().fit(df, target), frame,
                                             name=name, target="t", path=tmp_path / f"{name}.shz"))
    with Server(create_app(ModelSet(list(paths.values()), trust=True), watch=False)) as s:
        doc = httpx.get(f"{s.url}/openapi.json").json()
        for name, json_type, py_type in (("text", "string", str), ("ints", "integer", int)):
            schema = doc["paths"][f"/models/{name}/invocations"]["post"]["responses"]["200"][
                "content"]["application/json"]["schema"]["properties"]["predictions"]["items"]
            label = schema["properties"]["label"]
            served = httpx.post(f"{s.url}/models/{name}/invocations",
                                json={"dataframe_records": [{"x": 1.0, "y": 0.0}]}).json()
            value = served["predictions"][0]["label"]
            assert label["type"] == json_type and type(value) is py_type and value in label["enum"]
            assert schema["properties"][f"probability_{label['enum'][0]}"] == {"type": "number"}


def test_openapi_documents_every_route(registry_home):
    from starlette.routing import Route

    from scorehouse.serve.routes import ROUTES

    app = create_app(ModelSet(["churn@production"], registry_home), watch=False)
    with Server(app) as s:
        documented = httpx.get(f"{s.url}/openapi.json").json()["paths"]
    # One table for both transports: the Starlette app holds exactly the fast path's routes.
    pages = {(r.path, frozenset(r.methods)) for r in app.pages.routes if isinstance(r, Route)}
    assert pages == {(r.path, frozenset(r.methods)) for r in ROUTES}
    served = {r.path.replace("{name}", "churn").replace("{model}", "churn") for r in ROUTES}
    served |= {p.replace("/versions/{version}", "") for p in served}
    assert served == set(documented), served ^ set(documented)
    assert len(documented) == 20


def test_405_names_the_allowed_methods(server):
    for method, path, allowed in (("TRACE", "/ping", {"GET", "HEAD"}),
                                  ("GET", "/invocations", {"POST"}),
                                  ("PUT", "/models/churn/predict", {"POST"}),
                                  ("DELETE", "/v2/health/live", {"GET", "HEAD"})):
        r = httpx.request(method, f"{server.url}{path}")
        assert r.status_code == 405 and "method not allowed" in r.json()["error"]
        assert {m.strip() for m in r.headers["allow"].split(",")} == allowed, (method, path)


def test_cli_defaults_are_the_documented_limits():
    out = subprocess.run([SCRIPT, "serve", "--help"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1"}, timeout=60).stdout
    for option, default in (("--max-body", MAX_BODY), ("--max-rows", MAX_ROWS),
                            ("--max-rejects", MAX_REJECTS), ("--read-timeout", READ_TIMEOUT),
                            ("--pinned-cache", 4)):
        line = next(x for x in out.splitlines() if option in x)
        assert f"[default: {default}]" in line or f"default: {default}]" in line, line


# --- schemathesis over every route, positive and negative ------------------------------------


#: Cases per schemathesis run (positive and negative drawn alike); ~1 minute each at 600.
FUZZ_EXAMPLES = int(os.environ.get("SCOREHOUSE_FUZZ_EXAMPLES", "600"))


@pytest.fixture(scope="module")
def keyed_server(registry_home):
    app = create_app(ModelSet(["churn@production"], registry_home), watch=False,
                     api_keys=ApiKeys(["fuzz-key"]))
    with Server(app) as s:
        yield s


@pytest.mark.slow  # a schema fuzzer over every route: ~20 s a run on a quiet machine
@pytest.mark.parametrize("keyed", [False, True], ids=["no-keys", "api-keys"])
def test_schemathesis_positive_and_negative_over_every_route_gives_no_5xx(
        server, keyed_server, keyed, registry_home):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from schemathesis import GenerationMode

    target = keyed_server if keyed else server
    headers = {"Authorization": "Bearer fuzz-key"} if keyed else {}
    schema = schemathesis.openapi.from_url(f"{target.url}/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    labels = sorted(op.label for op in operations)
    # Every documented route (test_openapi_documents_every_route) but /openapi.json, which
    # schemathesis leaves out as the schema itself.
    assert len(operations) == 19 and "GET /openapi.json" not in labels, "; ".join(labels)
    failures: list[str] = []
    cases: dict[str, int] = {}
    strategies = [op.as_strategy(generation_mode=mode).map(lambda c, m=mode.value: (m, c))
                  for op in operations
                  for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]

    @given(drawn=st.one_of(*strategies))
    @settings(max_examples=FUZZ_EXAMPLES, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(drawn) -> None:
        kind, case = drawn
        response = case.call(base_url=target.url, headers=headers, timeout=30)
        cases[kind] = cases.get(kind, 0) + 1
        if response.status_code >= 500 or (response.status_code >= 400
                                           and not is_json(response.text)):
            failures.append(f"{case.method} {case.formatted_path}: {response.status_code} "
                            f"{response.text[:200]} for {case.body!r:.200}")

    fuzz()
    print(f"schemathesis ({'with' if keyed else 'without'} API keys): {cases} cases over "
          f"{len(operations)} operations", file=sys.stderr)
    assert failures == []
    assert min(cases.get("positive", 0), cases.get("negative", 0)) >= FUZZ_EXAMPLES // 6
