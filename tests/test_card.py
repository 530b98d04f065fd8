"""Model cards: a binary (demo churn, with the author's card text and a prediction log), a
multiclass and a regression model, each registered and evaluated, then carded; the HTML
opened in a real browser (Debian's chromium under Playwright) with every request that is
not the file itself aborted; the Markdown variant's headings; the card text hashed into
the artifact like every file."""

from __future__ import annotations

import zipfile

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LinearRegression, LogisticRegression

import scorehouse
from conftest import offline_page
from scorehouse import artifact as artifact_io
from scorehouse.artifact import CARD_FILE, CardText
from scorehouse.demo import churn_frame
from scorehouse.demo.data import TARGET
from scorehouse.errors import IntegrityError, UsageError
from scorehouse.evaluation import GatePolicy, evaluate_ref, promote
from scorehouse.monitor.log import Channel, PredictionLogger
from scorehouse.reports.card import LogOptions, build_card, card_input
from test_cli import CLI, ok
from test_report import ARTIFACTS

HOSTILE = "<script>alert(1)</script> & | $x$"
CARD_TOML = f'''
intended_use = "Rank customers by churn risk for the retention team. {HOSTILE}"
users = ["retention analysts", "the CRM batch job"]
out_of_scope = ["credit decisions"]
ethical_considerations = "Region may act as a proxy for age."
caveats = ["Trained on synthetic data.", "Re-evaluate every quarter."]
'''
SECTIONS = ("summary", "details", "use", "training-data", "evaluation", "segments",
            "importance", "compiled", "schema", "history")
CURVES = {"binary": {"ROC", "Precision-recall", "Calibration"},
          "multiclass": {"ROC", "Precision-recall", "Calibration"},
          "regression": {"Residuals", "Calibration"}}


def _frame(X: np.ndarray, y) -> pd.DataFrame:
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    df["y"] = y
    return df


def _others(d):
    """(name, artifact, holdout frame) for a multiclass and a regression model."""
    X, y = make_classification(1000, 4, n_informative=3, n_redundant=0, n_classes=3,
                               random_state=1)
    kinds = np.array(["ash", "birch", "cedar"])[y]
    train = _frame(X[:700], kinds[:700])
    multi = LogisticRegression(max_iter=500).fit(train.drop(columns=["y"]), train["y"])
    Xr, yr = make_regression(1000, 4, noise=10.0, random_state=2)
    rtrain = _frame(Xr[:700], yr[:700] + 500.0)
    reg = LinearRegression().fit(rtrain.drop(columns=["y"]), rtrain["y"])
    return {
        "multiclass": ("trees", scorehouse.package(multi, train, name="trees", target="y",
                                                   path=d / "trees.shz"),
                       _frame(X[700:], kinds[700:])),
        "regression": ("price", scorehouse.package(reg, rtrain, name="price", target="y",
                                                   path=d / "price.shz"),
                       _frame(Xr[700:], yr[700:] + 500.0)),
    }


@pytest.fixture(scope="module")
def carded(tmp_path_factory, churn_model, churn_data):
    """{family: (registry, ref, card input)}: each registered and evaluated; churn with
    card text, a segment, a forced promotion past a gate and two logged windows."""
    d = tmp_path_factory.mktemp("cards")
    (d / "card.toml").write_text(CARD_TOML)
    reg = scorehouse.Registry(f"sqlite:///{d / 'registry.db'}", str(d / "artifacts"))
    churn = scorehouse.package(churn_model, churn_data, name="churn", target=TARGET,
                               path=d / "churn.shz", card=d / "card.toml")
    models = {"binary": ("churn", churn, churn_frame(700, seed=11)), **_others(d)}
    out = {}
    for family, (name, path, holdout) in models.items():
        reg.register(path)
        target = TARGET if family == "binary" else "y"
        holdout.to_parquet(d / f"{name}-holdout.parquet")
        evaluate_ref(f"{name}/1", d / f"{name}-holdout.parquet", target,
                     ["plan"] if family == "binary" else [], registry=reg)
        out[family] = (reg, f"{name}/1")
    reg.set_gate_policy("churn", "production", GatePolicy.build(["roc_auc >= 0.99"]))
    promote(reg, "churn/1", "production", force=True, reason="audit trail test")
    log = d / "predictions"
    scorer = reg.load("churn/1")
    with PredictionLogger(str(log)) as logger:
        logger.attach(scorer, Channel.SCORE)
        for shift in (1.0, 1.6):
            f = churn_frame(1500, seed=40).drop(columns=[TARGET])
            f["monthly_charges"] = f["monthly_charges"] * shift
            scorer.predict(f)
    options = {"binary": LogOptions(source=str(log), window="1500rows")}
    return {family: (reg, ref, card_input(ref, registry=reg,
                                          log=options.get(family, LogOptions(enabled=False))))
            for family, (reg, ref) in out.items()}


@pytest.fixture(scope="module")
def pages(carded, tmp_path_factory):
    d = tmp_path_factory.mktemp("card-html")
    return {family: build_card(evidence, d / f"{family}.html") and d / f"{family}.html"
            for family, (_, _, evidence) in carded.items()}


def _open(browser, path):
    opened = offline_page(browser, path)
    return opened.page, opened.left, opened.dialogs


def _size(locator) -> tuple[float, float]:
    box = locator.bounding_box()
    return (box["width"], box["height"]) if box else (0.0, 0.0)


@pytest.mark.parametrize("family", ["binary", "multiclass", "regression"])
def test_card_renders_in_chromium_offline_with_every_section(browser, pages, family):
    page, left, dialogs = _open(browser, pages[family])
    for section in SECTIONS:
        assert page.locator(f"section#{section}, header#{section}").count() == 1, section
    assert (page.locator("section#monitoring").count() == 1) == (family == "binary")
    panels = page.locator("#training-data .feature")
    assert panels.count() >= 4
    for i in range(panels.count()):  # one drawn plot per feature
        w, h = _size(panels.nth(i).locator("svg"))
        assert w > 100 and h > 50, i
    curves = page.locator("#evaluation figure.curve")
    assert set(curves.evaluate_all("els => els.map(e => e.dataset.curve)")) == CURVES[family]
    for i in range(curves.count()):
        w, h = _size(curves.nth(i).locator("svg"))
        assert w > 150 and h > 100
    w, h = _size(page.locator("#importance .plot svg"))
    assert w > 200 and h > 50
    assert "parity" in page.inner_text("#compiled")
    assert "register" in page.inner_text("#history")
    if family == "binary":
        assert page.locator("#segments td", has_text="platinum").count() == 1
        gates = page.inner_text("#history .gates")
        assert "roc_auc >= 0.99" in gates and "fail" in gates
        assert "audit trail test" in page.inner_text("#history")
        w, h = _size(page.locator("#monitoring .plot svg").first)
        assert w > 200 and h > 50
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "card.png"), full_page=True)
    if family == "multiclass":
        assert page.locator("#evaluation td", has_text="birch").count() == 1  # per class
    page.close()
    assert left == [] and dialogs == []  # nothing fetched, no script ran


def test_author_text_is_shown_as_text(browser, pages):
    html = pages["binary"].read_text()
    assert "<script" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "default-src 'none'" in html
    page, _, dialogs = _open(browser, pages["binary"])
    use = page.inner_text("#use")
    assert HOSTILE in use and "Region may act as a proxy for age." in use
    assert "Out-of-scope uses" in use and "credit decisions" in use
    page.close()
    assert dialogs == []
    other = pages["regression"].read_text()
    assert "The author gave no card text" in other


def test_markdown_card_has_the_sections_and_escapes(carded):
    text = build_card(carded["binary"][2], fmt="markdown")
    headings = [line for line in text.splitlines() if line.startswith("#")]
    for h in ("## Model details and lineage", "## Intended use and considerations",
              "### Intended use", "## Training data", "## Holdout evaluation",
              "## Performance per segment", "## Feature importance", "## Compiled runtime",
              "## Input schema", "## Alias history and gates",
              "## Drift and decay since deployment"):
        assert h in headings, h
    assert "<script>" not in text and "&lt;script&gt;" in text and "\\|" in text
    assert "<svg" not in text
    assert "| roc_auc |" in text and "- steps" in text


def test_card_text_is_hashed_into_the_artifact(carded, tmp_path):
    reg, ref, _ = carded["binary"]
    art, _ = reg.load_artifact(ref)
    text = CardText.from_bytes(art.files[CARD_FILE], "x")
    assert text.out_of_scope == ("credit decisions",) and CARD_FILE in art.manifest.files
    bad = tmp_path / "tampered.shz"
    with zipfile.ZipFile(bad, "w") as zf:
        for name, data in {artifact_io.MANIFEST_FILE: art.manifest.to_bytes(),
                           **art.files}.items():
            zf.writestr(name, data.replace(b"credit decisions", b"credit approvals")
                        if name == CARD_FILE else data)
    with pytest.raises(IntegrityError, match="card/card.json"):
        artifact_io.read(bad, trust=True)


def test_card_files_are_checked(tmp_path):
    (tmp_path / "c.toml").write_text('intended_use = "x"\nowner = "me"\n')
    with pytest.raises(UsageError, match="unknown field"):
        CardText.from_file(tmp_path / "c.toml")
    (tmp_path / "c.yaml").write_text("intended_use: x\n")
    with pytest.raises(UsageError, match=".toml or .json"):
        CardText.from_file(tmp_path / "c.yaml")
    (tmp_path / "c.json").write_text('{"caveats": ["a", "b"]}')
    assert CardText.from_file(tmp_path / "c.json").caveats == ("a", "b")


def test_cli_writes_html_and_markdown(tmp_path, churn_model, churn_data):
    (tmp_path / "card.toml").write_text(CARD_TOML)
    scorehouse.package(churn_model, churn_data, name="churn", target=TARGET,
                       path=tmp_path / "churn.shz")
    cli = CLI(tmp_path / "home", tmp_path)
    ok(cli("register", "churn.shz"))
    churn_frame(400, seed=12).to_parquet(tmp_path / "h.parquet")
    ok(cli("evaluate", "churn/1", "h.parquet", "--target", TARGET))
    assert "wrote the model card of churn/1" in ok(cli("card", "churn/1", "-o", "c.html"))
    assert (tmp_path / "c.html").read_text().count("<svg") > 10
    ok(cli("card", "churn/1", "-o", "c.md"))
    assert (tmp_path / "c.md").read_text().startswith("# churn · version 1 · model card")
    bad = cli("card", "churn/1", "-o", "c.pdf")
    assert bad.code == 2 and ".html or .md" in bad.err
