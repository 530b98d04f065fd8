"""A model's parameters as a JSON tree, for lineage: nested estimators (a pipeline's steps, a
column transformer's transformers) become nested objects instead of one multi-line repr.

Shape: `{"estimator": "sklearn.pipeline.Pipeline", "params": {name: value, ...}}`, where a
value is a JSON scalar, a list, an object, another such tree, or a one-line text (a function's
dotted name, or a short repr) for anything else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

#: Longest text kept for a value that has no JSON form (a big array, an odd object).
MAX_TEXT = 200


def param_tree(model: Any) -> dict[str, Any]:
    """The parameters of `model` (from `get_params(deep=False)`, recursively), as JSON."""
    params = model.get_params(deep=False) if hasattr(model, "get_params") else {}
    return {"estimator": _dotted(type(model)),
            "params": {str(k): _value(v) for k, v in params.items()}}


def _value(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)  # JSON has no NaN or infinity
    if hasattr(v, "get_params") and not isinstance(v, type):
        return param_tree(v)
    if hasattr(v, "item") and getattr(v, "ndim", None) == 0:  # a NumPy scalar
        return _value(v.item())
    if isinstance(v, (list, tuple)):
        return [_value(x) for x in v]
    if isinstance(v, Mapping):
        return {str(k): _value(x) for k, x in v.items()}
    if isinstance(v, type) or callable(v):
        return _dotted(v)
    text = " ".join(repr(v).split())  # one line
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 3] + "..."


def _dotted(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or ""
    name = getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)
    return f"{module}.{name}" if module and module != "builtins" else name
