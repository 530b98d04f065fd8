"""Alert rules: consecutive-window firing and resolving, state kept between runs, delivery
to a real local HTTP receiver, and rule files that are wrong in every way we could think of."""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port
from scorehouse.demo import churn_frame
from scorehouse.demo.data import TARGET
from scorehouse.errors import UsageError
from scorehouse.monitor import (
    AlertRule,
    AlertState,
    AlertStatus,
    Op,
    WindowFigures,
    baseline_reference,
    check,
    dataset_drift,
    empty_state,
    input_quality,
    parse_rules,
    run_check,
    training_baseline,
)
from scorehouse.monitor.alert_rules import Webhook
from scorehouse.monitor.alerts import EXIT_FIRING, EXIT_OK, EXIT_UNDELIVERED, post_webhook

RULES = """
[defaults]
windows = 3
resolve_windows = 2

[webhook]
url = "{url}"
timeout = 2
retries = 2

[[rule]]
name = "AUC decay"
figure = "metric.roc_auc"
op = "<"
threshold = 0.7
severity = "critical"

[[rule]]
name = "slow"
figure = "latency_p99_ms"
op = ">"
threshold = 50
windows = 1
"""


class Receiver:
    """A real HTTP server on a free local port recording every POST; `statuses` are the
    answers to give, in order (200 once they run out)."""

    def __init__(self, statuses: list[int] | None = None, port: int = 0):
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.statuses = list(statuses or [])
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                n = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(n)))
                receiver.headers.append(dict(self.headers))
                code = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def auc(*values):
    return [WindowFigures(start=f"2024-05-{i + 1:02d}", metrics={"roc_auc": v} if v else {})
            for i, v in enumerate(values)]


def test_fires_after_n_breaching_windows_and_resolves_after_n_ok_ones():
    rule = AlertRule("AUC decay", "metric.roc_auc", Op.LT, 0.7, windows=3, resolve_windows=2)
    state = AlertState("churn")
    seen = []
    # Two breaches, an OK window breaks the streak, then three breaches fire; one OK window
    # does not resolve, two do.
    for window in auc(0.65, 0.66, 0.8, 0.6, 0.62, 0.61, 0.75, 0.6, 0.8, 0.81):
        result = check(window, [rule], state)
        state = result.state
        seen.append((window.label[-2:], [a.status.value for a in result.alerts],
                     result.exit_code))
    assert seen == [
        ("01", [], EXIT_OK), ("02", [], EXIT_OK), ("03", [], EXIT_OK), ("04", [], EXIT_OK),
        ("05", [], EXIT_OK), ("06", ["firing"], EXIT_FIRING), ("07", [], EXIT_FIRING),
        ("08", [], EXIT_FIRING), ("09", [], EXIT_FIRING), ("10", ["resolved"], EXIT_OK)]


def test_many_windows_in_one_call_and_windows_without_data():
    rule = AlertRule("AUC decay", "metric.roc_auc", Op.LT, 0.7, windows=2)
    state = AlertState("churn")
    # The window without labels neither breaks nor extends the streak.
    result = check(auc(0.6, None, 0.6), [rule], state)
    assert [a.status for a in result.alerts] == [AlertStatus.FIRING]
    a = result.alerts[0]
    assert (a.window, a.streak, a.value, a.severity) == ("2024-05-03", 2, 0.6, "warning")
    assert "metric.roc_auc = 0.6 < 0.7" in a.message
    assert result.firing == ("AUC decay",) and state.rules == {}  # the input is unchanged
    assert check(auc(None), [rule], result.state).no_data == ("AUC decay",)


def test_drift_and_quality_rules_on_a_real_shifted_window(scorer):
    baseline = training_baseline(scorer)
    ref = baseline_reference(baseline, scorer.schema)
    state = empty_state(baseline, scorer.schema)
    scorer.add_hook(state.observe)
    frame = churn_frame(5000, seed=8).drop(columns=[TARGET])
    frame["monthly_charges"] = frame["monthly_charges"] * 1.5
    frame.loc[frame.index[:500], "region"] = "overseas"
    scorer.predict(frame)
    window = WindowFigures("w1", dataset_drift(state, ref), input_quality(state, ref))
    rules = parse_rules("""
[[rule]]
name = "charges"
figure = "drift.score"
column = "monthly_charges"
op = ">="
threshold = 1.0
[[rule]]
name = "any drift"
figure = "drift.drifted"
op = ">="
threshold = 3
[[rule]]
name = "new regions"
figure = "quality.unseen_rate"
op = ">"
threshold = 0.05
[[rule]]
name = "tenure"
figure = "drift.psi"
column = "tenure"
op = ">"
threshold = 0.1
""")
    result = check(window, rules, AlertState("churn"))
    assert set(result.firing) == {"charges", "new regions"}
    assert result.state.rules["any drift"].value == 2.0  # monthly_charges and region
    unseen = next(a for a in result.alerts if a.rule == "new regions").value
    assert unseen == pytest.approx(0.1)
    with pytest.raises(UsageError, match="'nope' is not among the drift columns"):
        check(window, [AlertRule("x", "drift.psi", Op.GT, 1, column="nope")], AlertState())


def test_webhook_gets_a_real_post_and_state_persists_between_runs(tmp_path, caplog):
    caplog.set_level(logging.INFO, "scorehouse.monitor.alerts")
    path = tmp_path / "alerts" / "churn.json"
    with Receiver() as receiver:
        rules = parse_rules(RULES.format(url=receiver.url))
        # One window per run, as a nightly CI job would: the streak is counted across runs.
        codes = [run_check(w, rules, "churn", path, backoff=0).exit_code
                 for w in auc(0.6, 0.6)]
        assert codes == [EXIT_OK, EXIT_OK] and receiver.bodies == []
        fired = run_check(auc(0.6)[0], rules, "churn", path, backoff=0)
        assert fired.exit_code == EXIT_FIRING
        assert [d.target for d in fired.deliveries] == ["log", receiver.url]
        assert all(d.ok for d in fired.deliveries)
        body = receiver.bodies[0]
        assert body["source"] == "scorehouse" and body["model"] == "churn"
        assert body["status"] == "firing" and len(body["alerts"]) == 1
        alert = body["alerts"][0]
        assert {k: alert[k] for k in ("rule", "status", "severity", "figure", "op",
                                      "threshold", "value", "streak")} == {
            "rule": "AUC decay", "status": "firing", "severity": "critical",
            "figure": "metric.roc_auc", "op": "<", "threshold": 0.7, "value": 0.6, "streak": 3}
        assert receiver.headers[0]["Content-Type"] == "application/json"
        assert "FIRING churn: AUC decay" in caplog.text
        assert json.loads(path.read_text())["rules"]["AUC decay"]["firing"] is True
        for w in auc(0.9, 0.9):
            last = run_check(w, rules, "churn", path, backoff=0)
        assert last.exit_code == EXIT_OK
        assert [b["status"] for b in receiver.bodies] == ["firing", "resolved"]
        assert "RESOLVED churn: AUC decay" in caplog.text


def test_default_state_path_is_under_scorehouse_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREHOUSE_HOME", str(tmp_path))
    rules = [AlertRule("slow", "latency_p99_ms", Op.GT, 50)]
    assert run_check(WindowFigures(latency_p99_ms=80.0), rules, "churn").exit_code == 1
    assert (tmp_path / "monitor" / "alerts" / "churn.json").is_file()
    with pytest.raises(UsageError):
        run_check(WindowFigures(), rules, "../x")


def test_webhook_retries_server_errors_then_delivers():
    with Receiver([503, 500]) as receiver:
        d = post_webhook(Webhook(receiver.url, retries=2), [], "churn", backoff=0)
    assert (d.ok, d.attempts, d.status) == (True, 3, 200)
    assert len(receiver.bodies) == 3


def test_webhook_does_not_retry_a_refused_body_and_a_dead_receiver_fails(caplog):
    with Receiver([400]) as receiver:
        d = post_webhook(Webhook(receiver.url, retries=3), [], backoff=0)
    assert (d.ok, d.attempts, d.status) == (False, 1, 400)
    dead = f"http://127.0.0.1:{free_port()}/hook"
    d = post_webhook(Webhook(dead, timeout=1, retries=1), [], backoff=0)
    assert (d.ok, d.attempts, d.status) == (False, 2, None) and d.error
    assert "failed after 2 tries" in caplog.text


def test_undelivered_alerts_give_their_own_exit_code_and_are_sent_later(tmp_path):
    port = free_port()
    rules = parse_rules(RULES.format(url=f"http://127.0.0.1:{port}/hook"))
    path = tmp_path / "s.json"
    slow, fast = WindowFigures(latency_p99_ms=99.0), WindowFigures(latency_p99_ms=1.0)
    assert run_check(slow, rules, "m", path, 0).exit_code == EXIT_FIRING
    # resolve_windows = 2 (from [defaults]): one fast window does not resolve it.
    assert run_check(fast, rules, "m", path, 0).firing == ("slow",)
    resolved = run_check(fast, rules, "m", path, 0)
    assert resolved.firing == () and resolved.exit_code == EXIT_UNDELIVERED
    assert [a.status.value for a in resolved.state.pending] == ["firing", "resolved"]
    with Receiver(port=port) as receiver:  # the receiver is back
        later = run_check(fast, rules, "m", path, 0)
    assert later.exit_code == EXIT_OK and later.state.pending == []
    assert [a["status"] for a in receiver.bodies[0]["alerts"]] == ["firing", "resolved"]


GOOD = '[[rule]]\nname = "r"\nfigure = "metric.auc"\nop = "<"\nthreshold = 0.7\n'


@pytest.mark.parametrize(("text", "message"), [
    ("[[rule]]\nname = 'r'\nfigure = 'metric.auc'\nop = '<'\nthreshold = \n",
     r"not valid TOML: .*line 5"),
    (GOOD + "\n[[rule]]\nname = 'b'\nfigure = 'drift.sharee'\nop = '>'\nthreshold = 1\n",
     r":7: rule #2 'b': field 'figure': unknown figure 'drift.sharee'"),
    (GOOD + "\n[[rule]]\nname = 'b'\nfigure = 'error_rate'\nop = '=>'\nthreshold = 1\n",
     r":7: rule #2 'b': field 'op' is '=>'; use one of \['>', '>=', '<', '<='\]"),
    (GOOD.replace("threshold = 0.7", "threshold = 'high'"),
     r":1: rule #1 'r': field 'threshold' has the wrong type \(str\)"),
    (GOOD.replace('op = "<"\n', ""), r":1: rule #1 'r': field 'op' is required"),
    (GOOD + "windows = 0\n", r"rule #1 'r': field 'windows' must be a whole number >= 1"),
    (GOOD + "treshold = 1\n", r":1: rule #1: unknown field\(s\) \['treshold'\]"),
    (GOOD + "column = 'age'\n", r"'metric.auc' is of the whole window and takes no column"),
    (GOOD.replace('"metric.auc"', '"drift.statistic"'), r"'drift.statistic' needs a column"),
    (GOOD + GOOD, r"rule names must be unique .*\['r'\]"),
    (GOOD + "severity = 'panic'\n", r"field 'severity' is 'panic'"),
    ("[defaults]\nwindows = 2\n", r"no rules; add at least one \[\[rule\]\]"),
    ("[rules]\n", r"unknown section\(s\) \['rules'\]"),
    (GOOD + "[webhook]\nurl = 'ftp://x'\n", r"\[webhook\]: field 'url' must be an http"),
])
def test_bad_rule_files_say_where_and_what(text, message):
    with pytest.raises(UsageError, match=message):
        parse_rules(text, source="alerts.toml")
