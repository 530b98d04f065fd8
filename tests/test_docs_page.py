"""/docs in a real browser (Debian's chromium driven by Playwright), on a network with no way
out: every request that leaves the server's own address is aborted and recorded."""

from __future__ import annotations

import httpx
import pytest

from conftest import Server
from scorehouse.serve import ModelSet, create_app


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
