"""What the CLI prints of text others typed, and how it refuses invalid names: in process
(`main`), with a registry in the test's own SCOREHOUSE_HOME.

Reasons, descriptions, user names and metric names are stored as given; printed for people
they show their control characters escaped (no colour, title, cursor or bidi tricks, no
fake lines, no rich markup), and `--json` gives them back exactly.
"""

from __future__ import annotations

import json

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import scorehouse
from conftest import run_cli
from scorehouse.cli import output
from scorehouse.cli.output import printable

# Recolour, clear the screen, retitle the window (OSC ... BEL), a C1 CSI, a line break that
# would fake a row, a right-to-left override, a rich-markup hyperlink, a tab, DEL.
HOSTILE = ("red \x1b[31mALERT\x1b[0m \x1b[2J \x1b]0;owned\x07 \x9b1m\nfake row | x "
           "\u202edesrever [link=http://evil.example]click[/link]\tend\x7f")
RAW = ("\x1b", "\x07", "\x9b", "\u202e", "\x7f", "\t")


run = run_cli  # `scorehouse ARGS` in this process: (exit code, stdout, stderr)


@pytest.fixture
def wide(monkeypatch):
    """Tables wide enough to show whole values."""
    monkeypatch.setattr(output.console, "width", 400)


@pytest.fixture
def tiny(tmp_path):
    """A small model packaged with a hostile metric name and description; the .shz path."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=200), "y": rng.normal(size=200)})
    df["t"] = np.where(df.x + df.y > 0, "yes", "no")
    model = LogisticRegression().fit(df[["x", "y"]], df.t)
    joblib.dump(model, tmp_path / "tiny.joblib")
    df.to_parquet(tmp_path / "train.parquet")
    return scorehouse.package(model, df, name="tiny", target="t", path=tmp_path / "tiny.shz",
                              metrics={f"m{HOSTILE}": 1.0}, description=HOSTILE)


def test_printable_escapes_control_characters_and_keeps_other_text():
    assert printable("a\x1b[31mb\x07\n\u202ec\x9b\udc9b") == "a\\x1b[31mb\\x07\\n\\u202ec\\x9b\\udc9b"
    assert printable("line\nbreak", newlines=True) == "line\nbreak"
    assert printable("données – ok ✓ [b]x[/b]") == "données – ok ✓ [b]x[/b]"


def test_models_history_show_and_list_print_user_text_escaped_and_json_exact(
        tiny, capsys, wide, monkeypatch):
    monkeypatch.setenv("SCOREHOUSE_USER", f"mallory{HOSTILE}")
    assert run("register", str(tiny), "--description", HOSTILE, capsys=capsys)[0] == 0
    assert run("promote", "tiny/1", "production", "-m", HOSTILE, capsys=capsys)[0] == 0
    for verb in (["models", "history", "tiny"], ["models", "show", "tiny"],
                 ["models", "list"]):
        code, out, err = run(*verb, capsys=capsys)
        assert code == 0, err
        assert not [c for c in RAW if c in out], (verb, out)
        if verb[1] == "history":
            assert "red \\x1b[31mALERT\\x1b[0m \\x1b[2J \\x1b]0;owned\\x07 \\x9b1m\\nfake row" in out
            assert "\\u202edesrever [link=http://evil.example]click[/link]\\tend\\x7f" in out
            assert f"mallory{printable(HOSTILE)}"[:40] in out
            assert not [ln for ln in out.splitlines() if ln.lstrip().startswith("fake row")]
        if verb[1] == "show":
            assert "m" + printable(HOSTILE)[:30] in out
    # --json: the stored text, exactly
    _, out, _ = run("models", "history", "tiny", "--json", capsys=capsys)
    events = json.loads(out)
    assert [e["reason"] for e in events if e["action"] == "promote"] == [HOSTILE]
    assert {e["user"] for e in events} == {f"mallory{HOSTILE}"}
    _, out, _ = run("models", "show", "tiny", "--json", capsys=capsys)
    (version,) = json.loads(out)
    assert version["description"] == HOSTILE and f"m{HOSTILE}" in version["lineage"]["metrics"]
    _, out, _ = run("models", "lineage", "tiny", capsys=capsys)
    assert not [c for c in RAW if c in out] and json.loads(out)["metrics"][f"m{HOSTILE}"] == 1.0


def test_an_error_quoting_user_text_is_one_plain_line(capsys):
    code, out, err = run("models", "show", "[bold]x\x1b[2J", capsys=capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "\x1b" not in err and "[bold]x" in err


BAD = "bad!name"


@pytest.mark.parametrize("args", [
    ["models", "show", BAD], ["models", "history", BAD], ["models", "history", "tiny",
                                                          "--alias", BAD],
    ["models", "lineage", BAD], ["promote", f"{BAD}/1", "production"],
    ["promote", "tiny/1", BAD], ["rollback", BAD, "production"], ["rollback", "tiny", BAD],
    ["unalias", BAD, "production"], ["unalias", "tiny", BAD], ["archive", f"{BAD}/1"],
    ["restore", f"{BAD}/1"], ["lookup", BAD, "k1"],
    ["db", "install", "postgresql://nobody@127.0.0.1:1/none", BAD],
], ids=lambda a: " ".join(a[:3]))
def test_invalid_names_exit_2_on_every_verb_that_takes_one(args, capsys):
    code, out, err = run(*args, capsys=capsys)
    assert code == 2, err
    assert err.startswith("error: invalid ") and err.count("\n") == 1 and out == ""


def test_package_refuses_an_invalid_name_with_exit_2(tiny, tmp_path, capsys):
    code, _, err = run("package", str(tmp_path / "tiny.joblib"), "--train-data",
                       str(tmp_path / "train.parquet"), "--name", "bad name", "--target", "t",
                       capsys=capsys)
    assert code == 2 and "model name 'bad name'" in err
