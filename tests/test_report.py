"""The HTML monitoring report: built from the demo model with two shifted columns over three
windows, then opened in a real browser (Debian's chromium driven by Playwright) with every
request that is not the file itself aborted and recorded."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from conftest import offline_page
from scorehouse.demo import churn_frame
from scorehouse.demo.data import TARGET
from scorehouse.monitor import baseline_reference, empty_state, training_baseline
from scorehouse.reports import build_report, report_input

SHIFTED = ["monthly_charges", "contract"]
#: A category that is markup: it must reach the page as text.
HOSTILE = "<script>alert(1)</script> & $x$"
#: Screenshots land here (git-ignored) so a person can look at them after a run.
ARTIFACTS = Path(os.environ.get("SCOREHOUSE_TEST_ARTIFACTS") or
                 Path(__file__).resolve().parents[1] / "test-artifacts")


def window(seed: int, charges: float, shifted: bool):
    f = churn_frame(4000, seed=seed).drop(columns=[TARGET])
    f["monthly_charges"] = f["monthly_charges"] * charges
    if shifted:
        rng = np.random.default_rng(seed)
        f["contract"] = rng.choice(["month-to-month", "one-year", "two-year"], len(f),
                                   p=[0.15, 0.25, 0.6])
        f.loc[f.index[:20], "region"] = HOSTILE
    return f


@pytest.fixture(scope="module")
def report_path(churn_artifact, tmp_path_factory):
    """Three windows of the churn model: as in training, a little drift, two columns shifted
    (the report's 'now'), with label metrics decaying over the windows."""
    import scorehouse

    scorer = scorehouse.load(churn_artifact, trust=True)
    baseline = training_baseline(scorer)
    reference = baseline_reference(baseline, scorer.schema)
    windows = []
    for i, (charges, shifted) in enumerate([(1.0, False), (1.1, False), (1.4, True)]):
        state = empty_state(baseline, scorer.schema)
        scorer.hooks[:] = [state.observe]
        scorer.predict(window(20 + i, charges, shifted))
        windows.append((f"2024-05-0{i + 1}", state))
    performance = [(w, {"roc_auc": 0.84 - 0.05 * i, "log_loss": 0.41 + 0.06 * i})
                   for i, (w, _) in enumerate(windows)]
    report = report_input("churn", 3, reference, windows[-1][1], windows=windows,
                          performance=performance,
                          performance_reference={"roc_auc": 0.85, "log_loss": 0.40},
                          window="2024-05-03")
    assert sorted(report.drift.drifted_columns) == sorted(SHIFTED)
    path = tmp_path_factory.mktemp("report") / "report.html"
    build_report(report, path)
    return path


def test_report_is_one_file_that_loads_nothing(report_path):
    html = report_path.read_text()
    assert "<script" not in html and "<link" not in html
    # Only in-page references (the SVG's clip paths and markers), nothing to fetch.
    assert not re.search(r"""(src|href)\s*=\s*["'](?!#)""", html)
    assert not re.search(r"url\((?!#)", html)
    assert "default-src 'none'" in html  # and the browser is told to load nothing
    # The hostile category is shown as text (matplotlib escapes SVG text).
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; $x$ (unseen)" in html


def test_user_text_is_escaped_in_the_page(report_path, churn_artifact):
    import scorehouse

    scorer = scorehouse.load(churn_artifact, trust=True)
    baseline = training_baseline(scorer)
    state = empty_state(baseline, scorer.schema)  # an empty window: plots must cope
    html = build_report(report_input("<b>churn</b>", None, baseline_reference(
        baseline, scorer.schema), state))
    assert "&lt;b&gt;churn&lt;/b&gt;" in html and "<b>churn</b>" not in html
    assert 'id="drift-over-time"' not in html and 'id="performance"' not in html


def test_report_renders_in_chromium_offline(browser, report_path):
    opened = offline_page(browser, report_path)
    page = opened.page
    for section in ("summary", "drift", "drift-over-time", "features", "predictions",
                    "quality", "performance"):
        assert page.locator(f"section#{section}, header#{section}").count() == 1, section
    panels = page.locator("#features .feature")
    names = panels.evaluate_all("els => els.map(e => e.dataset.feature)")
    assert set(names) >= {"monthly_charges", "contract", "region", "tenure"}
    for i in range(panels.count()):  # one drawn plot per feature
        box = panels.nth(i).locator("svg").bounding_box()
        assert box and box["width"] > 100 and box["height"] > 50, names[i]
    drifted = page.locator("#features .feature.drifted").evaluate_all(
        "els => els.map(e => e.dataset.feature)")
    assert sorted(drifted) == sorted(SHIFTED)
    assert page.locator("#predictions .feature svg").count() >= 2
    for section in ("drift", "drift-over-time", "quality", "performance"):
        box = page.locator(f"#{section} .plot svg").first.bounding_box()
        assert box and box["width"] > 200 and box["height"] > 50, section
    assert "Drifted: contract, monthly_charges." in page.inner_text("#summary")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    page.close()
    assert opened.left == [] and opened.dialogs == []  # nothing fetched, no script ran
