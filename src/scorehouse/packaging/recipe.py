"""The training recipe: made at packaging (`recipe_for`), used by `retrain` to split new
data (`split`) and fit the model again (`fit`).

`package` keeps a recipe by itself when it is given the target column and the model is a
scikit-learn estimator or pipeline, or the scikit-learn wrapper of LightGBM or XGBoost: an
unfitted clone of it (`sklearn.base.clone`: the same parameters, nothing learnt), the input
columns it was fitted on, the target, and how `retrain` holds rows out (`HoldoutSplit`).
Any other model (a bare Booster, an ONNX file, a plain Python object) keeps one only when
the caller names a function, `recipe="package.module:function"`, which `retrain` calls as
`function(train, target)` with the training rows (a DataFrame: every column of the new
data, the holdout rows taken out) and the target column's name; it returns the fitted
model, which is packaged like the first.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import cloudpickle  # type: ignore[import-untyped, unused-ignore]  # no stubs
import pandas as pd

from ..artifact import ESTIMATOR_FILE, Artifact, HoldoutSplit, TrainingRecipe
from ..artifact.files import one_line
from ..artifact.params import param_tree
from ..artifact.recipe import json_params, require_trust, unfitted_estimator
from ..errors import ModelError, SchemaError, UsageError

#: How `retrain` holds rows out when packaging did not say: 20% of them, drawn with seed 0.
DEFAULT_HOLDOUT = HoldoutSplit(fraction=0.2, seed=0)


def holdout_split(holdout: HoldoutSplit | float | str | os.PathLike[str] | None
                  ) -> HoldoutSplit:
    """The holdout split `holdout` says: a split as it is, a fraction of rows (drawn with
    seed 0), a holdout file's path, or None for `DEFAULT_HOLDOUT`.

    Raises:
        UsageError: a fraction outside (0, 1).
    """
    if holdout is None:
        return DEFAULT_HOLDOUT
    if isinstance(holdout, (str, os.PathLike)):
        return HoldoutSplit(path=os.fspath(holdout))
    split = holdout if isinstance(holdout, HoldoutSplit) else HoldoutSplit(fraction=float(holdout))
    if split.path is None and not 0 < split.fraction < 1:
        raise UsageError(f"the holdout fraction must be between 0 and 1, not {split.fraction}")
    return split


def resolve_function(spec: str) -> Callable[..., Any]:
    """The function a 'package.module:function' recipe names (imported: it runs the
    module's code, which must be installed where the model is retrained).

    Raises:
        UsageError: not 'module:function', the module cannot be imported, or the name is
            not a function in it.
    """
    module, sep, name = spec.partition(":")
    if not sep or not module or not name:
        raise UsageError(f"a recipe function is 'package.module:function', not {spec!r}")
    try:
        found = importlib.import_module(module)
    except ImportError as e:
        raise UsageError(f"cannot import {module!r} of recipe {spec!r} ({one_line(e)}); it "
                         "must be importable where the model is packaged and retrained") from None
    fn: Any = found
    for part in name.split("."):
        fn = getattr(fn, part, None)
    if not callable(fn):
        raise UsageError(f"recipe {spec!r}: {module} has no function {name!r}")
    return fn


def recipe_for(model: Any, flavor: str, features: Sequence[str], target: str | None,
               holdout: HoldoutSplit, recipe: str | bool = True
               ) -> tuple[TrainingRecipe | None, dict[str, bytes]]:
    """The recipe `package` keeps for `model` (see the module docstring) and the files it
    adds to the artifact; (None, {}) when there is none to keep. When an estimator has no
    recipe (its clone fails, or a LightGBM/XGBoost parameter has no JSON form), a warning
    says why and that `recipe="module:function"` gives one.

    Raises:
        UsageError: a function recipe without a target, or one `resolve_function` refuses.
    """
    if recipe is False or (recipe is True and target is None):
        return None, {}
    if target is None:
        raise UsageError("a training recipe needs the target column: pass target=")
    base = TrainingRecipe(features=tuple(features), target=target, holdout=holdout)
    if isinstance(recipe, str):
        resolve_function(recipe)
        return replace(base, function=recipe), {}
    if flavor not in ("sklearn", "lightgbm", "xgboost") or not hasattr(model, "get_params"):
        return None, {}
    try:
        from sklearn.base import clone  # type: ignore[import-untyped, unused-ignore]

        fresh = clone(model)
    except Exception as e:  # noqa: BLE001 - any estimator's own failure means the same
        return _no_recipe(model, f"sklearn.base.clone failed ({one_line(e)})")
    dotted = param_tree(fresh)["estimator"]
    if flavor == "sklearn":
        return (replace(base, estimator=dotted, file=ESTIMATOR_FILE),
                {ESTIMATOR_FILE: cloudpickle.dumps(fresh)})
    params, why = json_params(fresh.get_params(deep=False))
    if params is None:
        return _no_recipe(model, why)
    return replace(base, estimator=dotted, params=params), {}


def _no_recipe(model: Any, why: str) -> tuple[None, dict[str, bytes]]:
    """No recipe, and a warning saying why."""
    warnings.warn(f"no training recipe kept for the {type(model).__name__}: {why}; "
                  "retrain needs recipe='package.module:function' (CLI: --recipe)",
                  stacklevel=3)
    return None, {}


def split(frame: pd.DataFrame, holdout: HoldoutSplit) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows to fit on, rows held out): `holdout.fraction` of the rows drawn with its seed
    (scikit-learn's `train_test_split`; the same data and seed give the same rows).

    Raises:
        UsageError: too few rows to hold any out and keep any to fit on.
    """
    from sklearn.model_selection import train_test_split

    try:
        train, held = train_test_split(frame, test_size=holdout.fraction,
                                       random_state=holdout.seed, shuffle=True)
    except ValueError as e:
        raise UsageError(f"cannot hold {holdout.describe()} out of {len(frame)} rows: {e}") from None
    return train.reset_index(drop=True), held.reset_index(drop=True)


def check_columns(columns: Sequence[Any], recipe: TrainingRecipe, what: str) -> None:
    """Raise SchemaError (exit 4) naming the columns of the recipe `columns` lacks."""
    wanted = [recipe.target] if recipe.function is not None else [*recipe.features,
                                                                   recipe.target]
    missing = [c for c in wanted if c not in set(columns)]
    if missing:
        raise SchemaError(f"{what} lacks column(s) the training recipe needs: "
                          f"{', '.join(missing)}")


def _is_text(column: pd.Series[Any]) -> bool:
    return bool(pd.api.types.is_string_dtype(column) or column.dtype == object)


def fit(art: Artifact, train: pd.DataFrame) -> Any:
    """The model fitted on `train` by the artifact's recipe: its unfitted estimator fitted on
    the recipe's features and target, or its function called as `function(train, target)`.

    Raises:
        UsageError: the artifact has no recipe, or its function cannot be imported.
        TrustError: the recipe would run code from an artifact nothing trusts.
        SchemaError: `train` lacks a column the recipe needs.
        ModelError: fitting failed.
    """
    recipe = art.manifest.recipe
    if recipe is None:
        raise UsageError(f"{art.source} has no training recipe")
    check_columns(list(train.columns), recipe, "the training data")
    if recipe.function is not None:
        require_trust(art, f"the training recipe's function {recipe.function}")
        fn = resolve_function(recipe.function)
        try:
            model = fn(train, recipe.target)
        except Exception as e:  # noqa: BLE001 - the user's function: its error, one line
            raise ModelError(f"the recipe function {recipe.function} failed: {one_line(e)}") from None
        if model is None:
            raise ModelError(f"the recipe function {recipe.function} returned no model")
        return model
    estimator = unfitted_estimator(art)
    X = train[list(recipe.features)]
    if recipe.params is not None:  # LightGBM and XGBoost read text columns as categories
        X = X.astype({c: "category" for c in X.columns if _is_text(X[c])})
    try:
        return estimator.fit(X, train[recipe.target])
    except Exception as e:  # noqa: BLE001 - the estimator's own error, one line
        raise ModelError(f"refitting {recipe.estimator} failed: {one_line(e)}") from None
