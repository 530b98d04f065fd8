"""How an event changes a profile: a Python function, or a small declarative spec.

A spec is JSON like

    {"count": {"complaints": "*"},            # profile counter += 1 per event
     "last":  {"plan": "plan"},               # profile field = event field (when present)
     "sum":   {"total_spend": "amount"}}      # profile field += event field

`count` may name an event type instead of "*": `{"complaints": "type=complaint"}` counts
only events whose `type` is `complaint`.

Counts and sums do not depend on the order events arrive in; a `last` field takes the value
of the newest event in stream order (the worker keeps a late event from overwriting it, see
`order`). A `module:function` reducer sees events in the order they arrive, which after a
retry or a crash is not always stream order: it should be order-insensitive.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ScorehouseError

Reduce = Callable[[dict[str, Any], Mapping[str, Any]], dict[str, Any]]
KINDS = ("count", "last", "sum")


def _none(event: Mapping[str, Any]) -> Iterable[str]:
    return ()


@dataclass(frozen=True)
class Reducer:
    """How an event changes a profile: `reducer(profile, event)` -> the new profile.

    `latest(event)` names the profile fields the event sets to a value of its own ("last"
    rules), which take the newest event's value in stream order; none for a function.
    """

    reduce: Reduce
    latest: Callable[[Mapping[str, Any]], Iterable[str]] = _none

    def __call__(self, profile: dict[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
        return self.reduce(profile, event)


def _number(v: Any) -> float:
    if v is None or v == "":
        return 0.0
    return float(v)


def from_spec(spec: Mapping[str, Any]) -> Reducer:
    """A reducer from a declarative spec (see the module doc)."""
    unknown = set(spec) - set(KINDS)
    if unknown:
        raise ScorehouseError(f"unknown reducer rule(s) {sorted(unknown)}; use {', '.join(KINDS)}")
    counts = dict(spec.get("count", {}))
    last = dict(spec.get("last", {}))
    sums = dict(spec.get("sum", {}))

    def reduce(profile: dict[str, Any], event: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(profile)
        for field, when in counts.items():
            if when == "*" or _matches(event, when):
                out[field] = int(_number(out.get(field))) + 1
        for field, source in last.items():
            if source in event:
                out[field] = event[source]
        for field, source in sums.items():
            if source in event:
                out[field] = _number(out.get(field)) + _number(event[source])
        return out

    return Reducer(reduce, lambda event: [f for f, source in last.items() if source in event])


def _matches(event: Mapping[str, Any], condition: str) -> bool:
    name, _, value = condition.partition("=")
    return str(event.get(name)) == value


def load_reducer(spec: str | None) -> Reducer:
    """A reducer from a JSON file, a JSON string, or `module:function`; None: copy fields."""
    if not spec:  # every field of the event is a "last" field
        return Reducer(lambda profile, event: {**profile, **event}, lambda event: event.keys())
    if spec.strip().startswith("{"):
        return from_spec(json.loads(spec))
    if Path(spec).is_file():
        return from_spec(json.loads(Path(spec).read_text()))
    module, sep, name = spec.partition(":")
    if not sep:
        raise ScorehouseError(f"--reducer {spec!r}: give a JSON spec, a .json file or "
                              "module:function")
    import importlib

    fn = getattr(importlib.import_module(module), name, None)
    if not callable(fn):
        raise ScorehouseError(f"--reducer {spec!r}: {name} is not a function of {module}")
    return Reducer(fn)
