"""The unfitted estimator of an artifact's training recipe (`Manifest.recipe`), stored in
the safest form that holds it, and read back under the artifact's trust rules.

* LightGBM and XGBoost estimators (their scikit-learn wrappers): the class and its
  `get_params()` as JSON in the manifest; non-finite floats (XGBoost's `missing=nan`) as
  `{"float": "nan"}`. Nothing is unpickled: the class must come from the `lightgbm` or
  `xgboost` package and be a scikit-learn estimator, whatever the manifest says.
* scikit-learn estimators and pipelines: the unfitted clone pickled (cloudpickle, as the
  model itself) in `ESTIMATOR_FILE`, hashed in the manifest like every file. Only a flavor
  that already unpickles its model may hold one (`files._check_listing`), so an artifact
  that loads without trust never gains a pickle; and it is unpickled only from a trusted
  artifact (the registry, a signature, or the caller's `trust`), like the model.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import cloudpickle  # type: ignore[import-untyped, unused-ignore]  # no stubs

from ..errors import IntegrityError, TrustError, UsageError

if TYPE_CHECKING:
    from .files import Artifact

#: The pickled unfitted estimator of a scikit-learn recipe.
ESTIMATOR_FILE = "recipe/estimator.pkl"
#: Packages whose estimator classes a recipe's JSON may name (no pickle needed for them).
JSON_PACKAGES = ("lightgbm", "xgboost")


class _NotJson(Exception):
    """A parameter value with no exact JSON form."""


def _to_json(value: Any) -> Any:
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"float": str(value)}
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # a NumPy scalar
        return _to_json(value.item())
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, Mapping) and set(value) == {"float"}:  # would read back as a float
        raise _NotJson(f"mapping {value!r:.60}")
    if isinstance(value, Mapping) and all(isinstance(k, str) for k in value):
        return {k: _to_json(v) for k, v in value.items()}
    raise _NotJson(f"{type(value).__name__} {value!r:.60}")


def _from_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if isinstance(value, Mapping):
        if set(value) == {"float"} and isinstance(value["float"], str):
            return float(value["float"])
        return {k: _from_json(v) for k, v in value.items()}
    return value


def json_params(params: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """`params` as exact JSON and '' (reading them back gives the same values: only None,
    bools, numbers, texts, lists and text-keyed objects are taken), or None and the first
    parameter that has no exact JSON form (a function, an object, a tuple)."""
    out = {}
    for name, value in params.items():
        try:
            out[name] = _to_json(value)
        except _NotJson as e:
            return None, f"parameter {name!r} is a {e}"
    return out, ""


def estimator_class(dotted: str, source: str) -> type:
    """The class `dotted` names, when it is a scikit-learn estimator of `JSON_PACKAGES`.

    Raises:
        IntegrityError: any other class (the manifest names something a recipe never holds).
    """
    from sklearn.base import BaseEstimator  # type: ignore[import-untyped, unused-ignore]

    module, _, name = dotted.rpartition(".")
    if module.split(".")[0] not in JSON_PACKAGES:
        raise IntegrityError(f"{source}: the training recipe names {dotted!r}; a recipe's "
                             f"parameters are read only for {' or '.join(JSON_PACKAGES)} "
                             "estimators")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise UsageError(f"{source}: the training recipe's estimator {dotted} cannot be "
                         f"imported; install {module.split('.')[0]}") from None
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        raise IntegrityError(f"{source}: {dotted} in the training recipe is not a "
                             "scikit-learn estimator")
    return cls


def require_trust(art: Artifact, what: str) -> None:
    """Raise TrustError unless the artifact is trusted (registry, signature or the user):
    running `what` from it runs code its author chose."""
    if art.trusted_by is None:
        raise TrustError(f"{art.source}: {what} runs code the artifact's author chose; "
                         "retrain a registered version, or verify the artifact with a "
                         "signing key you hold (SCOREHOUSE_SIGNING_KEY)")


def unfitted_estimator(art: Artifact) -> Any:
    """A fresh unfitted estimator from the artifact's recipe (see the module docstring).

    Raises:
        UsageError: the artifact has no estimator recipe (none, or a function recipe).
        TrustError: a pickled estimator in an artifact nothing trusts.
        IntegrityError: the recipe names a class it may not, or its pickle is missing.
    """
    recipe = art.manifest.recipe
    if recipe is None or recipe.function is not None or recipe.estimator is None:
        raise UsageError(f"{art.source} has no estimator in its training recipe")
    if recipe.params is not None:
        cls = estimator_class(recipe.estimator, art.source)
        return cls(**_from_json(dict(recipe.params)))
    if ESTIMATOR_FILE not in art.files:
        raise IntegrityError(f"{art.source}: the training recipe's {ESTIMATOR_FILE} is missing")
    require_trust(art, f"unpickling the training recipe's {recipe.estimator}")
    return cloudpickle.loads(art.files[ESTIMATOR_FILE])
