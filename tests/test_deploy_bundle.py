"""The hermetic bundle (`scorehouse bundle`) and `scorehouse doctor`.

Fast tests check the lock format, platform tags and the doctor on a bundle made by hand.
The slow ones (marked `slow`; they run in CI, never skipped) build one real bundle of a
registered churn model through pip's configured index, install it into ONE fresh virtualenv
with every index disabled (PIP_NO_INDEX=1, PIP_CONFIG_FILE=/dev/null, no find-links but the
bundle's), then compare that venv's scores with this environment's and run its doctor.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import scorehouse
from conftest import run_cli
from scorehouse.demo.data import TARGET
from scorehouse.deploy import lock
from scorehouse.deploy.bundle import BundledArtifact, BundleInfo, model_requirements
from scorehouse.deploy.doctor import EXIT_ARTIFACT, EXIT_MISMATCH, check_environment
from scorehouse.errors import ConflictError, UsageError

# --- the lock, the platform tags ------------------------------------------------------------


def test_platform_tags_expand_to_every_older_glibc():
    tags = lock.expand_platform("manylinux_2_28_x86_64")
    assert tags[0] == "manylinux_2_28_x86_64" and "manylinux2014_x86_64" in tags
    assert "manylinux_2_17_x86_64" in tags and tags[-1] == "manylinux1_x86_64"
    assert lock.expand_platform("macosx_11_0_arm64") == ["macosx_11_0_arm64"]
    assert lock.manylinux_glibc("manylinux2014_aarch64") == (2, 17)
    assert lock.tag_arch("manylinux_2_17_aarch64") == "aarch64"


def test_wheel_names_parse_with_their_oldest_glibc():
    w = lock.Wheel.parse("numpy-2.4.6-cp311-cp311-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl")
    assert (w.name, w.version, w.abis) == ("numpy", "2.4.6", ("cp311",))
    assert w.glibc_needed() == (2, 27)
    assert lock.Wheel.parse("Typing_Extensions-4.1-py3-none-any.whl").name == "typing-extensions"
    assert lock.Wheel.parse("typing_extensions-4.1-py3-none-any.whl").glibc_needed() is None
    with pytest.raises(UsageError):
        lock.Wheel.parse("numpy-2.4.6.tar.gz")


def test_target_defaults_to_this_interpreter_and_checks_the_version():
    t = lock.Target.make()
    assert t.python_version == ".".join(platform.python_version_tuple()[:2])
    assert t.matches_running() and t.abis[0] == f"cp{sys.version_info[0]}{sys.version_info[1]}"
    args = lock.Target.make("3.12", ["manylinux_2_17_x86_64"]).pip_args()
    assert args[:3] == ["--only-binary=:all:", "--python-version", "3.12"]
    assert "manylinux2014_x86_64" in args and "cp312" in args
    with pytest.raises(UsageError):
        lock.Target.make("3")


def test_lock_is_pips_require_hashes_format_and_reads_back(tmp_path):
    pkgs = [lock.LockedPackage("numpy", "2.4.6", "numpy-2.4.6-cp311-cp311-x.whl", "a" * 64)]
    lock.write_lock(tmp_path / "requirements.lock", pkgs, ["made by a test"])
    text = (tmp_path / "requirements.lock").read_text()
    assert text.splitlines()[1:] == ["numpy==2.4.6 \\", f"    --hash=sha256:{'a' * 64}"]
    assert lock.read_lock(tmp_path / "requirements.lock") == {"numpy": ("2.4.6", ["a" * 64])}
    (tmp_path / "bad.lock").write_text("numpy>=2\n")
    with pytest.raises(UsageError, match="not 'name==version"):
        lock.read_lock(tmp_path / "bad.lock")


def _artifact(ref: str, **requirements: str) -> BundledArtifact:
    return BundledArtifact(ref=ref, name=ref, version=1, file=f"{ref}.shz", sha256="0" * 64,
                           bytes=1, flavor="sklearn", pickled=True, requirements=requirements)


def test_two_models_pinning_one_library_differently_conflict():
    same = model_requirements([_artifact("a", numpy="2.0.1"), _artifact("b", numpy="2.0.1")])
    assert same == {"numpy": "2.0.1"}
    with pytest.raises(ConflictError, match="bundle them separately"):
        model_requirements([_artifact("a", numpy="2.0.1"), _artifact("b", NumPy="1.26.4")])


# --- the doctor, on a bundle made by hand (this environment's own versions) ----------------


def _hand_bundle(root: Path, names: list[str]) -> Path:
    """A bundle of one small 'artifact' file locking `names` at their installed versions."""
    installed = lock.installed_versions()
    packages = [lock.LockedPackage(n, installed[n], f"{n}-{installed[n]}-py3-none-any.whl",
                                   "b" * 64) for n in names]
    (root / "artifacts").mkdir(parents=True)
    (root / "artifacts" / "m.shz").write_bytes(b"model bytes")
    art = BundledArtifact(ref="m/1", name="m", version=1, file="m.shz",
                          sha256=hashlib.sha256(b"model bytes").hexdigest(), bytes=11,
                          flavor="sklearn", pickled=True)
    info = BundleInfo(scorehouse=scorehouse.__version__, created_at="now",
                      target=lock.Target.make().to_dict(), build={}, artifacts=[art],
                      packages=packages, extras=[], resolution="pip", sizes={})
    (root / "bundle.json").write_text(json.dumps(info.to_dict()))
    lock.write_lock(root / "requirements.lock", packages, ["by hand"])
    return root


def test_doctor_passes_on_a_matching_environment_and_names_each_check(tmp_path, capsys):
    root = _hand_bundle(tmp_path / "b", ["numpy", "pandas"])
    report = check_environment(root)
    assert report.exit_code == 0, report.summary()
    assert [c.kind for c in report.checks] == ["python", "platform", "package", "package",
                                               "artifact"]
    code, out, _ = run_cli("doctor", "--bundle", str(root), capsys=capsys)
    assert code == 0 and "numpy" in out and "all match" in out
    code, out, _ = run_cli("doctor", "--bundle", str(root), "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["ok"] is True


def test_doctor_fails_with_a_table_when_a_version_differs_or_an_artifact_changed(tmp_path, capsys):
    root = _hand_bundle(tmp_path / "b", ["numpy", "pandas"])
    text = (root / "requirements.lock").read_text()
    numpy = lock.installed_versions()["numpy"]
    (root / "requirements.lock").write_text(text.replace(f"numpy=={numpy}", "numpy==0.0.1"))
    code, out, _ = run_cli("doctor", "--bundle", str(root), "--quiet", capsys=capsys)
    assert code == EXIT_MISMATCH == 8
    assert "MISMATCH" in out and "0.0.1" in out and numpy in out and "pandas" not in out
    assert "1 mismatch: package numpy: expected 0.0.1, found " + numpy in out

    (root / "artifacts" / "m.shz").write_bytes(b"other bytes")
    code, out, _ = run_cli("doctor", "--bundle", str(root), "--json", capsys=capsys)
    report = json.loads(out)
    assert code == EXIT_ARTIFACT == 5 and report["exit_code"] == 5
    assert {c["name"] for c in report["checks"] if not c["ok"]} == {"numpy", "m.shz"}


def test_doctor_without_a_bundle_is_not_found(tmp_path, capsys):
    code, _, err = run_cli("doctor", "--bundle", str(tmp_path), capsys=capsys)
    assert code == 3 and "not a bundle" in err


def test_bundle_refuses_a_folder_that_is_not_a_bundle(tmp_path, capsys, churn_artifact):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    code, _, err = run_cli("bundle", str(churn_artifact), "--trust", "-o", str(tmp_path / "out"),
                           capsys=capsys)
    assert code == 6 and "holds no bundle.json" in err
    assert (tmp_path / "out" / "notes.txt").read_text() == "mine"


def test_bundle_refuses_a_pickled_file_without_trust(tmp_path, capsys, churn_artifact):
    code, _, err = run_cli("bundle", str(churn_artifact), "-o", str(tmp_path / "b"),
                           capsys=capsys)
    assert code == 5 and "--trust" in err


# --- one real bundle, one fresh virtualenv --------------------------------------------------

#: How the venv's scores are compared: the same rows, labels and flags; probabilities exactly
#: equal through ONNX Runtime, within NATIVE_TOLERANCE through scikit-learn: the demo's
#: random forest (n_jobs=-1) adds its trees' votes in the order its threads finish, which
#: moves the last bit from run to run even in one environment.
NATIVE_TOLERANCE = 1e-12
SCORE = """
import json, sys
import pandas as pd
import scorehouse
rows = pd.read_json(sys.argv[2], orient="records", dtype=False)
out = {}
for runtime in ("native", "onnx"):
    out[runtime] = scorehouse.load(sys.argv[1], trust=True, runtime=runtime).predict(rows).to_records()
print(json.dumps(out))
"""


def offline_env(**extra: str) -> dict[str, str]:
    """This environment with every package index disabled, and nothing of this checkout on
    the path (the venv must use the scorehouse it installed from the bundle)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "SCOREHOUSE_", "PYTHON")) and k != "VIRTUAL_ENV"}
    return {**env, "PIP_NO_INDEX": "1", "PIP_CONFIG_FILE": os.devnull, **extra}


def bundle_once(tmp_path_factory, churn_artifact) -> Path:
    """`scorehouse bundle churn@production` from a registry, in a subprocess (pip's index as
    configured here); built once per test run, shared with test_deploy_container.py."""
    home = tmp_path_factory.getbasetemp() / "churn-bundle-home"
    if (home / "bundle" / "bundle.json").is_file():
        return home / "bundle"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    reg = scorehouse.Registry(f"sqlite:///{home / 'registry.db'}", str(home / "artifacts"))
    reg.register(churn_artifact)
    reg.promote("churn/1", "production")
    out = home / "bundle"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREHOUSE_")}
    done = subprocess.run(
        [sys.executable, "-m", "scorehouse.cli.app", "--registry", reg.url, "--artifacts",
         str(home / "artifacts"), "bundle", "churn@production", "-o", str(out), "--json"],
        capture_output=True, text=True, env={**env, "SCOREHOUSE_HOME": str(home)}, timeout=900)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["artifacts"][0]["file"] == "churn-v1.shz"
    return out


@pytest.fixture(scope="module")
def built_bundle(tmp_path_factory, churn_artifact) -> Path:
    """The churn bundle (`bundle_once`)."""
    return bundle_once(tmp_path_factory, churn_artifact)


@pytest.fixture(scope="module")
def venv(tmp_path_factory, built_bundle) -> Path:
    """A fresh virtualenv with the bundle installed by its install.sh, offline."""
    where = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(where)], check=True, timeout=300,
                   env=offline_env())
    python = where / "bin" / "python"
    done = subprocess.run(["sh", str(built_bundle / "install.sh"), "--quiet"],
                          env=offline_env(PYTHON=str(python)), capture_output=True, text=True,
                          timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "all match" in done.stdout  # install.sh ends with the doctor
    return where


@pytest.mark.slow
def test_bundle_holds_the_artifact_the_lock_and_only_serving_packages(built_bundle):
    info = json.loads((built_bundle / "bundle.json").read_text())
    art = info["artifacts"][0]
    assert art["sha256"] == lock.sha256_file(built_bundle / "artifacts" / art["file"])
    locked = lock.read_lock(built_bundle / "requirements.lock")
    wheels = {p.name for p in (built_bundle / "wheels").iterdir()}
    assert {p["file"] for p in info["packages"]} == wheels and len(locked) == len(wheels)
    for p in info["packages"]:
        assert locked[p["name"]] == (p["version"], [p["sha256"]])
        assert lock.sha256_file(built_bundle / "wheels" / p["file"]) == p["sha256"]
    for name, version in art["requirements"].items():  # the model's libraries, as recorded
        assert locked[lock.normalize(name)][0] == version
    assert {"scorehouse", "numpy", "scikit-learn", "onnxruntime", "uvicorn"} <= set(locked)
    assert not {"pytest", "mypy", "ruff", "playwright", "pyspark", "matplotlib"} & set(locked)
    assert info["resolution"] == "build-environment"
    assert info["sizes"]["total"] == info["sizes"]["wheels"] + info["sizes"]["artifacts"]


@pytest.mark.slow
def test_a_fresh_venv_installed_offline_scores_as_this_environment(
        venv, built_bundle, churn_data, tmp_path):
    rows = churn_data.drop(columns=[TARGET]).head(200)
    rows.to_json(tmp_path / "rows.json", orient="records")
    artifact = str(built_bundle / "artifacts" / "churn-v1.shz")
    there = subprocess.run([str(venv / "bin" / "python"), "-c", SCORE, artifact,
                            str(tmp_path / "rows.json")], env=offline_env(),
                           capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert there.returncode == 0, there.stderr[-2000:]
    here = subprocess.run([sys.executable, "-c", SCORE, artifact, str(tmp_path / "rows.json")],
                          capture_output=True, text=True, timeout=300)
    assert here.returncode == 0, here.stderr[-2000:]
    there_out, here_out = json.loads(there.stdout), json.loads(here.stdout)
    assert there_out["onnx"] == here_out["onnx"] and len(there_out["onnx"]) == 200
    assert len(there_out["native"]) == len(here_out["native"]) == 200
    for a, b in zip(there_out["native"], here_out["native"], strict=True):
        assert (a["row"], a["label"], a["flags"]) == (b["row"], b["label"], b["flags"])
        assert a["probabilities"] == pytest.approx(b["probabilities"], abs=NATIVE_TOLERANCE, rel=0)
    where = subprocess.run([str(venv / "bin" / "python"), "-c", "import scorehouse; "
                            "print(scorehouse.__file__)"], env=offline_env(),
                           capture_output=True, text=True, check=True, cwd=tmp_path)
    assert where.stdout.startswith(str(venv))  # the bundle's scorehouse, not this checkout


@pytest.mark.slow
def test_doctor_in_the_venv_fails_when_a_package_version_differs(venv, built_bundle, tmp_path):
    doctor = [str(venv / "bin" / "scorehouse"), "doctor", "--bundle", str(built_bundle)]
    ok = subprocess.run(doctor, env=offline_env(), capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and "all match" in ok.stdout
    # Another release of one small locked package, fetched as the bundle's were (pip's
    # configured index), installed over the locked one; the locked one is put back after.
    locked = lock.read_lock(built_bundle / "requirements.lock")["mdurl"][0]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--only-binary=:all:", "-d", str(tmp_path), f"mdurl<{locked}"],
                   check=True, timeout=300)
    other = lock.Wheel.parse(next(tmp_path.glob("mdurl-*.whl")).name).version
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
           "--force-reinstall"]
    subprocess.run([*pip, *tmp_path.glob("mdurl-*.whl")], env=offline_env(), check=True,
                   timeout=300)
    try:
        bad = subprocess.run(doctor, env=offline_env(), capture_output=True, text=True,
                             timeout=120)
    finally:
        subprocess.run([*pip, "--find-links", str(built_bundle / "wheels"),
                        f"mdurl=={locked}"], env=offline_env(), check=True, timeout=300)
    assert bad.returncode == EXIT_MISMATCH, bad.stdout + bad.stderr
    line = next(ln for ln in bad.stdout.splitlines() if "MISMATCH" in ln)
    assert "mdurl" in line and locked in line and other in line
    assert f"1 mismatch: package mdurl: expected {locked}, found {other}" in bad.stdout
