"""`scorehouse monitor check` and `monitor report` on a real Parquet prediction log (the
default one under $SCOREHOUSE_HOME), and `scorehouse demo --drift`.

The check is run as a CI job would run it: once per batch of scoring, a new process state
each time (only the alert state file under $SCOREHOUSE_HOME carries the streaks); alerts go
to a real HTTP receiver on a local port, or to a port where nothing listens."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

import scorehouse
from conftest import free_port, offline_page, run_cli
from scorehouse.demo import churn_frame
from scorehouse.demo.data import TARGET
from scorehouse.monitor.log import Channel, PredictionLogger, read_log

ROWS = 1500
SHIFTED = ["age", "monthly_charges"]


@pytest.fixture(scope="module")
def root(churn_artifact, tmp_path_factory):
    """Root CLI options of a registry holding the churn model as churn/1."""
    d = tmp_path_factory.mktemp("check-registry")
    url, store = f"sqlite:///{d / 'registry.db'}", str(d / "artifacts")
    scorehouse.Registry(url, store).register(churn_artifact)
    return ["--registry", url, "--artifacts", store]


def score(root, seed: int, shifted: bool = False) -> pd.Series:
    """Score ROWS customers with churn/1 into the default prediction log (one call, its
    own time); the true targets."""
    reg = scorehouse.Registry(root[1], root[3])
    scorer = reg.load("churn/1")
    frame = churn_frame(ROWS, seed=seed)
    if shifted:
        frame["monthly_charges"] = frame["monthly_charges"] * 1.5
        frame["age"] = frame["age"] + 30
    with PredictionLogger() as logger:
        logger.attach(scorer, Channel.SCORE)
        scorer.predict(frame.drop(columns=[TARGET]))
    return frame[TARGET]


def rules_file(tmp_path, windows: int = 1, webhook: str | None = None):
    text = f"""
[defaults]
windows = {windows}
resolve_windows = 1

[[rule]]
name = "drift share"
figure = "drift.share"
op = ">="
threshold = 0.1

[[rule]]
name = "auc"
figure = "metric.roc_auc"
op = "<"
threshold = 0.5
"""
    if webhook:
        text += f'\n[webhook]\nurl = "{webhook}"\nretries = 0\ntimeout = 2\n'
    path = tmp_path / "alerts.toml"
    path.write_text(text)
    return path


def check(root, capsys, rules, *extra):
    code, out, err = run_cli(*root, "monitor", "check", "churn/1", "--rules", str(rules),
                             "--json", *extra, capsys=capsys)
    return code, json.loads(out)


def states(result) -> dict[str, str]:
    return {r["rule"]: r["state"] for r in result["rules"]}


@pytest.mark.parametrize("windows", [1, 3])
def test_check_fires_after_consecutive_windows_across_runs(root, capsys, tmp_path, windows):
    rules = rules_file(tmp_path, windows)
    score(root, 1)
    code, result = check(root, capsys, rules)
    assert code == 0 and states(result) == {"drift share": "ok", "auc": "no data"}
    assert len(result["windows"]) == 1 and result["checked_until"]
    # No new rows: nothing counted again, still all clear.
    code, again = check(root, capsys, rules)
    assert code == 0 and again["windows"] == [] and again["checked_until"] == \
        result["checked_until"]
    for run in range(1, windows + 1):
        score(root, 10 + run, shifted=True)
        code, result = check(root, capsys, rules)
        assert len(result["windows"]) == 1  # only the rows logged since the last check
        if run < windows:
            assert code == 0 and states(result)["drift share"] == "breaching"
            assert result["rules"][0]["breaching"] == run
    assert code == 1 and result["firing"] == ["drift share"]
    assert [a["status"] for a in result["alerts"]] == ["firing"]
    # Still firing with nothing new (a CI job rerun), resolved by one clean window.
    assert check(root, capsys, rules)[0] == 1
    score(root, 99)
    code, result = check(root, capsys, rules)
    assert code == 0 and states(result)["drift share"] == "resolved"


def test_check_text_table_and_labels(root, capsys, tmp_path):
    truth = score(root, 1)
    ids = read_log(model="churn").column("id").to_pylist()
    labels = tmp_path / "labels.parquet"
    pd.DataFrame({"id": ids, "churned": truth.to_list()}).to_parquet(labels)
    code, out, _ = run_cli(*root, "monitor", "check", "churn/1", "--rules",
                           str(rules_file(tmp_path)), "--labels", str(labels), "--id", "id",
                           "--target", "churned", capsys=capsys)
    assert code == 0
    assert "drift share" in out and "metric.roc_auc < 0.5" in out and "no data" not in out
    assert "0 rule(s) firing; exit 0" in out


class Receiver:
    """A local HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers["Content-Length"])
                bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_receives_firing_and_resolved(root, capsys, tmp_path):
    receiver = Receiver()
    try:
        rules = rules_file(tmp_path, 1, receiver.url)
        score(root, 2, shifted=True)
        code, result = check(root, capsys, rules)
        assert code == 1
        assert result["deliveries"][-1] == {**result["deliveries"][-1], "target":
                                            receiver.url, "ok": True, "status": 204}
        score(root, 3)
        assert check(root, capsys, rules)[0] == 0
    finally:
        receiver.close()
    firing, resolved = receiver.bodies
    assert firing["model"] == "churn" and firing["status"] == "firing"
    assert [(a["rule"], a["status"]) for a in firing["alerts"]] == [("drift share", "firing")]
    assert resolved["status"] == "resolved"


def test_exit_7_when_the_receiver_is_down_and_resent_later(root, capsys, tmp_path):
    port = free_port()  # nothing listens here
    rules = rules_file(tmp_path, 1, f"http://127.0.0.1:{port}/hook")
    score(root, 4, shifted=True)
    code, result = check(root, capsys, rules)
    assert code == 1 and result["deliveries"][-1]["ok"] is False  # firing wins over 7
    score(root, 5)
    code, result = check(root, capsys, rules)
    assert code == 7 and result["firing"] == [] and not result["deliveries"][-1]["ok"]
    # The receiver is back: the next run (no new rows) sends both events, in order.
    receiver = Receiver()
    try:
        rules = rules_file(tmp_path, 1, receiver.url)
        code, result = check(root, capsys, rules)
    finally:
        receiver.close()
    assert code == 0 and result["windows"] == []
    (body,) = receiver.bodies
    assert [a["status"] for a in body["alerts"]] == ["firing", "resolved"]


@pytest.mark.parametrize("case, code, words", [
    ("missing rules", 3, "does not exist"),
    ("bad toml", 2, "not valid TOML"),
    ("unknown figure", 2, "unknown figure"),
    ("empty log", 3, "no logged predictions"),
    ("labels without id", 2, "--labels needs --id"),
])
def test_bad_inputs(root, capsys, tmp_path, case, code, words):
    rules = rules_file(tmp_path)
    extra: list[str] = []
    if case == "missing rules":
        rules = tmp_path / "nope.toml"
    elif case == "bad toml":
        rules.write_text("[[rule]\nname = ")
    elif case == "unknown figure":
        rules.write_text('[[rule]]\nname = "x"\nfigure = "drift.speed"\nop = ">"\n'
                         "threshold = 1\n")
    elif case == "labels without id":
        extra = ["--labels", str(tmp_path / "labels.parquet")]
    if case != "empty log":
        score(root, 6)
    got, out, err = run_cli(*root, "monitor", "check", "churn/1", "--rules", str(rules),
                            *extra, capsys=capsys)
    assert got == code and words in err and out == "", err


@pytest.fixture
def logged_with_labels(root, tmp_path):
    """Three windows (clean, clean, shifted) and the labels of all their rows."""
    truth = pd.concat([score(root, 7), score(root, 8), score(root, 10, shifted=True)])
    ids = read_log(model="churn").column("id").to_pylist()
    labels = tmp_path / "labels.parquet"
    pd.DataFrame({"id": ids, "churned": truth.to_list()}).to_parquet(labels)
    return labels


@pytest.mark.parametrize("with_labels", [True, False])
def test_report_cli_renders_in_chromium(root, capsys, tmp_path, logged_with_labels,
                                        browser, with_labels):
    out_file = tmp_path / "report.html"
    extra = ["--labels", str(logged_with_labels), "--id", "id", "--target", "churned"] \
        if with_labels else []
    code, out, err = run_cli(*root, "monitor", "report", "churn/1", "-o", str(out_file),
                             "--window", f"{ROWS}rows", "--json", *extra, capsys=capsys)
    assert code == 0, out + err
    summary = json.loads(out)
    assert summary["windows"] == 3 and summary["drifted_columns"] == SHIFTED
    opened = offline_page(browser, out_file)
    page = opened.page
    sections = ["summary", "drift", "drift-over-time", "features", "predictions", "quality"]
    for section in sections + (["performance"] if with_labels else []):
        assert page.locator(f"section#{section}, header#{section}").count() == 1, section
    assert page.locator("#performance").count() == (1 if with_labels else 0)
    drifted = page.locator("#features .feature.drifted").evaluate_all(
        "els => els.map(e => e.dataset.feature)")
    assert sorted(drifted) == SHIFTED
    box = page.locator("#drift-over-time .plot svg").first.bounding_box()
    assert box and box["width"] > 200 and box["height"] > 50
    page.close()
    assert opened.left == [] and opened.dialogs == []


def test_demo_drift_writes_a_report_naming_the_shifted_columns(capsys, tmp_path):
    code, out, err = run_cli("demo", "--dir", str(tmp_path / "demo"), "--rows", "3000",
                             "--drift", capsys=capsys)
    assert code == 0, err
    report = tmp_path / "demo" / "report.html"
    assert report.is_file() and f"monitoring report -> {report}" in out
    assert "drifted columns: age, monthly_charges in the shifted window (none in the first)" \
        in out
    html = report.read_text()
    assert 'id="drift-over-time"' in html and "<script" not in html


def test_report_shows_the_serving_process_resources(root, capsys, tmp_path,
                                                    logged_with_labels, browser):
    """`monitor report --metrics URL`: the memory and CPU time of a real server serving the
    model, and what loading it cost, in their own section; an unreachable URL is one line."""
    from conftest import Server
    from scorehouse.serve import ModelSet, create_app

    registry = scorehouse.Registry(root[1], root[3])
    with Server(create_app(ModelSet(["churn/1"], registry), watch=False)) as server:
        out_file = tmp_path / "report.html"
        code, out, err = run_cli(*root, "monitor", "report", "churn/1", "-o", str(out_file),
                                 "--window", f"{ROWS}rows", "--metrics",
                                 f"{server.url}/metrics", capsys=capsys)
    assert code == 0, out + err
    opened = offline_page(browser, out_file)
    section = opened.page.locator("section#resources")
    assert section.count() == 1
    text = section.inner_text()
    assert "resident memory" in text and "MiB" in text and "CPU time" in text
    load_row = section.locator("tr", has_text="churn").inner_text().split("\t")
    assert load_row[:2] == ["churn", "1"] and load_row[2].endswith(" s")
    opened.page.close()
    code, out, err = run_cli(*root, "monitor", "report", "churn/1", "-o", str(out_file),
                             "--metrics", "http://127.0.0.1:9/metrics", capsys=capsys)
    assert code != 0 and err.startswith("error: cannot read metrics from http://127.0.0.1:9")
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("text, memory, loads", [
    ("process_resident_memory_bytes 1048576.0\nprocess_cpu_seconds_total 2.5\n"
     'scorehouse_model_load_seconds{model="m",version="3"} 0.25\n'
     'scorehouse_model_load_memory_bytes{model="m",version="3"} 2097152.0\n', 1048576.0,
     [("m", "3", 0.25, 2097152.0)]),
    ("# a server without process metrics\n", None, []),
])
def test_resources_parse_from_prometheus_text(text, memory, loads):
    from scorehouse.monitor.resources import parse_resources

    r = parse_resources(text, source="x")
    assert r.resident_memory_bytes == memory
    assert [(x.model, x.version, x.seconds, x.memory_bytes) for x in r.loads] == loads


def test_resources_refuse_text_that_is_not_prometheus():
    from scorehouse.errors import UsageError
    from scorehouse.monitor.resources import parse_resources

    with pytest.raises(UsageError, match="not Prometheus"):
        parse_resources("<html>login</html>\n{{{", source="http://h/metrics")
