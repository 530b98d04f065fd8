"""Untrusted artifacts never get code run: trust comes from what the loader does, not from
what the artifact says about itself; reading metadata needs no trust.

Every flavor is forged the ways an attacker would (a manifest claiming "pickled": false,
another flavor, an extra listed file, a pickle in place of the model file, an unlisted
entry), with a pickle whose only effect is to create a marker file. Each forgery goes through
every way an artifact file is loaded (`scorehouse.load`, `predict`, `score`, `register`,
`serve`); the marker must never appear and each must be refused with exit 5.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sysconfig
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import scorehouse
from conftest import run_cli
from scorehouse import artifact as artifact_io
from scorehouse.artifact.flavors import FLAVORS
from scorehouse.errors import ArtifactError, IntegrityError, TrustError
from scorehouse.registry import Registry

FLAVOR_NAMES = ["sklearn", "python", "lightgbm", "xgboost", "onnx"]
LIES = ["pickled-false", "wrong-flavor", "extra-file", "renamed-pickle", "unlisted-file"]
RECORD = {"x": 1.0, "y": 2.0}


class Payload:
    """Unpickling this runs `exec`, which creates the marker file: proof that code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (exec, (f"open({str(self.marker)!r}, 'w').write('code ran')",))


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=300), "y": rng.normal(size=300)})
    df["t"] = (df.x + df.y > 0).astype(int)
    return df


@pytest.fixture(scope="module")
def legit(tmp_path_factory, frame) -> dict[str, Path]:
    """One honest artifact per flavor, packaged by scorehouse (not compiled: quicker)."""
    lgb = pytest.importorskip("lightgbm")
    xgb = pytest.importorskip("xgboost")
    skl2onnx = pytest.importorskip("skl2onnx")
    from skl2onnx.common.data_types import FloatTensorType

    d = tmp_path_factory.mktemp("legit")
    X, y = frame[["x", "y"]], frame["t"]

    def doubled(rows):  # nested, so cloudpickle stores it by value
        return rows["x"].to_numpy() * 2.0

    lr = LogisticRegression().fit(X.astype("float32"), y)
    onnx_file = d / "lr.onnx"
    onnx_file.write_bytes(skl2onnx.convert_sklearn(
        lr, initial_types=[("X", FloatTensorType([None, 2]))]).SerializeToString())
    models = {
        "sklearn": (LogisticRegression().fit(X, y), frame),
        "python": (doubled, X),
        "lightgbm": (lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y), X),
        "xgboost": (xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y), X),
        "onnx": (str(onnx_file), X.astype("float32")),
    }
    return {f: scorehouse.package(model, data, name=f"m{f}", path=d / f"{f}.shz",
                                  target="t" if f == "sklearn" else None, compile=False)
            for f, (model, data) in models.items()}


def _entries(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


def forge(legit: Path, dst: Path, lie: str, flavor: str, marker: Path) -> Path:
    """An artifact built from `legit` with one lie and a payload, hashes and sizes recomputed
    as an attacker would (so every hash in it checks out)."""
    entries = _entries(legit)
    manifest = json.loads(entries.pop("MANIFEST.json"))
    entries.pop("SIGNATURE", None)
    payload = pickle.dumps(Payload(marker), protocol=2)
    model_files = FLAVORS[flavor].files
    unlisted: dict[str, bytes] = {}
    if lie == "pickled-false":  # the reproducer: the flag is the only lie
        manifest["model"]["pickled"] = False
        entries.update({f: payload for f in model_files})
    elif lie == "wrong-flavor":  # a pickle in a manifest that names this flavor
        manifest["model"]["flavor"], manifest["model"]["pickled"] = flavor, False
        entries = {"model/model.pkl": payload}
    elif lie == "extra-file":  # the honest model plus a listed pickle nothing should read
        entries["model/extra.pkl"] = payload
    elif lie == "renamed-pickle":  # the pickle where the flavor's model file belongs
        entries.update({f: payload for f in model_files})
    elif lie == "unlisted-file":
        unlisted["model/model.pkl" if "model/model.pkl" not in entries else "x.pkl"] = payload
    manifest["files"] = {k: hashlib.sha256(v).hexdigest() for k, v in sorted(entries.items())}
    manifest["file_sizes"] = {k: len(v) for k, v in sorted(entries.items())}
    with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("MANIFEST.json", json.dumps(manifest, indent=1, sort_keys=True))
        for name, data in {**entries, **unlisted}.items():
            zf.writestr(name, data)
    return dst


def cli(*args: str, capsys) -> tuple[int, str]:
    """`scorehouse ARGS` in this process: (exit code, stderr + stdout)."""
    code, out, err = run_cli(*args, capsys=capsys)
    return code, err + out


@pytest.mark.parametrize("lie", LIES)
@pytest.mark.parametrize("flavor", FLAVOR_NAMES)
def test_a_forged_artifact_runs_no_code_anywhere(legit, flavor, lie, tmp_path, capsys):
    marker = tmp_path / "CODE_RAN"
    evil = forge(legit[flavor], tmp_path / "evil.shz", lie, flavor, marker)
    (tmp_path / "in.csv").write_text("x,y\n1,2\n3,4\n")
    (tmp_path / "in.jsonl").write_text(json.dumps(RECORD) + "\n")
    with pytest.raises(ArtifactError) as refused:
        scorehouse.load(evil).predict(RECORD)
    assert not marker.exists()
    # Refused for what it is: a lie (IntegrityError), a pickle nobody trusts (TrustError), or
    # a model file its library cannot read (a pickle renamed into a non-pickled flavor).
    assert isinstance(refused.value, (IntegrityError, TrustError)) or "not a readable" in str(
        refused.value) or "ONNX Runtime cannot load" in str(refused.value)
    # A pickle in place of a model file that is never unpickled (LightGBM text, XGBoost
    # UBJSON, ONNX) makes an artifact that tells no lie: registering it runs nothing, and
    # loading it is refused because its library cannot read the file.
    tells_no_lie = not FLAVORS[flavor].pickled and lie in ("pickled-false", "renamed-pickle")
    reg = Registry(f"sqlite:///{tmp_path / 'reg.db'}", str(tmp_path / "store"))
    if tells_no_lie:
        reg.register(evil, require_trust=True)
    else:
        with pytest.raises(ArtifactError):
            reg.register(evil, require_trust=True)
    assert not marker.exists()
    home = tmp_path / "home"
    for args in (["predict", str(evil), "--input", str(tmp_path / "in.jsonl")],
                 ["score", str(evil), str(tmp_path / "in.csv"), str(tmp_path / "out.csv"), "-q"],
                 ["register", str(evil)],
                 # Refused before it listens; were it not, binding this host fails at once.
                 ["--registry", f"sqlite:///{home / 'r.db'}", "--artifacts", str(home / "a"),
                  "serve", str(evil), "--host", "256.0.0.1"]):
        code, out = cli(*args, capsys=capsys)
        # The CLI registers an honest pickle nobody vouched for (registering runs no code and
        # is the act of trusting; a signing key is how to demand a signature): it is refused
        # only for a lie or a file its library cannot read.
        if args[0] == "register" and (tells_no_lie or isinstance(refused.value, TrustError)):
            assert code == 0, out
        else:
            assert code == 5, (args, out)
            assert out.count("\n") == 1 and out.startswith("error: "), out
        assert not marker.exists(), args
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("lie", ["pickled-false", "renamed-pickle"])
@pytest.mark.parametrize("flavor", ["sklearn", "python"])
def test_trust_still_never_believes_a_lie_but_runs_an_honest_pickle(legit, flavor, lie,
                                                                     tmp_path):
    marker = tmp_path / "CODE_RAN"
    evil = forge(legit[flavor], tmp_path / "evil.shz", lie, flavor, marker)
    if lie == "pickled-false":  # a manifest that lies is refused even when trusted
        with pytest.raises(IntegrityError, match="says pickled=False"):
            scorehouse.load(evil, trust=True)
        assert not marker.exists()
    else:  # an honest pickle runs when the user says they trust it: that is what trust means
        try:
            scorehouse.load(evil, trust=True).predict(RECORD)
        except Exception:  # noqa: BLE001, S110 - exec returned None, not a model: no matter
            pass
        assert marker.exists()


@pytest.mark.parametrize("flavor", FLAVOR_NAMES)
def test_legit_artifacts_load_with_trust_and_without_when_nothing_is_pickled(legit, flavor,
                                                                             tmp_path, capsys):
    path = legit[flavor]
    pickled = FLAVORS[flavor].pickled
    assert artifact_io.read(path, require_trust=False).pickled is pickled
    code, out = cli("predict", str(path), "--json", json.dumps(RECORD), "--trust",
                    capsys=capsys)
    assert code == 0, out
    answer = json.loads(out)
    assert answer["model"] == f"m{flavor}" and len(answer["predictions"]) == 1, out
    assert not answer["rejects"], out
    code, out = cli("predict", str(path), "--json", json.dumps(RECORD), capsys=capsys)
    assert code == (5 if pickled else 0), out
    reg = Registry(f"sqlite:///{tmp_path / 'reg.db'}", str(tmp_path / "store"))
    if pickled:
        with pytest.raises(TrustError, match="pickled Python code"):
            reg.register(path, require_trust=True)
    mv = reg.register(path, require_trust=False)  # the Python API: registering is trusting
    assert scorehouse.load(mv.ref, registry=reg).predict(RECORD).n_scored == 1
    code, out = cli("register", str(path), capsys=capsys)  # registering runs no code
    assert code == 0, out


@pytest.mark.parametrize("flavor", FLAVOR_NAMES)
def test_inspect_and_verify_read_an_untrusted_pickle_without_running_it(legit, flavor,
                                                                        tmp_path, capsys):
    marker = tmp_path / "CODE_RAN"
    evil = forge(legit[flavor], tmp_path / "evil.shz", "renamed-pickle", flavor, marker)
    code, out = cli("inspect", str(evil), "--json", capsys=capsys)
    assert code == 0, out
    assert json.loads(out)["model"]["flavor"] == flavor
    code, out = cli("inspect", str(evil), capsys=capsys)
    assert code == 0 and f"m{flavor}" in out, out
    code, out = cli("verify", str(evil), "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["runs_code_when_loaded"] is FLAVORS[flavor].pickled
    assert not marker.exists()
    art = artifact_io.read(evil, require_trust=False)
    if FLAVORS[flavor].pickled:
        with pytest.raises(TrustError):
            art.model()  # metadata only: the model itself still needs trust
    assert not marker.exists()


def test_cli_serve_refuses_to_start_on_a_forged_artifact(legit, tmp_path):
    """The reproducer's `serve` channel, as a real process: it must exit 5, never listen."""
    script = shutil.which("scorehouse", path=sysconfig.get_path("scripts"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREHOUSE_")}
    env["SCOREHOUSE_HOME"] = str(tmp_path / "home")
    for flavor in ("sklearn", "python"):
        marker = tmp_path / f"RAN_{flavor}"
        evil = forge(legit[flavor], tmp_path / f"{flavor}.shz", "pickled-false", flavor, marker)
        for runtime in ("native", "onnx"):
            p = subprocess.run([script, "serve", str(evil), "--runtime", runtime, "--port", "0"],
                               env=env, capture_output=True, text=True, timeout=120)
            assert p.returncode == 5 and "says pickled=False" in p.stderr, p.stderr
            assert not marker.exists()


def test_folder_artifacts_refuse_links_and_lies(legit, tmp_path):
    folder = tmp_path / "art"
    folder.mkdir()
    for name, data in _entries(legit["lightgbm"]).items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    assert scorehouse.load(folder).predict(RECORD).n_scored == 1
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (folder / "model" / "link.txt").symlink_to(outside)
    with pytest.raises(ArtifactError, match="symbolic link"):
        scorehouse.load(folder)
    (folder / "model" / "link.txt").unlink()
    marker = tmp_path / "CODE_RAN"
    (folder / "model" / "model.pkl").write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(IntegrityError, match="does not list"):
        scorehouse.load(folder, trust=True)
    assert not marker.exists()


@pytest.mark.parametrize("name", ["../evil.pkl", "/abs/evil.pkl", "model/../../x", "a\\b",
                                  "./MANIFEST.json", "model//model.pkl"])
def test_zip_entries_with_unsafe_names_are_refused(legit, tmp_path, name):
    p = tmp_path / "bad.shz"
    with zipfile.ZipFile(p, "w") as zf:
        for k, v in _entries(legit["lightgbm"]).items():
            zf.writestr(k, v)
        zf.writestr(zipfile.ZipInfo(name), b"x")
    with pytest.raises(ArtifactError, match="not a plain relative path"):
        artifact_io.read(p, require_trust=False)


def test_zip_duplicate_and_symlink_entries_are_refused(legit, tmp_path):
    entries = _entries(legit["lightgbm"])
    dup = tmp_path / "dup.shz"
    with zipfile.ZipFile(dup, "w") as zf, pytest.warns(UserWarning, match="Duplicate name"):
        for k, v in entries.items():
            zf.writestr(k, v)
        zf.writestr("model/model.lgb.txt", b"second copy")
    with pytest.raises(ArtifactError, match="two entries named 'model/model.lgb.txt'"):
        artifact_io.read(dup)
    link = tmp_path / "link.shz"
    with zipfile.ZipFile(link, "w") as zf:
        for k, v in entries.items():
            info = zipfile.ZipInfo(k)
            if k == "model/model.lgb.txt":
                info.external_attr = 0o120777 << 16  # a symbolic link entry
            zf.writestr(info, v)
    with pytest.raises(ArtifactError, match="symbolic link"):
        artifact_io.read(link)


@pytest.mark.parametrize("location", ["/etc/hostname", "../../../../etc/hostname", "hostname"])
def test_an_onnx_graph_never_reads_files_outside_the_artifact(legit, tmp_path, location,
                                                              monkeypatch):
    """ONNX tensors may point at "external data" files; from an artifact that is a file read
    the artifact's author chooses, so a graph that asks for one is refused."""
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    monkeypatch.chdir(tmp_path)
    (tmp_path / "hostname").write_bytes(b"secret!!")
    weights = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2],
                          data_location=TensorProto.EXTERNAL)
    for key, value in {"location": location, "length": "8"}.items():
        entry = weights.external_data.add()
        entry.key, entry.value = key, value
    x = helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])
    y = helper.make_tensor_value_info("value", TensorProto.FLOAT, [None, 2])
    graph = helper.make_graph([helper.make_node("Add", ["X", "w"], ["value"])], "g", [x], [y],
                              initializer=[weights])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    evil = tmp_path / "evil.shz"
    entries = _entries(legit["onnx"])
    manifest = json.loads(entries.pop("MANIFEST.json"))
    entries["model/model.onnx"] = proto.SerializeToString()
    manifest["files"] = {k: hashlib.sha256(v).hexdigest() for k, v in sorted(entries.items())}
    manifest["file_sizes"] = {k: len(v) for k, v in sorted(entries.items())}
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("MANIFEST.json", json.dumps(manifest, indent=1, sort_keys=True))
        for name, data in entries.items():
            zf.writestr(name, data)
    with pytest.raises(ArtifactError, match="ONNX Runtime cannot load"):
        scorehouse.load(evil).predict(RECORD)
