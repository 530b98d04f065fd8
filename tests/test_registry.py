"""The model registry against real databases: every test runs on SQLite and on PostgreSQL.

No database is mocked: versions, aliases, history, archive, lineage, loading through the
artifact store, Alembic migrations, and real processes racing on one registry. (Two tests
wrap a registry method only to let a second, real client act at an exact moment.)
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import struct
import subprocess
import sys
import time
import zipfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

import scorehouse
from scorehouse import artifact as artifact_io
from scorehouse.artifact.files import zip_bytes
from scorehouse.errors import (
    ArtifactError,
    ConflictError,
    IntegrityError,
    NotFoundError,
    RegistryError,
    ScorehouseError,
)
from scorehouse.registry import Registry, migrate

WORKER = Path(__file__).with_name("_register_worker.py")
TABLES = {"sh_models", "sh_versions", "sh_aliases", "sh_events", "sh_evaluations",
          "sh_gate_policies", "sh_deployments", "sh_deployment_events"}
#: The newest migration (0001 models, 0002 evaluations and gate policies, 0003 deployments).
HEAD = "0003"


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture
def open_registry(registry_url, tmp_path):
    """Open registries on this test's database and store; all closed at the end."""
    opened: list[Registry] = []

    def _open() -> Registry:
        reg = Registry(registry_url, artifacts=str(tmp_path / "store"))
        opened.append(reg)
        return reg

    yield _open
    for reg in opened:
        reg.close()


@pytest.fixture
def reg(open_registry) -> Registry:
    """A registry on a fresh database (SQLite file or PostgreSQL database)."""
    return open_registry()


def _register(reg: Registry, artifact: Path, n: int, **kw) -> list[int]:
    return [reg.register(artifact, allow_duplicate=True, **kw).version for _ in range(n)]


def _raw_engine(url: str) -> sa.Engine:
    """A plain SQLAlchemy engine on the registry's database, independent of scorehouse."""
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return sa.create_engine(url)


def _moves(events) -> list[tuple]:
    return [(e.action, e.alias, e.from_version, e.version) for e in events]


def _rezip(entries: dict[str, bytes]) -> bytes:
    return zip_bytes(entries)


def _entries(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {i.filename: zf.read(i) for i in zf.infolist()}


# --- versions -----------------------------------------------------------------------------


def test_register_numbers_versions_from_one(reg, churn_artifact):
    first = reg.register(churn_artifact, description="first cut", user="alice")
    assert (first.name, first.version, first.ref) == ("churn", 1, "churn/1")
    assert first.status == "ready" and first.task == "binary" and first.flavor == "sklearn"
    assert first.created_by == "alice" and first.description == "first cut"
    assert first.aliases == []
    assert first.manifest_sha256 == artifact_io.read(churn_artifact, trust=True).manifest_sha256
    assert dt.datetime.fromisoformat(first.created_at).tzinfo is not None

    assert _register(reg, churn_artifact, 2, user="bob") == [2, 3]
    listed = reg.versions("churn")
    assert [v.version for v in listed] == [1, 2, 3]
    assert [v.created_by for v in listed] == ["alice", "bob", "bob"]
    # Same artifact, same content address: every version points at one stored file.
    assert len({v.artifact_uri for v in listed}) == 1
    assert Path(listed[0].artifact_uri).read_bytes() == Path(churn_artifact).read_bytes()

    second = reg.resolve("churn/2")
    assert (second.version, second.created_by) == (2, "bob")
    assert reg.version("churn/3").version == 3


def test_models_lists_versions_and_aliases(reg, churn_artifact):
    assert reg.models() == []
    _register(reg, churn_artifact, 3)
    reg.promote("churn/1", "production")
    reg.promote("churn/3", "staging")
    (row,) = reg.models()
    assert row["name"] == "churn"
    assert row["versions"] == 3 and row["latest"] == 3
    assert row["aliases"] == {"production": 1, "staging": 3}
    assert [v.aliases for v in reg.versions("churn")] == [["production"], [], ["staging"]]


def test_unknown_model_version_and_alias_are_not_found(reg, churn_artifact):
    with pytest.raises(NotFoundError, match=r"no model named 'nope'.*empty: register a model"):
        reg.resolve("nope/1")
    with pytest.raises(NotFoundError, match="no model named 'nope'"):
        reg.versions("nope")
    with pytest.raises(NotFoundError, match="no model named 'nope'"):
        reg.history("nope")
    reg.register(churn_artifact)
    with pytest.raises(NotFoundError, match=r"no model named 'chrun' in the registry \(known: churn\)"):
        reg.resolve("chrun@production")
    with pytest.raises(NotFoundError, match="churn has no version 7"):
        reg.resolve("churn/7")
    # No alias at all yet: the message says how to make one.
    with pytest.raises(NotFoundError, match=r"no alias 'production'.*no aliases yet.*promote"):
        reg.resolve("churn")
    reg.promote("churn/1", "production")
    reg.promote("churn/1", "canary")
    with pytest.raises(NotFoundError, match=r"no alias 'staging'; its aliases are canary, production"):
        reg.resolve("churn@staging")
    with pytest.raises(ScorehouseError, match="invalid model reference"):
        reg.resolve("churn@@production")


# --- aliases ------------------------------------------------------------------------------


def test_aliases_resolve_and_bare_name_means_production(reg, churn_artifact):
    _register(reg, churn_artifact, 3)
    move = reg.promote("churn/1", "production", reason="first release", user="carol")
    assert move.to_dict() == {"model": "churn", "alias": "production", "from_version": None,
                              "version": 1, "action": "promote", "changed": True}
    assert reg.resolve("churn@production").version == 1
    assert reg.resolve("churn").version == 1  # bare name = the production alias
    assert reg.resolve(" churn ").version == 1
    assert reg.resolve("churn@latest").version == 3
    assert reg.resolve("churn/1").aliases == ["production"]

    reg.promote("churn@latest", "production")  # a promote can name its target by alias
    assert reg.resolve("churn").version == 3
    assert reg.resolve("churn/3").aliases == ["production"]
    assert reg.resolve("churn/1").aliases == []


def test_promote_to_the_same_version_is_a_noop(reg, churn_artifact):
    _register(reg, churn_artifact, 2)
    reg.promote("churn/2", "production")
    before = reg.history("churn")
    again = reg.promote("churn/2", "production", reason="again", user="dave")
    assert again["changed"] is False
    assert (again["from_version"], again["version"]) == (2, 2)
    assert reg.history("churn") == before
    assert reg.resolve("churn").version == 2


@pytest.mark.parametrize("alias", ["", "bad alias", "-lead", "prod@1", "a/b", "ü", "x" * 101])
def test_invalid_alias_names_are_refused(reg, churn_artifact, alias):
    reg.register(churn_artifact)
    with pytest.raises(ScorehouseError, match="invalid alias"):
        reg.promote("churn/1", alias)
    assert reg.models()[0]["aliases"] == {}
    assert [e.action for e in reg.history("churn")] == ["register"]


def test_latest_cannot_be_promoted_to(reg, churn_artifact):
    reg.register(churn_artifact)
    with pytest.raises(ConflictError, match="'latest' always means the newest version"):
        reg.promote("churn/1", "latest")
    assert reg.models()[0]["aliases"] == {}
    assert [e.action for e in reg.history("churn")] == ["register"]


def test_remove_alias_keeps_history(reg, churn_artifact):
    _register(reg, churn_artifact, 2)
    reg.promote("churn/1", "production")
    reg.promote("churn/2", "production")
    move = reg.remove_alias("churn", "production", reason="incident", user="erin")
    assert (move["from_version"], move["version"], move["changed"]) == (2, None, True)
    with pytest.raises(NotFoundError, match="no alias 'production'"):
        reg.resolve("churn")
    with pytest.raises(NotFoundError, match="no alias 'production'"):
        reg.remove_alias("churn", "production")
    # The alias's history stays, but there is nothing left to roll back to.
    assert _moves(reg.history("churn", "production"))[-1] == ("unalias", "production", 2, None)
    with pytest.raises(ConflictError, match="no earlier version"):
        reg.rollback("churn", "production")


# --- rollback and history -----------------------------------------------------------------


def test_rollback_walks_back_and_history_records_everything(reg, churn_artifact, monkeypatch):
    monkeypatch.setenv("SCOREHOUSE_USER", "env-user")
    assert _register(reg, churn_artifact, 3, user="alice") == [1, 2, 3]
    reg.promote("churn/1", "production", reason="launch", user="bob")
    reg.promote("churn/2", "production", reason="better auc")  # user from $SCOREHOUSE_USER
    reg.promote("churn/3", "production", reason="retrained", user="carol")

    back = reg.rollback("churn", "production", reason="latency spike", user="dave")
    assert back.to_dict() == {"model": "churn", "alias": "production", "from_version": 3,
                              "version": 2, "action": "rollback", "changed": True}
    assert reg.resolve("churn").version == 2
    back = reg.rollback("churn", "production", reason="still bad")
    assert (back["from_version"], back["version"]) == (2, 1)
    assert reg.resolve("churn").version == 1
    with pytest.raises(ConflictError, match="churn@production has no earlier version"):
        reg.rollback("churn", "production")
    assert reg.resolve("churn").version == 1
    with pytest.raises(ConflictError, match="no earlier version"):
        reg.rollback("churn", "canary")  # an alias that never existed
    with pytest.raises(NotFoundError):
        reg.rollback("nope", "production")

    expected = [
        ("promote", "production", None, 1, "bob", "launch"),
        ("promote", "production", 1, 2, "env-user", "better auc"),
        ("promote", "production", 2, 3, "carol", "retrained"),
        ("rollback", "production", 3, 2, "dave", "latency spike"),
        ("rollback", "production", 2, 1, "env-user", "still bad"),
    ]
    alias_history = reg.history("churn", "production")
    assert [(e.action, e.alias, e.from_version, e.version, e.user, e.reason)
            for e in alias_history] == expected
    assert all(e.model == "churn" for e in alias_history)

    everything = reg.history("churn")
    assert [(e.action, e.version, e.user) for e in everything[:3]] == [
        ("register", 1, "alice"), ("register", 2, "alice"), ("register", 3, "alice")]
    assert everything[3:] == alias_history
    stamps = [dt.datetime.fromisoformat(e.at) for e in everything]
    assert all(s.tzinfo is not None for s in stamps)
    assert stamps == sorted(stamps)
    assert abs(dt.datetime.now(dt.timezone.utc) - stamps[-1]) < dt.timedelta(minutes=5)
    assert reg.history("churn", "canary") == []
    assert everything[0].to_dict()["action"] == "register"


def test_user_defaults_to_scorehouse_user_env(reg, churn_artifact, monkeypatch):
    monkeypatch.setenv("SCOREHOUSE_USER", "ci-bot")
    assert reg.register(churn_artifact).created_by == "ci-bot"
    reg.promote("churn/1", "production")
    assert reg.register(churn_artifact, user="explicit",
                        allow_duplicate=True).created_by == "explicit"
    assert [e.user for e in reg.history("churn")] == ["ci-bot", "ci-bot", "explicit"]


def test_rollback_after_promoting_back_and_forth(reg, churn_artifact):
    _register(reg, churn_artifact, 2)
    for v in (1, 2, 1):
        reg.promote(f"churn/{v}", "production")
    assert reg.rollback("churn", "production")["version"] == 2
    assert reg.rollback("churn", "production")["version"] == 1
    with pytest.raises(ConflictError):
        reg.rollback("churn", "production")


# --- archive ------------------------------------------------------------------------------


def test_archive_and_restore(reg, churn_artifact):
    _register(reg, churn_artifact, 3)
    reg.promote("churn/1", "production")

    with pytest.raises(ConflictError, match=r"churn/1 is @production"):
        reg.archive("churn/1")
    assert reg.resolve("churn/1").status == "ready"

    archived = reg.archive("churn/3", reason="leaky feature", user="frank")
    assert archived.status == "archived"
    assert reg.resolve("churn/3").status == "archived"  # still resolvable by number
    assert reg.resolve("churn@latest").version == 2  # latest skips archived versions
    with pytest.raises(ConflictError, match="churn/3 is archived"):
        reg.promote("churn/3", "production")
    with pytest.raises(ConflictError, match="archived"):
        reg.promote("churn/3", "staging")
    assert reg.resolve("churn").version == 1
    assert reg.models()[0]["aliases"] == {"production": 1}

    reg.archive("churn/2", user="hank")
    assert reg.resolve("churn@latest").version == 1

    restored = reg.restore("churn/3", reason="false alarm", user="gina")
    assert restored.status == "ready"
    assert reg.resolve("churn@latest").version == 3
    assert reg.promote("churn/3", "production")["changed"] is True
    assert reg.resolve("churn").version == 3

    assert [(e.action, e.version, e.user, e.reason) for e in reg.history("churn")
            if e.action in ("archive", "restore")] == [
        ("archive", 3, "frank", "leaky feature"), ("archive", 2, "hank", ""),
        ("restore", 3, "gina", "false alarm")]


def test_latest_with_every_version_archived(reg, churn_artifact):
    reg.register(churn_artifact)
    reg.archive("churn/1")
    with pytest.raises(NotFoundError, match="no unarchived version"):
        reg.resolve("churn@latest")


def test_rollback_refuses_an_archived_target(reg, churn_artifact):
    _register(reg, churn_artifact, 2)
    reg.promote("churn/1", "production")
    reg.promote("churn/2", "production")
    reg.archive("churn/1")
    with pytest.raises(ConflictError, match="archived"):
        reg.rollback("churn", "production")
    assert reg.resolve("churn").version == 2


# --- another client acting between a check and the write ----------------------------------
# A second Registry (its own engine and connections, like another process) acts at the exact
# moment after the first one has read the registry's state and before it writes.


def test_archive_between_promote_check_and_write_is_caught(open_registry, churn_artifact,
                                                           monkeypatch):
    reg, other = open_registry(), open_registry()
    _register(reg, churn_artifact, 2)
    reg.promote("churn/1", "production")
    real_move = reg._move

    def archive_in_between(*args, **kw):
        other.archive("churn/2", reason="pulled", user="other")
        return real_move(*args, **kw)

    monkeypatch.setattr(reg, "_move", archive_in_between)
    with pytest.raises(ConflictError, match="archived"):
        reg.promote("churn/2", "production")
    monkeypatch.undo()
    # An archived version never holds an alias.
    v2 = reg.resolve("churn/2")
    assert (v2.status, v2.aliases) == ("archived", [])
    assert reg.resolve("churn").version == 1
    assert [e.action for e in reg.history("churn")][-2:] == ["promote", "archive"]


def test_alias_moved_away_and_back_during_rollback_is_caught(open_registry, churn_artifact,
                                                             monkeypatch):
    reg, other = open_registry(), open_registry()
    _register(reg, churn_artifact, 3)
    reg.promote("churn/1", "production")
    reg.promote("churn/2", "production")
    real_move = reg._move
    meddled = []

    def promote_in_between(name, alias, version, *args, **kw):
        if not meddled:  # production goes 2 -> 3 -> 2: same version, different history
            other.promote("churn/3", "production", user="other")
            other.promote("churn/2", "production", user="other")
            meddled.append(f"{name}/{version}")
        return real_move(name, alias, version, *args, **kw)

    monkeypatch.setattr(reg, "_move", promote_in_between)
    with pytest.raises(ConflictError, match="moved while rolling back"):
        reg.rollback("churn", "production")
    monkeypatch.undo()
    assert meddled == ["churn/1"]  # the stale target it computed
    assert reg.resolve("churn").version == 2
    # Rolled back now, production returns to where it was before its last promotion: 3.
    assert reg.rollback("churn", "production")["version"] == 3
    assert reg.rollback("churn", "production")["version"] == 2
    assert reg.rollback("churn", "production")["version"] == 1


# --- lineage ------------------------------------------------------------------------------


def test_lineage_records_training_data_metrics_and_libraries(reg, churn_artifact, churn_data):
    reg.register(churn_artifact)
    reg.promote("churn/1", "production")
    lin = reg.lineage("churn@production")
    assert (lin["model"], lin["version"]) == ("churn", 1)
    assert lin["manifest_sha256"] == reg.resolve("churn/1").manifest_sha256
    data = lin["training_data"]
    assert data["rows"] == len(churn_data) == 3000
    assert len(data["fingerprint"]) >= 16
    assert data["target"] == "churned"
    assert data["columns"] == [str(c) for c in churn_data.columns]
    assert lin["metrics"], "training metrics missing"
    assert all(k.startswith("training_") for k in lin["metrics"])
    assert all(isinstance(v, float) for v in lin["metrics"].values())
    libs = lin["libraries"]
    assert libs["scorehouse"] == scorehouse.__version__
    assert "scikit-learn" in libs and libs["python"].count(".") >= 1
    # The registry's copy is the artifact's own lineage, unchanged by the round trip.
    manifest = artifact_io.read(churn_artifact, trust=True).manifest.to_dict()
    assert {k: v for k, v in lin.items() if k not in ("model", "version", "manifest_sha256")} \
        == json.loads(json.dumps(manifest["lineage"]))
    with pytest.raises(NotFoundError):
        reg.lineage("churn/2")


# --- loading ------------------------------------------------------------------------------


def test_load_scores_like_the_artifact_file(reg, churn_artifact, features):
    _register(reg, churn_artifact, 2)
    reg.promote("churn/1", "production")
    scorer = reg.load("churn@production")
    assert (scorer.name, scorer.version, scorer.ref) == ("churn", 1, "churn@production")
    assert scorer.artifact.trusted_by == "registry"

    rows = features.head(300)
    got = scorer.predict(rows)
    want = scorehouse.load(churn_artifact, trust=True).predict(rows)
    assert got.n_scored == want.n_scored == 300 and got.n_rejected == 0
    pd.testing.assert_frame_equal(got.to_pandas(), want.to_pandas())
    assert got.to_pandas()["label"].nunique() > 1  # a real model, not a constant

    # The top-level entry point goes through the same registry.
    reg.promote("churn/2", "production")
    via_load = scorehouse.load("churn@production", registry=reg)
    assert via_load.version == 2
    pd.testing.assert_frame_equal(via_load.predict(rows).to_pandas(), want.to_pandas())


def test_top_level_load_takes_name_slash_version(reg, churn_artifact):
    _register(reg, churn_artifact, 2)
    assert scorehouse.load("churn/2", registry=reg).version == 2


def _other_valid_artifact(churn_artifact: Path, tmp_path: Path) -> bytes:
    art = artifact_io.read(churn_artifact, trust=True, check_versions=False)
    manifest = {k: v for k, v in art.manifest.to_dict().items() if k != "files"}
    manifest["description"] = "not the registered one"
    path = tmp_path / "other.shz"
    artifact_io.write(manifest, art.files, path)
    assert artifact_io.read(path, trust=True).manifest_sha256 != art.manifest_sha256
    return path.read_bytes()


def _edited_model_file(data: bytes) -> bytes:
    entries = _entries(data)
    model_file = next(n for n in entries if n.startswith("model/"))
    blob = bytearray(entries[model_file])
    blob[len(blob) // 2] ^= 0x01
    entries[model_file] = bytes(blob)
    return _rezip(entries)


def _flip(data: bytes, pos: int) -> bytes:
    b = bytearray(data)
    b[pos] ^= 0xFF
    return bytes(b)


TAMPERINGS = {
    # (how the stored file is changed, the error expected, what the message says)
    "swapped-for-another-valid-artifact": (IntegrityError, "does not match the registry's record"),
    "model-file-edited": (IntegrityError, "does not match its sha256"),
    "header-bytes-flipped": (ArtifactError, "not a zip file"),
    "end-of-archive-flipped": (ArtifactError, "not a zip file"),
    "truncated": (ArtifactError, "not a zip file"),
    "emptied": (ArtifactError, "not a zip file"),
}


@pytest.mark.parametrize("how", sorted(TAMPERINGS))
def test_tampered_stored_artifact_is_refused(reg, churn_artifact, features, tmp_path, how):
    _register(reg, churn_artifact, 2)
    reg.promote("churn/1", "production")
    mv = reg.resolve("churn/1")
    stored = Path(mv.artifact_uri)
    original = stored.read_bytes()
    reg.load("churn@production")  # loads fine before the tampering

    changed = {
        "swapped-for-another-valid-artifact": lambda: _other_valid_artifact(churn_artifact, tmp_path),
        "model-file-edited": lambda: _edited_model_file(original),
        "header-bytes-flipped": lambda: _flip(original, 0),
        "end-of-archive-flipped": lambda: _flip(original, original.rfind(b"PK\x05\x06")),
        "truncated": lambda: original[: len(original) // 2],
        "emptied": lambda: b"",
    }[how]()
    assert changed != original
    stored.write_bytes(changed)

    error, message = TAMPERINGS[how]
    for ref in ("churn@production", "churn/1", "churn/2", "churn"):
        with pytest.raises(error, match=message):
            reg.load(ref)
    with pytest.raises(error, match=message):
        reg.load_artifact("churn/2")
    with pytest.raises(error):
        scorehouse.load("churn@production", registry=reg)

    stored.write_bytes(original)  # put back, it loads again
    assert reg.load("churn@production").predict(features.head(5)).n_scored == 5


def _deflate_start(data: bytes, member: str) -> int:
    """Offset of the first byte of `member`'s compressed data in the zip `data`."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        offset = zf.getinfo(member).header_offset
    name_len, extra_len = struct.unpack("<HH", data[offset + 26:offset + 30])
    return offset + 30 + name_len + extra_len


def test_bits_flipped_inside_compressed_data_are_refused(reg, churn_artifact):
    reg.register(churn_artifact)
    stored = Path(reg.resolve("churn/1").artifact_uri)
    data = bytearray(stored.read_bytes())
    pos = _deflate_start(bytes(data), "model/model.pkl")
    assert data[pos] & 0x06 != 0x06  # a valid first deflate block is not of the reserved type
    data[pos] |= 0x06  # flip it to the reserved block type: the stream cannot be inflated
    stored.write_bytes(bytes(data))
    with pytest.raises(ArtifactError):
        reg.load_artifact("churn/1")


def test_missing_stored_artifact_is_not_found(reg, churn_artifact):
    reg.register(churn_artifact)
    reg.promote("churn/1", "production")
    stored = Path(reg.resolve("churn/1").artifact_uri)
    stored.unlink()
    with pytest.raises(NotFoundError, match="missing from the store"):
        reg.load("churn/1")
    with pytest.raises(NotFoundError, match="missing from the store"):
        reg.load_artifact("churn")
    with pytest.raises(NotFoundError, match="missing from the store"):
        scorehouse.load("churn@production", registry=reg)
    # Registering the artifact again puts the file back.
    assert reg.register(churn_artifact, allow_duplicate=True).artifact_uri == str(stored)
    assert reg.load("churn/1").version == 1


# --- migrations ---------------------------------------------------------------------------


def test_fresh_database_is_migrated_to_head(registry_url, open_registry, churn_artifact):
    raw = _raw_engine(registry_url)
    try:
        assert sa.inspect(raw).get_table_names() == []  # truly fresh
        reg = open_registry()
        assert migrate.head() == HEAD
        with raw.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() \
                == [HEAD]
            assert migrate.current(conn) == migrate.head()
        assert TABLES <= set(sa.inspect(raw).get_table_names())
        assert migrate.upgrade(reg.engine) == HEAD  # already at head: nothing to do

        reg.register(churn_artifact)
        reg.promote("churn/1", "production")
        reg.close()

        again = open_registry()  # opening an up-to-date registry again changes nothing
        third = open_registry()
        assert again.resolve("churn").version == 1
        assert third.register(churn_artifact, allow_duplicate=True).version == 2
        with raw.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() \
                == [HEAD]
    finally:
        raw.dispose()


# --- real processes racing ----------------------------------------------------------------


def _race(tmp_path: Path, specs: list[dict], timeout: float = 90.0) -> list:
    """Run one worker process per spec, start their writes together, return their outputs."""
    go = tmp_path / "go"
    procs = []
    for i, spec in enumerate(specs):
        spec = dict(spec, ready=str(tmp_path / f"ready-{i}"), go=str(go))
        procs.append(subprocess.Popen([sys.executable, str(WORKER), json.dumps(spec)],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                      env=os.environ.copy()))
    try:
        deadline = time.monotonic() + timeout
        while not all((tmp_path / f"ready-{i}").exists() for i in range(len(specs))):
            dead = [p for p in procs if p.poll() is not None]
            if dead:
                _, err = dead[0].communicate()
                pytest.fail(f"a worker died before starting:\n{err}")
            assert time.monotonic() < deadline, "workers did not start in time"
            time.sleep(0.01)
        go.touch()
        outputs = []
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert p.returncode == 0, f"worker failed (exit {p.returncode}):\n{err}"
            outputs.append(json.loads(out.strip().splitlines()[-1]))
        return outputs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.mark.parametrize("processes", [2, 8])
def test_processes_opening_a_fresh_registry_at_once_all_open(registry_url, tmp_path, processes):
    # Every process migrates a fresh database; on SQLite they also all switch it to WAL, and
    # SQLite answers one of two processes doing that at once "database is locked" without
    # waiting (waiting could deadlock): opening runs again instead of failing.
    specs = [{"mode": "open", "url": registry_url, "store": str(tmp_path / "store"),
              "user": f"worker-{i}"} for i in range(processes)]
    assert _race(tmp_path, specs) == [[]] * processes
    reg = Registry(registry_url, artifacts=str(tmp_path / "store"))
    try:
        with reg.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() \
                == [migrate.head()]
    finally:
        reg.close()


@pytest.mark.parametrize("then", ["freed", "other error"])
def test_when_free_runs_again_while_sqlite_answers_locked_without_waiting(tmp_path, then):
    import sqlite3
    import threading

    from scorehouse.registry.database import when_free

    db = tmp_path / "busy.db"
    holder = sqlite3.connect(db, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("INSERT INTO t VALUES (7)")
    holder.execute("BEGIN EXCLUSIVE")  # nobody else reads or writes until COMMIT
    engine = sa.create_engine(f"sqlite:///{db}", connect_args={"timeout": 0})  # no waiting
    attempts = []

    def work() -> int:
        attempts.append(1)
        table = "t" if then == "freed" else "missing"
        with engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT x FROM {table}")).scalar_one()

    release = threading.Timer(0.3, lambda: holder.execute("COMMIT"))
    release.start()
    try:
        if then == "freed":
            assert when_free(work, "cannot open registry") == 7
            assert len(attempts) > 1  # locked at first, then run again until free
        else:
            release.join()
            with pytest.raises(RegistryError, match=r"^cannot open registry: no such table"):
                when_free(work, "cannot open registry")
            assert len(attempts) == 1  # not busy: no second try
    finally:
        release.join()
        engine.dispose()
        holder.close()


def test_processes_registering_at_once_get_distinct_versions(registry_url, tmp_path, churn_artifact):
    workers, each = 6, 5
    store = tmp_path / "store"
    specs = [{"mode": "register", "url": registry_url, "store": str(store),
              "artifact": str(churn_artifact), "count": each, "user": f"worker-{i}"}
             for i in range(workers)]
    outputs = _race(tmp_path, specs)

    total = workers * each
    got = [v for out in outputs for v in out]
    assert sorted(got) == list(range(1, total + 1))  # distinct, and no gaps
    for out in outputs:
        assert len(out) == each and out == sorted(out)

    reg = Registry(registry_url, artifacts=str(store))
    try:
        listed = reg.versions("churn")
        assert [v.version for v in listed] == list(range(1, total + 1))
        by_user = {f"worker-{i}": outputs[i] for i in range(workers)}
        assert all(v.version in by_user[v.created_by] for v in listed)
        assert reg.models()[0]["versions"] == total
        history = reg.history("churn")
        assert [(e.action, e.version) for e in history] == [("register", v) for v in range(1, total + 1)]
        assert all(e.version in by_user[e.user] for e in history)
        assert reg.resolve("churn@latest").version == total
        with reg.engine.connect() as conn:  # one migration, however many raced to run it
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars().all() \
                == [migrate.head()]
    finally:
        reg.close()
    # One content-addressed file, and no temporary files left behind by the racing copies.
    assert [p.name for p in (store / "churn").iterdir()] == [f"{listed[0].manifest_sha256}.shz"]


def test_processes_promoting_at_once_keep_alias_and_history_consistent(
        registry_url, tmp_path, churn_artifact):
    store = tmp_path / "store"
    reg = Registry(registry_url, artifacts=str(store))
    try:
        assert _register(reg, churn_artifact, 4) == [1, 2, 3, 4]
        workers, each = 5, 6
        specs = [{"mode": "promote", "url": registry_url, "store": str(store), "name": "churn",
                  "alias": "production", "user": f"worker-{i}", "pause": 0.03,
                  "versions": [(i + k) % 4 + 1 for k in range(each)]} for i in range(workers)]
        outputs = _race(tmp_path, specs)

        moves = [m for out in outputs for m in out]
        assert len(moves) == workers * each
        for m in moves:
            assert m["changed"] == (m["from_version"] != m["version"])
        promotes = [e for e in reg.history("churn") if e.action == "promote"]
        assert promotes == reg.history("churn", "production")
        # Every change was recorded exactly once, and the events form one unbroken chain.
        assert len(promotes) == sum(m["changed"] for m in moves) >= 1
        assert promotes[0].from_version is None
        for prev, ev in zip(promotes, promotes[1:], strict=False):
            assert ev.from_version == prev.version
            assert ev.version != ev.from_version
        assert Counter((e.user, e.version, e.from_version) for e in promotes) == Counter(
            (f"worker-{i}", m["version"], m["from_version"])
            for i, out in enumerate(outputs) for m in out if m["changed"])
        assert all(e.reason == f"{e.user} -> {e.version}" for e in promotes)

        final = reg.resolve("churn")
        assert final.version == promotes[-1].version
        assert final.version in {m["version"] for m in moves}
        assert reg.models()[0]["aliases"] == {"production": final.version}
        assert [v.version for v in reg.versions("churn") if v.aliases] == [final.version]
        # Rollback still walks the recorded history.
        if len(promotes) >= 2:
            assert reg.rollback("churn", "production")["version"] == promotes[-2].version
    finally:
        reg.close()


# --- registering the same or a different model again ----------------------------------------


def test_the_same_artifact_twice_is_a_new_version_or_refused_naming_its_version(
        reg, churn_artifact):
    reg.register(churn_artifact)
    with pytest.raises(ConflictError, match=r"already registered as churn/1 .*--refuse-duplicate"):
        reg.register(churn_artifact, allow_duplicate=False)
    assert [v.version for v in reg.versions("churn")] == [1]  # nothing was written
    assert reg.register(churn_artifact).version == 2  # as MLflow does: a new version
    assert [e.action for e in reg.history("churn")] == ["register", "register"]


def test_a_version_keeps_the_artifacts_description(reg, tmp_path, churn_model, churn_data):
    from scorehouse.demo.data import TARGET

    path = scorehouse.package(churn_model, churn_data, name="churn", target=TARGET,
                              path=tmp_path / "described.shz", description="monthly churn")
    assert reg.register(path).description == "monthly churn"
    assert reg.versions("churn")[0].description == "monthly churn"
    again = reg.register(path, description="re-checked", allow_duplicate=True)
    assert again.description == "re-checked"  # a note given at registration wins


def _small_model(tmp_path: Path, frame: pd.DataFrame, target: str) -> Path:
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    inputs = frame.drop(columns=[target])
    numbers = [c for c in inputs.columns if pd.api.types.is_numeric_dtype(inputs[c])]
    text = [c for c in inputs.columns if c not in numbers]
    pipe = make_pipeline(make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="constant", fill_value="?"),
                       OneHotEncoder(handle_unknown="ignore")), text),
        (SimpleImputer(), numbers)), LogisticRegression(max_iter=500))
    pipe.fit(inputs, frame[target])
    return scorehouse.package(pipe, frame, name="churn", target=target, compile=False,
                              path=tmp_path / f"small-{len(frame.columns)}.shz")


@pytest.mark.parametrize(("columns", "disjoint", "expected"), [
    # A different model under the same name: nothing in common.
    (lambda df: pd.DataFrame({"x": df["tenure"] * 1.0, "kind": df["plan"]}), True,
     ["+ x", "+ kind"]),
    # A column dropped, one added, one changed type, one with a narrower category set.
    (lambda df: df.drop(columns=["age"]).assign(score=df["age"] * 0.5,
                                                tenure=df["tenure"].astype(str),
                                                region=df["region"].where(df["region"] != "north",
                                                                          "south")),
     False, ["+ score", "- age", "~ tenure: type integer -> string", "~ region: categories"]),
])
def test_a_new_versions_schema_is_compared_with_the_previous_one(
        reg, tmp_path, churn_artifact, churn_data, columns, disjoint, expected):
    from scorehouse.demo.data import TARGET

    reg.register(churn_artifact)
    assert not reg.schema_diff("churn/1", "churn/1")
    frame = columns(churn_data.drop(columns=[TARGET])).assign(**{TARGET: churn_data[TARGET]})
    v2 = reg.register(_small_model(tmp_path, frame.head(400), TARGET))
    diff = reg.schema_diff("churn/1", v2.ref)
    assert diff and diff.disjoint == disjoint
    lines = diff.lines()
    for fragment in expected:
        assert any(line.startswith(fragment) for line in lines), (fragment, lines)


def test_lineage_keeps_a_pipelines_parameters_as_a_tree(reg, churn_artifact):
    reg.register(churn_artifact)
    params = reg.lineage("churn/1")["params"]
    (prep_name, prep), (model_name, model) = params["steps"]
    assert prep["estimator"] == "sklearn.compose._column_transformer.ColumnTransformer"
    [num, *_] = prep["params"]["transformers"]
    assert num[1]["estimator"] == "sklearn.pipeline.Pipeline"
    assert num[1]["params"]["steps"][0][1]["params"]["strategy"] == "median"
    assert isinstance(model["params"], dict) and model["estimator"].startswith("sklearn.")

    def texts(v):
        if isinstance(v, str):
            yield v
        elif isinstance(v, dict):
            for x in v.values():
                yield from texts(x)
        elif isinstance(v, list):
            for x in v:
                yield from texts(x)

    assert not [t for t in texts(params) if "\n" in t]  # no multi-line reprs
