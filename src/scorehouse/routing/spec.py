"""`DeploymentSpec`: a named endpoint and the models that play each role in it.

The spec is plain data, read from a dict (JSON, the registry's stored form) with
`DeploymentSpec.from_dict` and written back with `to_dict`; `routing.flags` builds one from
CLI flags. Its JSON form::

    {"name": "churn-api",
     "champion": "churn@production",
     "challengers": [{"model": "churn/3", "weight": 0.1}],
     "shadows": ["churn/4"], "canaries": ["churn/1"], "decoy": true,
     "fallbacks": ["churn/2"], "deadline_ms": 50,
     "default": 0.0,                      # or {"rule": "0.9 if support_calls > 3 else 0.1"}
     "sticky_by": "customer_id",
     "route_by": {"field": "tenant", "models": {"a": "churn-a@production"}}}

Only `name` and `champion` are required. Every model is a reference (`churn@production`,
`churn/3`, or an artifact path for a spec used in-process); aliases are resolved when the
scorers are loaded. Validation errors are `UsageError`s that name the field and say what to
do.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import UsageError
from ..registry.refs import ModelRef, valid_name
from ..schema.types import TextEnum
from .rules import Rule


class Role(TextEnum):
    """What a model does in a deployment."""

    CHAMPION = "champion"  # answers by default
    CHALLENGER = "challenger"  # answers for its weight's share of the sticky keys
    ROUTED = "routed"  # answers for the requests whose `route_by` field names it
    SHADOW = "shadow"  # scores every request off the response path
    CANARY = "canary"  # a stable reference model scoring every request, never answering
    DECOY = "decoy"  # archives the raw input, scores nothing
    FALLBACK = "fallback"  # answers when the model before it fails or misses the deadline
    DEFAULT = "default"  # the last resort: a constant or a rule, no model


#: The roles that answer a request (the others run off the response path).
ANSWERING = (Role.CHAMPION, Role.CHALLENGER, Role.ROUTED, Role.FALLBACK, Role.DEFAULT)

_FIELDS = ("name", "champion", "challengers", "shadows", "canaries", "decoy", "fallbacks",
           "deadline_ms", "default", "sticky_by", "route_by")


def model_ref(text: Any, where: str) -> str:
    """`text` checked as a model reference (returned as given, stripped).

    Raises:
        UsageError: not a non-empty string (the message names `where`).
    """
    if not isinstance(text, str) or not text.strip():
        raise UsageError(f"{where}: expected a model reference such as churn@production or "
                         f"churn/3, got {text!r}")
    ModelRef.parse(text.strip())
    return text.strip()


@dataclass(frozen=True)
class Challenger:
    """A challenger model and the share of sticky keys (0..1) it answers."""

    model: str
    weight: float

    def to_dict(self) -> dict[str, Any]:
        """JSON form: {"model": ..., "weight": ...}."""
        return {"model": self.model, "weight": self.weight}


@dataclass(frozen=True)
class Default:
    """The last resort: a constant `value`, or a `rule` over the input fields."""

    value: Any = None
    rule: Rule | None = None

    def evaluate(self, record: Mapping[str, Any]) -> Any:
        """The default answer for `record`.

        Raises:
            ModelError: the rule fails on this record.
        """
        return self.rule.evaluate(record) if self.rule is not None else self.value

    def to_json(self) -> Any:
        """JSON form: the constant itself, or {"rule": text}."""
        return {"rule": self.rule.text} if self.rule is not None else self.value

    @classmethod
    def from_json(cls, data: Any) -> Default:
        """Read a constant (number, string, bool) or {"rule": "..."}.

        Raises:
            UsageError: anything else, or a rule outside the rule language.
        """
        if isinstance(data, Mapping):
            if set(data) != {"rule"}:
                raise UsageError("default: give a constant (e.g. 0.0) or {\"rule\": \"EXPR\"}, "
                                 f"not an object with {sorted(data)}")
            return cls(rule=Rule.parse(data["rule"]))
        if isinstance(data, float) and not math.isfinite(data):
            raise UsageError("default: a constant must be finite")
        if not isinstance(data, (int, float, str, bool)):
            raise UsageError(f"default: give a number, a string, true/false or "
                             f"{{\"rule\": \"EXPR\"}}, not {type(data).__name__}")
        return cls(value=data)


@dataclass(frozen=True)
class RouteBy:
    """The multi-tenant case: requests whose `field` holds a key of `models` are answered
    by that model (other requests go the champion/challenger way)."""

    field: str
    models: Mapping[str, str]

    def to_dict(self) -> dict[str, Any]:
        """JSON form: {"field": ..., "models": {value: ref}}."""
        return {"field": self.field, "models": dict(self.models)}


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: a named endpoint and its models by role (see the module docstring).

    `deadline_ms` (None: no deadline) bounds each answering model's call; `sticky_by` names
    the field whose hash keeps a key on one model (None: the request id).
    """

    name: str
    champion: str
    challengers: tuple[Challenger, ...] = ()
    shadows: tuple[str, ...] = ()
    canaries: tuple[str, ...] = ()
    decoy: bool = False
    fallbacks: tuple[str, ...] = ()
    deadline_ms: float | None = None
    default: Default | None = None
    sticky_by: str | None = None
    route_by: RouteBy | None = field(default=None)

    def __post_init__(self) -> None:
        self._check()

    # --- reading and writing ------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentSpec:
        """The spec `data` describes (the JSON form in the module docstring).

        Raises:
            UsageError: an unknown or missing field, or a field of the wrong shape; the
                message names the field and says what it takes.
        """
        if not isinstance(data, Mapping):
            raise UsageError("a deployment spec is a JSON object with at least name and champion")
        unknown = sorted(set(data) - set(_FIELDS))
        if unknown:
            raise UsageError(f"unknown field(s) {', '.join(unknown)} in the deployment spec; "
                             f"known fields: {', '.join(_FIELDS)}")
        for required in ("name", "champion"):
            if data.get(required) in (None, ""):
                raise UsageError(f"{required}: required in a deployment spec")
        return cls(
            name=data["name"], champion=model_ref(data["champion"], "champion"),
            challengers=tuple(_challenger(c, i) for i, c in
                              enumerate(_list(data, "challengers"))),
            shadows=_refs(data, "shadows"), canaries=_refs(data, "canaries"),
            decoy=_flag(data.get("decoy", False)), fallbacks=_refs(data, "fallbacks"),
            deadline_ms=_deadline(data.get("deadline_ms")),
            default=None if data.get("default") is None else Default.from_json(data["default"]),
            sticky_by=_field_name(data.get("sticky_by"), "sticky_by"),
            route_by=_route_by(data.get("route_by")))

    @classmethod
    def from_json(cls, text: str) -> DeploymentSpec:
        """`from_dict` of JSON text.

        Raises:
            UsageError: not JSON, or as `from_dict`.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise UsageError(f"the deployment spec is not valid JSON: {e}") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """JSON form; empty roles and unset options are left out."""
        out: dict[str, Any] = {"name": self.name, "champion": self.champion}
        optional: dict[str, Any] = {
            "challengers": [c.to_dict() for c in self.challengers],
            "shadows": list(self.shadows), "canaries": list(self.canaries),
            "decoy": self.decoy, "fallbacks": list(self.fallbacks),
            "deadline_ms": self.deadline_ms,
            "default": None if self.default is None else self.default.to_json(),
            "sticky_by": self.sticky_by,
            "route_by": None if self.route_by is None else self.route_by.to_dict(),
        }
        # `is`, not `in`: a default of 0 or 0.0 equals False and must stay.
        out.update({k: v for k, v in optional.items()
                    if v is not None and v is not False and not (isinstance(v, list) and not v)})
        return out

    def change(self, **changes: Any) -> DeploymentSpec:
        """A copy with `changes` applied (checked again)."""
        return replace(self, **changes)

    # --- what it holds -------------------------------------------------------------------------

    def roles(self) -> Iterator[tuple[Role, str]]:
        """(role, model reference) for every model of the deployment, in spec order."""
        yield Role.CHAMPION, self.champion
        for c in self.challengers:
            yield Role.CHALLENGER, c.model
        if self.route_by is not None:
            for ref in self.route_by.models.values():
                yield Role.ROUTED, ref
        yield from ((Role.SHADOW, r) for r in self.shadows)
        yield from ((Role.CANARY, r) for r in self.canaries)
        yield from ((Role.FALLBACK, r) for r in self.fallbacks)

    def refs(self) -> list[str]:
        """Every distinct model reference, in spec order (what a scorer cache holds)."""
        return list(dict.fromkeys(ref for _, ref in self.roles()))

    @property
    def champion_weight(self) -> float:
        """The share of sticky keys the champion answers: 1 - the challengers' weights."""
        return max(0.0, 1.0 - sum(c.weight for c in self.challengers))

    def _check(self) -> None:
        valid_name(self.name, "deployment name")
        total = sum(c.weight for c in self.challengers)
        if total > 1.0 + 1e-9:
            raise UsageError(f"challengers: the weights add up to {total:g}, over 1; lower "
                             "them (the champion answers the rest)")
        answering = [self.champion, *(c.model for c in self.challengers)]
        for role, refs in (("challengers", answering), ("shadows", self.shadows),
                           ("canaries", self.canaries), ("fallbacks", self.fallbacks)):
            twice = sorted({r for r in refs if list(refs).count(r) > 1})
            if twice:
                raise UsageError(f"{role}: {', '.join(twice)} listed twice (or also as "
                                 "the champion); list each model once per role")


# --- field readers (each error names its field) --------------------------------------------


def _list(data: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = data.get(key) or []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise UsageError(f"{key}: expected a list, got {type(value).__name__}")
    return value


def _refs(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    return tuple(model_ref(r, f"{key}[{i}]") for i, r in enumerate(_list(data, key)))


def _challenger(data: Any, i: int) -> Challenger:
    where = f"challengers[{i}]"
    if not isinstance(data, Mapping) or set(data) != {"model", "weight"}:
        raise UsageError(f"{where}: expected {{\"model\": REF, \"weight\": 0..1}}")
    return Challenger(model_ref(data["model"], f"{where}.model"),
                      weight(data["weight"], f"{where}.weight"))


def weight(value: Any, where: str) -> float:
    """`value` checked as a traffic share in [0, 1].

    Raises:
        UsageError: not a number in [0, 1] (the message names `where`).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0.0 <= float(value) <= 1.0:
        raise UsageError(f"{where}: a traffic weight is a number from 0 to 1 (0.1 = 10% of "
                         f"keys), got {value!r}")
    return float(value)


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"decoy: expected true or false, got {value!r}")
    return value


def _deadline(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or not 0 < float(value) <= 3_600_000:
        raise UsageError(f"deadline_ms: a positive number of milliseconds (e.g. 50), "
                         f"got {value!r}")
    return float(value)


def _field_name(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{where}: the name of an input field, got {value!r}")
    return value.strip()


def _route_by(value: Any) -> RouteBy | None:
    if value is None:
        return None
    if not isinstance(value, Mapping) or set(value) != {"field", "models"} \
            or not isinstance(value["models"], Mapping) or not value["models"]:
        raise UsageError("route_by: expected {\"field\": NAME, \"models\": {VALUE: REF, ...}} "
                         "with at least one model")
    name = _field_name(value["field"], "route_by.field")
    assert name is not None
    models = {str(k): model_ref(v, f"route_by.models[{k!r}]") for k, v in value["models"].items()}
    return RouteBy(name, models)


__all__ = ["ANSWERING", "Challenger", "Default", "DeploymentSpec", "Role", "RouteBy",
           "model_ref", "weight"]
