"""`scorehouse.connections`: PostgreSQL and Redis opened in one place, against real servers and
real unreachable ports, and the one error every channel raises when they cannot be used."""

from __future__ import annotations

import socket

import pytest

from scorehouse import connections
from scorehouse.errors import ConnectionFailedError, ScorehouseError


def _closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_masked_hides_only_the_password():
    assert connections.masked("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert connections.masked("redis://:s3cret@h:6379/2") == "redis://:***@h:6379/2"
    assert connections.masked("postgresql://u@h/db") == "postgresql://u@h/db"
    assert connections.masked("host=h user=u password=s3cret dbname=d") == \
        "host=h user=u password=*** dbname=d"
    assert connections.masked("host=h password='a b' dbname=d") == "host=h password=*** dbname=d"


def test_postgres_on_a_closed_port_says_where_and_what_to_check():
    url = f"postgresql://scorer:s3cret@127.0.0.1:{_closed_port()}/crm"
    with pytest.raises(ConnectionFailedError) as e:
        connections.postgres(url, role="the profiles' database", timeout=2)
    text = str(e.value)
    assert "s3cret" not in text and f"scorer:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in text
    assert text.startswith("cannot connect to the profiles' database (PostgreSQL at ")
    assert "refused" in text.lower() and "Check that the server runs" in text
    assert "\n" not in text and isinstance(e.value, ScorehouseError) and e.value.exit_code == 1


def test_postgres_names_a_database_that_does_not_exist(pg_server):
    base = pg_server.rsplit("/", 1)[0]
    with pytest.raises(ConnectionFailedError, match='database "no_such_db_x1" does not exist'):
        connections.postgres(f"{base}/no_such_db_x1")


def test_postgres_opens_every_accepted_url_form(pg_server):
    rest = pg_server.split("://", 1)[1]
    for url in (pg_server, f"postgres://{rest}", f"postgresql+psycopg://{rest}"):
        with connections.postgres(url, autocommit=True) as conn:
            assert conn.autocommit and conn.execute("SELECT 1").fetchone() == (1,)
    with connections.postgres(pg_server) as conn:
        assert not conn.autocommit


def test_redis_on_a_closed_port_says_where_and_what_to_check():
    url = f"redis://:s3cret@127.0.0.1:{_closed_port()}/0"
    with pytest.raises(ConnectionFailedError) as e:
        connections.redis(url, timeout=2)
    text = str(e.value)
    assert "s3cret" not in text and text.startswith("cannot reach Redis at redis://:***@127.0.0.1")
    assert "refused" in text.lower() and "database number and password" in text


def test_redis_refuses_a_url_that_is_not_redis():
    with pytest.raises(ConnectionFailedError, match="cannot reach Redis at http://"):
        connections.redis("http://127.0.0.1:6379/0")


def test_redis_answers_on_a_real_server_and_names_a_bad_database(redis_url):
    client = connections.redis(redis_url, health_check_interval=10)
    assert client.ping() is True
    client.close()
    with pytest.raises(ConnectionFailedError, match="cannot reach the score cache"):
        connections.redis(redis_url.rsplit("/", 1)[0] + "/99999", role="the score cache")


def test_every_channel_raises_the_one_error(tmp_path):
    from scorehouse.batch.cache import RedisSink
    from scorehouse.batch.database import connect
    from scorehouse.sql.worker import Worker
    from scorehouse.stream.redis_streams import connect as stream_connect

    port = _closed_port()
    calls = [lambda: connect(f"postgresql://u:pw@127.0.0.1:{port}/x"),
             lambda: Worker(f"postgresql://u:pw@127.0.0.1:{port}/x", "churn"),
             lambda: RedisSink(f"redis://127.0.0.1:{port}/0", key="k", model="m", version=1,
                               fields=["p"]),
             lambda: stream_connect(f"redis://127.0.0.1:{port}/0")]
    for call in calls:
        with pytest.raises(ConnectionFailedError, match=f"127.0.0.1:{port}"):
            call()
