"""Every error scorehouse raises on purpose, each with the CLI exit code it maps to."""

from __future__ import annotations


class ScorehouseError(Exception):
    """Base of all scorehouse errors; `exit_code` is what the CLI exits with."""

    exit_code = 1


class NotFoundError(ScorehouseError):
    """A model, version, alias or file that does not exist."""

    exit_code = 3


class InvalidInputError(ScorehouseError):
    """Input rows that fail the model's schema (see `Result.rejects`)."""

    exit_code = 4


class SchemaError(ScorehouseError):
    """A schema that cannot be inferred, parsed or applied."""

    exit_code = 4


class ArtifactError(ScorehouseError):
    """An artifact that is malformed, tampered with, untrusted or unsigned."""

    exit_code = 5


class IntegrityError(ArtifactError):
    """A file in the artifact does not match the hash its manifest records."""


class TrustError(ArtifactError):
    """An artifact holding pickled code, loaded from outside the registry without trust."""


class SignatureError(ArtifactError):
    """An HMAC signature that is missing or does not verify."""


class ConflictError(ScorehouseError):
    """A registry operation that contradicts the registry's state (e.g. nothing to roll back),
    or a database object of a model's SQL name that belongs to something else."""

    exit_code = 6


class RegistryError(ScorehouseError):
    """The registry database or artifact store cannot be used."""


class ModelError(ScorehouseError):
    """The model itself failed while predicting or packaging."""


class ParityError(ScorehouseError):
    """The compiled runtime asked for on an artifact whose graph failed the parity gate."""

    exit_code = 2


class UsageError(ScorehouseError):
    """Bad usage: e.g. a model, alias or reference name that breaks the naming rules."""

    exit_code = 2


class UnsupportedModelError(ScorehouseError):
    """An object scorehouse does not know how to package."""

    exit_code = 2


class ConnectionFailedError(ScorehouseError):
    """A PostgreSQL or Redis server that cannot be reached or refuses the connection; the
    message names the URL (password masked) and what to check (see `connections.py`)."""
