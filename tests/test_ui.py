"""The web console in a real browser (Playwright driving Debian's chromium): the models
and their active versions, promote and roll back through the pages (the registry changes
and the history keeps the reason), a gate refusal and a forced promotion, CSRF and role
refusals, the other pages, a phone-width screen and the keyboard; one test on PostgreSQL.

Screenshots of the main pages land in tmp/test-artifacts/ui (git-ignored), or under
$SCOREHOUSE_TEST_ARTIFACTS, for a person to look at after a run.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest
from playwright.sync_api import expect

import scorehouse
from conftest import free_port, run_cli
from scorehouse.demo import churn_frame
from scorehouse.demo.data import TARGET
from scorehouse.evaluation import GatePolicy, Rule
from scorehouse.ui import UiSettings, create_app

ARTIFACTS = Path(os.environ.get("SCOREHOUSE_TEST_ARTIFACTS")
                 or Path(__file__).resolve().parents[1] / "tmp" / "test-artifacts") / "ui"
READER, DEPLOYER = "reader-key-1", "deployer-key-1"


class Console:
    """uvicorn serving an ASGI app in a thread until the console's /healthz answers."""

    def __init__(self, app, prefix: str = ""):
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{prefix}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Console:
        self.thread.start()
        deadline = time.time() + 60
        while True:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=30).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "the console did not start"
            time.sleep(0.05)

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


def _fill(reg, artifact) -> None:
    for _ in range(3):
        reg.register(artifact, description="churn classifier")
    reg.promote("churn/1", "production", reason="first launch")
    reg.promote("churn/2", "production", reason="v2 beats v1 on the holdout")
    reg.promote("churn/3", "staging", reason="try v3")
    reg.set_gate_policy("churn", "gated", GatePolicy(rules=(Rule.parse("roc_auc >= 0.99"),)),
                        reason="only the best")


@pytest.fixture(scope="module")
def home(tmp_path_factory, churn_artifact):
    """A registry (churn/1..3, production -> 2, staging -> 3, a gate on @gated) and a
    prediction log with a clean and a shifted window of churn/2."""
    import pandas as pd

    from scorehouse.demo.drift import shifted
    from scorehouse.evaluation import evaluate_ref
    from scorehouse.monitor import PredictionLogger, read_log
    from scorehouse.monitor.log import Channel

    root = tmp_path_factory.mktemp("ui-home")
    reg = scorehouse.Registry(f"sqlite:///{root / 'registry.db'}", str(root / "artifacts"))
    _fill(reg, churn_artifact)
    churn_frame(600, seed=31).to_parquet(root / "holdout.parquet")
    for ref in ("churn/1", "churn/3"):
        evaluate_ref(ref, root / "holdout.parquet", TARGET, ["plan"], registry=reg)
    scorer = reg.load("churn@production")
    with PredictionLogger(f"parquet:{root / 'log'}") as logger:
        logger.attach(scorer, Channel.SERVE)
        for i in range(4):
            frame = churn_frame(200, seed=40 + i).drop(columns=[TARGET])
            scorer.predict(shifted(frame) if i >= 2 else frame)
    call: dict = {}
    with PredictionLogger(f"parquet:{root / 'log'}") as logger:  # churn-api's traffic
        for ref, role in (("churn/2", "champion"), ("churn/3", "challenger"),
                          ("churn/1", "fallback")):
            model = reg.load(ref)
            model.add_hook(lambda e, role=role: logger.log(e, ids=call[role],
                                                           deployment="churn-api", role=role))
            call[role] = [f"{role}-{i}" for i in range({"fallback": 5}.get(role, 60))]
            model.predict(churn_frame(len(call[role]), seed=50).drop(columns=[TARGET]))
    logged = read_log(root / "log", model="churn").to_pandas()
    logged = logged[logged["deployment"].isna()]
    labels = pd.DataFrame({"id": logged["id"], "label": logged["prediction.label"]})
    labels.loc[labels.index[::7], "label"] = "yes"  # some predictions were wrong
    (root / "labels").mkdir()
    labels.to_parquet(root / "labels" / "churn.parquet")
    (root / "rules.toml").write_text('[[rule]]\nname = "drifting"\nfigure = "drift.share"\n'
                                     'op = ">"\nthreshold = 0.2\n')
    return root, reg


def _settings(root: Path, **more) -> UiSettings:
    return UiSettings(registry=f"sqlite:///{root / 'registry.db'}",
                      artifacts=str(root / "artifacts"), log_source=str(root / "log"),
                      rules=str(root / "rules.toml"), labels=str(root / "labels"), **more)


@pytest.fixture(scope="module")
def writable(home):
    """The console without keys, started with --allow-writes."""
    with Console(create_app(_settings(home[0], allow_writes=True))) as c:
        yield c


@pytest.fixture(scope="module")
def keyed(home):
    """The console with a reader key and a deployer key."""
    with Console(create_app(_settings(home[0], api_keys=[READER],
                                      deployer_keys=[DEPLOYER]))) as c:
        yield c


@pytest.fixture
def page(browser):
    p = browser.new_page(viewport={"width": 1280, "height": 900})
    yield p
    p.close()


def shot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_models_list_shows_the_active_version_and_searches(page, writable):
    page.goto(writable.url + "/")
    row = page.locator("table.list tbody tr", has_text="churn")
    assert "v2 · production" in row.locator(".active-badge").inner_text()
    shot(page, "models")
    page.fill("#q", "nothing-like-it")  # htmx swaps the table in place as one types
    expect(page.locator("#models .count")).to_contain_text("0 models")
    page.fill("#q", "churn class")
    expect(page.locator("#models .count")).to_contain_text("1 model matching")
    assert "q=churn" in page.url


def test_model_page_marks_the_active_version_and_the_history(page, writable):
    page.goto(writable.url + "/models/churn")
    assert "Active version: v2" in page.inner_text("#active-version")
    assert "ACTIVE" in page.inner_text("#v2") and "is-active" in page.get_attribute("#v2", "class")
    assert "ACTIVE" not in page.inner_text("#v3")
    timeline = page.inner_text(".timeline")
    assert "v2 beats v1 on the holdout" in timeline and "first launch" in timeline
    page.wait_for_selector("#schema #schema-table")  # loaded by htmx after the page
    assert "monthly_charges" in page.inner_text("#schema")
    shot(page, "model")


def submit(page, selector: str) -> None:
    """Click `selector` and wait for the page it leads to."""
    with page.expect_navigation():
        page.click(selector)


def _review_and_confirm(page, reason: str) -> None:
    page.fill("#confirm-reason", reason)
    with page.expect_navigation():
        page.click("#confirm-form button[type=submit]")


def test_promote_and_roll_back_through_the_pages(page, writable, home):
    reg = home[1]
    page.goto(writable.url + "/models/churn")
    page.select_option("#promote-version", "3")
    page.fill("#promote-alias", "production")
    page.fill("#promote-reason", "v3 wins the A/B test")
    submit(page, "#promote-form button[type=submit]")
    assert "churn@production: churn/2 → churn/3" in page.inner_text("main")
    shot(page, "confirm")
    assert reg.resolve("churn@production").version == 2  # nothing moved before confirming
    _review_and_confirm(page, "v3 wins the A/B test")
    assert "churn@production → churn/3" in page.inner_text(".flash")
    assert reg.resolve("churn@production").version == 3
    last = reg.history("churn", "production")[-1]
    assert (last.action.value, last.version, last.reason) == ("promote", 3, "v3 wins the A/B test")

    submit(page, "#alias-production button")  # "Roll back to v2…"
    assert "churn/3 → churn/2" in page.inner_text("main")
    _review_and_confirm(page, "v3 misbehaves in production")
    assert reg.resolve("churn@production").version == 2
    last = reg.history("churn", "production")[-1]
    assert (last.action.value, last.version, last.reason) == \
        ("rollback", 2, "v3 misbehaves in production")
    assert "v3 misbehaves in production" in page.inner_text(".timeline")

    submit(page, "button[aria-label='Archive version 1']")
    _review_and_confirm(page, "superseded")
    assert reg.resolve("churn/1").status.value == "archived"
    submit(page, "button[aria-label='Restore version 1']")
    _review_and_confirm(page, "needed for the gate test")
    assert reg.resolve("churn/1").status.value == "ready"
    assert [e.reason for e in reg.history("churn")[-2:]] == ["superseded", "needed for the gate test"]


def test_a_refused_gate_shows_its_table_and_force_needs_a_reason(page, writable, home):
    reg = home[1]
    page.goto(writable.url + "/models/churn")
    page.select_option("#promote-version", "1")
    page.fill("#promote-alias", "gated")
    page.fill("#promote-reason", "try the gate")
    submit(page, "#promote-form button[type=submit]")
    page.fill("#confirm-reason", "try the gate")
    with page.expect_navigation() as refused:
        page.click("#confirm-form button[type=submit]")
    assert refused.value.status == 409
    table = page.inner_text("table.gates")
    assert "roc_auc >= 0.99" in table and "FAIL" in table
    shot(page, "refused")
    with pytest.raises(scorehouse.errors.NotFoundError):
        reg.resolve("churn@gated")
    page.fill("#force-reason", "")
    page.click("text=Review forced promotion")
    assert page.locator("#force-reason:invalid").count() == 1  # the browser asks for a reason
    page.fill("#force-reason", "incident: need v1 now")
    submit(page, "text=Review forced promotion")
    _review_and_confirm(page, "incident: need v1 now")
    assert reg.resolve("churn@gated").version == 1
    last = reg.history("churn", "gated")[-1]
    assert "forced past failing gates (roc_auc >= 0.99)" in last.reason
    assert last.gates and last.gates[0]["verdict"] == "fail"


def test_a_post_without_the_sessions_csrf_token_is_refused(page, writable, home):
    with httpx.Client(base_url=writable.url, timeout=30) as http:
        http.get("/")  # a session: cookies set
        for token in (None, "forged"):
            form = {"alias": "production", "reason": "csrf", "confirmed": "yes"}
            if token:
                form["csrf"] = token
            r = http.post("/models/churn/rollback", data=form)
            assert r.status_code == 403 and "CSRF" in r.text
    page.goto(writable.url + "/models/churn")
    page.eval_on_selector("#promote-form input[name=csrf]", "e => e.value = 'tampered'")
    page.fill("#promote-reason", "a forged form")
    submit(page, "#promote-form button[type=submit]")
    assert "403" in page.title() and "CSRF" in page.inner_text("main")
    assert home[1].resolve("churn@production").version == 2


def test_keys_carry_roles_a_reader_cannot_post(page, keyed, home):
    r = httpx.get(keyed.url + "/models/churn", follow_redirects=False, timeout=30)
    assert r.status_code == 303 and "/login" in r.headers["location"]
    headers = {"authorization": f"Bearer {READER}"}
    assert httpx.get(keyed.url + "/models/churn", headers=headers, timeout=30).status_code == 200
    r = httpx.post(keyed.url + "/models/churn/rollback", headers=headers, timeout=30,
                   data={"alias": "production", "reason": "x", "confirmed": "yes"})
    assert r.status_code == 403 and "deployer role" in r.text
    r = httpx.post(keyed.url + "/models/churn/rollback", data={"alias": "production"}, timeout=30,
                   headers={"authorization": f"Bearer {DEPLOYER}"})
    assert r.status_code == 200 and "Roll back churn@production" in r.text  # the review
    page.goto(keyed.url + "/models/churn")
    page.fill("#key", "wrong")
    submit(page, "form button[type=submit]")
    assert "not valid" in page.inner_text("main")
    page.fill("#key", READER)
    submit(page, "form button[type=submit]")
    assert page.url.endswith("/models/churn")
    assert page.locator("#promote-form").count() == 0 and "reader" in page.inner_text(".who")
    submit(page, "text=Sign out")
    page.goto(keyed.url + "/login")
    page.fill("#key", DEPLOYER)
    submit(page, "form button[type=submit]")
    page.goto(keyed.url + "/models/churn")
    assert page.locator("#promote-form").count() == 1 and "deployer" in page.inner_text(".who")
    assert home[1].resolve("churn@production").version == 2


def test_compare_deployments_monitoring_and_card_pages(page, writable, home):
    from scorehouse.routing import registered
    from scorehouse.routing.spec import DeploymentSpec

    reg = home[1]
    registered.create(reg, DeploymentSpec.from_dict(
        {"name": "churn-api", "champion": "churn@production",
         "challengers": [{"model": "churn/3", "weight": 0.1}]}), reason="A/B v3")
    page.goto(writable.url + "/models/churn/compare?a=1&b=3")
    main = page.inner_text("main")
    assert "Same input schema" in main and "roc_auc" in main and "plan = gold" in main
    shot(page, "compare")
    page.goto(writable.url + "/deployments/churn-api")
    assert "churn/3" in page.inner_text("main") and page.locator("figure svg").count() == 1
    page.fill("#w1", "0.25")
    page.fill("#weights-reason", "more traffic to v3")
    submit(page, "#weights-form button[type=submit]")
    assert "churn/3: 0.1 → 0.25" in page.inner_text("main")
    _review_and_confirm(page, "more traffic to v3")
    assert registered.read(reg, "churn-api")[1].challengers[0].weight == 0.25
    assert "more traffic to v3" in page.inner_text(".timeline")
    assert page.inner_text("#fallbacks").split()[-1] == "5"
    assert "challenger" in page.inner_text("#answered-h + ul")
    shot(page, "deployment")
    page.goto(writable.url + "/deployments/churn-api/comparison")
    compared = page.frame_locator("iframe.card-frame")
    assert "Deployment comparison" in compared.locator("#deployment-comparison h2").inner_text()
    page.goto(writable.url + "/deployments/churn-api")
    submit(page, "text=Roll back to the previous spec")
    _review_and_confirm(page, "back to 10%")
    assert registered.read(reg, "churn-api")[1].challengers[0].weight == 0.1
    page.goto(writable.url + "/models/churn/monitor?window=400rows&since=1d")
    # traffic, drift, quality, decay, and a distribution per prediction column: images the
    # browser fetched and drew (each an SVG the server drew when asked)
    charts = page.locator("figure.chart img")
    assert charts.count() >= 5
    for i in range(charts.count()):
        chart = charts.nth(i)
        chart.scroll_into_view_if_needed()
        deadline = time.time() + 60
        while not chart.evaluate("img => img.complete && img.naturalWidth"):
            assert time.time() < deadline, chart.get_attribute("src")
            time.sleep(0.05)
        assert chart.evaluate("img => img.naturalWidth") > 100
    decay = page.get_attribute("#decay-h + figure img", "src")
    assert "No labels" not in page.inner_text("main")
    drawn = httpx.get(f"http://127.0.0.1:{writable.port}{decay}", timeout=60)
    assert drawn.headers["content-type"].startswith("image/svg+xml") and "roc_auc" in drawn.text
    assert "drifting" in page.inner_text("main")  # the alert rule and its standing
    shot(page, "monitor")
    page.goto(writable.url + "/models/churn/versions/2/card")
    frame = page.frame_locator("iframe.card-frame")
    assert "churn" in frame.locator("h1").first.inner_text()
    href = page.get_attribute("#card-download", "href")
    r = httpx.get(writable.url + href, timeout=60)
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    shot(page, "card")


def test_monitoring_figures_are_kept_until_the_log_or_labels_change(home, tmp_path):
    import re
    import shutil

    from scorehouse.monitor import PredictionLogger
    from scorehouse.monitor.log import Channel

    root, reg = home
    log, labels = tmp_path / "log", tmp_path / "labels"
    shutil.copytree(root / "log", log)
    shutil.copytree(root / "labels", labels)
    settings = UiSettings(registry=f"sqlite:///{root / 'registry.db'}",
                          artifacts=str(root / "artifacts"), log_source=str(log),
                          labels=str(labels))
    query = "/models/churn/monitor?window=400rows&since=1d"

    def look(http) -> tuple[str, int, str]:
        page = http.get(query).text
        windows = page[page.index('id="w-h"'):].count('<th scope="row">')
        src = re.search(r'<img src="([^"]*/decay\.svg[^"]*)"', page).group(1)
        return re.search(r"Figures as of ([^:]+:[^:]+:\S+)", page).group(1), windows, src

    with Console(create_app(settings)) as console, \
            httpx.Client(base_url=f"http://127.0.0.1:{console.port}", timeout=60) as http:
        computed, windows, src = look(http)
        decay = http.get(src).text
        assert look(http) == (computed, windows, src)  # kept: nothing changed
        assert http.get(src).text == decay
        # A new closed log file: the figures are computed again, with the new window.
        scorer = reg.load("churn@production")
        with PredictionLogger(f"parquet:{log}") as logger:
            logger.attach(scorer, Channel.SERVE)
            scorer.predict(churn_frame(400, seed=77).drop(columns=[TARGET]))
        assert look(http)[1] == windows + 1
        # Other labels: the decay chart is drawn again from them.
        before = http.get(src).text
        table = pd.read_parquet(labels / "churn.parquet")
        table["label"] = "yes"
        table.to_parquet(labels / "churn.parquet")
        assert http.get(look(http)[2]).text != before
        missing = http.get("/models/churn/monitor/charts/nothing.svg?window=400rows&since=1d")
        assert missing.status_code == 404 and "traffic" in missing.text


def test_phone_width_and_keyboard(browser, writable):
    phone = browser.new_page(viewport={"width": 390, "height": 844})
    try:
        phone.goto(writable.url + "/models/churn")
        assert phone.evaluate("document.documentElement.scrollWidth") <= 390
        shot(phone, "model-phone")
        phone.keyboard.press("Tab")
        assert phone.evaluate("document.activeElement.textContent") == "Skip to content"
        unlabelled = phone.evaluate("""[...document.querySelectorAll(
            'input:not([type=hidden]), select, textarea, button')].filter(e =>
            !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
            && !e.textContent.trim()).map(e => e.outerHTML)""")
        assert unlabelled == []
        phone.focus("#promote-reason")
        phone.keyboard.type("typed at the keyboard")
        with phone.expect_navigation():
            phone.keyboard.press("Enter")  # submits the form: the review page
        assert "Promote churn/" in phone.inner_text("h1")
    finally:
        phone.close()


def test_serve_mounts_the_console_under_ui(home):
    from scorehouse.serve import ModelSet
    from scorehouse.serve import create_app as serve_app

    models = ModelSet(["churn@production"], home[1])
    app = serve_app(models, mounts={"/ui": create_app(_settings(home[0]))})
    with Console(app, prefix="/ui") as c:
        page = httpx.get(c.url + "/models/churn", timeout=30).text
        assert 'href="/ui/models/churn/monitor"' in page and 'src="/ui/static/htmx.min.js"' in page
        assert httpx.get(c.url.removesuffix("/ui") + "/v2/health/live", timeout=30).status_code == 200


def test_ui_refuses_allow_writes_with_keys(capsys):
    code, _, err = run_cli("ui", "--allow-writes", "--api-key", "k", capsys=capsys)
    assert code == 2 and "--allow-writes is for a console without API keys" in err


@pytest.mark.postgres
def test_console_on_a_postgresql_registry(page, pg_url, tmp_path, churn_artifact):
    reg = scorehouse.Registry(pg_url, str(tmp_path / "artifacts"))
    _fill(reg, churn_artifact)
    with Console(create_app(UiSettings(registry=pg_url, artifacts=str(tmp_path / "artifacts"),
                                       allow_writes=True))) as c:
        page.goto(c.url + "/models/churn")
        assert "Active version: v2" in page.inner_text("#active-version")
        submit(page, "#alias-production button")
        _review_and_confirm(page, "postgres rollback")
    assert reg.resolve("churn@production").version == 1
    assert reg.history("churn", "production")[-1].reason == "postgres rollback"
    reg.close()


def test_key_file_roles_and_revocation(home, tmp_path):
    from scorehouse.apikeys import Role, entries_in
    from scorehouse.serve.auth import ApiKeys

    text = "alpha\nbeta role=deployer user=alice  # ops\n# gamma role=deployer\n"
    assert [(e.key, e.role, e.who) for e in entries_in(text)][1] == ("beta", Role.DEPLOYER, "alice")
    with pytest.raises(scorehouse.errors.UsageError, match="reader or deployer"):
        entries_in("delta role=admin")
    keys = tmp_path / "keys.txt"
    keys.write_text(text)
    ApiKeys(path=keys).check("Bearer beta")  # the server takes a key whatever its role
    app = create_app(_settings(home[0], api_key_file=str(keys)))
    with Console(app) as c, httpx.Client(base_url=c.url, timeout=30) as http:
        http.get("/login")
        csrf = http.cookies["scorehouse_csrf"]
        r = http.post("/login", data={"csrf": csrf, "key": "beta", "next": "//elsewhere.example"})
        assert r.status_code == 303 and r.headers["location"] == "/"  # no open redirect
        assert "alice" in http.get("/models/churn").text
        keys.write_text("alpha\n")  # beta revoked: its session ends at the next request
        r = http.get("/models/churn", follow_redirects=False)
        assert r.status_code == 303 and "/login" in r.headers["location"]


def test_scorehouse_ui_serves_until_stopped(home, tmp_path):
    import subprocess

    from conftest import SCRIPT, cli_env

    port = free_port()
    proc = subprocess.Popen([SCRIPT, "--registry", f"sqlite:///{home[0] / 'registry.db'}",
                             "--artifacts", str(home[0] / "artifacts"), "ui", "--port", str(port)],
                            env=cli_env(tmp_path), stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/", timeout=30)
                break
            except httpx.TransportError:
                assert time.time() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert r.status_code == 200 and "churn" in r.text and "Read-only" in r.text
    finally:
        proc.terminate()
        proc.wait(20)
    assert "read-only" in proc.stderr.read()
