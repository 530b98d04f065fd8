"""Kubernetes manifests for `scorehouse serve`: a Deployment, its Service, a
HorizontalPodAutoscaler (autoscaling/v2) and a PodDisruptionBudget (policy/v1), or a KServe
InferenceService with scorehouse as a custom predictor speaking V2 (`scorehouse k8s`).

What each part does and why:
- probes on the V2 health routes: a startup probe on `/v2/health/live` while the models
  load (`scorehouse serve` loads them before it listens), liveness on `/v2/health/live`,
  readiness on `/v2/health/ready` (503 until every model is loaded);
- resources: the memory request is a serving process' measured resident memory with the
  models loaded (`memory.measure`) plus a quarter, the limit twice the request (large
  bodies are parsed in memory: up to 2 at a time, `--max-body` each) or more if loading
  peaked higher; a CPU request, no CPU
  limit (a limit throttles the event loop; the HPA scales on the request's utilisation);
- draining: a preStop `sleep` keeps the pod serving while the endpoints controller and the
  proxies drop it, then SIGTERM makes serve stop accepting and finish in-flight requests
  (uvicorn's 30 s graceful shutdown); the grace period covers both;
- a read-only root filesystem, a non-root user (uid 10001, the one `scorehouse container`
  images run as), no privilege escalation, no capabilities; writes go to an emptyDir at
  /tmp (SCOREHOUSE_HOME, numba's cache);
- rolling updates that never drop below the wanted replicas (maxUnavailable 0), a PDB of
  maxUnavailable 1 (which never blocks a node drain the way minAvailable = replicas would).

Every manifest is a plain dict, written as YAML; `k8s_check.check` validates it offline.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..registry.refs import ModelRef

#: The container's port (serve's default) and its name in probes and the Service.
PORT = 8080
#: The user of `scorehouse container` images (not root, group 0).
UID = 10001
#: Seconds serve's uvicorn lets in-flight requests finish after SIGTERM (cli/serving.py).
SERVE_GRACE = 30
KSERVE_API = "serving.kserve.io/v1beta1"

Manifest = dict[str, Any]


@dataclass(frozen=True)
class K8sOptions:
    """What to deploy and how.

    `refs`: the models (served by the container unless `baked`); `image`: an image with
    scorehouse on its PATH (`scorehouse container` builds one); `baked`: the image serves
    its own baked-in models from its entrypoint, so no command is set and `refs` only size
    the memory; `name`: the objects' name (default: from the first reference);
    `replicas`: the minimum (and initial) count, `max_replicas` the HPA's ceiling
    (default 3 x `replicas`); `cpu`: the CPU request; `cpu_target`: the HPA's average CPU
    utilisation, percent; `drain`: seconds the preStop hook sleeps; `env_secret`: a Secret
    whose keys become environment variables (SCOREHOUSE_REGISTRY, SCOREHOUSE_ARTIFACTS,
    AWS_* for an S3 artifact store...); `serve_args`: more `scorehouse serve` options;
    `kserve`: an InferenceService instead of the Deployment, Service and HPA.
    """

    refs: list[str]
    image: str = "scorehouse:latest"
    baked: bool = False
    name: str | None = None
    namespace: str | None = None
    replicas: int = 2
    max_replicas: int | None = None
    cpu: str = "500m"
    cpu_target: int = 70
    drain: int = 5
    env_secret: str | None = None
    serve_args: list[str] = field(default_factory=list)
    kserve: bool = False

    def __post_init__(self) -> None:
        if not self.refs:
            raise UsageError("name at least one model to deploy")
        if self.replicas < 1 or (self.max_replicas is not None and
                                 self.max_replicas < self.replicas):
            raise UsageError("--replicas must be at least 1, and --max-replicas at least "
                             "--replicas")
        if not 0 < self.cpu_target <= 100 or self.drain < 0:
            raise UsageError("--cpu-target is a percentage (1-100); --drain is >= 0 seconds")

    @property
    def app(self) -> str:
        """The objects' name: `name`, else the first model's, as a DNS-1123 label."""
        return dns_label(self.name or _model_name(self.refs[0]))

    @property
    def ceiling(self) -> int:
        """The HPA's maximum replicas."""
        return self.max_replicas or 3 * self.replicas


def _model_name(ref: str) -> str:
    parsed = ModelRef.parse(ref)
    return Path(ref).stem if parsed.is_path else ref.split("@")[0].split("/")[0]


def dns_label(text: str) -> str:
    """`text` as a Kubernetes object name (RFC 1123 label: a-z, 0-9, '-', at most 63).

    Raises:
        UsageError: nothing of `text` is usable.
    """
    label = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")[:63].rstrip("-")
    if not label:
        raise UsageError(f"cannot make a Kubernetes name of {text!r}: give --name")
    return label


def quantity_mib(mib: float) -> str:
    """MiB as a Kubernetes quantity, rounded up to 16Mi."""
    return f"{int(math.ceil(mib / 16) * 16)}Mi"


@dataclass(frozen=True)
class Sizing:
    """The memory request and limit (Kubernetes quantities) and where they came from."""

    request: str
    limit: str
    source: str

    @classmethod
    def from_measured(cls, resident_mib: float, peak_mib: float | None = None,
                      source: str = "measured") -> Sizing:
        """Request = resident memory x 1.25; limit = twice the request, or the peak (while
        loading) x 1.25 when that is more."""
        request = int(quantity_mib(resident_mib * 1.25)[:-2])
        limit = max(2 * request, int(quantity_mib((peak_mib or 0) * 1.25)[:-2]))
        return cls(f"{request}Mi", f"{limit}Mi", source)


def labels(o: K8sOptions) -> dict[str, str]:
    """The labels every object carries; the first two select the pods."""
    return {"app.kubernetes.io/name": "scorehouse", "app.kubernetes.io/instance": o.app,
            "app.kubernetes.io/component": "model-server"}


def _selector(o: K8sOptions) -> dict[str, str]:
    return dict(list(labels(o).items())[:2])


def _meta(o: K8sOptions, kind_labels: dict[str, str] | None = None) -> Manifest:
    meta: Manifest = {"name": o.app, "labels": kind_labels or labels(o)}
    if o.namespace:
        meta["namespace"] = o.namespace
    return meta


def container(o: K8sOptions, sizing: Sizing, name: str = "scorehouse") -> Manifest:
    """The serving container: command, port, environment, probes, resources, drain."""
    probe = {"port": "http" if name == "scorehouse" else PORT}
    c: Manifest = {"name": name, "image": o.image, "imagePullPolicy": "IfNotPresent"}
    if not o.baked:
        c["command"] = ["scorehouse", "serve"]
        c["args"] = [*o.refs, "--host", "0.0.0.0", "--port", str(PORT), *o.serve_args]
    elif o.serve_args:
        c["args"] = list(o.serve_args)  # the image's entrypoint passes them to serve
    c.update({
        "ports": [{"name": "http", "containerPort": PORT, "protocol": "TCP"}],
        "env": [{"name": "SCOREHOUSE_HOME", "value": "/tmp/scorehouse"},
                {"name": "NUMBA_CACHE_DIR", "value": "/tmp/numba"},
                {"name": "HOME", "value": "/tmp"},
                {"name": "SCOREHOUSE_PORT", "value": str(PORT)},
                {"name": "PYTHONUNBUFFERED", "value": "1"}],
        "startupProbe": {"httpGet": {"path": "/v2/health/live", **probe}, "periodSeconds": 2,
                         "failureThreshold": 90, "timeoutSeconds": 2},
        "livenessProbe": {"httpGet": {"path": "/v2/health/live", **probe}, "periodSeconds": 10,
                          "failureThreshold": 3, "timeoutSeconds": 5},
        "readinessProbe": {"httpGet": {"path": "/v2/health/ready", **probe},
                           "periodSeconds": 5, "failureThreshold": 2, "timeoutSeconds": 3},
        "resources": {"requests": {"cpu": o.cpu, "memory": sizing.request},
                      "limits": {"memory": sizing.limit}},
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(o.drain)]}}},
        "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": 0,
                            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False,
                            "capabilities": {"drop": ["ALL"]},
                            "seccompProfile": {"type": "RuntimeDefault"}},
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    })
    if o.env_secret:
        c["envFrom"] = [{"secretRef": {"name": o.env_secret}}]
    return c


def _pod_spec(o: K8sOptions, sizing: Sizing) -> Manifest:
    return {"containers": [container(o, sizing)],
            "terminationGracePeriodSeconds": o.drain + SERVE_GRACE + 5,
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}]}


def deployment(o: K8sOptions, sizing: Sizing) -> Manifest:
    """apps/v1 Deployment of `o.replicas` serving pods."""
    annotations = {"prometheus.io/scrape": "true", "prometheus.io/port": str(PORT),
                   "prometheus.io/path": "/metrics",
                   "scorehouse.dev/memory-sizing": sizing.source}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": _meta(o),
            "spec": {"replicas": o.replicas, "revisionHistoryLimit": 5,
                     "selector": {"matchLabels": _selector(o)},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                     "template": {"metadata": {"labels": labels(o), "annotations": annotations},
                                  "spec": _pod_spec(o, sizing)}}}


def service(o: K8sOptions) -> Manifest:
    """v1 Service: port 80 to the pods' `http` port."""
    return {"apiVersion": "v1", "kind": "Service", "metadata": _meta(o),
            "spec": {"type": "ClusterIP", "selector": _selector(o),
                     "ports": [{"name": "http", "port": 80, "targetPort": "http",
                                "protocol": "TCP"}]}}


def autoscaler(o: K8sOptions) -> Manifest:
    """autoscaling/v2 HorizontalPodAutoscaler on average CPU utilisation."""
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": _meta(o),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                        "name": o.app},
                     "minReplicas": o.replicas, "maxReplicas": o.ceiling,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization",
                                                   "averageUtilization": o.cpu_target}}}],
                     "behavior": {"scaleDown": {"stabilizationWindowSeconds": 300}}}}


def disruption_budget(o: K8sOptions) -> Manifest:
    """policy/v1 PodDisruptionBudget: one pod down at a time for voluntary disruptions."""
    selector = ({"serving.kserve.io/inferenceservice": o.app} if o.kserve
                else _selector(o))
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": _meta(o),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}}}


def inference_service(o: K8sOptions, sizing: Sizing) -> Manifest:
    """A KServe InferenceService (serving.kserve.io/v1beta1) whose predictor is scorehouse as
    a custom container (`kserve-container`, port 8080, Open Inference Protocol V2), in
    KServe's RawDeployment mode (a Deployment and an HPA, no Knative)."""
    pod = _pod_spec(o, sizing)
    pod["containers"] = [container(o, sizing, name="kserve-container")]
    meta = _meta(o)
    meta["annotations"] = {"serving.kserve.io/deploymentMode": "RawDeployment",
                           "serving.kserve.io/autoscalerClass": "hpa",
                           "scorehouse.dev/memory-sizing": sizing.source}
    predictor = {"minReplicas": o.replicas, "maxReplicas": o.ceiling, "scaleMetric": "cpu",
                 "scaleTarget": o.cpu_target, **pod}
    return {"apiVersion": KSERVE_API, "kind": "InferenceService", "metadata": meta,
            "spec": {"predictor": predictor}}


def build(o: K8sOptions, sizing: Sizing) -> dict[str, Manifest]:
    """Every manifest by file name (the KServe set with `o.kserve`)."""
    if o.kserve:
        return {"inferenceservice.yaml": inference_service(o, sizing),
                "pdb.yaml": disruption_budget(o)}
    return {"deployment.yaml": deployment(o, sizing), "service.yaml": service(o),
            "hpa.yaml": autoscaler(o), "pdb.yaml": disruption_budget(o)}


def write(manifests: dict[str, Manifest], out: Path) -> list[Path]:
    """Write each manifest as YAML into `out`, and a kustomization.yaml listing them
    (`kubectl apply -k out/`); returns the paths written."""
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, manifest in manifests.items():
        path = out / name
        path.write_text(yaml.safe_dump(manifest, sort_keys=False, width=100))
        paths.append(path)
    kustomization = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                     "resources": list(manifests)}
    (out / "kustomization.yaml").write_text(yaml.safe_dump(kustomization, sort_keys=False))
    return [*paths, out / "kustomization.yaml"]
