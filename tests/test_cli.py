"""The `scorehouse` command end to end: the installed console script, run as a subprocess.

Every CLI call pays ~2 s of imports, so the module builds one registry (`flow`: package,
register, promote, register again, promote, roll back) and then runs every read, scoring call,
artifact check and error case in one parallel batch (`batch`); the tests assert on those runs.
The demo runs in its own home, in the background while the flow runs.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import struct
import subprocess
import sysconfig
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import pytest

from scorehouse import __version__
from scorehouse.demo.data import TARGET

# The script next to this interpreter first (a venv's), else whatever is on PATH.
SCRIPT = shutil.which("scorehouse", path=sysconfig.get_path("scripts")) or shutil.which("scorehouse")
WORKERS = min(8, (os.cpu_count() or 1) + 1)  # one extra to cover each call's I/O gaps
KEY = "s3cret-signing-key"
USER = "ci-bot"
FEATURES = ["tenure", "plan", "contract", "monthly_charges", "total_charges", "support_calls",
            "complaints", "age", "data_usage_gb", "days_since_login", "payment_method", "region"]
RECORD = {"tenure": 3, "plan": "gold", "contract": "month-to-month", "monthly_charges": 72.5,
          "total_charges": 210, "support_calls": 4, "complaints": 1, "age": 41,
          "data_usage_gb": 3.2, "days_since_login": 12, "payment_method": "invoice",
          "region": "north"}
BAD_RECORD = {**RECORD, "monthly_charges": "72,5", "tenure": "abc"}


@dataclass(frozen=True)
class Run:
    """One finished `scorehouse` call."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        """stdout parsed as JSON (an assertion error showing the call when it is not)."""
        try:
            return json.loads(self.out)
        except ValueError:
            raise AssertionError(f"stdout is not JSON: {self}") from None

    def __str__(self) -> str:
        return (f"`scorehouse {' '.join(self.args)}` exited {self.code}\n"
                f"--- stdout ---\n{self.out[-3000:]}\n--- stderr ---\n{self.err[-3000:]}")


class CLI:
    """Runs the installed `scorehouse` script in `cwd` with its own SCOREHOUSE_HOME."""

    def __init__(self, home: Path, cwd: Path):
        assert SCRIPT, "the `scorehouse` console script is not installed (pip install -e .)"
        self.cwd = cwd
        # No SCOREHOUSE_* from outside (a real registry, a signing key); wide, plain tables.
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREHOUSE_")
                    and k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
        self.env.update(SCOREHOUSE_HOME=str(home), SCOREHOUSE_USER=USER, COLUMNS="200",
                        NO_COLOR="1", PYTHONIOENCODING="utf-8")

    def __call__(self, *args: str, stdin: str | None = None) -> Run:
        p = subprocess.run([SCRIPT, *args], cwd=self.cwd, env=self.env, input=stdin,
                           capture_output=True, text=True, timeout=300)
        return Run(tuple(args), p.returncode, p.stdout, p.stderr)

    def many(self, calls: Mapping[str, Sequence[str]], stdin: Mapping[str, str] | None = None
             ) -> dict[str, Run]:
        """Run independent calls concurrently; results by the calls' keys."""
        stdin = stdin or {}
        with ThreadPoolExecutor(WORKERS) as ex:
            futures = {k: ex.submit(self, *args, stdin=stdin.get(k)) for k, args in calls.items()}
            return {k: f.result() for k, f in futures.items()}


def ok(r: Run) -> Any:
    """Assert the call succeeded; its stdout parsed as JSON when it is JSON, else the text."""
    assert r.code == 0, str(r)
    assert "Traceback" not in r.err, str(r)
    try:
        return json.loads(r.out)
    except ValueError:
        return r.out


def assert_error_line(r: Run, code: int, *fragments: str) -> str:
    """Exit `code`, nothing on stdout, and exactly one stderr line 'error: ...'."""
    assert r.code == code, str(r)
    assert "Traceback" not in r.err, str(r)
    lines = r.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), str(r)
    assert r.out == "", str(r)
    for f in fragments:
        assert f in lines[0], str(r)
    return lines[0]


def assert_json_error(r: Run, code: int, kind: str, *fragments: str) -> str:
    """Exit `code` and a JSON object {"error", "type", "exit_code"} on stdout."""
    assert r.code == code, str(r)
    assert "Traceback" not in r.err, str(r)
    body = r.json()
    assert set(body) == {"error", "type", "exit_code"}, str(r)
    assert body["exit_code"] == code and body["type"] == kind, str(r)
    for f in fragments:
        assert f in body["error"], str(r)
    return body["error"]


def table_rows(text: str) -> list[list[str]]:
    """The body rows of a rich table as lists of cell texts."""
    return [[c.strip() for c in line.split("│")] for line in text.splitlines() if "│" in line]


def assert_prediction(p: dict[str, Any]) -> None:
    """A churn prediction: a label, probabilities of both classes summing to 1, no flags."""
    assert p["label"] in ("no", "yes"), p
    assert set(p["probabilities"]) == {"no", "yes"}, p
    assert math.isclose(sum(p["probabilities"].values()), 1.0, abs_tol=1e-9), p
    assert p["label"] == max(p["probabilities"], key=p["probabilities"].get), p
    assert p["flags"] == [], p


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> Iterator[tuple[Path, Path, Future]]:
    """`scorehouse demo` in its own home, started first so it overlaps the flow's calls."""
    base = tmp_path_factory.mktemp("demo")
    cli = CLI(base / "home", base)
    with ThreadPoolExecutor(1) as ex:
        yield base / "home", base / "out", ex.submit(
            cli, "demo", "--dir", str(base / "out"), "--rows", "3000", "--json")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, churn_model, churn_data) -> Path:
    """The data scientist's files: model.joblib and train.parquet."""
    d = tmp_path_factory.mktemp("cli")
    joblib.dump(churn_model, d / "model.joblib")
    churn_data.to_parquet(d / "train.parquet", index=False)
    return d


@pytest.fixture(scope="module")
def flow(workdir, demo_run) -> dict[str, Run]:
    """The issue's flow against a fresh registry, each step's Run by name."""
    cli = CLI(workdir / "home", workdir)
    runs: dict[str, Run] = {}
    runs["package"] = cli("package", "model.joblib", "--train-data", "train.parquet",
                          "--name", "churn", "--target", TARGET, "-o", "churn.shz")
    assert runs["package"].code == 0, str(runs["package"])
    shutil.copy(workdir / "churn.shz", workdir / "signed.shz")
    with ThreadPoolExecutor(1) as side:  # calls on files only, beside the registry's
        package2 = side.submit(
            cli, "package", "model.joblib", "--train-data", "train.parquet", "--name", "churn",
            "--target", TARGET, "-o", "churn-v2.shz", "--metric", "holdout_auc=0.91", "--json")
        sign = side.submit(cli, "sign", "signed.shz", "--key", KEY, "--json")
        runs["register"] = cli("register", "churn.shz", "--json")
        runs["promote"] = cli("promote", "churn/1", "production", "-m", "first release",
                              "--json")
        runs["package2"], runs["sign"] = package2.result(), sign.result()
    runs["register2"] = cli("register", "churn-v2.shz", "--description",
                            "holdout checked")
    runs["promote2"] = cli("promote", "churn/2", "production", "-m", "try v2")
    runs["rollback"] = cli("rollback", "churn", "production", "-m", "v2 misbehaves", "--json")
    return runs


def _tamper(src: Path, dst: Path) -> None:
    """A valid zip whose model/model.pkl has one byte changed (its manifest hash no longer holds)."""
    with zipfile.ZipFile(src) as zf:
        entries = {i.filename: zf.read(i) for i in zf.infolist()}
    pkl = bytearray(entries["model/model.pkl"])
    pkl[len(pkl) // 2] ^= 0x01
    entries["model/model.pkl"] = bytes(pkl)
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)


def _corrupt(src: Path, dst: Path) -> None:
    """The .shz with the first byte of model/model.pkl's deflate stream overwritten on disk."""
    raw = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as zf:
        offset = zf.getinfo("model/model.pkl").header_offset
    name_len, extra_len = struct.unpack("<HH", raw[offset + 26:offset + 30])
    raw[offset + 30 + name_len + extra_len] = 0xFF  # deflate block type 3: invalid
    dst.write_bytes(bytes(raw))


@pytest.fixture(scope="module")
def records(churn_data) -> list[dict[str, Any]]:
    """The first three training rows as JSON records (no target)."""
    return json.loads(churn_data.drop(columns=[TARGET]).head(3).to_json(orient="records"))


@pytest.fixture(scope="module")
def batch(workdir, flow, records) -> dict[str, Run]:
    """Everything after the flow, run concurrently: reads, predictions, checks, errors."""
    for name in ("package", "package2", "sign", "register", "promote", "register2", "promote2",
                 "rollback"):
        assert flow[name].code == 0, str(flow[name])
    _tamper(workdir / "churn.shz", workdir / "tampered.shz")
    _corrupt(workdir / "churn.shz", workdir / "corrupt.shz")
    lines = [records[0], {**records[1], "tenure": "abc"}, records[2]]
    (workdir / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    good, bad = json.dumps(RECORD), json.dumps(BAD_RECORD)
    calls = {
        "list": ["models", "list"],
        "list_json": ["models", "list", "--json"],
        "show": ["models", "show", "churn"],
        "show_json": ["models", "show", "churn", "--json"],
        "history": ["models", "history", "churn"],
        "history_json": ["models", "history", "churn", "--json"],
        "lineage_json": ["models", "lineage", "churn/1", "--json"],
        "predict": ["predict", "churn@production", "--json", good],
        "predict_native": ["predict", "churn@production", "--json", good, "--runtime", "native"],
        "predict_bad": ["predict", "churn@production", "--json", bad],
        "predict_file": ["predict", "churn@production", "--input", "records.jsonl"],
        "predict_stdin": ["predict", "churn.shz", "--trust", "--input", "-"],
        "inspect": ["inspect", "churn.shz", "--trust", "--json"],
        "verify_key": ["verify", "signed.shz", "--key", KEY, "--json"],
        "verify_wrong_key": ["verify", "signed.shz", "--key", "not-the-key"],
        "verify_tampered": ["verify", "tampered.shz"],
        "not_found": ["models", "show", "nope"],
        "nothing_to_roll_back": ["rollback", "churn", "production"],
        "untrusted_json": ["predict", "churn.shz", "--json", good],
        "untrusted": ["predict", "churn.shz", "--input", "records.jsonl"],
        "inspect_untrusted": ["inspect", "churn.shz"],
        "usage": ["predict", "churn@production"],
        "usage_json": ["models", "show", "--json"],
        "version": ["--version"],
        "verify_corrupt": ["verify", "corrupt.shz"],
        "predict_v2": ["predict", "churn/2", "--json", good],
        "register_again": ["register", "churn.shz", "--refuse-duplicate"],
    }
    stdin = {"predict_stdin": "".join(json.dumps(r) + "\n" for r in records[:2])}
    return CLI(workdir / "home", workdir).many(calls, stdin)


# --- the flow ---------------------------------------------------------------------------------


def test_package_register_promote_rollback(flow, workdir):
    first, second, third = ok(flow["package"]).strip().splitlines()
    assert first == "packaged churn (binary, sklearn, 12 inputs) -> churn.shz"
    assert second.startswith("runtime: onnx (parity on 3,000 rows: max diff ")
    assert second.endswith(", 0 label flips, tolerance 1e-06)")
    # Which inputs accept a missing value, and why (the pipeline imputes every column).
    assert third.startswith("nullable: tenure (imputed by SimpleImputer (step "
                            "'features' > 'num' > 'impute')); ")
    assert "total_charges (missing in training)" in third
    assert zipfile.is_zipfile(workdir / "churn.shz")

    reg = ok(flow["register"])
    assert reg["name"] == "churn" and reg["version"] == 1 and reg["status"] == "ready"
    assert reg["task"] == "binary" and reg["flavor"] == "sklearn" and reg["aliases"] == []
    assert reg["created_by"] == USER and len(reg["manifest_sha256"]) == 64
    assert Path(reg["artifact_uri"]).is_file()
    assert Path(reg["artifact_uri"]).is_relative_to(workdir / "home")

    assert ok(flow["promote"]) == {"model": "churn", "alias": "production", "from_version": None,
                                   "version": 1, "action": "promote", "changed": True}
    text = ok(flow["register2"]).strip()
    assert text.startswith("registered churn/2 (manifest ") and text.endswith(")")
    assert flow["register2"].err == ""  # the same input schema as churn/1: nothing to say
    assert ok(flow["promote2"]).strip() == "churn@production: version 1 -> 2 (promote)"
    assert ok(flow["rollback"]) == {"model": "churn", "alias": "production", "from_version": 2,
                                    "version": 1, "action": "rollback", "changed": True}


def test_package_json(flow, workdir):
    out = ok(flow["package2"])
    assert out["artifact"] == "churn-v2.shz" and zipfile.is_zipfile(workdir / "churn-v2.shz")
    assert out["name"] == "churn" and out["task"] == "binary" and out["flavor"] == "sklearn"
    assert out["inputs"] == len(FEATURES) and len(out["manifest_sha256"]) == 64
    assert out["metrics"]["holdout_auc"] == 0.91
    assert 0.5 < out["metrics"]["training_roc_auc"] <= 1.0
    assert out["recipe"]["estimator"] == "sklearn.pipeline.Pipeline"  # retrain can refit it
    assert out["recipe"]["holdout"] == {"fraction": 0.2, "seed": 0}


def test_registering_the_same_artifact_again_names_its_version(batch):
    assert_error_line(batch["register_again"], 6, "churn.shz is already registered as churn/1",
                      "--refuse-duplicate")


def test_models_list(batch):
    [model] = ok(batch["list_json"])
    assert model.pop("updated_at").endswith("+00:00")
    assert model == {"name": "churn", "description": "", "versions": 2, "latest": 2,
                     "aliases": {"production": 1}}
    rows = table_rows(ok(batch["list"]))
    assert rows[0][:3] == ["churn", "2", "production=1"]
    assert len(rows) == 1


def test_models_show(batch, flow):
    v1, v2 = ok(batch["show_json"])
    assert (v1["version"], v1["aliases"], v1["status"]) == (1, ["production"], "ready")
    assert (v2["version"], v2["aliases"], v2["status"]) == (2, [], "ready")
    assert v1["manifest_sha256"] == ok(flow["register"])["manifest_sha256"]
    assert v2["manifest_sha256"] == ok(flow["package2"])["manifest_sha256"]
    assert v1["artifact_uri"] != v2["artifact_uri"]
    assert v2["description"] == "holdout checked" and v1["description"] == ""
    assert v2["lineage"]["metrics"]["holdout_auc"] == 0.91
    assert "holdout_auc" not in v1["lineage"]["metrics"]

    text = ok(batch["show"])
    assert text.splitlines()[0].strip() == "churn"
    rows = {r[0]: r for r in table_rows(text) if r[0].isdigit()}
    assert set(rows) == {"1", "2"}
    assert rows["1"][1:5] == ["ready", "production", "binary", "sklearn"]
    assert rows["2"][1:5] == ["ready", "", "binary", "sklearn"]
    assert rows["1"][6] == USER and rows["1"][7].startswith("training_")
    assert rows["2"][7].startswith("holdout_auc=0.91 training_")


def test_models_history(batch):
    events = ok(batch["history_json"])
    assert [(e["action"], e["alias"], e["from_version"], e["version"], e["reason"])
            for e in events] == [
        ("register", None, None, 1, ""),
        ("promote", "production", None, 1, "first release"),
        ("register", None, None, 2, ""),
        ("promote", "production", 1, 2, "try v2"),
        ("rollback", "production", 2, 1, "v2 misbehaves"),
    ]
    assert {e["user"] for e in events} == {USER} and {e["model"] for e in events} == {"churn"}
    assert all(e["at"] for e in events)

    text = ok(batch["history"])
    assert text.splitlines()[0].strip() == "history of churn"
    rows = [r[1:] for r in table_rows(text) if r[0][:1].isdigit()]
    assert rows[-1] == [USER, "rollback", "production", "2", "1", "v2 misbehaves"]
    assert [r[1] for r in rows] == ["register", "promote", "register", "promote", "rollback"]


def test_models_lineage(batch, flow):
    lin = ok(batch["lineage_json"])
    assert lin["model"] == "churn" and lin["version"] == 1
    assert lin["manifest_sha256"] == ok(flow["register"])["manifest_sha256"]
    data = lin["training_data"]
    assert data["rows"] == 3000 and data["target"] == TARGET
    assert data["columns"] == [*FEATURES, TARGET] and data["source"] == "train.parquet"
    assert data["fingerprint"].startswith("sha256:")
    assert 0.5 < lin["metrics"]["training_roc_auc"] <= 1.0
    assert "scikit-learn" in lin["libraries"] and lin["created_by"]
    assert lin["params"]


# --- scoring ----------------------------------------------------------------------------------


def test_predict_production_scores_a_record_with_the_rolled_back_version(batch):
    out = ok(batch["predict"])
    assert (out["model"], out["version"], out["runtime"]) == ("churn", 1, "onnx")
    assert out["rejects"] == [] and len(out["predictions"]) == 1
    assert out["predictions"][0]["row"] == 0
    assert_prediction(out["predictions"][0])


def test_predict_runtime_option_forces_native_with_the_same_scores(batch):
    compiled, native = ok(batch["predict"]), ok(batch["predict_native"])
    assert native["runtime"] == "native" and native["version"] == compiled["version"]
    a, b = compiled["predictions"][0], native["predictions"][0]
    assert a["label"] == b["label"]
    for cls in ("no", "yes"):  # the parity gate's tolerance
        assert abs(a["probabilities"][cls] - b["probabilities"][cls]) <= 1e-6


def test_predict_takes_a_name_slash_version_reference_not_a_path(batch):
    out = ok(batch["predict_v2"])
    assert (out["model"], out["version"]) == ("churn", 2) and out["rejects"] == []
    assert out["predictions"][0]["row"] == 0
    assert_prediction(out["predictions"][0])


def test_predict_bad_record_exits_4_with_rejects_naming_row_column_reason(batch):
    r = batch["predict_bad"]
    assert r.code == 4, str(r)
    assert "Traceback" not in r.err, str(r)
    out = r.json()
    assert out["predictions"] == []
    assert out["rejects"] == [
        {"row": 0, "column": "tenure", "reason": "cannot read 'abc' as an integer",
         "value": "abc"},
        {"row": 0, "column": "monthly_charges",
         "reason": "cannot read '72,5' as a number", "value": "72,5"},
    ]


def test_predict_jsonl_file_scores_good_rows_and_rejects_the_bad_one(batch):
    r = batch["predict_file"]
    assert r.code == 4, str(r)
    out = r.json()
    assert out["version"] == 1
    assert [p["row"] for p in out["predictions"]] == [0, 2]
    for p in out["predictions"]:
        assert_prediction(p)
    [reject] = out["rejects"]
    assert (reject["row"], reject["column"], reject["value"]) == (1, "tenure", "abc")
    assert "integer" in reject["reason"]


def test_predict_stdin_on_a_trusted_artifact_file(batch):
    out = ok(batch["predict_stdin"])
    assert out["model"] == "churn" and out["version"] is None and out["rejects"] == []
    assert [p["row"] for p in out["predictions"]] == [0, 1]
    for p in out["predictions"]:
        assert_prediction(p)


def test_artifact_file_with_pickled_code_needs_trust(batch):
    assert_json_error(batch["untrusted_json"], 5, "TrustError",
                      "churn.shz holds pickled Python code", "--trust")
    assert_error_line(batch["untrusted"], 5, "churn.shz holds pickled Python code")
    # Reading the manifest runs no code, so it needs no trust.
    assert "churn binary (sklearn)" in ok(batch["inspect_untrusted"])


# --- artifacts ----------------------------------------------------------------------------------


def test_inspect_shows_schema_lineage_baseline_environment(batch, flow):
    m = ok(batch["inspect"])
    assert m["name"] == "churn" and m["task"] == "binary" and m["classes"] == ["no", "yes"]
    assert m["manifest_sha256"] == ok(flow["register"])["manifest_sha256"]
    assert m["model"]["flavor"] == "sklearn" and m["model"]["pickled"] is True
    assert [c["name"] for c in m["input_schema"]["columns"]] == FEATURES
    assert m["lineage"]["training_data"]["rows"] == 3000
    assert m["lineage"]["training_data"]["target"] == TARGET
    assert m["baseline"]["rows"] == 3000 and set(m["baseline"]["inputs"]) == set(FEATURES)
    assert m["baseline"]["predictions"]
    assert m["environment"]["python"] and "scikit-learn" in m["environment"]["requirements"]
    assert set(m["files"]) == {"model/model.pkl", "compiled/model.onnx", "recipe/estimator.pkl"}
    assert m["recipe"]["estimator"] == "sklearn.pipeline.Pipeline"
    assert m["model"]["runtime"] == "onnx" and m["compiled"]["status"] == "passed"


def test_sign_then_verify_with_the_key_and_refuse_the_wrong_key(batch, flow):
    assert ok(flow["sign"]) == {"artifact": "signed.shz", "signed": True}
    out = ok(batch["verify_key"])
    assert out == {"artifact": "signed.shz", "ok": True,
                   "manifest_sha256": ok(flow["register"])["manifest_sha256"], "files": 2,
                   "signature": "verified", "runs_code_when_loaded": True}
    assert_error_line(batch["verify_wrong_key"], 5, "signature does not verify")


def test_verify_refuses_a_tampered_artifact(batch):
    assert_error_line(batch["verify_tampered"], 5, "model/model.pkl",
                      "does not match its sha256")
    # A byte flipped in the .shz on disk breaks the zip's deflate stream.
    assert_error_line(batch["verify_corrupt"], 5, "corrupt.shz")


# --- errors -------------------------------------------------------------------------------------


def test_unknown_model_exits_3(batch):
    assert_error_line(batch["not_found"], 3, "no model named 'nope'", "(known: churn)")


def test_rollback_with_nothing_to_roll_back_exits_6(batch):
    assert_error_line(batch["nothing_to_roll_back"], 6,
                      "churn@production has no earlier version to roll back to")


def test_bad_usage_exits_2(batch):
    r = batch["usage"]
    assert r.code == 2 and r.out == "" and "Traceback" not in r.err, str(r)
    line = r.err.strip()
    assert "\n" not in line, line
    assert line.startswith("error: give exactly one of --json '{...}' or --input FILE.jsonl")
    assert_json_error(batch["usage_json"], 2, "MissingParameter", "Missing argument 'name'")


def test_version(batch):
    assert ok(batch["version"]).strip() == f"scorehouse {__version__}"


# --- the demo -----------------------------------------------------------------------------------


def test_demo(demo_run):
    home, out_dir, future = demo_run
    out = ok(future.result())
    assert out["version"] == "churn/1" and out["workdir"] == str(out_dir)
    s = out["summary"]
    assert s["model"] == "churn" and s["version"] == 1
    assert s["read"] == s["scored"] + s["rejected"] == 5000
    assert s["rejected"] > 0 and set(s["rejects_by_column"]) == {"tenure", "monthly_charges"}
    assert s["flags"]["unseen_category"] == {"plan": 4}
    with open(out["scores"], newline="") as fh:
        scores = list(csv.DictReader(fh))
    with open(out["rejects"], newline="") as fh:
        rejects = list(csv.DictReader(fh))
    assert len(scores) == s["scored"] and len(rejects) == sum(s["rejects_by_column"].values())
    assert set(scores[0]) == {"row", "customer_id", "label", "probability_no", "probability_yes"}
    assert {r["column"] for r in rejects} == {"tenure", "monthly_charges"}
    assert Path(out["artifact"]).is_file() and (out_dir / "train.parquet").is_file()
    # Registered in the demo's own home: the registry database and the stored artifact.
    assert (home / "registry.db").is_file()
    assert len(list((home / "artifacts" / "churn").glob("*.shz"))) == 1


def _command_paths() -> list[tuple[str, ...]]:
    import typer

    from scorehouse.cli.app import app

    def walk(cmd, path):
        yield path
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, (*path, name))

    return list(walk(typer.main.get_command(app), ()))


@pytest.mark.parametrize("path", _command_paths(), ids=lambda p: " ".join(p) or "scorehouse")
def test_help_shows_flags_without_a_value_placeholder(path, capsys, monkeypatch):
    from scorehouse.cli.app import main

    monkeypatch.setenv("COLUMNS", "200")
    try:
        main([*path, "--help"])
    except SystemExit as e:
        assert e.code in (0, None)
    text = capsys.readouterr().out
    assert "--help" in text and "<bool>" not in text, text
    if "Commands" not in text:  # a command, not a group: its help shows how to call it
        assert "Example" in text and f"scorehouse {' '.join(path)}" in text, text


@pytest.mark.parametrize("args", [
    ["predict", "churn@production", "-i", "records.jsonl"],
    ["score", "churn@production", "in.csv", "out.csv"],
    ["serve", "churn@production"],
    ["stream", "churn@production", "--source", "redis://127.0.0.1:1/0?stream=s", "--key", "k"],
], ids=lambda a: a[0])
def test_a_runtime_that_does_not_exist_is_usage_exit_2(args, capsys):
    from scorehouse.cli.app import main

    with pytest.raises(SystemExit) as done:
        main([*args, "--runtime", "onnxx"])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'onnxx' is not one of 'native', 'onnx'" in err[0], err


def test_registering_the_same_artifact_again_says_which_version_it_is(churn_artifact, capsys):
    from conftest import run_cli

    assert run_cli("register", str(churn_artifact), capsys=capsys)[0] == 0
    code, out, err = run_cli("register", str(churn_artifact), capsys=capsys)
    assert code == 0 and out.startswith("registered churn/2 ")  # as MLflow: a new version
    assert "the same artifact is already churn/1" in err and "--refuse-duplicate" in err
    code, out, err = run_cli("register", str(churn_artifact), "--refuse-duplicate", "--json",
                             capsys=capsys)
    assert code == 6 and json.loads(out)["type"] == "ConflictError"
