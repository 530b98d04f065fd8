"""`scorehouse container`: the build context, and a real image built and run with podman.

No image registry is reachable here, so the slow test makes its own base image: a
debootstrap of Debian 12 (minbase + python3 + python3-venv, from Debian's packages) imported
with `podman import` (kept in podman's storage as BASE, reused by later runs). It builds the
image on it with `--build` (no network during the build), runs it read-only, scores over
HTTP and compares with this environment, runs the HEALTHCHECK, and shows that a tampered
artifact stops the container at start (doctor, exit 5).

This sandbox refuses crun's cgroup set-up and raising rlimits, so when `runc` is installed
the test points podman at a containers.conf choosing runc and lower rlimits
(CONTAINERS_CONF); elsewhere podman runs with its own defaults.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

import scorehouse
from conftest import free_port, run_cli
from scorehouse.demo.data import TARGET
from scorehouse.deploy.container import ImageBuildError, build_command, engine
from test_deploy_bundle import _hand_bundle, bundle_once

BASE = "localhost/scorehouse-test-base:bookworm"


def test_context_has_a_containerfile_an_entrypoint_and_the_bundle(tmp_path, capsys):
    bundle = _hand_bundle(tmp_path / "b", ["numpy"])
    code, out, err = run_cli("container", "--bundle", str(bundle), "-o", str(tmp_path / "ctx"),
                             "--port", "9000", "--json", capsys=capsys)
    assert code == 0, err
    ctx = tmp_path / "ctx"
    version = ".".join(platform.python_version_tuple()[:2])
    assert json.loads(out)["base"] == f"docker.io/library/python:{version}-slim-bookworm"
    text = (ctx / "Containerfile").read_text()
    assert "ARG BASE=docker.io/library/python:" in text and text.count("FROM ${BASE}") == 2
    assert "install.sh --quiet" in text and "PIP_NO_INDEX=1" in text
    assert "USER 10001:0" in text and "EXPOSE 9000" in text and "SCOREHOUSE_PORT=9000" in text
    assert "/v2/health/ready" in text.split("HEALTHCHECK", 1)[1]
    assert "SCOREHOUSE_HOME=/tmp/scorehouse" in text and "HOME=/tmp" in text
    assert "COPY --from=install /opt/scorehouse/venv" in text and "bundle/wheels" not in text
    entry = (ctx / "entrypoint.sh").read_text()
    assert entry.index("scorehouse doctor") < entry.index("exec scorehouse serve --trust")
    assert "/opt/scorehouse/bundle/artifacts/m.shz" in entry
    assert os.access(ctx / "entrypoint.sh", os.X_OK)
    assert (ctx / "bundle" / "bundle.json").read_bytes() == (bundle / "bundle.json").read_bytes()


def test_context_needs_models_or_a_bundle_and_an_empty_folder(tmp_path, capsys):
    code, _, err = run_cli("container", "-o", str(tmp_path / "ctx"), capsys=capsys)
    assert code == 2 and "--bundle" in err
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    code, _, err = run_cli("container", "--bundle", str(tmp_path), "-o", str(tmp_path / "busy"),
                           capsys=capsys)
    assert code == 6 and "no Containerfile" in err


def test_build_is_offline_and_keeps_the_healthcheck(tmp_path, monkeypatch):
    cmd = build_command(tmp_path, "img:1", "/usr/bin/podman")
    assert cmd[:4] == ["/usr/bin/podman", "build", "--network", "none"]
    assert "--format" in cmd and cmd[cmd.index("--format") + 1] == "docker"
    assert "--format" not in build_command(tmp_path, "img:1", "/usr/bin/docker")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ImageBuildError, match="podman or docker"):
        engine()


# --- a real image ----------------------------------------------------------------------------


def _podman_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    if shutil.which("runc"):
        conf = tmp_path / "containers.conf"
        conf.write_text('[containers]\ndefault_ulimits = ["nofile=4096:4096", '
                        '"nproc=4096:4096"]\n[engine]\nruntime = "runc"\n')
        env["CONTAINERS_CONF"] = str(conf)
    return env


def _ensure_base(env: dict[str, str], tmp_path: Path) -> None:
    """BASE in podman's storage: Debian 12 minbase with python3 and venv (debootstrap)."""
    if subprocess.run(["podman", "image", "exists", BASE], env=env).returncode == 0:
        return
    root = tmp_path / "rootfs"
    subprocess.run(["debootstrap", "--variant=minbase", "--include=python3,python3-venv",
                    "bookworm", str(root), "http://deb.debian.org/debian"], check=True,
                   capture_output=True, timeout=1200)
    for junk in ("var/cache/apt/archives", "var/lib/apt/lists", "usr/share/doc",
                 "usr/share/man", "usr/share/locale", "usr/share/info"):
        shutil.rmtree(root / junk, ignore_errors=True)
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    subprocess.run(["podman", "import", "-", BASE], stdin=tar.stdout, env=env, check=True,
                   capture_output=True, timeout=600)
    tar.wait()
    shutil.rmtree(root, ignore_errors=True)


def _wait_ready(url: str, name: str, env: dict[str, str]) -> None:
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        state = subprocess.run(["podman", "inspect", "--format", "{{.State.Running}}", name],
                               env=env, capture_output=True, text=True)
        if state.stdout.strip() == "false":
            break
        time.sleep(0.5)
    logs = subprocess.run(["podman", "logs", name], env=env, capture_output=True, text=True)
    pytest.fail(f"the container never became ready: {logs.stdout[-1500:]}{logs.stderr[-1500:]}")


@pytest.mark.slow
def test_the_image_builds_offline_runs_read_only_and_scores_as_here(
        tmp_path_factory, tmp_path, churn_artifact, churn_data):
    env = _podman_env(tmp_path)
    _ensure_base(env, tmp_path)
    bundle = bundle_once(tmp_path_factory, churn_artifact)
    tag = f"localhost/scorehouse-test-serve:{os.getpid()}"
    done = subprocess.run(
        [sys.executable, "-m", "scorehouse.cli.app", "container", "--bundle", str(bundle),
         "-o", str(tmp_path / "ctx"), "--base", BASE, "--build", "--tag", tag, "--json"],
        env=env, capture_output=True, text=True, timeout=2400)
    assert done.returncode == 0, done.stderr[-3000:]
    image = json.loads(done.stdout)["image"]
    name = f"scorehouse-test-{os.getpid()}"
    try:
        _check_image(tag, name, image, env, bundle, churn_data, tmp_path)
    finally:
        subprocess.run(["podman", "rm", "-f", "-t", "2", name], env=env, capture_output=True)
        subprocess.run(["podman", "rmi", "-f", tag], env=env, capture_output=True)


def _check_image(tag, name, image, env, bundle, churn_data, tmp_path) -> None:
    found = json.loads(subprocess.run(["podman", "image", "inspect", tag], env=env, check=True,
                                      capture_output=True, text=True).stdout)[0]
    assert found["Config"]["User"] == "10001:0"
    healthcheck = found.get("Healthcheck") or found["Config"]["Healthcheck"]  # podman: top level
    assert "/v2/health/ready" in " ".join(healthcheck["Test"])
    assert image["engine"] == "podman" and image["bytes"] > 0
    port = free_port()
    subprocess.run(["podman", "run", "-d", "--name", name, "--network", "host", "--read-only",
                    "-e", "SCOREHOUSE_HOST=127.0.0.1", "-e", f"SCOREHOUSE_PORT={port}", tag],
                   env=env, check=True, capture_output=True, timeout=120)
    url = f"http://127.0.0.1:{port}"
    _wait_ready(url, name, env)
    rows = churn_data.drop(columns=[TARGET]).head(50)
    records = json.loads(rows.to_json(orient="records"))
    got = httpx.post(f"{url}/invocations", json={"dataframe_records": records}, timeout=60)
    assert got.status_code == 200, got.text
    artifact = bundle / "artifacts" / "churn-v1.shz"
    here = scorehouse.load(artifact, trust=True).predict(rows).to_records()
    want = [{"label": r["label"], **{f"probability_{k}": v for k, v in r["probabilities"].items()}}
            for r in here]
    assert got.json()["predictions"] == want
    health = subprocess.run(["podman", "healthcheck", "run", name], env=env, capture_output=True,
                            text=True, timeout=60)
    assert health.returncode == 0, health.stdout + health.stderr
    # A tampered artifact: doctor refuses it at start, and serve never runs.
    (tmp_path / "tampered.shz").write_bytes(artifact.read_bytes() + b"\0")
    bad = subprocess.run(["podman", "run", "--rm", "--network", "none", "--read-only", "-v",
                          f"{tmp_path / 'tampered.shz'}:/opt/scorehouse/bundle/artifacts/"
                          "churn-v1.shz:ro", tag], env=env, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode == 5, bad.stdout + bad.stderr
    assert "MISMATCH" in bad.stdout and "churn-v1.shz" in bad.stdout
    assert "serving" not in bad.stderr
