"""The model registry: versions, aliases with history and rollback, lineage, archive."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import sqlalchemy as sa

from .. import artifact as artifact_io
from ..config import artifacts_url, registry_url
from ..errors import ConflictError, NotFoundError
from ..schema import Schema
from ..schema.diff import SchemaDiff, diff_schemas
from . import migrate
from .aliases import alias_names, alias_stack, aliases_by_version, move_alias, now
from .database import insert_ignore, open_engine, when_free, write
from .database import user_name as _user
from .deployments import DeploymentMethods
from .evaluations import EvaluationStore
from .records import (
    Action,
    AliasMove,
    Event,
    ModelSummary,
    ModelVersion,
    VersionStatus,
    iso,
    version_of,
)
from .refs import LATEST, ModelRef, Ref, registry_ref, valid_name
from .store import ArtifactStore
from .tables import aliases, events, metadata, models, versions

if TYPE_CHECKING:
    from ..scorer import Scorer

T = TypeVar("T")
#: The status a version is stored with while it can be promoted.
READY = VersionStatus.READY.value


class Registry(EvaluationStore, DeploymentMethods):
    """Every version of every model: `Registry()` uses $SCOREHOUSE_REGISTRY or a local SQLite.

    Evaluations and gate policies are in `evaluations.py`; deployments
    (`create_deployment`, `deployment`, `set_deployment`, `deployment_history`,
    `rollback_deployment`) in `deployments.py`.
    """

    def __init__(self, url: str | None = None, artifacts: str | None = None):
        self.url = registry_url(url)
        self.store = ArtifactStore(artifacts_url(artifacts))
        self.engine = open_engine(self.url)
        when_free(lambda: migrate.upgrade(self.engine), f"cannot open registry {self.url}")

    def __repr__(self) -> str:
        return f"<Registry {self.engine.url.render_as_string(hide_password=True)}>"

    def close(self) -> None:
        """Release database connections."""
        self.engine.dispose()

    # --- transactions ---------------------------------------------------------------------

    @contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        with self.engine.connect() as conn:
            yield conn

    def _write(self, fn: Callable[[sa.Connection], T]) -> T:
        return write(self.engine, fn)

    def _model_id(self, conn: sa.Connection, name: str, lock: bool = False) -> int:
        valid_name(name)  # an invalid name is bad usage (exit 2), not a model not found
        if lock:
            # The first statement of every write is a write, so SQLite takes its lock up front
            # and PostgreSQL serialises writers of the same model on this row.
            conn.execute(models.update().where(models.c.name == name).values(updated_at=now()))
        mid = conn.execute(sa.select(models.c.id).where(models.c.name == name)).scalar()
        if mid is None:
            known = conn.execute(sa.select(models.c.name).order_by(models.c.name)).scalars().all()
            raise NotFoundError(f"no model named {name!r} in the registry ({_known(known)})")
        return int(mid)

    # --- writing --------------------------------------------------------------------------

    def register(self, path: str | os.PathLike[str], *, description: str = "",
                 user: str | None = None, require_trust: bool = False,
                 allow_duplicate: bool = True) -> ModelVersion:
        """Verify the artifact at `path`, copy it to the store, record it as the next version.

        Registering never loads the model, so it runs no code; but every later load from the
        registry trusts the version (by its manifest hash), so registering a pickled model is
        trusting it. With `require_trust=True` (the CLI without --trust) a pickled artifact
        must carry a valid signature under $SCOREHOUSE_SIGNING_KEY, else TrustError.

        Raises:
            TrustError: a pickled artifact, unsigned, with `require_trust`.
            ConflictError: the same artifact (same manifest hash) is already a version of the
                model and `allow_duplicate` is False (a CI job that must not register twice).
        """
        # The bytes stored are the bytes verified: the file is read once.
        data = artifact_io.pack(path)
        art = artifact_io.read_bytes(data, str(path), require_trust=require_trust,
                                     check_versions=False)
        name = valid_name(art.name)
        if not allow_duplicate:
            self._refuse_duplicate(name, art.manifest_sha256, path)
        description = description or art.manifest.description
        uri = self.store.put(name, art.manifest_sha256, data)
        lineage = art.manifest.lineage.to_dict() if art.manifest.lineage else {}
        who = _user(user)

        def work(conn: sa.Connection) -> int:
            at = now()
            conn.execute(insert_ignore(conn, models).values(
                name=name, description=description,
                last_version=0, created_at=at, updated_at=at))
            conn.execute(models.update().where(models.c.name == name)
                         .values(last_version=models.c.last_version + 1, updated_at=at))
            mid, number = conn.execute(sa.select(models.c.id, models.c.last_version)
                                       .where(models.c.name == name)).one()
            conn.execute(versions.insert().values(
                model_id=mid, version=number, manifest_sha256=art.manifest_sha256,
                artifact_uri=uri, status=READY, task=art.manifest.task, flavor=art.flavor,
                description=description, lineage=lineage, created_at=at, created_by=who))
            conn.execute(events.insert().values(model_id=mid, at=at, user=who,
                                                action=Action.REGISTER.value, version=number,
                                                reason=""))
            return int(number)

        number = self._write(work)
        return self.version(f"{name}/{number}")

    def _refuse_duplicate(self, name: str, sha: str, path: str | os.PathLike[str]) -> None:
        with self._read() as conn:
            same = conn.execute(
                sa.select(versions.c.version).join(models, models.c.id == versions.c.model_id)
                .where(models.c.name == name, versions.c.manifest_sha256 == sha)
                .order_by(versions.c.version)).scalars().all()
        if same:
            raise ConflictError(
                f"{os.fspath(path)} is already registered as {name}/{same[0]} (same manifest "
                f"sha256 {sha[:12]}); promote {name}/{same[0]} instead, or register it again "
                "as a new version without --refuse-duplicate (allow_duplicate=True)")

    def schema_diff(self, old_ref: str, new_ref: str) -> SchemaDiff:
        """How the input schema changed from `old_ref` to `new_ref` (both registered)."""
        old, new = (Schema.from_dict(self.load_artifact(r)[0].manifest.input_schema)
                    for r in (old_ref, new_ref))
        return diff_schemas(old, new)

    def promote(self, ref: str, alias: str, *, reason: str = "", user: str | None = None,
                gates: list[dict[str, Any]] | None = None) -> AliasMove:
        """Point `alias` at the version `ref` names; a no-op when it already does.

        This runs no gate: `scorehouse.evaluation.promote` checks the alias's gate policy
        first and passes the results here as `gates` (kept on the history event).

        Raises:
            UsageError: an invalid alias name or reference.
            ConflictError: `alias` is 'latest', or the version is archived.
            NotFoundError: no such model or version.
        """
        valid_name(alias, "alias")
        if alias == LATEST:
            raise ConflictError("'latest' always means the newest version; pick another alias")
        target = self.resolve(ref)
        return self._move(target.name, alias, target.version, Action.PROMOTE, reason, user,
                          gates=gates)

    def rollback(self, name: str, alias: str, *, reason: str = "", user: str | None = None
                 ) -> AliasMove:
        """Move `alias` back to the version it pointed to before its last promotion.

        Raises:
            UsageError: an invalid model or alias name.
            ConflictError: no earlier version, that version is archived, or the alias moved
                while rolling back.
            NotFoundError: no such model.
        """
        valid_name(alias, "alias")
        with self._read() as conn:
            mid = self._model_id(conn, name)
            stack = alias_stack(conn, mid, alias)
        if len(stack) < 2:
            raise ConflictError(f"{name}@{alias} has no earlier version to roll back to")
        return self._move(name, alias, stack[-2], Action.ROLLBACK, reason, user, expect=stack)

    def rollback_target(self, name: str, alias: str) -> int | None:
        """The version `rollback(name, alias)` would move `alias` to now (None: none).

        Raises:
            UsageError: an invalid model or alias name.
            NotFoundError: no such model.
        """
        valid_name(alias, "alias")
        with self._read() as conn:
            stack = alias_stack(conn, self._model_id(conn, name), alias)
        return stack[-2] if len(stack) >= 2 else None

    def remove_alias(self, name: str, alias: str, *, reason: str = "",
                     user: str | None = None) -> AliasMove:
        """Delete `alias` (its history stays).

        Raises:
            UsageError: an invalid model or alias name.
            NotFoundError: no such model, or it has no such alias.
        """
        valid_name(alias, "alias")
        return self._move(name, alias, None, Action.UNALIAS, reason, user)

    def _move(self, name: str, alias: str, version: int | None, action: Action, reason: str,
              user: str | None, expect: list[int] | None = None,
              gates: list[dict[str, Any]] | None = None) -> AliasMove:
        who = _user(user)

        def work(conn: sa.Connection) -> AliasMove:
            mid = self._model_id(conn, name, lock=True)
            return move_alias(conn, mid, name=name, alias=alias, version=version, action=action,
                              reason=reason, who=who, expect=expect, gates=gates)

        return self._write(work)

    def archive(self, ref: str, *, reason: str = "", user: str | None = None) -> ModelVersion:
        """Mark a version archived: kept for audit, not promotable (it must hold no alias).

        Raises:
            ConflictError: an alias points at the version.
            NotFoundError: no such model or version.
        """
        return self._set_status(self.resolve(ref), VersionStatus.ARCHIVED, Action.ARCHIVE,
                                reason, user)

    def restore(self, ref: str, *, reason: str = "", user: str | None = None) -> ModelVersion:
        """Undo `archive`.

        Raises:
            NotFoundError: no such model or version.
        """
        return self._set_status(self.resolve(ref), VersionStatus.READY, Action.RESTORE, reason,
                                user)

    def _set_status(self, mv: ModelVersion, status: VersionStatus, action: Action, reason: str,
                    user: str | None) -> ModelVersion:
        who = _user(user)

        def work(conn: sa.Connection) -> None:
            mid = self._model_id(conn, mv.name, lock=True)
            if action is Action.ARCHIVE:
                held = sorted(conn.execute(sa.select(aliases.c.alias).where(
                    aliases.c.model_id == mid, aliases.c.version == mv.version)).scalars())
                if held:
                    raise ConflictError(f"{mv.ref} is {', '.join('@' + a for a in held)}; "
                                        "move those aliases before archiving it")
            conn.execute(versions.update().where(versions.c.model_id == mid,
                                                 versions.c.version == mv.version)
                         .values(status=status.value))
            conn.execute(events.insert().values(model_id=mid, at=now(), user=who,
                                                action=action.value, version=mv.version,
                                                reason=reason))

        self._write(work)
        return self.version(mv.ref)

    # --- reading --------------------------------------------------------------------------

    def models(self) -> list[ModelSummary]:
        """Every model with its version count, latest unarchived version and aliases, by name."""
        with self._read() as conn:
            rows = conn.execute(sa.select(models).order_by(models.c.name)).mappings().all()
            alias_rows = conn.execute(sa.select(aliases)).mappings().all()
            latest = dict(conn.execute(sa.select(versions.c.model_id, sa.func.max(versions.c.version))
                                       .where(versions.c.status == READY)
                                       .group_by(versions.c.model_id)).all())
        out = []
        for r in rows:
            al = {a["alias"]: a["version"] for a in alias_rows if a["model_id"] == r["id"]}
            out.append(ModelSummary(name=r["name"], description=r["description"],
                                    versions=r["last_version"], latest=latest.get(r["id"]),
                                    aliases=dict(sorted(al.items())),
                                    updated_at=iso(r["updated_at"])))
        return out

    def versions(self, name: str) -> list[ModelVersion]:
        """All versions of `name`, oldest first.

        Raises:
            UsageError: an invalid model name.
            NotFoundError: no such model.
        """
        with self._read() as conn:
            mid = self._model_id(conn, name)
            rows = conn.execute(sa.select(versions).where(versions.c.model_id == mid)
                                .order_by(versions.c.version)).mappings().all()
            al = aliases_by_version(conn, mid)
        return [version_of(name, r, al) for r in rows]

    def version(self, ref: str) -> ModelVersion:
        """The version `ref` names (alias, number, or bare name = the active version).

        Raises:
            UsageError, NotFoundError: as `resolve`.
        """
        return self.resolve(ref)

    def resolve(self, ref: str | Ref | ModelRef) -> ModelVersion:
        """Resolve a reference to one registered version (archived ones too).

        Raises:
            UsageError: a malformed reference.
            NotFoundError: no such model, alias or version, or for `@latest` no unarchived
                version.
        """
        r = registry_ref(ref)
        with self._read() as conn:
            mid = self._model_id(conn, r.name)
            number = r.version
            if r.alias == LATEST:
                number = conn.execute(sa.select(sa.func.max(versions.c.version)).where(
                    versions.c.model_id == mid, versions.c.status == READY)).scalar()
                if number is None:
                    raise NotFoundError(f"{r.name} has no unarchived version")
            elif r.alias is not None:
                number = conn.execute(sa.select(aliases.c.version).where(
                    aliases.c.model_id == mid, aliases.c.alias == r.alias)).scalar()
                if number is None:
                    known = alias_names(conn, mid)
                    hint = (f"; its aliases are {', '.join(known)}" if known
                            else "; it has no aliases yet (scorehouse promote NAME/N ALIAS)")
                    raise NotFoundError(f"{r.name} has no alias {r.alias!r}{hint}")
            row = conn.execute(sa.select(versions).where(
                versions.c.model_id == mid, versions.c.version == number)).mappings().first()
            if row is None:
                raise NotFoundError(f"{r.name} has no version {number}")
            return version_of(r.name, row, aliases_by_version(conn, mid))

    def history(self, name: str, alias: str | None = None) -> list[Event]:
        """Every change to `name` (or to one alias of it), oldest first.

        Raises:
            UsageError: an invalid model or alias name.
            NotFoundError: no such model.
        """
        if alias is not None:
            valid_name(alias, "alias")
        with self._read() as conn:
            mid = self._model_id(conn, name)
            q = sa.select(events).where(events.c.model_id == mid)
            if alias is not None:
                q = q.where(events.c.alias == alias)
            rows = conn.execute(q.order_by(events.c.id)).mappings().all()
        return [Event(iso(r["at"]), r["user"], name, Action(r["action"]), r["alias"], r["version"],
                      r["from_version"], r["reason"], r["gates"]) for r in rows]

    def lineage(self, ref: str) -> dict[str, Any]:
        """Training data fingerprint, parameters, metrics and library versions of a version:
        the artifact's lineage (JSON) with its `model`, `version` and `manifest_sha256`.

        Raises:
            UsageError, NotFoundError: as `resolve`.
        """
        mv = self.resolve(ref)
        return {"model": mv.name, "version": mv.version, "manifest_sha256": mv.manifest_sha256,
                **mv.lineage}

    # --- loading --------------------------------------------------------------------------

    def load_artifact(self, ref: str | ModelRef, key: str | bytes | None = None
                      ) -> tuple[artifact_io.Artifact, ModelVersion]:
        """The verified artifact of `ref` (its manifest hash must match the registry's record).

        Raises:
            UsageError, NotFoundError: as `resolve`; NotFoundError too when the file is
                missing from the store.
            ArtifactError: the file is over the size limit, damaged, or its manifest hash
                differs from the record (IntegrityError), or it cannot be trusted.
        """
        mv = self.resolve(ref)
        data = self.store.get(mv.artifact_uri)
        art = artifact_io.read_bytes(data, f"{mv.ref} ({mv.artifact_uri})", key=key,
                                     expected_sha256=mv.manifest_sha256)
        return art, mv

    def load(self, ref: str | ModelRef, *, runtime: str | None = None, key: str | bytes | None = None,
             accept_parity_difference: bool = False) -> Scorer:
        """A Scorer for `ref`, e.g. `registry.load("churn@production")` (for `runtime` and
        `accept_parity_difference` see `runtime.runtime_for`)."""
        from ..scorer import Scorer

        art, mv = self.load_artifact(ref, key)
        return Scorer(art, version=mv.version, runtime=runtime, ref=str(ref),
                      accept_parity_difference=accept_parity_difference)


# --- helpers ------------------------------------------------------------------------------


def _known(names: Sequence[str], most: int = 20) -> str:
    """'known: a, b, c' (the first `most` names), or 'it is empty'."""
    if not names:
        return "it is empty: register a model first"
    more = f", ... ({len(names) - most} more)" if len(names) > most else ""
    return "known: " + ", ".join(names[:most]) + more


__all__ = ["Registry", "ModelVersion", "Event", "AliasMove", "ModelSummary", "metadata"]
