"""Which inputs accept a missing value: those missing in training, and those an imputer fills.

A column without missing values in training is required (`nullable: false`), unless the
model's own first step fills missing values of it: a scikit-learn `SimpleImputer`,
`KNNImputer` or `IterativeImputer` looking for NaN, as the whole pipeline's first step or
in a `ColumnTransformer` there (directly or as the first step of its pipeline). Then the
model would impute a null, so rejecting it would refuse a row the model scores. Packaging
checks it by scoring a training row with those columns missing (`build.package`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

_IMPUTERS = ("SimpleImputer", "KNNImputer", "IterativeImputer")


def imputed_columns(model: Any, names: Sequence[str]) -> dict[str, str]:
    """Input column -> why it is nullable ("imputed by SimpleImputer (step 'prep' > 'num')").

    `names`: the model's input columns in order. Columns of any other model: none.
    """
    return _fed(model, list(names), [])


def _fed(est: Any, names: list[str], path: list[str]) -> dict[str, str]:
    kind = type(est).__name__
    if _is_imputer(est):
        where = " > ".join(f"'{p}'" for p in path)
        return dict.fromkeys(names, f"imputed by {kind}" + (f" (step {where})" if path else ""))
    steps = getattr(est, "steps", None)
    if kind == "Pipeline" and steps:  # only the first step sees the input columns
        first, step = steps[0]
        return _fed(step, names, [*path, first])
    if kind == "ColumnTransformer" and hasattr(est, "transformers_"):
        found: dict[str, str] = {}
        for name, trans, cols in est.transformers_:
            if isinstance(trans, str):  # "drop" / "passthrough"
                continue
            found.update(_fed(trans, _selected(cols, names), [*path, name]))
        return found
    return {}


def _is_imputer(est: Any) -> bool:
    if type(est).__name__ not in _IMPUTERS or not type(est).__module__.startswith("sklearn."):
        return False
    missing = getattr(est, "missing_values", np.nan)
    return missing is None or (isinstance(missing, float) and missing != missing)


def _selected(cols: Any, names: list[str]) -> list[str]:
    """The input names a ColumnTransformer's column selection picks (names, indices, mask)."""
    if isinstance(cols, str):
        return [cols] if cols in names else []
    if isinstance(cols, slice):
        return names[cols]
    picked = list(cols) if not callable(cols) else []
    if picked and all(isinstance(c, (bool, np.bool_)) for c in picked):
        return [n for n, keep in zip(names, picked, strict=False) if keep]
    out = []
    for c in picked:
        if isinstance(c, (int, np.integer)) and 0 <= c < len(names):
            out.append(names[c])
        elif isinstance(c, str) and c in names:
            out.append(c)
    return out
