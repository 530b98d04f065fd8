"""Offline validation of Kubernetes manifests against the API's own models: the classes of
the official Python client (`kubernetes.client.models`, generated from the Kubernetes
OpenAPI document), so no cluster and no `kubectl` are needed.

Each manifest is read the way the API server would: every field must exist on its model
(`attribute_map`, the JSON names), every value must have its field's type (objects
recursively, lists, maps, strings, integers, booleans; an `object` field such as
IntOrString takes a string or an integer), and the client's own deserialisation must
accept it (required fields, enumerations it checks). A KServe InferenceService is not a
Kubernetes kind: its predictor is a PodSpec (checked as `V1PodSpec`) plus the fields of
KServe's ComponentExtensionSpec (`KSERVE_EXTENSION`, from serving.kserve.io/v1beta1).
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..errors import UsageError

#: apiVersion and kind -> the client's model class.
MODELS = {("v1", "Service"): "V1Service", ("apps/v1", "Deployment"): "V1Deployment",
          ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2HorizontalPodAutoscaler",
          ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
          ("v1", "Secret"): "V1Secret", ("v1", "ConfigMap"): "V1ConfigMap"}

#: A KServe predictor's fields besides its PodSpec's, with their types (KServe's
#: ComponentExtensionSpec, API group serving.kserve.io/v1beta1).
KSERVE_EXTENSION = {"minReplicas": int, "maxReplicas": int, "scaleTarget": int,
                    "scaleMetric": str, "scaleMetricType": str, "containerConcurrency": int,
                    "timeout": int, "canaryTrafficPercent": int, "labels": dict,
                    "annotations": dict, "logger": dict, "batcher": dict,
                    "deploymentStrategy": dict, "autoScaling": dict}
KSERVE_SCALE_METRICS = ("cpu", "memory", "concurrency", "rps")

_PRIMITIVES: dict[str, type | tuple[type, ...]] = {
    "str": str, "int": int, "bool": bool, "float": (int, float), "object": (str, int, dict, list),
    "datetime": str, "date": str}


def client_version() -> str:
    """The version of the `kubernetes` client whose models check (UsageError when absent)."""
    try:
        import kubernetes
    except ImportError:
        raise UsageError("the kubernetes client is not installed: pip install "
                         "'scorehouse[kubernetes]'") from None
    return str(kubernetes.__version__)


def check(manifest: dict[str, Any]) -> list[str]:
    """What is wrong with `manifest` (empty: nothing), e.g. "spec.template.spec.containers[0]
    .bogus: no such field of V1Container".

    Raises:
        UsageError: the kubernetes client is not installed.
    """
    client_version()
    api, kind = manifest.get("apiVersion"), manifest.get("kind")
    if (api, kind) == ("serving.kserve.io/v1beta1", "InferenceService"):
        return _inference_service(manifest)
    model = MODELS.get((str(api), str(kind)))
    if model is None:
        return [f"apiVersion {api!r} kind {kind!r} is not a kind this check knows"]
    problems = _walk(manifest, model, "")
    return problems or _deserialise(manifest, model)


def _models() -> Any:
    from kubernetes.client import models

    return models


def _walk(value: Any, kind: str, path: str) -> list[str]:
    """Problems of `value` read as the client type `kind` ("V1Container", "List[str]" or
    "list[str]", "Dict[str, str]" or "dict(str, str)", "Optional[int]", "int"...), at `path`."""
    if value is None:
        return []
    if m := re.fullmatch(r"Optional\[(.+)\]", kind):
        return _walk(value, m.group(1), path)
    if m := re.fullmatch(r"[Ll]ist\[(.+)\]", kind):
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [p for i, v in enumerate(value) for p in _walk(v, m.group(1), f"{path}[{i}]")]
    if m := re.fullmatch(r"Dict\[\w+, (.+)\]|dict\(\w+, (.+)\)", kind):
        if not isinstance(value, dict):
            return [f"{path}: expected a map"]
        inner = m.group(1) or m.group(2)
        return [p for k, v in value.items() for p in _walk(v, inner, f"{path}.{k}")]
    if kind in _PRIMITIVES:
        ok = isinstance(value, _PRIMITIVES[kind]) and not (
            kind == "int" and isinstance(value, bool))
        return [] if ok else [f"{path}: expected {kind}, got {type(value).__name__}"]
    return _walk_model(value, kind, path)


def _walk_model(value: Any, kind: str, path: str) -> list[str]:
    """Problems of `value` read as the model class `kind`: unknown fields, then each field."""
    cls = getattr(_models(), kind, None)
    if cls is None:
        return [f"{path}: unknown type {kind}"]
    if not isinstance(value, dict):
        return [f"{path}: expected an object ({kind})"]
    fields = {json_name: py for py, json_name in cls.attribute_map.items()}
    problems = []
    for key, v in value.items():
        where = f"{path}.{key}" if path else key
        if key not in fields:
            problems.append(f"{where}: no such field of {kind}")
        else:
            problems += _walk(v, cls.openapi_types[fields[key]], where)
    return problems


def _deserialise(manifest: dict[str, Any], model: str) -> list[str]:
    """The client's own reading of `manifest` as `model` (required fields, strict types,
    enumerations): `from_dict` of the pydantic models (client >= 36), else the API client's
    deserialisation of an answer."""
    cls = getattr(_models(), model)
    try:
        if hasattr(cls, "from_dict"):
            cls.from_dict(manifest)
        else:  # the older generated classes
            from kubernetes.client import ApiClient

            class _Answer:
                data = json.dumps(manifest)

            client: Any = ApiClient()  # deserialize(response, type) there
            client.deserialize(_Answer(), model)
    except (ValueError, TypeError) as e:
        return [f"{model}: " + " ".join(str(e).split())]
    return []


def _inference_service(manifest: dict[str, Any]) -> list[str]:
    """A KServe InferenceService: its metadata, and a predictor that is a PodSpec plus
    ComponentExtensionSpec fields."""
    problems = [f"{k}: no such field of InferenceService" for k in manifest
                if k not in ("apiVersion", "kind", "metadata", "spec")]
    problems += _walk(manifest.get("metadata"), "V1ObjectMeta", "metadata")
    spec = manifest.get("spec") or {}
    problems += [f"spec.{k}: not a field scorehouse writes (predictor only)" for k in spec
                 if k != "predictor"]
    predictor = dict(spec.get("predictor") or {})
    for key, kind in KSERVE_EXTENSION.items():
        if key in predictor and not isinstance(predictor.pop(key), kind):
            problems.append(f"spec.predictor.{key}: expected {kind.__name__}")
    metric = (spec.get("predictor") or {}).get("scaleMetric")
    if metric is not None and metric not in KSERVE_SCALE_METRICS:
        problems.append(f"spec.predictor.scaleMetric: {metric!r} is not one of "
                        f"{', '.join(KSERVE_SCALE_METRICS)}")
    problems += _walk(predictor, "V1PodSpec", "spec.predictor")
    if not problems:
        problems = _deserialise(predictor, "V1PodSpec")
    names = [c.get("name") for c in predictor.get("containers") or []]
    if "kserve-container" not in names:
        problems.append("spec.predictor.containers: a custom predictor's container is named "
                        "kserve-container")
    return problems
