"""The model registry: versions, aliases with history and rollback, lineage, archive."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, OperationalError

from .. import artifact as artifact_io
from ..config import artifacts_url, registry_url
from ..errors import ConflictError, NotFoundError, RegistryError
from ..schema import Schema
from ..schema.diff import SchemaDiff, diff_schemas
from . import migrate
from .refs import LATEST, ModelRef, Ref, registry_ref, valid_name
from .store import ArtifactStore
from .tables import aliases, events, metadata, models, versions

T = TypeVar("T")
#: How long a write waits for a busy database (SQLite lock, PostgreSQL serialisation) in total.
WRITE_RETRY_SECONDS = 60.0


@dataclass
class ModelVersion:
    """One registered version of a model."""

    name: str
    version: int
    manifest_sha256: str
    artifact_uri: str
    status: str
    task: str
    flavor: str
    description: str
    created_at: str
    created_by: str
    aliases: list[str] = field(default_factory=list)
    lineage: dict[str, Any] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """`name/version`."""
        return f"{self.name}/{self.version}"

    def to_dict(self, lineage: bool = False) -> dict[str, Any]:
        """JSON-able form (lineage only on request: it can be long)."""
        d = asdict(self)
        if not lineage:
            d.pop("lineage")
        return d


@dataclass
class Event:
    """One entry of a model's history: register, promote, rollback, unalias, archive, restore."""

    at: str
    user: str
    model: str
    action: str
    alias: str | None
    version: int | None
    from_version: int | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _iso(t: dt.datetime | None) -> str:
    if t is None:
        return ""
    if t.tzinfo is None:  # SQLite hands back naive datetimes; they were stored as UTC
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.isoformat(timespec="seconds")


def _user(user: str | None) -> str:
    if user:
        return user
    try:
        return os.environ.get("SCOREHOUSE_USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _engine_url(url: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _is_busy(e: DBAPIError) -> bool:
    text = str(e.orig).lower() if e.orig is not None else str(e).lower()
    code = getattr(e.orig, "sqlstate", None)
    return "locked" in text or "busy" in text or code in ("40001", "40P01")


class Registry:
    """Every version of every model: `Registry()` uses $SCOREHOUSE_REGISTRY or a local SQLite."""

    def __init__(self, url: str | None = None, artifacts: str | None = None):
        self.url = registry_url(url)
        self.store = ArtifactStore(artifacts_url(artifacts))
        engine_url = _engine_url(self.url)
        kw: dict[str, Any] = {"future": True}
        if engine_url.startswith("sqlite"):
            db = sa.engine.make_url(engine_url).database
            if db and db != ":memory:":
                Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kw["connect_args"] = {"timeout": 30}
        try:
            self.engine = sa.create_engine(engine_url, **kw)
        except Exception as e:  # bad URL or missing driver
            raise RegistryError(f"cannot use registry {self.url!r}: {e}") from None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            migrate.upgrade(self.engine)
        except OperationalError as e:
            raise RegistryError(f"cannot open registry {self.url}: {e.orig}") from None

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
        # SQLite allows one writer at a time and PostgreSQL may abort a transaction that
        # lost a race; either way the whole unit of work is simply run again.
        deadline = time.monotonic() + WRITE_RETRY_SECONDS
        delay = 0.01
        while True:
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except DBAPIError as e:
                if not _is_busy(e) or time.monotonic() > deadline:
                    raise RegistryError(f"registry write failed: {e.orig}") from None
                time.sleep(delay)
                delay = min(delay * 2, 0.5)

    def _model_id(self, conn: sa.Connection, name: str, lock: bool = False) -> int:
        valid_name(name)  # an invalid name is bad usage (exit 2), not a model not found
        if lock:
            # The first statement of every write is a write, so SQLite takes its lock up front
            # and PostgreSQL serialises writers of the same model on this row.
            conn.execute(models.update().where(models.c.name == name).values(updated_at=_now()))
        mid = conn.execute(sa.select(models.c.id).where(models.c.name == name)).scalar()
        if mid is None:
            known = conn.execute(sa.select(models.c.name).order_by(models.c.name)).scalars().all()
            raise NotFoundError(f"no model named {name!r} in the registry ({_known(known)})")
        return mid

    # --- writing --------------------------------------------------------------------------

    def register(self, path: str | os.PathLike, *, description: str = "",
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
            now = _now()
            conn.execute(_insert_ignore(conn, models).values(
                name=name, description=description,
                last_version=0, created_at=now, updated_at=now))
            conn.execute(models.update().where(models.c.name == name)
                         .values(last_version=models.c.last_version + 1, updated_at=now))
            mid, number = conn.execute(sa.select(models.c.id, models.c.last_version)
                                       .where(models.c.name == name)).one()
            conn.execute(versions.insert().values(
                model_id=mid, version=number, manifest_sha256=art.manifest_sha256,
                artifact_uri=uri, status="ready", task=art.manifest.task, flavor=art.flavor,
                description=description, lineage=lineage, created_at=now, created_by=who))
            conn.execute(events.insert().values(model_id=mid, at=now, user=who,
                                                action="register", version=number, reason=""))
            return number

        number = self._write(work)
        return self.version(f"{name}/{number}")

    def _refuse_duplicate(self, name: str, sha: str, path: str | os.PathLike) -> None:
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

    def promote(self, ref: str, alias: str, *, reason: str = "", user: str | None = None
                ) -> dict[str, Any]:
        """Point `alias` at the version `ref` names; a no-op when it already does."""
        valid_name(alias, "alias")
        if alias == LATEST:
            raise ConflictError("'latest' always means the newest version; pick another alias")
        target = self.resolve(ref)
        return self._move(target.name, alias, target.version, "promote", reason, user)

    def rollback(self, name: str, alias: str, *, reason: str = "", user: str | None = None
                 ) -> dict[str, Any]:
        """Move `alias` back to the version it pointed to before its last promotion."""
        valid_name(alias, "alias")
        with self._read() as conn:
            mid = self._model_id(conn, name)
            stack = _alias_stack(conn, mid, alias)
        if len(stack) < 2:
            raise ConflictError(f"{name}@{alias} has no earlier version to roll back to")
        return self._move(name, alias, stack[-2], "rollback", reason, user, expect=stack)

    def remove_alias(self, name: str, alias: str, *, reason: str = "",
                     user: str | None = None) -> dict[str, Any]:
        """Delete `alias` (its history stays)."""
        valid_name(alias, "alias")
        return self._move(name, alias, None, "unalias", reason, user)

    def _move(self, name: str, alias: str, version: int | None, action: str, reason: str,
              user: str | None, expect: list[int] | None = None) -> dict[str, Any]:
        who = _user(user)

        def work(conn: sa.Connection) -> dict[str, Any]:
            mid = self._model_id(conn, name, lock=True)
            before = conn.execute(sa.select(aliases.c.version).where(
                aliases.c.model_id == mid, aliases.c.alias == alias)).scalar()
            # Checked under the lock: the alias may have moved (even away and back) or its
            # target been archived since the caller looked.
            if action == "rollback" and _alias_stack(conn, mid, alias) != expect:
                raise ConflictError(f"{name}@{alias} moved while rolling back; try again")
            if version is not None and conn.execute(sa.select(versions.c.status).where(
                    versions.c.model_id == mid, versions.c.version == version)).scalar() == "archived":
                doing = "rolling back to" if action == "rollback" else "promoting"
                raise ConflictError(f"{name}/{version} is archived; restore it before {doing} it")
            if action == "unalias" and before is None:
                raise NotFoundError(f"{name} has no alias {alias!r}")
            move = {"model": name, "alias": alias, "from_version": before, "version": version,
                    "action": action, "changed": before != version}
            if before == version:
                return move
            now = _now()
            where = (aliases.c.model_id == mid) & (aliases.c.alias == alias)
            if version is None:
                conn.execute(aliases.delete().where(where))
            elif before is None:
                conn.execute(aliases.insert().values(model_id=mid, alias=alias, version=version,
                                                     updated_at=now, updated_by=who))
            else:
                conn.execute(aliases.update().where(where).values(
                    version=version, updated_at=now, updated_by=who))
            conn.execute(events.insert().values(
                model_id=mid, at=now, user=who, action=action, alias=alias, version=version,
                from_version=before, reason=reason))
            return move

        return self._write(work)

    def archive(self, ref: str, *, reason: str = "", user: str | None = None) -> ModelVersion:
        """Mark a version archived: kept for audit, not promotable (it must hold no alias)."""
        return self._set_status(self.resolve(ref), "archived", "archive", reason, user)

    def restore(self, ref: str, *, reason: str = "", user: str | None = None) -> ModelVersion:
        """Undo `archive`."""
        return self._set_status(self.resolve(ref), "ready", "restore", reason, user)

    def _set_status(self, mv: ModelVersion, status: str, action: str, reason: str,
                    user: str | None) -> ModelVersion:
        who = _user(user)

        def work(conn: sa.Connection) -> None:
            mid = self._model_id(conn, mv.name, lock=True)
            if action == "archive":
                held = sorted(conn.execute(sa.select(aliases.c.alias).where(
                    aliases.c.model_id == mid, aliases.c.version == mv.version)).scalars())
                if held:
                    raise ConflictError(f"{mv.ref} is {', '.join('@' + a for a in held)}; "
                                        "move those aliases before archiving it")
            conn.execute(versions.update().where(versions.c.model_id == mid,
                                                 versions.c.version == mv.version)
                         .values(status=status))
            conn.execute(events.insert().values(model_id=mid, at=_now(), user=who, action=action,
                                                version=mv.version, reason=reason))

        self._write(work)
        return self.version(mv.ref)

    # --- reading --------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """Every model with its version count, latest unarchived version and aliases."""
        with self._read() as conn:
            rows = conn.execute(sa.select(models).order_by(models.c.name)).mappings().all()
            alias_rows = conn.execute(sa.select(aliases)).mappings().all()
            latest = dict(conn.execute(sa.select(versions.c.model_id, sa.func.max(versions.c.version))
                                       .where(versions.c.status == "ready")
                                       .group_by(versions.c.model_id)).all())
        out = []
        for r in rows:
            al = {a["alias"]: a["version"] for a in alias_rows if a["model_id"] == r["id"]}
            out.append({"name": r["name"], "description": r["description"],
                        "versions": r["last_version"], "latest": latest.get(r["id"]),
                        "aliases": dict(sorted(al.items())), "updated_at": _iso(r["updated_at"])})
        return out

    def versions(self, name: str) -> list[ModelVersion]:
        """All versions of `name`, oldest first."""
        with self._read() as conn:
            mid = self._model_id(conn, name)
            rows = conn.execute(sa.select(versions).where(versions.c.model_id == mid)
                                .order_by(versions.c.version)).mappings().all()
            al = _aliases_by_version(conn, mid)
        return [_version(name, r, al) for r in rows]

    def version(self, ref: str) -> ModelVersion:
        """The version `ref` names (alias, number, or bare name = the active version)."""
        return self.resolve(ref)

    def resolve(self, ref: str | Ref | ModelRef) -> ModelVersion:
        """Resolve a reference to one registered version."""
        r = registry_ref(ref)
        with self._read() as conn:
            mid = self._model_id(conn, r.name)
            number = r.version
            if r.alias == LATEST:
                number = conn.execute(sa.select(sa.func.max(versions.c.version)).where(
                    versions.c.model_id == mid, versions.c.status == "ready")).scalar()
                if number is None:
                    raise NotFoundError(f"{r.name} has no unarchived version")
            elif r.alias is not None:
                number = conn.execute(sa.select(aliases.c.version).where(
                    aliases.c.model_id == mid, aliases.c.alias == r.alias)).scalar()
                if number is None:
                    known = sorted(_aliases_by_version(conn, mid, flat=True))
                    hint = (f"; its aliases are {', '.join(known)}" if known
                            else "; it has no aliases yet (scorehouse promote NAME/N ALIAS)")
                    raise NotFoundError(f"{r.name} has no alias {r.alias!r}{hint}")
            row = conn.execute(sa.select(versions).where(
                versions.c.model_id == mid, versions.c.version == number)).mappings().first()
            if row is None:
                raise NotFoundError(f"{r.name} has no version {number}")
            return _version(r.name, row, _aliases_by_version(conn, mid))

    def history(self, name: str, alias: str | None = None) -> list[Event]:
        """Every change to `name` (or to one alias of it), oldest first."""
        if alias is not None:
            valid_name(alias, "alias")
        with self._read() as conn:
            mid = self._model_id(conn, name)
            q = sa.select(events).where(events.c.model_id == mid)
            if alias is not None:
                q = q.where(events.c.alias == alias)
            rows = conn.execute(q.order_by(events.c.id)).mappings().all()
        return [Event(_iso(r["at"]), r["user"], name, r["action"], r["alias"], r["version"],
                      r["from_version"], r["reason"]) for r in rows]

    def lineage(self, ref: str) -> dict[str, Any]:
        """Training data fingerprint, parameters, metrics and library versions of a version."""
        mv = self.resolve(ref)
        return {"model": mv.name, "version": mv.version, "manifest_sha256": mv.manifest_sha256,
                **mv.lineage}

    # --- loading --------------------------------------------------------------------------

    def load_artifact(self, ref: str | ModelRef, key: str | bytes | None = None
                      ) -> tuple[artifact_io.Artifact, ModelVersion]:
        """The verified artifact of `ref` (its manifest hash must match the registry's record)."""
        mv = self.resolve(ref)
        data = self.store.get(mv.artifact_uri)
        art = artifact_io.read_bytes(data, f"{mv.ref} ({mv.artifact_uri})", key=key,
                                     expected_sha256=mv.manifest_sha256)
        return art, mv

    def load(self, ref: str | ModelRef, *, runtime: str | None = None, key: str | bytes | None = None,
             accept_parity_difference: bool = False):
        """A Scorer for `ref`, e.g. `registry.load("churn@production")` (for `runtime` and
        `accept_parity_difference` see `runtime.runtime_for`)."""
        from ..scorer import Scorer

        art, mv = self.load_artifact(ref, key)
        return Scorer(art, version=mv.version, runtime=runtime, ref=str(ref),
                      accept_parity_difference=accept_parity_difference)


# --- helpers ------------------------------------------------------------------------------


def _known(names: list[str], most: int = 20) -> str:
    """'known: a, b, c' (the first `most` names), or 'it is empty'."""
    if not names:
        return "it is empty: register a model first"
    more = f", ... ({len(names) - most} more)" if len(names) > most else ""
    return "known: " + ", ".join(names[:most]) + more


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _insert_ignore(conn: sa.Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).on_conflict_do_nothing()


def _aliases_by_version(conn: sa.Connection, mid: int, flat: bool = False) -> Any:
    rows = conn.execute(sa.select(aliases.c.alias, aliases.c.version)
                        .where(aliases.c.model_id == mid)).all()
    if flat:
        return [a for a, _ in rows]
    out: dict[int, list[str]] = {}
    for a, v in rows:
        out.setdefault(v, []).append(a)
    return out


def _alias_stack(conn: sa.Connection, mid: int, alias: str) -> list[int]:
    # Replaying the alias's history gives the versions it held, most recent last; a rollback
    # pops one, so repeated rollbacks walk further back rather than toggling.
    stack: list[int] = []
    rows = conn.execute(sa.select(events.c.action, events.c.version).where(
        events.c.model_id == mid, events.c.alias == alias).order_by(events.c.id)).all()
    for action, version in rows:
        if action == "promote":
            stack.append(version)
        elif action == "rollback":
            stack.pop()
            if not stack or stack[-1] != version:  # pragma: no cover - history edited by hand
                stack.append(version)
        elif action == "unalias":
            stack.clear()
    return stack


def _version(name: str, r: Any, al: dict[int, list[str]]) -> ModelVersion:
    return ModelVersion(
        name=name, version=r["version"], manifest_sha256=r["manifest_sha256"],
        artifact_uri=r["artifact_uri"], status=r["status"], task=r["task"], flavor=r["flavor"],
        description=r["description"], created_at=_iso(r["created_at"]),
        created_by=r["created_by"], aliases=sorted(al.get(r["version"], [])),
        lineage=r["lineage"] or {},
    )


__all__ = ["Registry", "ModelVersion", "Event", "metadata"]
