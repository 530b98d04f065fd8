"""The registry: model metadata in SQL (SQLite or PostgreSQL), artifact files in a store."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .records import Action, AliasMove, Event, ModelSummary, ModelVersion, VersionStatus
from .refs import ACTIVE_ALIAS, LATEST, Ref, parse

if TYPE_CHECKING:
    from .deployments import Deployment, DeploymentAction, DeploymentChange
    from .registry import Registry
    from .store import ArtifactStore

__all__ = ["Registry", "ModelVersion", "Event", "AliasMove", "ModelSummary", "VersionStatus",
           "Action", "ArtifactStore", "Ref", "parse", "ACTIVE_ALIAS", "LATEST", "Deployment",
           "DeploymentAction", "DeploymentChange"]

# SQLAlchemy and Alembic load on first use: reading a reference needs neither.
_LAZY = {"Registry": ".registry", "ArtifactStore": ".store", "Deployment": ".deployments",
         "DeploymentAction": ".deployments", "DeploymentChange": ".deployments"}


def __getattr__(name: str) -> Any:
    """The registry's classes, imported on first use."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
