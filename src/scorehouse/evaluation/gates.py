"""Gate policies: what a version must show before an alias may point at it.

A policy (one per alias of a model, kept with its history in the registry) holds:

* metric rules, parsed from a small grammar (a regular expression, never `eval`):

      METRIC OP NUMBER                   roc_auc >= 0.75
      METRIC OP ALIAS [(+|-|*) NUMBER]   roc_auc >= production - 0.01
                                         log_loss <= production * 1.02

  OP is one of >=, <=, >, <; METRIC one of `metrics.HIGHER_IS_BETTER`; ALIAS names the
  version that alias of the same model points to now (its newest stored evaluation);
* `parity`: the compiled runtime passed its parity gate at packaging;
* `latency_ms`: the median (p50) single-row scoring time on this machine, in ms;
* `schema_compatible`: no new required column, no column turned required, no type change
  and no narrowed category set against the version the alias points to now;
* `max_drift_share`: the share of input columns whose holdout drifted from the training
  baseline (the stored evaluation's `drift.share`) at most this.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConflictError, UsageError
from ..schema.types import TextEnum
from .metrics import HIGHER_IS_BETTER

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_ALIAS = r"[A-Za-z0-9_][\w.]*(?:-[A-Za-z_][\w.]*)*"  # a '-' before a digit is a minus
_RULE = re.compile(
    rf"^\s*(?P<metric>[A-Za-z_]\w*)\s*(?P<op>>=|<=|>|<)\s*(?:(?P<value>{_NUM})|"
    rf"(?P<alias>{_ALIAS})(?:\s*(?P<combine>[-+*])\s*(?P<operand>{_NUM}))?)\s*$")
_COMPARE = {">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b, "<": lambda a, b: a < b}
#: Single-row calls timed for the latency gate (after a few untimed warm-up calls).
LATENCY_CALLS = 200


class Verdict(TextEnum):
    """A gate's outcome; `skip` (nothing to compare with) does not refuse."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class Rule:
    """One metric rule: `metric op value`, or `metric op alias [combine operand]`."""

    metric: str
    op: str
    value: float | None = None
    alias: str | None = None
    combine: str | None = None
    operand: float | None = None

    @classmethod
    def parse(cls, text: str) -> Rule:
        """The rule `text` states.

        Raises:
            UsageError: (exit 2) text outside the grammar, or an unknown metric; the
                message quotes the rule.
        """
        m = _RULE.match(text)
        if m is None:
            raise UsageError(f"cannot read gate rule {text!r}: write METRIC OP NUMBER "
                             "('roc_auc >= 0.75') or METRIC OP ALIAS [+|-|* NUMBER] "
                             "('log_loss <= production * 1.02'), OP one of >= <= > <")
        metric = m["metric"]
        if metric not in HIGHER_IS_BETTER:
            raise UsageError(f"unknown metric {metric!r} in gate rule {text!r} "
                             f"(known: {', '.join(HIGHER_IS_BETTER)})")
        return cls(metric, m["op"], None if m["value"] is None else float(m["value"]),
                   m["alias"], m["combine"],
                   None if m["operand"] is None else float(m["operand"]))

    def __str__(self) -> str:
        if self.alias is None:
            return f"{self.metric} {self.op} {self.value:g}"
        tail = f" {self.combine} {self.operand:g}" if self.combine else ""
        return f"{self.metric} {self.op} {self.alias}{tail}"

    def threshold(self, reference: float | None = None) -> float:
        """The bound: the number, or `reference` (the alias's figure) combined."""
        if self.alias is None:
            assert self.value is not None
            return self.value
        assert reference is not None, "a relative rule needs the alias's figure"
        if self.combine is None or self.operand is None:
            return reference
        return {"+": reference + self.operand, "-": reference - self.operand,
                "*": reference * self.operand}[self.combine]

    def holds(self, figure: float, threshold: float) -> bool:
        """Whether `figure` satisfies `op threshold`."""
        return bool(_COMPARE[self.op](figure, threshold))


@dataclass(frozen=True)
class GatePolicy:
    """What an alias demands (see the module docstring); an empty policy demands nothing."""

    rules: tuple[Rule, ...] = ()
    parity: bool = False
    latency_ms: float | None = None
    latency_calls: int = LATENCY_CALLS
    schema_compatible: bool = False
    max_drift_share: float | None = None

    @classmethod
    def build(cls, rules: list[str] | tuple[str, ...] = (), **kw: Any) -> GatePolicy:
        """A policy from rule texts and the other gates' settings.

        Raises:
            UsageError: a rule outside the grammar, a negative latency budget or a drift
                share outside [0, 1].
        """
        policy = cls(tuple(Rule.parse(r) for r in rules), **kw)
        if policy.latency_ms is not None and policy.latency_ms <= 0:
            raise UsageError("the latency budget must be a positive number of milliseconds")
        if policy.latency_calls < 1:
            raise UsageError("the latency gate needs at least one call")
        if policy.max_drift_share is not None and not 0 <= policy.max_drift_share <= 1:
            raise UsageError("the drift share limit is a fraction between 0 and 1")
        return policy

    def __bool__(self) -> bool:
        return bool(self.rules or self.parity or self.latency_ms is not None
                    or self.schema_compatible or self.max_drift_share is not None)

    def lines(self) -> list[str]:
        """One line per gate, for a terminal."""
        out = [str(r) for r in self.rules]
        if self.parity:
            out.append("compiled runtime passed parity")
        if self.latency_ms is not None:
            out.append(f"single-row latency p50 <= {self.latency_ms:g} ms "
                       f"({self.latency_calls} calls)")
        if self.schema_compatible:
            out.append("input schema compatible with the current version")
        if self.max_drift_share is not None:
            out.append(f"holdout drift share <= {self.max_drift_share:g}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form (what the registry stores): rules as their text."""
        return {"rules": [str(r) for r in self.rules], "parity": self.parity,
                "latency_ms": self.latency_ms, "latency_calls": self.latency_calls,
                "schema_compatible": self.schema_compatible,
                "max_drift_share": self.max_drift_share}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GatePolicy:
        """The policy `to_dict` wrote.

        Raises:
            UsageError: a stored rule this version cannot read.
        """
        return cls.build(list(d.get("rules", [])), parity=bool(d.get("parity", False)),
                         latency_ms=d.get("latency_ms"),
                         latency_calls=int(d.get("latency_calls", LATENCY_CALLS)),
                         schema_compatible=bool(d.get("schema_compatible", False)),
                         max_drift_share=d.get("max_drift_share"))


@dataclass(frozen=True)
class GateResult:
    """One gate's outcome: `name` (the rule's text, or parity, latency, schema, drift), the
    candidate's `figure`, the `threshold` it was held to, the `verdict`, and a `detail`."""

    name: str
    figure: float | str | None
    threshold: float | str | None
    verdict: Verdict
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"name": self.name, "figure": self.figure, "threshold": self.threshold,
                "verdict": self.verdict.value, "detail": self.detail}


@dataclass(frozen=True)
class GateReport:
    """The gates of `alias` run on candidate `ref`; `current`: the version the alias points
    to now (None: none yet). Passed when no gate failed."""

    ref: str
    alias: str
    current: str | None
    results: list[GateResult] = field(default_factory=list)
    policy: bool = True  # False: the alias has no gate policy

    @property
    def passed(self) -> bool:
        """No gate failed (skipped ones do not refuse)."""
        return not self.failing

    @property
    def failing(self) -> list[GateResult]:
        """The gates that failed."""
        return [r for r in self.results if r.verdict is Verdict.FAIL]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"ref": self.ref, "alias": self.alias, "current": self.current,
                "policy": self.policy, "passed": self.passed,
                "gates": [r.to_dict() for r in self.results]}


def _shown(figure: float | str | None) -> str:
    return f"was {figure:.4g}" if isinstance(figure, float) else f"was {figure}"


class GatesRefused(ConflictError):
    """A promotion the alias's gates refused (exit 6); `report` holds every gate's result."""

    def __init__(self, report: GateReport):
        self.report = report
        failed = "; ".join(f"{r.name} ({r.detail or _shown(r.figure)})" for r in report.failing)
        super().__init__(f"{report.ref} may not take @{report.alias}: failed {failed}; "
                         "--force -m WHY overrides (recorded in the alias history)")
