"""A deployment spec built, or changed, from command-line flags (`scorehouse deploy`).

`create` and `set` take the same flags, gathered in `SpecChanges`; `apply` edits the spec's
JSON form with them and reads it back with `DeploymentSpec.from_dict`, so a spec made from
flags is checked exactly as one read from JSON. List roles grow with their flag
(`--shadow churn/4` adds a shadow; `--challenger churn/3=0.2` adds or re-weighs one,
weight 0 removes it) and shrink with `--remove REF`; `--promote REF` makes a challenger the
champion (the old champion leaves the deployment: add it back with `--fallback` to keep it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import UsageError
from .spec import DeploymentSpec, model_ref, weight


@dataclass
class SpecChanges:
    """The flags of `deploy create|set`; None or empty: leave that part as it is.

    `deadline_ms` 0 and `sticky_by`/`route_by` "" clear the option; `default` is JSON text
    (0.0, "no", true) or else a string; `default_rule` an expression (`rules.py`).
    """

    champion: str | None = None
    challengers: Sequence[str] = ()  # REF=WEIGHT
    shadows: Sequence[str] = ()
    canaries: Sequence[str] = ()
    fallbacks: Sequence[str] = ()
    remove: Sequence[str] = ()
    promote: str | None = None
    decoy: bool | None = None
    deadline_ms: float | None = None
    default: str | None = None
    default_rule: str | None = None
    no_default: bool = False
    sticky_by: str | None = None
    route_by: str | None = None
    routes: Sequence[str] = field(default_factory=list)  # VALUE=REF

    def empty(self) -> bool:
        """True when no flag asks for a change."""
        return self == SpecChanges()


def _pair(text: str, flag: str, example: str) -> tuple[str, str]:
    left, sep, right = text.rpartition("=")
    if not sep or not left.strip() or not right.strip():
        raise UsageError(f"{flag}: expected {example}, got {text!r}")
    return left.strip(), right.strip()


def _challenger(text: str) -> tuple[str, float]:
    ref, share = _pair(text, "--challenger", "REF=WEIGHT such as churn/3=0.1")
    try:
        value = float(share)
    except ValueError:
        raise UsageError(f"--challenger {text!r}: the weight {share!r} is not a number "
                         "(e.g. churn/3=0.1 for 10% of keys)") from None
    return model_ref(ref, "--challenger"), weight(value, f"--challenger {ref}")


def _default_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text  # a bare word is a string answer


def _add(items: list[Any], refs: Sequence[str], flag: str) -> None:
    for r in refs:
        ref = model_ref(r, flag)
        if ref not in items:
            items.append(ref)


def apply(spec: DeploymentSpec | None, changes: SpecChanges, name: str | None = None
          ) -> DeploymentSpec:
    """`spec` (None: a new one named `name`) with `changes` made.

    Raises:
        UsageError: a malformed flag, a --promote of a model that is no challenger, or a
            resulting spec that fails validation (the message names the field).
    """
    data: dict[str, Any] = spec.to_dict() if spec is not None else {"name": name}
    if changes.champion is not None:
        data["champion"] = model_ref(changes.champion, "--champion")
    weights = {c["model"]: c["weight"] for c in data.get("challengers", [])}
    weights.update(_challenger(c) for c in changes.challengers)
    if changes.promote is not None:
        _promote(data, weights, changes.promote)
    for key, refs, flag in (("shadows", changes.shadows, "--shadow"),
                            ("canaries", changes.canaries, "--canary"),
                            ("fallbacks", changes.fallbacks, "--fallback")):
        data[key] = list(data.get(key, []))
        _add(data[key], refs, flag)
    gone = {model_ref(r, "--remove") for r in changes.remove}
    data["challengers"] = [{"model": m, "weight": w} for m, w in weights.items()
                           if w > 0 and m not in gone]
    for key in ("shadows", "canaries", "fallbacks"):
        data[key] = [r for r in data[key] if r not in gone]
    _options(data, changes)
    _routes(data, changes, gone)
    return DeploymentSpec.from_dict({k: v for k, v in data.items() if v is not None})


def _promote(data: dict[str, Any], weights: dict[str, float], ref: str) -> None:
    ref = model_ref(ref, "--promote")
    if ref not in weights:
        raise UsageError(f"--promote {ref}: not a challenger of this deployment "
                         f"(challengers: {', '.join(weights) or 'none'}); use --champion "
                         "to name any model")
    del weights[ref]
    data["champion"] = ref


def _options(data: dict[str, Any], changes: SpecChanges) -> None:
    if changes.decoy is not None:
        data["decoy"] = changes.decoy
    if changes.deadline_ms is not None:
        data["deadline_ms"] = changes.deadline_ms or None
    if changes.default is not None and changes.default_rule is not None:
        raise UsageError("give --default VALUE or --default-rule EXPR, not both")
    if changes.default is not None:
        data["default"] = _default_value(changes.default)
    if changes.default_rule is not None:
        data["default"] = {"rule": changes.default_rule}
    if changes.no_default:
        data["default"] = None
    if changes.sticky_by is not None:
        data["sticky_by"] = changes.sticky_by or None


def _routes(data: dict[str, Any], changes: SpecChanges, gone: set[str]) -> None:
    route = dict(data.get("route_by") or {})
    models = dict(route.get("models", {}))
    for text in changes.routes:
        value, ref = _pair(text, "--route", "VALUE=REF such as tenant-a=churn-a@production")
        models[value] = model_ref(ref, f"--route {value}")
    models = {k: v for k, v in models.items() if v not in gone}
    field_name = route.get("field") if changes.route_by is None else changes.route_by
    if changes.route_by == "" or (not models and changes.route_by is None):
        data["route_by"] = None
        return
    if not field_name:
        raise UsageError("--route needs --route-by FIELD (the input field whose value picks "
                         "the model)")
    data["route_by"] = {"field": field_name, "models": models}


__all__ = ["SpecChanges", "apply"]
