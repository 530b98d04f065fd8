"""Deployments in the registry: each one's current spec and the history of its changes.

A deployment (an endpoint such as `churn-api` and its models by role, see
`scorehouse.routing.spec`) is kept with the guarantees of an alias: every change is one row
of `sh_deployments` rewritten and one event appended to `sh_deployment_events` in the same
transaction, holding who, when, why, the action and the full spec; a rollback restores the
spec before the last change. The registry stores the spec as JSON and does not read it:
the routing layer (above this one) checks it before it gets here.

Each write starts by writing the deployment's row, so SQLite takes its write lock up front
and PostgreSQL serialises writers of one deployment on that row; `expect_revision` lets a
read-modify-write caller (`deploy set`) refuse to overwrite a change it has not seen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from ..errors import ConflictError, NotFoundError
from ..schema.types import TextEnum
from .aliases import now
from .database import user_name, write
from .records import iso
from .refs import valid_name
from .tables import deployment_events, deployments


class DeploymentAction(TextEnum):
    """What an entry of a deployment's history records."""

    CREATE = "create"
    SET = "set"  # the spec changed (weights, roles, options)
    ROLLBACK = "rollback"  # the spec before the last change restored


@dataclass(frozen=True)
class Deployment:
    """A deployment as stored: its spec (JSON form), `revision` (1 at creation, +1 per
    change, rollbacks included), and the time and user of the last change."""

    name: str
    spec: dict[str, Any]
    revision: int
    created_at: str
    updated_at: str
    updated_by: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "revision": self.revision, "spec": self.spec,
                "created_at": self.created_at, "updated_at": self.updated_at,
                "updated_by": self.updated_by}


@dataclass(frozen=True)
class DeploymentChange:
    """One entry of a deployment's history: the spec as it became at `revision`, and for a
    rollback the revision whose spec it restored (`restores`)."""

    name: str
    revision: int
    at: str
    user: str
    action: DeploymentAction
    reason: str
    spec: dict[str, Any]
    restores: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"name": self.name, "revision": self.revision, "at": self.at, "user": self.user,
                "action": self.action.value, "restores": self.restores, "reason": self.reason,
                "spec": self.spec}




class DeploymentMethods:
    """The deployment half of `Registry` (it mixes this in): create, read, change, roll
    back. Needs `self.engine`, the registry's SQLAlchemy engine."""

    engine: sa.Engine

    def create_deployment(self, name: str, spec: Mapping[str, Any], *, reason: str = "",
                          user: str | None = None) -> Deployment:
        """Store a new deployment `name` with `spec` (revision 1).

        Raises:
            UsageError: an invalid deployment name.
            ConflictError: a deployment of that name exists (change it with
                `set_deployment`).
        """
        valid_name(name, "deployment name")
        who, body = user_name(user), dict(spec)

        def work(conn: sa.Connection) -> None:
            if conn.execute(sa.select(deployments.c.id)
                            .where(deployments.c.name == name)).scalar() is not None:
                raise ConflictError(f"deployment {name!r} exists; change it with "
                                    "'scorehouse deploy set' (set_deployment)")
            at = now()
            conn.execute(deployments.insert().values(
                name=name, spec=body, revision=1, created_at=at, updated_at=at,
                updated_by=who))
            did = conn.execute(sa.select(deployments.c.id)
                               .where(deployments.c.name == name)).scalar_one()
            conn.execute(deployment_events.insert().values(
                deployment_id=did, revision=1, at=at, user=who,
                action=DeploymentAction.CREATE.value, restores=None, reason=reason, spec=body))

        write(self.engine, work)
        return self.deployment(name)

    def set_deployment(self, name: str, spec: Mapping[str, Any], *, reason: str = "",
                       user: str | None = None, expect_revision: int | None = None
                       ) -> Deployment:
        """Replace the spec of deployment `name` (a new revision, even when equal).

        Raises:
            UsageError: an invalid deployment name.
            NotFoundError: no such deployment.
            ConflictError: it is no longer at `expect_revision` (changed meanwhile).
        """
        who, body = user_name(user), dict(spec)

        def work(conn: sa.Connection) -> None:
            did, revision = self._lock_deployment(conn, name)
            if expect_revision is not None and revision != expect_revision:
                raise ConflictError(f"deployment {name!r} changed meanwhile (revision "
                                    f"{revision}, expected {expect_revision}); look again "
                                    "and retry")
            self._record(conn, did, revision + 1, who, DeploymentAction.SET, body, reason)

        write(self.engine, work)
        return self.deployment(name)

    def rollback_deployment(self, name: str, *, reason: str = "", user: str | None = None
                            ) -> Deployment:
        """Restore the spec deployment `name` had before its last change (repeated
        rollbacks walk further back, as an alias's do).

        Raises:
            UsageError: an invalid deployment name.
            NotFoundError: no such deployment.
            ConflictError: nothing earlier to restore.
        """
        who = user_name(user)

        def work(conn: sa.Connection) -> None:
            did, revision = self._lock_deployment(conn, name)
            stack = _spec_stack(conn, did)
            if len(stack) < 2:
                raise ConflictError(f"deployment {name!r} has no earlier spec to roll back to")
            restores, spec = stack[-2]
            self._record(conn, did, revision + 1, who, DeploymentAction.ROLLBACK, spec, reason,
                         restores)

        write(self.engine, work)
        return self.deployment(name)

    def deployment(self, name: str) -> Deployment:
        """The deployment `name` as it stands.

        Raises:
            UsageError: an invalid deployment name.
            NotFoundError: no such deployment.
        """
        valid_name(name, "deployment name")
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(deployments)
                               .where(deployments.c.name == name)).mappings().first()
            if row is None:
                raise NotFoundError(f"no deployment named {name!r} ({_known(conn)})")
        return Deployment(row["name"], dict(row["spec"]), row["revision"], iso(row["created_at"]),
                          iso(row["updated_at"]), row["updated_by"])

    def deployments(self) -> list[Deployment]:
        """Every deployment, by name."""
        with self.engine.connect() as conn:
            names = conn.execute(sa.select(deployments.c.name)
                                 .order_by(deployments.c.name)).scalars().all()
        return [self.deployment(n) for n in names]

    def deployment_history(self, name: str) -> list[DeploymentChange]:
        """Every change of deployment `name`, oldest first.

        Raises:
            UsageError: an invalid deployment name.
            NotFoundError: no such deployment.
        """
        valid_name(name, "deployment name")
        with self.engine.connect() as conn:
            did = conn.execute(sa.select(deployments.c.id)
                               .where(deployments.c.name == name)).scalar()
            if did is None:
                raise NotFoundError(f"no deployment named {name!r} ({_known(conn)})")
            rows = conn.execute(sa.select(deployment_events)
                                .where(deployment_events.c.deployment_id == did)
                                .order_by(deployment_events.c.id)).mappings().all()
        return [DeploymentChange(name, r["revision"], iso(r["at"]), r["user"],
                                 DeploymentAction(r["action"]), r["reason"], dict(r["spec"]),
                                 r["restores"]) for r in rows]

    # --- inside a write -------------------------------------------------------------------

    def _lock_deployment(self, conn: sa.Connection, name: str) -> tuple[int, int]:
        valid_name(name, "deployment name")
        # A write first: SQLite's lock up front, PostgreSQL's row lock on this deployment.
        conn.execute(deployments.update().where(deployments.c.name == name)
                     .values(revision=deployments.c.revision))
        row = conn.execute(sa.select(deployments.c.id, deployments.c.revision)
                           .where(deployments.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no deployment named {name!r} ({_known(conn)})")
        return int(row[0]), int(row[1])

    def _record(self, conn: sa.Connection, did: int, revision: int, who: str,
                action: DeploymentAction, spec: dict[str, Any], reason: str,
                restores: int | None = None) -> None:
        at = now()
        conn.execute(deployments.update().where(deployments.c.id == did).values(
            spec=spec, revision=revision, updated_at=at, updated_by=who))
        conn.execute(deployment_events.insert().values(
            deployment_id=did, revision=revision, at=at, user=who, action=action.value,
            restores=restores, reason=reason, spec=spec))


def _spec_stack(conn: sa.Connection, did: int) -> list[tuple[int, dict[str, Any]]]:
    """(revision, spec) of the specs the deployment held, most recent last: replaying its
    history, a rollback pops the spec it undoes (so rollbacks walk back, not toggle)."""
    stack: list[tuple[int, dict[str, Any]]] = []
    rows = conn.execute(sa.select(deployment_events.c.revision, deployment_events.c.action,
                                  deployment_events.c.spec)
                        .where(deployment_events.c.deployment_id == did)
                        .order_by(deployment_events.c.id)).all()
    for revision, action, spec in rows:
        if action == DeploymentAction.ROLLBACK.value:
            stack.pop()
            # The restored spec is the new top; keep its original revision number.
        else:
            stack.append((revision, dict(spec)))
    return stack


def _known(conn: sa.Connection) -> str:
    names = conn.execute(sa.select(deployments.c.name).order_by(deployments.c.name)
                         .limit(20)).scalars().all()
    if not names:
        return "there are none yet: scorehouse deploy create NAME --champion REF"
    return "known: " + ", ".join(names)


__all__ = ["Deployment", "DeploymentAction", "DeploymentChange", "DeploymentMethods"]
