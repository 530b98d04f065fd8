"""The registry: model metadata in SQL (SQLite or PostgreSQL), artifact files in a store."""

from .refs import ACTIVE_ALIAS, LATEST, Ref, parse
from .registry import Event, ModelVersion, Registry
from .store import ArtifactStore

__all__ = ["Registry", "ModelVersion", "Event", "ArtifactStore", "Ref", "parse",
           "ACTIVE_ALIAS", "LATEST"]
