"""Deployments kept in the registry, and the scorers a deployment runs on.

The registry stores a spec as JSON and knows nothing of roles; this module is the checked
way in and out: a spec's models must all be registered (`check_models`) before it is
stored, and what comes back is read into a `DeploymentSpec` again.

Scorers: a deployment runs on one `ScorerCache` keyed by reference text ("churn@production",
"churn/3"): each reference is resolved when its scorer loads. When an alias moves, a watcher
calls `Rendezvous.refresh(current_sha256(registry))`, which reloads the references that
now name another artifact, off the request path (the cache's hot swap).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import NotFoundError, UsageError
from ..loading import load
from ..registry.refs import ModelRef
from ..scorer import Scorer, ScorerCache
from .flags import SpecChanges, apply
from .rendezvous import Rendezvous
from .spec import DeploymentSpec

if TYPE_CHECKING:
    from ..registry import Registry
    from ..registry.deployments import Deployment


def check_models(spec: DeploymentSpec, registry: Registry) -> None:
    """Every model `spec` names is a registered version (aliases resolving now).

    Raises:
        UsageError: a reference that is an artifact path (a stored deployment names
            registered models only).
        NotFoundError: a model, version or alias that does not exist (the message names the
            role).
    """
    for role, ref in spec.roles():
        parsed = ModelRef.parse(ref)
        if parsed.is_path:
            raise UsageError(f"{role.value} {ref!r}: a deployment in the registry names "
                             "registered models (NAME@ALIAS or NAME/VERSION), not files")
        try:
            registry.resolve(parsed)
        except NotFoundError as e:
            raise NotFoundError(f"{role.value} {ref}: {e}") from None


def create(registry: Registry, spec: DeploymentSpec, *, reason: str = "",
           user: str | None = None) -> Deployment:
    """Store a new deployment after checking its models.

    Raises:
        UsageError, NotFoundError: as `check_models`.
        ConflictError: a deployment of that name exists.
    """
    check_models(spec, registry)
    return registry.create_deployment(spec.name, spec.to_dict(), reason=reason, user=user)


def read(registry: Registry, name: str) -> tuple[Deployment, DeploymentSpec]:
    """The stored deployment `name` and its spec.

    Raises:
        NotFoundError: no such deployment.
    """
    stored = registry.deployment(name)
    return stored, DeploymentSpec.from_dict(stored.spec)


@dataclass(frozen=True)
class PlannedChange:
    """A change worked out and not yet stored: the revision it applies to (`stored`, its
    spec `old`) and the spec it makes (`new`). What a caller checks (e.g. the promotion
    gates) is exactly what `commit` stores, or nothing is."""

    stored: Deployment
    old: DeploymentSpec
    new: DeploymentSpec


def plan(registry: Registry, name: str, changes: SpecChanges) -> PlannedChange:
    """`changes` applied to deployment `name`'s current spec, its models checked.

    Raises:
        UsageError: no change asked for, or an invalid result (as `flags.apply`).
        NotFoundError: no such deployment, or a model it would name.
    """
    if changes.empty():
        raise UsageError("nothing to change: give at least one option (see --help)")
    stored, spec = read(registry, name)
    new = apply(spec, changes)
    check_models(new, registry)
    return PlannedChange(stored, spec, new)


def commit(registry: Registry, planned: PlannedChange, *, reason: str = "",
           user: str | None = None) -> Deployment:
    """Store `planned.new` as the next revision of its deployment.

    Raises:
        ConflictError: the deployment changed since `planned` read it.
    """
    return registry.set_deployment(planned.stored.name, planned.new.to_dict(), reason=reason,
                                   user=user, expect_revision=planned.stored.revision)


def change(registry: Registry, name: str, changes: SpecChanges, *, reason: str = "",
           user: str | None = None) -> Deployment:
    """Apply `changes` to deployment `name` and store the result as its next revision
    (`plan`, then `commit`).

    Raises:
        UsageError: no change asked for, or an invalid result (as `flags.apply`).
        NotFoundError: no such deployment, or a model it would name.
        ConflictError: the deployment changed between reading and writing.
    """
    return commit(registry, plan(registry, name, changes), reason=reason, user=user)


def scorer_cache(registry: Registry | None = None, *, trust: bool = False,
                 runtime: str | None = None) -> ScorerCache[str]:
    """A `ScorerCache` loading each reference text with `loading.load` (registry references
    from `registry`, default the configured one; `trust` for pickled artifact files)."""
    def loader(ref: str) -> Scorer:
        return load(ref, registry=registry, runtime=runtime, trust=trust)
    return ScorerCache(loader)


def current_sha256(registry: Registry) -> Callable[[str], str | None]:
    """For `Rendezvous.refresh`: a reference -> the manifest hash it resolves to now
    (None for an artifact path, whose content the registry does not know)."""
    def sha(ref: str) -> str | None:
        parsed = ModelRef.parse(ref)
        return None if parsed.is_path else registry.resolve(parsed).manifest_sha256
    return sha


def open_rendezvous(spec: DeploymentSpec | str, registry: Registry | None = None,
                    **options: Any) -> Rendezvous:
    """A `Rendezvous` for `spec` (or the stored deployment of that name), every model loaded
    and prepared before it returns (`options`: see `Rendezvous`).

    Raises:
        NotFoundError: no such deployment, or a model it names.
    """
    if isinstance(spec, str):
        from ..registry import Registry as Opened

        registry = registry or Opened()
        spec = read(registry, spec)[1]
    cache = scorer_cache(registry)
    for ref in spec.refs():
        cache.get(ref)
    return Rendezvous(spec, cache, **options)


__all__ = ["PlannedChange", "change", "check_models", "commit", "create", "current_sha256",
           "open_rendezvous", "plan", "read", "scorer_cache"]
