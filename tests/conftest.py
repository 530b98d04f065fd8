"""Shared fixtures: an isolated SCOREHOUSE_HOME, real PostgreSQL databases, a trained model."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

import scorehouse
from scorehouse.demo import churn_frame, train_pipeline
from scorehouse.demo.data import TARGET

PG_URL = os.environ.get("SCOREHOUSE_TEST_PG",
                        "postgresql://postgres:postgres@127.0.0.1:5432/postgres")
IN_CI = os.environ.get("CI") == "true"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREHOUSE_HOME", str(tmp_path / "home"))
    for var in ("SCOREHOUSE_REGISTRY", "SCOREHOUSE_ARTIFACTS", "SCOREHOUSE_SIGNING_KEY",
                "SCOREHOUSE_DEBUG"):
        monkeypatch.delenv(var, raising=False)


def _pg_connect(url: str):
    import psycopg

    return psycopg.connect(url, connect_timeout=5, autocommit=True)


def unreachable(service: str, url: str, error: Exception) -> None:
    """A missing service fails the test under CI=true and skips it otherwise."""
    msg = f"{service} not reachable at {url}: {error}"
    if IN_CI:
        pytest.fail(msg + " (CI=true: run scripts/services.sh)", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of a reachable PostgreSQL; fails (never skips) under CI=true."""
    try:
        _pg_connect(PG_URL).close()
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        unreachable("PostgreSQL", PG_URL, e)
    return PG_URL


REDIS_URL = os.environ.get("SCOREHOUSE_TEST_REDIS", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A reachable Redis (database 15, flushed); fails (never skips) under CI=true."""
    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
        client.flushdb()
        client.close()
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        unreachable("Redis", REDIS_URL, e)
    return REDIS_URL


@pytest.fixture
def r(redis_url):
    """A client of the test Redis database, flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def pg_url(pg_server) -> str:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"sh_test_{uuid.uuid4().hex[:12]}"
    with _pg_connect(pg_server) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_server.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with _pg_connect(pg_server) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def registry_url(request, tmp_path) -> str:
    """Each registry test runs against SQLite and against real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def churn_data():
    """A small churn training frame (numeric + categorical columns, missing values)."""
    return churn_frame(3000, seed=3)


@pytest.fixture(scope="session")
def churn_model(churn_data):
    """The demo's scikit-learn pipeline, trained on `churn_data`."""
    return train_pipeline(churn_data)


@pytest.fixture(scope="session")
def churn_artifact(tmp_path_factory, churn_data, churn_model) -> Path:
    """A packaged churn artifact (.shz)."""
    path = tmp_path_factory.mktemp("artifacts") / "churn.shz"
    return scorehouse.package(churn_model, churn_data, name="churn", target=TARGET, path=path)


@pytest.fixture
def scorer(churn_artifact):
    """The churn artifact, loaded."""
    return scorehouse.load(churn_artifact, trust=True)


@pytest.fixture
def features(churn_data):
    """The churn inputs without the target."""
    return churn_data.drop(columns=[TARGET])
