"""/docs in a real browser (Debian's chromium driven by Playwright), on a network with no way
out: every request that leaves the server's own address is aborted and recorded."""

from __future__ import annotations

import os
import shutil

import httpx
import pytest

from conftest import Server, unreachable
from scorehouse.serve import ModelSet, create_app

CHROMIUM = os.environ.get("SCOREHOUSE_TEST_CHROMIUM") or shutil.which("chromium") or \
    "/usr/bin/chromium"
#: The flags a root sandbox needs, and no calls home (the machine's network is closed).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium under Playwright; fails (never skips) under CI=true."""
    try:
        from playwright.sync_api import sync_playwright

        pw = sync_playwright().start()
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    except Exception as e:  # noqa: BLE001 - no chromium or no playwright: not reachable
        unreachable("chromium (Debian package) driven by Playwright", CHROMIUM, e)
    yield b
    b.close()
    pw.stop()


@pytest.fixture(scope="module")
def docs_server(churn_artifact):
    with Server(create_app(ModelSet([str(churn_artifact)], None, trust=True))) as s:
        yield s


def test_docs_page_loads_its_assets_from_the_server_itself(docs_server):
    html = httpx.get(f"{docs_server.url}/docs").text
    assert "cdn" not in html.lower() and "https://" not in html
    for asset, kind in (("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "text/css")):
        assert f'"/docs/assets/{asset}"' in html
        r = httpx.get(f"{docs_server.url}/docs/assets/{asset}")
        assert r.status_code == 200 and kind in r.headers["content-type"]
        assert len(r.content) > 10_000  # the real built file, not a placeholder
    # Only the shipped files: no way out of their folder.
    assert httpx.get(f"{docs_server.url}/docs/assets/..%2F..%2F__init__.py").status_code == 404


def test_docs_page_renders_every_route_offline(browser, docs_server, tmp_path):
    left: list[str] = []

    def only_this_server(route):
        if route.request.url.startswith(docs_server.url):
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    page = browser.new_page()
    page.route("**/*", only_this_server)
    page.goto(f"{docs_server.url}/docs")
    page.wait_for_selector(".opblock", timeout=30_000)
    assert "scorehouse" in page.inner_text(".info .title")
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    spec = httpx.get(f"{docs_server.url}/openapi.json").json()
    assert {p.replace("\u200b", "") for p in paths} == set(spec["paths"])
    page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
    page.close()
    assert left == []  # nothing was fetched from outside
