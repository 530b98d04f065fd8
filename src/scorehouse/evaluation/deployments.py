"""A deployment's creation and changes through the promotion gates: a model that starts
answering traffic passes the same gates as one promoted to the alias that traffic would
follow (at `deploy create` its champion and weighted challengers, at `deploy set` those a
change brings in).

| role it enters | gates of its model's alias |
|---|---|
| champion (`--champion`, `--promote`) | `production` |
| challenger (`--challenger REF=W`, W > 0) | `challenger` |

Shadows, canaries, fallbacks and the decoy answer no one's request by choice (a fallback
only when the chain above it fails), so they pass no gate. A model given by an artifact
path has no registry version to hold evaluations: no gate applies to it. A refusal is
`GatesRefused` (exit 6) naming the role; `force` with a reason overrides it, and the reason
recorded in the deployment's history says which gates were passed over.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError
from ..registry import Registry
from ..registry.deployments import Deployment
from ..registry.refs import ModelRef
from ..routing import registered
from ..routing.flags import SpecChanges
from ..routing.spec import DeploymentSpec, Role
from .gates import GateReport, GatesRefused
from .promotion import check_gates

#: The alias whose gates each answering role passes.
ROLE_GATES = {Role.CHAMPION: "production", Role.CHALLENGER: "challenger"}


@dataclass(frozen=True)
class GatedChange:
    """A stored change (`deployment`: the new revision), the gate `reports` run for each
    model that entered an answering role, and whether failing gates were `forced`."""

    deployment: Deployment
    reports: tuple[GateReport, ...] = ()
    forced: bool = False

    def to_dict(self) -> dict[str, object]:
        """Plain JSON data (for --json)."""
        return {**self.deployment.to_dict(), "gates": [r.to_dict() for r in self.reports],
                "forced": self.forced}


def entering(old: DeploymentSpec | None, new: DeploymentSpec) -> list[tuple[str, Role]]:
    """(reference, role) of each model that answers traffic in `new` and did not in that
    role in `old` (None: a new deployment): a new champion, a new challenger, or a
    challenger whose weight went from 0 to more."""
    out = []
    if old is None or new.champion != old.champion:
        out.append((new.champion, Role.CHAMPION))
    before = {c.model for c in old.challengers if c.weight > 0} if old else set()
    out += [(c.model, Role.CHALLENGER) for c in new.challengers
            if c.weight > 0 and c.model not in before]
    return out


def create_deployment(registry: Registry, spec: DeploymentSpec, *, force: bool = False,
                      reason: str = "", user: str | None = None) -> GatedChange:
    """`routing.registered.create` with the gates of each answering role (`ROLE_GATES`):
    its champion and every challenger with a weight, run before anything is stored.

    Raises:
        GatesRefused: (exit 6) a gate failed and `force` is False; nothing stored.
        UsageError: `force` past failing gates without a `reason`; as `registered.create`.
        NotFoundError, ConflictError: as `registered.create`.
    """
    registered.check_models(spec, registry)  # an unknown model is named before any gate
    reports, reason, forced = _judge(registry, entering(None, spec), force, reason)
    stored = registered.create(registry, spec, reason=reason, user=user)
    return GatedChange(stored, reports, forced)


def change_deployment(registry: Registry, name: str, changes: SpecChanges, *,
                      force: bool = False, reason: str = "", user: str | None = None
                      ) -> GatedChange:
    """`routing.registered.change` with the gates of each answering role a model enters
    (`ROLE_GATES`), run before anything is stored.

    Raises:
        GatesRefused: (exit 6) a gate failed and `force` is False; nothing changed.
        UsageError: `force` past failing gates without a `reason`; as `registered.change`.
        NotFoundError, ConflictError: as `registered.change`.
    """
    planned = registered.plan(registry, name, changes)
    reports, reason, forced = _judge(registry, entering(planned.old, planned.new), force,
                                     reason)
    # The revision the gates judged, or a ConflictError: never a spec they did not see.
    stored = registered.commit(registry, planned, reason=reason, user=user)
    return GatedChange(stored, reports, forced)


def _judge(registry: Registry, models: list[tuple[str, Role]], force: bool, reason: str
           ) -> tuple[tuple[GateReport, ...], str, bool]:
    """The gate reports of `models` entering their roles, the reason to record (naming
    the gates forced past) and whether any was; GatesRefused / UsageError as the callers."""
    reports = tuple(check_gates(registry, ref, ROLE_GATES[role]) for ref, role in models
                    if not ModelRef.parse(ref).is_path)
    failing = [r for r in reports if r.policy and not r.passed]
    if failing and not force:
        raise GatesRefused(failing[0])
    if failing and not reason.strip():
        raise UsageError("--force past failing gates needs a reason: -m WHY")
    if failing:
        names = ", ".join(f"{r.ref} @{r.alias}: " + ", ".join(g.name for g in r.failing)
                          for r in failing)
        reason = f"forced past failing gates ({names}): {reason}"
    return reports, reason, bool(failing)


__all__ = ["GatedChange", "ROLE_GATES", "change_deployment", "create_deployment", "entering"]
