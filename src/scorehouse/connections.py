"""Connections to PostgreSQL and Redis: opened, checked and explained in one place.

Every channel that talks to one of these servers (batch tables and score caches, the SQL
functions and their worker, stream profiles and events) opens it here, so a server that is
down, a wrong port or a wrong password reads the same everywhere: one `ConnectionFailedError`
naming the URL (its password masked), the driver's reason and what to check.

Both drivers are optional extras, imported on first use.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from .errors import ConnectionFailedError, ScorehouseError

#: Seconds to wait for a server to accept the connection.
POSTGRES_TIMEOUT = 10
REDIS_TIMEOUT = 5


def masked(url: str) -> str:
    """`url` with its password replaced by `***` (URLs and libpq `key=value` strings)."""
    if "://" not in url:
        return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", url)
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return url.replace(parts.netloc, netloc, 1)
    return url


def _explained(error: Exception, advice: str = "") -> str:
    """The driver's message on one line, then `advice` as its own sentence."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    reason = "; ".join(lines).rstrip(".") or type(error).__name__
    if not advice:
        return reason
    return reason + (" " if reason.endswith("?") else ". ") + advice


def postgres(url: str, *, autocommit: bool = False, role: str = "the database",
             timeout: float = POSTGRES_TIMEOUT) -> Any:
    """An open psycopg connection to the PostgreSQL server of `url`.

    Args:
        url: `postgresql://user:password@host:port/db` (`postgres://` and SQLAlchemy's
            `postgresql+psycopg://` are accepted too) or a libpq `key=value` string.
        autocommit: the connection's autocommit mode.
        role: what the database is for, as error messages name it ("the profiles' database").
        timeout: seconds to wait for the server.

    Returns a `psycopg.Connection`.

    Raises:
        ConnectionFailedError: the server cannot be reached or refuses the connection
            (the message names the masked URL and what to check).
        ScorehouseError: psycopg is not installed.
    """
    try:
        import psycopg
    except ImportError:  # pragma: no cover - an optional extra
        raise ScorehouseError("PostgreSQL needs the psycopg package: "
                              "pip install 'scorehouse[postgres]'") from None
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            url = "postgresql://" + url[len(prefix):]
    try:
        return psycopg.connect(url, connect_timeout=max(1, round(timeout)), autocommit=autocommit)
    except psycopg.Error as e:
        raise ConnectionFailedError(
            f"cannot connect to {role} (PostgreSQL at {masked(url)}): " + _explained(
                e, "Check that the server runs and accepts connections there, and the URL's "
                "host, port, database, user and password")) from None


def redis(url: str, *, role: str = "Redis", timeout: float = REDIS_TIMEOUT,
          health_check_interval: int = 0) -> Any:
    """A Redis client for `url` (bytes in, bytes out) that has answered a PING.

    Args:
        url: `redis://[:password@]host:port/db` (or `rediss://`, `unix://`).
        role: what the server is for, as error messages name it.
        timeout: seconds to wait for the server to accept the connection.
        health_check_interval: seconds after which an idle connection is checked before use
            (0: never).

    Returns a `redis.Redis`.

    Raises:
        ConnectionFailedError: the URL is not a Redis URL, or the server cannot be reached,
            refuses the password or does not answer.
        ScorehouseError: the redis package is not installed.
    """
    try:
        import redis as redis_py
    except ImportError:  # pragma: no cover - an optional extra
        raise ScorehouseError("Redis needs the redis package: pip install 'scorehouse[redis]'"
                              ) from None
    where = f"{role} (Redis at {masked(url)})" if role != "Redis" else f"Redis at {masked(url)}"
    try:
        client = redis_py.Redis.from_url(url, socket_connect_timeout=timeout,
                                         health_check_interval=health_check_interval)
        client.ping()
    except ValueError as e:  # from_url: not a redis://, rediss:// or unix:// URL
        raise ConnectionFailedError(f"cannot reach {where}: {_explained(e)}") from None
    except redis_py.RedisError as e:
        raise ConnectionFailedError(
            f"cannot reach {where}: " + _explained(
                e, "Check that the server runs there, and the URL's host, port, database number "
                "and password")) from None
    return client


__all__ = ["postgres", "redis", "masked", "POSTGRES_TIMEOUT", "REDIS_TIMEOUT"]
