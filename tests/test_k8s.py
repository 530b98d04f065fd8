"""`scorehouse k8s`: the manifests it writes, checked offline against the Kubernetes API's
models (the official `kubernetes` client's classes; a KServe predictor as a V1PodSpec plus
KServe's extension fields), memory sized from a measured load, and the SIGTERM drain the
preStop hook relies on, on a real `scorehouse serve` process."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

import pytest
import yaml

from conftest import CliServer, run_cli
from scorehouse.deploy import k8s
from scorehouse.deploy.k8s_check import check


def _read(folder: Path) -> dict[str, dict]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(folder.glob("*.yaml"))}


def test_manifests_pass_the_kubernetes_models_and_fit_together(tmp_path, capsys):
    code, out, err = run_cli("k8s", "churn@production", "fraud/3", "-o", str(tmp_path / "m"),
                             "--image", "registry.example/scorehouse:1", "--replicas", "3",
                             "--memory", "768Mi", "--env-secret", "scorehouse", "--drain", "7",
                             "--serve-arg=--columns", "--serve-arg=strict", capsys=capsys)
    assert code == 0, err
    assert "checked against the kubernetes client" in out
    files = _read(tmp_path / "m")
    assert set(files) == {"deployment.yaml", "service.yaml", "hpa.yaml", "pdb.yaml",
                          "kustomization.yaml"}
    assert files.pop("kustomization.yaml")["resources"] == ["deployment.yaml", "service.yaml",
                                                           "hpa.yaml", "pdb.yaml"]
    for name, manifest in files.items():
        assert check(manifest) == [], name
    dep, svc, hpa, pdb = (files[f] for f in ("deployment.yaml", "service.yaml", "hpa.yaml",
                                             "pdb.yaml"))
    pod = dep["spec"]["template"]
    c = pod["spec"]["containers"][0]
    assert c["command"] == ["scorehouse", "serve"]
    assert c["args"] == ["churn@production", "fraud/3", "--host", "0.0.0.0", "--port", "8080",
                         "--columns", "strict"]
    assert c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert c["resources"] == {"requests": {"cpu": "500m", "memory": "768Mi"},
                              "limits": {"memory": "1536Mi"}}
    assert c["lifecycle"]["preStop"]["exec"]["command"] == ["sleep", "7"]
    # The grace period covers the drain and serve's 30 s to finish in-flight requests.
    assert pod["spec"]["terminationGracePeriodSeconds"] >= 7 + k8s.SERVE_GRACE
    assert c["envFrom"] == [{"secretRef": {"name": "scorehouse"}}]
    assert c["securityContext"]["readOnlyRootFilesystem"] and \
        {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
    # Each selector picks the Deployment's pods, the Service reaches the container's port.
    labels = pod["metadata"]["labels"]
    for selector in (dep["spec"]["selector"]["matchLabels"], svc["spec"]["selector"],
                     pdb["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= labels.items()
    assert svc["spec"]["ports"][0]["targetPort"] in [p["name"] for p in c["ports"]]
    assert (hpa["spec"]["scaleTargetRef"]["name"], hpa["spec"]["minReplicas"],
            hpa["spec"]["maxReplicas"]) == (dep["metadata"]["name"], 3, 9)
    assert pdb["spec"] == {"maxUnavailable": 1, "selector": pdb["spec"]["selector"]}


def test_kserve_inference_service_is_a_custom_v2_predictor(tmp_path, capsys):
    code, out, err = run_cli("k8s", "churn@production", "-o", str(tmp_path / "k"), "--kserve",
                             "--memory", "1Gi", "--baked", "--name", "Churn_Model", capsys=capsys)
    assert code == 0, err
    files = _read(tmp_path / "k")
    isvc = files["inferenceservice.yaml"]
    assert check(isvc) == [] and check(files["pdb.yaml"]) == []
    assert isvc["metadata"]["name"] == "churn-model"  # a DNS-1123 name
    predictor = isvc["spec"]["predictor"]
    c = predictor["containers"][0]
    assert c["name"] == "kserve-container" and "command" not in c  # --baked: the image serves
    assert c["readinessProbe"]["httpGet"] == {"path": "/v2/health/ready", "port": 8080}
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (2, 6)
    assert files["pdb.yaml"]["spec"]["selector"]["matchLabels"] == {
        "serving.kserve.io/inferenceservice": "churn-model"}


def test_the_check_finds_what_the_api_server_would_refuse():
    o = k8s.K8sOptions(refs=["churn@production"])
    sizing = k8s.Sizing.from_measured(300)
    bad = k8s.deployment(o, sizing)
    bad["spec"]["template"]["spec"]["containers"][0]["bogus"] = 1
    bad["spec"]["replicas"] = "two"
    assert check(bad) == ["spec.replicas: expected int, got str",
                          "spec.template.spec.containers[0].bogus: no such field of V1Container"]
    missing = k8s.deployment(o, sizing)
    del missing["spec"]["selector"]
    assert "selector" in " ".join(check(missing))
    hpa = k8s.autoscaler(o)
    hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] = "70%"
    assert check(hpa) == ["spec.metrics[0].resource.target.averageUtilization: expected int, "
                          "got str"]
    isvc = k8s.inference_service(k8s.K8sOptions(refs=["m"], kserve=True), sizing)
    isvc["spec"]["predictor"]["scaleMetric"] = "gpu"
    isvc["spec"]["predictor"]["replicas"] = 2
    assert check(isvc) == ["spec.predictor.scaleMetric: 'gpu' is not one of cpu, memory, "
                           "concurrency, rps",
                           "spec.predictor.replicas: no such field of V1PodSpec"]
    assert check({"apiVersion": "v9", "kind": "Nope"}) == [
        "apiVersion 'v9' kind 'Nope' is not a kind this check knows"]


def test_bad_options_are_one_line_errors(tmp_path, capsys):
    for args, text in [(["--memory", "1GB"], "--memory takes a quantity"),
                       (["--replicas", "0", "--memory", "1Gi"], "--replicas must be at least 1"),
                       (["--cpu-target", "150", "--memory", "1Gi"], "percentage")]:
        code, out, err = run_cli("k8s", "churn@production", "-o", str(tmp_path / "x"), *args,
                                 capsys=capsys)
        assert code == 2 and text in err and "Traceback" not in err, (args, err)
    assert not (tmp_path / "x").exists()


def test_memory_request_is_sized_from_a_measured_server(churn_artifact, tmp_path, capsys):
    import json
    import re

    code, out, err = run_cli("k8s", str(churn_artifact), "--trust", "-o", str(tmp_path / "m"),
                             "--json", capsys=capsys)
    assert code == 0, err
    result = json.loads(out)
    resident, peak = map(float, re.findall(r"([0-9.]+) MiB", result["memory_source"]))
    request = int(result["memory_request"].removesuffix("Mi"))
    limit = int(result["memory_limit"].removesuffix("Mi"))
    # A real `scorehouse serve` of the model, ready and warm: resident + 25 % is the request.
    # (The figures shown are rounded to 0.1 MiB, the request up to a multiple of 16 Mi.)
    assert 100 < resident <= peak < 4000
    assert resident * 1.25 <= request < (resident + 0.05) * 1.25 + 16
    assert limit >= max(2 * request, (peak - 0.05) * 1.25)
    c = _read(tmp_path / "m")["deployment.yaml"]["spec"]["template"]["spec"]["containers"][0]
    assert c["args"][:2] == [str(churn_artifact), "--host"] and "--trust" in c["args"]
    assert c["resources"]["requests"]["memory"] == result["memory_request"]


def test_measuring_a_model_that_does_not_load_is_one_line(tmp_path, capsys):
    code, out, err = run_cli("k8s", str(tmp_path / "missing.shz"), "-o", str(tmp_path / "m"),
                             capsys=capsys)
    assert code == 1 and "the server stopped" in err and "missing.shz" in err, err
    assert "Traceback" not in err and not (tmp_path / "m").exists()


def test_serve_drains_in_flight_requests_on_sigterm(churn_artifact, tmp_path, rows):
    """What the preStop hook and the grace period rely on: after SIGTERM, serve accepts no
    new connection and still answers the request it is reading."""
    import json

    server = CliServer([str(churn_artifact), "--trust"], tmp_path)
    try:
        server.wait_ready()
        body = json.dumps(rows[0]).encode()
        s = socket.create_connection(("127.0.0.1", server.port), timeout=20)
        s.sendall(b"POST /models/churn/predict HTTP/1.1\r\nHost: x\r\nContent-Type: "
                  b"application/json\r\nContent-Length: " + str(len(body)).encode() +
                  b"\r\n\r\n" + body[:10])
        time.sleep(0.3)
        server.proc.send_signal(signal.SIGTERM)
        deadline = time.time() + 10
        while True:  # the listening socket closes
            try:
                socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            except OSError:
                break
            assert time.time() < deadline, "still accepting connections after SIGTERM"
            time.sleep(0.1)
        s.sendall(body[10:])
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        # Then it ends (uvicorn re-raises SIGTERM once it has shut down gracefully).
        assert server.proc.wait(30) in (0, -signal.SIGTERM)
    finally:
        server.stop()


@pytest.mark.parametrize("text,label", [("churn@production", "churn"),
                                        ("models/My_Model.shz", "my-model"),
                                        ("fraud/12", "fraud")])
def test_object_names_are_dns_labels(text, label):
    assert k8s.K8sOptions(refs=[text]).app == label
