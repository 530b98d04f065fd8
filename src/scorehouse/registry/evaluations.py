"""Holdout evaluations and gate policies kept on the registry (migration 0002).

The registry stores what the evaluation layer (`scorehouse.evaluation`, above it) computes,
as JSON it does not interpret: an `Evaluation.to_dict()` per evaluation of a version, and a
`GatePolicy.to_dict()` per change of an alias's policy. Both tables only grow: every
evaluation is kept (the model card draws its plots from the newest), and every policy
change is a row saying who changed it, when and why (the newest row is in force; a row
without a policy removed it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import sqlalchemy as sa

from ..errors import UsageError
from .aliases import now
from .records import ModelVersion, iso
from .refs import LATEST, valid_name
from .tables import evaluations, gate_policies

if TYPE_CHECKING:
    from .refs import ModelRef, Ref

T = TypeVar("T")


class SupportsToDict(Protocol):
    """A result that gives its JSON form (`Evaluation`, `GatePolicy`)."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class EvaluationRecord:
    """One stored evaluation of a version: `result` is the evaluation's JSON form
    (`scorehouse.evaluation.Evaluation.from_dict` reads it back typed)."""

    id: int
    model: str
    version: int
    at: str
    user: str
    holdout: str
    holdout_sha256: str
    result: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


@dataclass(frozen=True)
class GatePolicyRecord:
    """One change of an alias's gate policy: `policy` is `GatePolicy.to_dict()`, or None
    when this change removed it."""

    model: str
    alias: str
    at: str
    user: str
    reason: str
    policy: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


class EvaluationStore:
    """The evaluation and gate-policy half of `Registry` (mixed into it)."""

    if TYPE_CHECKING:  # provided by Registry
        def _read(self) -> AbstractContextManager[sa.Connection]: ...
        def _write(self, fn: Callable[[sa.Connection], T]) -> T: ...
        def _model_id(self, conn: sa.Connection, name: str, lock: bool = False) -> int: ...
        def resolve(self, ref: str | Ref | ModelRef) -> ModelVersion: ...

    def record_evaluation(self, ref: str, evaluation: SupportsToDict | Mapping[str, Any], *,
                          user: str | None = None) -> EvaluationRecord:
        """Keep `evaluation` (its JSON form must hold `holdout.path` and `holdout.sha256`)
        on the version `ref` names.

        Raises:
            UsageError: a malformed reference, or an evaluation without its holdout.
            NotFoundError: no such model or version.
        """
        from .database import user_name as _user

        mv = self.resolve(ref)
        result = dict(evaluation) if isinstance(evaluation, Mapping) else evaluation.to_dict()
        holdout = result.get("holdout") or {}
        if not isinstance(holdout, Mapping) or "sha256" not in holdout:
            raise UsageError("an evaluation must say which holdout it ran on (holdout.sha256)")
        who, at = _user(user), now()

        def work(conn: sa.Connection) -> int:
            mid = self._model_id(conn, mv.name, lock=True)
            key = conn.execute(evaluations.insert().values(
                model_id=mid, version=mv.version, at=at, user=who,
                holdout=str(holdout.get("path", "")), holdout_sha256=str(holdout["sha256"]),
                result=result)).inserted_primary_key
            assert key is not None  # an INSERT of one row
            return int(key[0])

        eid = self._write(work)
        return EvaluationRecord(eid, mv.name, mv.version, iso(at), who,
                                str(holdout.get("path", "")), str(holdout["sha256"]), result)

    def evaluations(self, ref: str) -> list[EvaluationRecord]:
        """Every stored evaluation of the version `ref` names, oldest first.

        Raises:
            UsageError, NotFoundError: as `resolve`.
        """
        mv = self.resolve(ref)
        with self._read() as conn:
            mid = self._model_id(conn, mv.name)
            rows = conn.execute(sa.select(evaluations).where(
                evaluations.c.model_id == mid, evaluations.c.version == mv.version)
                .order_by(evaluations.c.id)).mappings().all()
        return [EvaluationRecord(r["id"], mv.name, mv.version, iso(r["at"]), r["user"],
                                 r["holdout"], r["holdout_sha256"], dict(r["result"]))
                for r in rows]

    def latest_evaluation(self, ref: str) -> EvaluationRecord | None:
        """The newest stored evaluation of the version `ref` names (None: never evaluated).

        Raises:
            UsageError, NotFoundError: as `resolve`.
        """
        found = self.evaluations(ref)
        return found[-1] if found else None

    def set_gate_policy(self, name: str, alias: str,
                        policy: SupportsToDict | Mapping[str, Any] | None, *,
                        reason: str = "", user: str | None = None) -> GatePolicyRecord:
        """Put `policy` in force for `alias` of model `name` (None: remove it); the change
        is appended to the alias's policy history.

        Raises:
            UsageError: an invalid model or alias name, or the alias 'latest'.
            NotFoundError: no such model.
        """
        from .database import user_name as _user

        valid_name(alias, "alias")
        if alias == LATEST:
            raise UsageError("'latest' is never promoted to; gate another alias")
        data = None if policy is None else (
            dict(policy) if isinstance(policy, Mapping) else policy.to_dict())
        who, at = _user(user), now()

        def work(conn: sa.Connection) -> None:
            mid = self._model_id(conn, name, lock=True)
            conn.execute(gate_policies.insert().values(
                model_id=mid, alias=alias, at=at, user=who, reason=reason, policy=data))

        self._write(work)
        return GatePolicyRecord(name, alias, iso(at), who, reason, data)

    def gate_policy_history(self, name: str, alias: str | None = None) -> list[GatePolicyRecord]:
        """Every change of the gate policies of `name` (or of one alias), oldest first.

        Raises:
            UsageError: an invalid model or alias name.
            NotFoundError: no such model.
        """
        with self._read() as conn:
            mid = self._model_id(conn, name)
            q = sa.select(gate_policies).where(gate_policies.c.model_id == mid)
            if alias is not None:
                q = q.where(gate_policies.c.alias == valid_name(alias, "alias"))
            rows = conn.execute(q.order_by(gate_policies.c.id)).mappings().all()
        return list(_policy_records(name, rows))

    def gate_policy(self, name: str, alias: str) -> GatePolicyRecord | None:
        """The gate policy in force for `alias` of `name` (None: none, or removed).

        Raises:
            UsageError: an invalid model or alias name.
            NotFoundError: no such model.
        """
        history = self.gate_policy_history(name, alias)
        if not history or history[-1].policy is None:
            return None
        return history[-1]


def _policy_records(name: str, rows: Any) -> Iterator[GatePolicyRecord]:
    for r in rows:
        yield GatePolicyRecord(name, r["alias"], iso(r["at"]), r["user"], r["reason"],
                               None if r["policy"] is None else dict(r["policy"]))
