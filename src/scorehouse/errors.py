"""Every error scorehouse raises on purpose, each with the CLI exit code it maps to.

The exception hierarchy, with the exit code of each branch (a class's `exit_code`; a subclass
keeps its parent's code). `scorehouse.cli.app.main` prints the error as one line and exits
with that code:

* ScorehouseError ........................ 1    base: catch this to catch every one below
  x RegistryError ........................ 1    registry database or artifact store unusable
  x ModelError ........................... 1    the model itself failed predicting/packaging
  x UsageError ........................... 2    bad usage; a name breaking the naming rules
  x UnsupportedModelError ................ 2    an object scorehouse cannot package
  x ParityError .......................... 2    compiled runtime asked for, gate failed
  x NotFoundError ........................ 3    model, version, alias or file missing
  x InvalidInputError .................... 4    rows failing the schema (`Result.rejects`)
    + ColumnsError (schema.policy) ....... 4    columns refused by `--columns strict`
  x SchemaError .......................... 4    a schema not inferable, parsable or applicable
  x ArtifactError ........................ 5    artifact refused
    + IntegrityError ..................... 5    a file does not match its manifest hash
    + TrustError ......................... 5    pickled code from outside the registry
    + SignatureError ..................... 5    HMAC signature missing or not verifying
  x ConflictError ........................ 6    contradicts the registry's or database's state
    + GatesRefused (evaluation.gates) .... 6    a promotion an alias's gate policy refuses
  x Interrupted (batch.run) .............. 130  a run stopped by a signal, outputs removed
  x ConversionError (packaging.compile) .. 1    never reaches the CLI: packaging records
                                                "not converted" and goes on
  x Unauthorized, NotReady, TooLarge, .... -    HTTP service only: answered with a status,
    SlowClient, TimedOut (serve)                not an exit (401, 503, 413, 408, 504; any
                                                other ScorehouseError in a request: 400)
  x Forbidden, SignInNeeded (ui) ......... -    web console only: a 403 page, a redirect to
                                                sign in (a page shows any other error with
                                                the status of its exit code)

Outside the tree, `main` also exits 2 on click's usage errors (unknown option, missing
argument), 130 on Ctrl-C and 1 on any other exception ("unexpected ...", with the
traceback under SCOREHOUSE_DEBUG=1). `scorehouse retrain` exits 6 (`GatesRefused`'s code)
when the gates refuse its new version the alias, without raising: the version stays
registered, and the refusal is the run's outcome. `scorehouse monitor check` exits with
the outcome of its alert rules, which is no error: 1 when a rule is firing (`EXIT_ALERT_FIRING`) and 7
when nothing fires but an alert webhook delivery failed after its retries
(`EXIT_ALERT_UNDELIVERED`; the alerts wait in the alert state for the next run). The
README's "CLI exit codes" table is the user's view of the same codes.
"""

from __future__ import annotations

#: `monitor check`: an alert rule is firing (not an error: the check's outcome).
EXIT_ALERT_FIRING = 1
#: `monitor check`: nothing firing, but a webhook did not take the alerts after its retries.
EXIT_ALERT_UNDELIVERED = 7


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
