"""Model kinds ("flavors"): how each is recognised, described, stored and loaded again.

Each flavor stores its model in the safest format that holds it: LightGBM's text model,
XGBoost's UBJSON, ONNX bytes; only scikit-learn and plain Python objects are pickled
(cloudpickle, so functions defined in a notebook travel with the model).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle  # type: ignore[import-untyped, unused-ignore]  # no stubs

from ..errors import ArtifactError, UnsupportedModelError
from .manifest import Manifest
from .params import param_tree

PICKLE_FILE = "model/model.pkl"
#: The ONNX graph packaging compiles a non-ONNX model to; ONNX Runtime reads it (no pickle).
COMPILED_FILE = "compiled/model.onnx"


@dataclass
class ModelInfo:
    """What packaging learns from the model object itself."""

    task: str | None  # "binary" | "multiclass" | "regression"; None when unknown
    classes: list[Any] | None = None
    feature_names: list[str] | None = None
    params: dict[str, Any] = field(default_factory=dict)
    modules: list[str] = field(default_factory=list)


def _task_from_classes(classes: Any) -> tuple[str, list[Any]]:
    labels = [c.item() if hasattr(c, "item") else c for c in list(classes)]
    return ("binary" if len(labels) == 2 else "multiclass"), labels


class Flavor:
    """Base of all flavors; subclasses fill in the four hooks.

    `files` are the artifact files `load` reads, `unpickles` those it unpickles (running
    code): trust is decided from these, never from what a manifest says about itself.
    """

    name = ""
    files: tuple[str, ...] = ()
    unpickles: tuple[str, ...] = ()

    @property
    def pickled(self) -> bool:
        """True when `load` unpickles a file, which runs code the artifact's author chose."""
        return bool(self.unpickles)

    def matches(self, model: Any) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self, model: Any) -> ModelInfo:  # pragma: no cover - interface
        raise NotImplementedError

    def save(self, model: Any) -> dict[str, bytes]:  # pragma: no cover - interface
        raise NotImplementedError

    def load(self, files: dict[str, bytes], manifest: Manifest) -> Any:
        raise NotImplementedError  # pragma: no cover - interface


def _module_of(model: Any) -> str:
    return type(model).__module__.split(".", 1)[0]


class SklearnFlavor(Flavor):
    """scikit-learn estimators and Pipelines (custom FunctionTransformers included)."""

    name = "sklearn"
    files = (PICKLE_FILE,)
    unpickles = (PICKLE_FILE,)

    def matches(self, model: Any) -> bool:
        try:
            from sklearn.base import BaseEstimator  # type: ignore[import-untyped, unused-ignore]
        except ImportError:  # pragma: no cover - sklearn is a core dependency
            return False
        return isinstance(model, BaseEstimator)

    def describe(self, model: Any) -> ModelInfo:
        from sklearn.base import is_classifier, is_regressor

        names = getattr(model, "feature_names_in_", None)
        info = ModelInfo(
            task=None, feature_names=[str(n) for n in names] if names is not None else None,
            params=param_tree(model)["params"], modules=["sklearn"],
        )
        if is_classifier(model) and hasattr(model, "classes_"):
            info.task, info.classes = _task_from_classes(model.classes_)
        elif is_regressor(model):
            info.task = "regression"
        return info

    def save(self, model: Any) -> dict[str, bytes]:
        return {PICKLE_FILE: cloudpickle.dumps(model)}

    def load(self, files: dict[str, bytes], manifest: Manifest) -> Any:
        return cloudpickle.loads(files[PICKLE_FILE])


class PythonFlavor(SklearnFlavor):
    """Any object with `predict` (and optionally `predict_proba`), or a bare callable."""

    name = "python"

    def matches(self, model: Any) -> bool:
        return callable(getattr(model, "predict", None)) or callable(model)

    def describe(self, model: Any) -> ModelInfo:
        info = ModelInfo(task=None, modules=[_module_of(model)])
        names = getattr(model, "feature_names_in_", None)
        if names is not None:
            info.feature_names = [str(n) for n in names]
        if callable(getattr(model, "predict_proba", None)) and hasattr(model, "classes_"):
            info.task, info.classes = _task_from_classes(model.classes_)
        return info


class LightGBMFlavor(Flavor):
    """LightGBM Booster or its scikit-learn wrapper, stored as LightGBM's text model."""

    name = "lightgbm"
    file = "model/model.lgb.txt"
    files = (file,)

    def matches(self, model: Any) -> bool:
        return _module_of(model) == "lightgbm"

    def _booster(self, model: Any) -> Any:
        return model.booster_ if hasattr(model, "booster_") else model

    def describe(self, model: Any) -> ModelInfo:
        booster = self._booster(model)
        text = booster.model_to_string(num_iteration=-1)
        found = re.search(r"^objective=(\S+)", text, re.M)
        objective = found.group(1) if found else "regression"
        info = ModelInfo(task="regression", feature_names=list(booster.feature_name()),
                         params={"objective": objective, "num_trees": booster.num_trees()},
                         modules=["lightgbm"])
        if hasattr(model, "get_params"):
            info.params.update(param_tree(model)["params"])
        if hasattr(model, "classes_"):
            info.task, info.classes = _task_from_classes(model.classes_)
        elif objective.startswith(("binary", "cross_entropy")):
            info.task, info.classes = "binary", [0, 1]
        elif objective.startswith(("multiclass", "softmax", "multiclassova")):
            classes = re.search(r"^num_class=(\d+)", text, re.M)
            k = int(classes.group(1)) if classes else 0
            info.task, info.classes = "multiclass", list(range(k))
        return info

    def save(self, model: Any) -> dict[str, bytes]:
        return {self.file: self._booster(model).model_to_string(num_iteration=-1).encode()}

    def load(self, files: dict[str, bytes], manifest: Manifest) -> Any:
        import lightgbm

        return lightgbm.Booster(model_str=files[self.file].decode())


class XGBoostFlavor(Flavor):
    """XGBoost Booster or its scikit-learn wrapper, stored as XGBoost's UBJSON model."""

    name = "xgboost"
    file = "model/model.ubj"
    files = (file,)

    def matches(self, model: Any) -> bool:
        return _module_of(model) == "xgboost"

    def _booster(self, model: Any) -> Any:
        return model.get_booster() if hasattr(model, "get_booster") else model

    def describe(self, model: Any) -> ModelInfo:
        booster = self._booster(model)
        config = json.loads(booster.save_config())
        objective = config["learner"]["objective"]["name"]
        info = ModelInfo(task="regression", feature_names=booster.feature_names,
                         params={"objective": objective}, modules=["xgboost"])
        if hasattr(model, "get_params"):
            info.params.update(param_tree(model)["params"])
        if hasattr(model, "classes_"):
            info.task, info.classes = _task_from_classes(model.classes_)
        elif objective.startswith("binary:"):
            info.task, info.classes = "binary", [0, 1]
        elif objective.startswith("multi:"):
            k = int(config["learner"]["learner_model_param"]["num_class"])
            info.task, info.classes = "multiclass", list(range(k))
        return info

    def save(self, model: Any) -> dict[str, bytes]:
        return {self.file: bytes(self._booster(model).save_raw(raw_format="ubj"))}

    def load(self, files: dict[str, bytes], manifest: Manifest) -> Any:
        import xgboost

        booster = xgboost.Booster()
        booster.load_model(bytearray(files[self.file]))
        return booster


class OnnxFlavor(Flavor):
    """An ONNX model (a `.onnx` path, its bytes, or an `onnx.ModelProto`)."""

    name = "onnx"
    file = "model/model.onnx"
    files = (file,)

    def matches(self, model: Any) -> bool:
        if isinstance(model, (str, Path)):
            return str(model).endswith(".onnx")
        return type(model).__name__ == "ModelProto"

    def _bytes(self, model: Any) -> bytes:
        if isinstance(model, (str, Path)):
            return Path(model).read_bytes()
        return bytes(model.SerializeToString())

    def describe(self, model: Any) -> ModelInfo:
        import onnx

        proto = onnx.load_from_string(self._bytes(model))
        info = ModelInfo(task=None, modules=["onnxruntime"],
                         feature_names=[i.name for i in proto.graph.input],
                         params={"producer": proto.producer_name, "opset":
                                 [f"{o.domain or 'ai.onnx'}:{o.version}" for o in proto.opset_import]})
        for node in proto.graph.node:
            for attr in node.attribute:
                if attr.name == "classlabels_strings" and attr.strings:
                    info.task, info.classes = _task_from_classes([s.decode() for s in attr.strings])
                elif attr.name == "classlabels_int64s" and attr.ints:
                    info.task, info.classes = _task_from_classes(list(attr.ints))
        return info

    def save(self, model: Any) -> dict[str, bytes]:
        return {self.file: self._bytes(model)}

    def load(self, files: dict[str, bytes], manifest: Manifest) -> Any:
        return files[self.file]


FLAVORS: dict[str, Flavor] = {
    f.name: f for f in (OnnxFlavor(), LightGBMFlavor(), XGBoostFlavor(), SklearnFlavor(),
                        PythonFlavor())
}


def flavor_of(model: Any) -> Flavor:
    """The flavor that stores `model` (most specific first)."""
    for flavor in FLAVORS.values():
        if flavor.matches(model):
            return flavor
    raise UnsupportedModelError(
        f"cannot package a {type(model).__module__}.{type(model).__name__}: expected a "
        "scikit-learn estimator, LightGBM or XGBoost model, an ONNX file, or an object with "
        "predict()"
    )


def flavor_named(name: str) -> Flavor:
    """The flavor recorded in a manifest."""
    try:
        return FLAVORS[name]
    except KeyError:
        raise ArtifactError(f"artifact uses unknown model flavor {name!r}; "
                            "upgrade scorehouse to load it") from None

