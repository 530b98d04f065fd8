"""One-row calls (a server's common call) gathered column by column, a drain's worth at once.

A server logs one call per request, thousands a second, and the logger's background thread
holds the GIL that the event loop needs while it converts them. So one-row calls of the
same shape (model, input columns, outputs) that follow each other in a group become a `Run`,
converted at the end of the drain with one Arrow array per column: the Python work per call
is a few list comprehensions and one tuple, the values are converted by Arrow in C, and the
predictions are concatenated as numpy arrays (`Output.concat`). The arrays equal what
`pa.array` gives for the calls' values one by one (numpy scalars as their `.item()`), so the
records are those of the general path (`convert._frame`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from ...runtime import Output
from .options import LogOptions
from .records import FIXED, FLAG_TYPE, INPUT, PREDICTION

if TYPE_CHECKING:
    from .convert import Call

#: Value types `pa.array` converts as their Python value would (checked in the tests); for
#: others (np.float32 stays float32, np.datetime64 keeps its unit, ...) each value goes
#: through `scalar` first.
_AS_IS = frozenset({str, int, float, bool, type(None), np.str_, np.int64, np.float64, np.bool_})
_TYPES = {f.name: f.type for f in FIXED}


def single(call: Call, options: LogOptions) -> bool:
    """Whether the call goes to a `Run`: one row read, every row logged, scalar inputs (a
    one-row table's columns are arrays: they take the general path)."""
    columns = call.event.columns
    return call.event.result.n_read == 1 and options.sample >= 1.0 and \
        type(columns) is dict and not isinstance(next(iter(columns.values()), None), np.ndarray)


def shape(call: Call) -> Hashable:
    """What one-row calls gathered in one run share (cheap: a tuple of the column names)."""
    event, r = call.event, call.event.result
    return (event.model, tuple(event.columns), r.n_scored > 0, r.task,
            tuple(r.classes or ()), r.output.probabilities is None)


def names(call: Call, options: LogOptions) -> tuple[str, ...]:
    """The columns a one-row call logs, in the general path's order."""
    event, r = call.event, call.event.result
    out = [*FIXED.names, *(INPUT + k for k in event.columns if k not in options.exclude)]
    if r.n_scored:
        out += [PREDICTION + k for k, v in r.columns().items() if v is not None]
    return tuple(out)


@dataclass
class Run:
    """Consecutive one-row calls of one shape (`shape`) in one group of a drain."""

    calls: list[Call] = field(default_factory=list)

    def frame(self, columns: Sequence[str], options: LogOptions) -> dict[str, pa.Array]:
        """{column: Arrow array of the calls' values} for `columns` (`names` of a call)."""
        calls = self.calls
        events = [c.event for c in calls]
        results = [e.result for e in events]
        fixed: dict[str, list[Any]] = {
            "id": [str(c.ids[0]) if c.ids else c.call_id for c in calls],
            "time": [c.time_us for c in calls], "model": [e.model for e in events],
            "version": [e.version for e in events], "runtime": [r.runtime for r in results],
            "channel": [c.channel.value for c in calls],
            "deployment": [c.deployment for c in calls], "role": [c.role for c in calls],
            "latency_ms": [c.latency_ms for c in calls],
            "reject": [_reason(r.rejects) if r.rejects else None for r in results],
        }
        frame = {k: pa.array(v, _TYPES[k]) for k, v in fixed.items()}
        frame["flags"] = _flags(results)
        inputs = list(events[0].columns)
        # One tuple per column from one tuple per call: the transposition runs in C.
        transposed = zip(*(e.columns.values() for e in events), strict=True)
        for k, values in zip(inputs, transposed, strict=True):
            if k in options.exclude:
                continue
            if k in options.hash:
                frame[INPUT + k] = pa.array(options.digest([scalar(v) for v in values]),
                                            from_pandas=True)
            else:
                frame[INPUT + k] = values_array(values)
        if results[0].n_scored:
            merged = dataclasses.replace(results[0], output=Output.concat(
                [r.output for r in results]))
            for k, v in merged.columns().items():
                frame[PREDICTION + k] = numpy_array(v)
        assert list(frame) == list(columns), (list(frame), list(columns))
        return frame


def _reason(rejects: Sequence[Any]) -> str | None:
    return "; ".join(j.problem for j in rejects) or None


def _flags(results: Sequence[Any]) -> pa.Array:
    """The `flags` column: a list of {kind, column} per call (most calls have none)."""
    if not any(r.flags for r in results):  # offsets of empty lists, no Python per row
        return pa.ListArray.from_arrays(pa.array(np.zeros(len(results) + 1, np.int32)),
                                        pa.array([], FLAG_TYPE.value_type))
    return pa.array([[{"kind": k, "column": c} for k, c in r.flags] for r in results],
                    FLAG_TYPE)


def values_array(values: Sequence[Any]) -> pa.Array:
    """`pa.array([scalar(v) for v in values], from_pandas=True)`, without the Python loop
    when every value is of a type Arrow converts as its Python value."""
    if _AS_IS.issuperset(map(type, values)):
        return pa.array(values, from_pandas=True)
    return pa.array([scalar(v) for v in values], from_pandas=True)


def numpy_array(values: np.ndarray) -> pa.Array:
    """`values_array(list(values))` of a numpy column, by dtype (floats as float64, ints as
    int64: the types their Python values give)."""
    kind = values.dtype.kind
    if kind == "f":
        return pa.array(values.astype(np.float64, copy=False), from_pandas=True)
    if kind == "i":
        return pa.array(values.astype(np.int64, copy=False))
    if kind == "b":
        return pa.array(values)
    return values_array(list(values))


def scalar(value: Any) -> Any:
    """A numpy scalar as its Python value (datetime64 as a datetime to the µs)."""
    if isinstance(value, np.datetime64):  # .item() of a datetime64[ns] is an int
        return value.astype("datetime64[us]").item()
    return value.item() if isinstance(value, np.generic) else value


__all__ = ["Run", "names", "numpy_array", "scalar", "shape", "single", "values_array"]
