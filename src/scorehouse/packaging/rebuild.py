"""The training frame as given vs the frame scorehouse rebuilds from the schema.

Every channel reaches a native model through `runtime.frames.model_frame`, a frame rebuilt
from the schema's canonical columns. If the schema loses something the model reads (a
categorical's integer categories, a zone, a dtype), the model scores the rebuilt frame
differently from the frame it was trained on, on every channel alike, so no parity check
between channels can see it. Packaging therefore scores the training sample both ways with
the stored model and refuses an artifact whose two answers differ, naming the columns.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..artifact import Artifact
from ..errors import SchemaError
from ..runtime.base import Output
from ..runtime.frames import model_frame
from ..runtime.native import NativeRuntime
from ..schema import Schema, validate_batch

#: Flavors whose model reads a pandas frame (the others get arrays, which the schema keeps).
FRAME_FLAVORS = ("sklearn", "python", "lightgbm", "xgboost")


def check_rebuilt_frame(probe: Artifact, schema: Schema, sample: pd.DataFrame,
                        tolerance: float) -> None:
    """Raise SchemaError when the stored model scores `sample` (training rows, as given)
    and the frame rebuilt from it through `schema` more than `tolerance` apart.

    A model that cannot score the frame as given (training data read back from CSV, where
    a categorical is plain text) is not compared: the rebuilt frame is the one it takes.
    """
    if probe.flavor not in FRAME_FLAVORS:
        return
    runtime = NativeRuntime(probe, schema)
    try:
        direct = runtime.predict_frame(sample)
    except Exception:  # noqa: BLE001 - any failure means there is nothing to compare with
        return
    rebuilt = model_frame(schema, validate_batch(schema, sample).columns).set_axis(sample.index)
    worst = _difference(direct, runtime.predict_frame(rebuilt))
    if worst <= tolerance:
        return
    culprits = []
    for name in schema.names:  # the training frame with one rebuilt column at a time
        mixed = sample.assign(**{name: rebuilt[name]})
        if _difference(direct, runtime.predict_frame(mixed)) > tolerance:
            culprits.append(f"{name!r} (training dtype {_describe(sample[name].dtype)}, "
                            f"rebuilt as {_describe(rebuilt[name].dtype)})")
    raise SchemaError(
        f"the packaged model scores the training rows differently from the model itself "
        f"(max difference {worst:.3g} > {tolerance:g}): the schema cannot carry column(s) "
        f"{', '.join(culprits) or '(a combination of columns)'}; convert them to a supported "
        "type (number, integer, boolean, text, date-time, or a categorical of those) and "
        "retrain, or pass schema_overrides")


def _describe(dtype: object) -> str:
    if isinstance(dtype, pd.CategoricalDtype):
        return f"category of {dtype.categories.dtype}"
    return str(dtype)


def _difference(a: Output, b: Output) -> float:
    """Largest absolute difference of two outputs of the same rows (inf if labels differ)."""
    for x, y in ((a.probabilities, b.probabilities), (a.values, b.values)):
        if x is not None and y is not None:
            diff = np.abs(x - y)
            diff[np.isnan(x) & np.isnan(y)] = 0.0  # both missing is the same answer
            return float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0))
    if a.labels is None or b.labels is None:  # label-less outputs agree only with each other
        return 0.0 if a.labels is b.labels else float("inf")
    return 0.0 if np.array_equal(a.labels, b.labels) else float("inf")
