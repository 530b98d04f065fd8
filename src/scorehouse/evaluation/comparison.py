"""What `deploy compare` finds, as typed nouns: the models of a deployment (`Arm`), its
traffic (`RequestCounts`), each pair of models (`PairComparison`: label agreement and McNemar,
paired score differences, score quantiles, performance with late labels), the canaries'
windows (`canary.CanaryReport`), all in one `DeploymentComparison`. Every noun has
`to_dict()` for `--json`; the statistics are those of `evaluation.paired`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

from ..monitor.labels import LabelAccounting
from ..routing.spec import ANSWERING as ANSWERING_ROLES
from ..routing.spec import Role
from .canary import CanaryReport
from .paired import McNemar, PairedDifference, QuantileComparison

#: The roles in the order a comparison lists them (the champion first: pairs are B - A
#: with A the earlier one).
ROLE_ORDER = tuple(r.value for r in (
    Role.CHAMPION, Role.CHALLENGER, Role.ROUTED, Role.FALLBACK, Role.DEFAULT, Role.SHADOW,
    Role.CANARY, Role.DECOY))
#: Roles that answer a request (`routing.spec.ANSWERING`); the others run off the path.
ANSWERING = tuple(r.value for r in ANSWERING_ROLES)
OFF_PATH = tuple(r for r in ROLE_ORDER if r not in ANSWERING)
#: Roles whose rows answer because the chosen model did not.
FALLBACKS = (Role.FALLBACK.value, Role.DEFAULT.value)
#: Roles of the A/B split: random shares of the traffic, comparable without shared requests.
SPLIT = (Role.CHAMPION.value, Role.CHALLENGER.value)


@dataclass(frozen=True)
class Arm:
    """One model in one role of the deployment (a role with two models, or a champion whose
    alias moved to another version, gives two arms): its logged `rows`, `scored` and
    `rejected`, its `task` ("classification", "regression"; None when it logged no
    prediction, as the decoy) and `classes` (the probability columns it logged)."""

    role: str
    model: str
    version: int | None
    rows: int
    scored: int
    rejected: int
    task: str | None
    classes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """'challenger churn/3' (a model file without a version: 'challenger churn')."""
        return f"{self.role} {self.model}" + ("" if self.version is None else f"/{self.version}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        d = asdict(self)
        d.update(name=self.name, classes=list(self.classes))
        return d


@dataclass(frozen=True)
class RequestCounts:
    """The deployment's traffic: logged `rows`, distinct request ids (`requests`), requests
    with an answering row (`answered`), answering rows per role (`answers`), rows of a
    fallback or the default (`fallbacks`), rows off the response path (shadow, canary,
    decoy: `off_path`), and rejected rows."""

    rows: int
    requests: int
    answered: int
    answers: dict[str, int]
    fallbacks: int
    off_path: int
    rejected: int

    @property
    def unanswered(self) -> int:
        """Requests with off-path rows only (their answer's row not logged)."""
        return self.requests - self.answered

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {**asdict(self), "unanswered": self.unanswered}


@dataclass(frozen=True)
class Agreement:
    """How often two classifiers give the same label on the requests both scored: `agree`
    of `rows`, and McNemar's test of "predicts the positive class" (`positive`) and, with
    late labels, of "is right" (`correct`, on the labelled requests)."""

    rows: int
    agree: int
    positive: McNemar
    correct: McNemar | None = None

    @property
    def rate(self) -> float:
        """agree / rows."""
        return self.agree / self.rows if self.rows else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {"rows": self.rows, "agree": self.agree, "rate": self.rate,
                "positive": self.positive.to_dict(),
                "correct": self.correct.to_dict() if self.correct else None}


@dataclass(frozen=True)
class MetricDifference:
    """One label metric of both models (`a`, `b`; None when undefined on their rows), B - A
    and its bootstrap interval [`low`, `high`]; `better` names the better model when the
    interval excludes 0 (else "")."""

    metric: str
    a: float | None
    b: float | None
    difference: float | None
    low: float | None
    high: float | None
    higher_is_better: bool
    better: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return asdict(self)


@dataclass(frozen=True)
class Performance:
    """Both models measured against late labels: `rows_a`, `rows_b` labelled requests (the
    same ones when `paired`), the metrics, and the bootstrap that gave the intervals
    (`replicates` resamples, `seed`, `confidence`)."""

    rows_a: int
    rows_b: int
    paired: bool
    metrics: tuple[MetricDifference, ...]
    replicates: int
    seed: int
    confidence: float
    notes: tuple[str, ...] = ()

    def metric(self, name: str) -> MetricDifference:
        """One metric's figures.

        Raises:
            KeyError: a metric not measured.
        """
        for m in self.metrics:
            if m.metric == name:
                return m
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {"rows_a": self.rows_a, "rows_b": self.rows_b, "paired": self.paired,
                "replicates": self.replicates, "seed": self.seed,
                "confidence": self.confidence, "notes": list(self.notes),
                "metrics": [m.to_dict() for m in self.metrics]}


@dataclass(frozen=True)
class PairComparison:
    """Model `b` against model `a` (arm names; differences are B - A). `shared`: requests
    both scored; without any (an A/B split) only the score distributions and the
    performance are compared, each on the model's own requests."""

    a: str
    b: str
    shared: int
    agreement: Agreement | None = None
    difference: PairedDifference | None = None
    quantiles: QuantileComparison | None = None
    performance: Performance | None = None
    notes: tuple[str, ...] = ()

    @property
    def paired(self) -> bool:
        """True when the models scored the same requests."""
        return self.shared > 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        return {"a": self.a, "b": self.b, "shared": self.shared, "paired": self.paired,
                "agreement": self.agreement.to_dict() if self.agreement else None,
                "difference": self.difference.to_dict() if self.difference else None,
                "quantiles": self.quantiles.to_dict() if self.quantiles else None,
                "performance": self.performance.to_dict() if self.performance else None,
                "notes": list(self.notes)}


@dataclass(frozen=True)
class DeploymentComparison:
    """Everything `deploy compare` says about one deployment's logged rows between `first`
    and `last` (the selection asked: `since`, `until`): its arms and traffic, every pair,
    every canary's windows, and the late labels' accounting when labels were given.
    `score` is what the score differences and distributions are of (a classifier's
    `probability_<positive>`, a regressor's `value`)."""

    deployment: str
    first: dt.datetime
    last: dt.datetime
    task: str | None
    score: str | None
    positive: str | None
    arms: tuple[Arm, ...]
    counts: RequestCounts
    pairs: tuple[PairComparison, ...]
    canaries: tuple[CanaryReport, ...] = ()
    labels: LabelAccounting | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    notes: tuple[str, ...] = field(default=())

    def pair(self, a: str, b: str) -> PairComparison:
        """The comparison of arms `a` and `b` (names, either order).

        Raises:
            KeyError: no such pair.
        """
        for p in self.pairs:
            if {p.a, p.b} == {a, b}:
                return p
        raise KeyError(f"{a} / {b}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON data (for --json)."""
        def when(t: dt.datetime | None) -> str | None:
            return t.isoformat() if t else None
        return {"deployment": self.deployment, "since": when(self.since),
                "until": when(self.until), "first": when(self.first), "last": when(self.last),
                "task": self.task, "score": self.score, "positive": self.positive,
                "arms": [a.to_dict() for a in self.arms], "counts": self.counts.to_dict(),
                "pairs": [p.to_dict() for p in self.pairs],
                "canaries": [c.to_dict() for c in self.canaries],
                "labels": self.labels.to_dict() if self.labels else None,
                "notes": list(self.notes)}


__all__ = ["ANSWERING", "FALLBACKS", "OFF_PATH", "ROLE_ORDER", "SPLIT", "Agreement", "Arm",
           "DeploymentComparison", "MetricDifference", "PairComparison", "Performance",
           "RequestCounts"]
