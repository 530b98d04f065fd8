"""From the URLs a user typed to an event source, a profile store and an output stream name.

Where the output stream lives follows from where the profiles live: with Redis profiles it
is a stream of the profiles' server, written in the same atomic step as the profile; with
PostgreSQL profiles it is a stream, subject or topic of the source's broker, fed from the
table's outbox after each commit.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import ScorehouseError
from .events import Events
from .profiles import Profiles

POSTGRES_SCHEMES = ("postgresql", "postgres")


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.split("+")[0]


def open_events(url: str, group: str, consumer: str, *, claim_idle_ms: int = 30_000) -> Events:
    """A consumer in `group` of redis://…?stream=, nats://…?subject= or kafka://…?topic=."""
    scheme = _scheme(url)
    if scheme in ("redis", "rediss"):
        from .redis_streams import RedisEvents
        return RedisEvents(url, group, consumer, claim_idle_ms=claim_idle_ms)
    if scheme == "nats":
        from .nats_events import NatsEvents
        return NatsEvents(url, group, consumer, claim_idle_ms=claim_idle_ms)
    if scheme == "kafka":
        from .kafka_events import KafkaEvents
        return KafkaEvents(url, group, consumer, claim_idle_ms=claim_idle_ms)
    raise ScorehouseError(f"unsupported event source {url!r}: use redis://…?stream=NAME, "
                          "nats://…?subject=NAME or kafka://…?topic=NAME")


def profiles_url(profiles: str | None, source: str) -> str:
    """--profiles, or the source's Redis server when the source is Redis."""
    if profiles:
        return profiles
    if _scheme(source) in ("redis", "rediss"):
        return source.split("?", 1)[0]
    raise ScorehouseError("a NATS or Kafka source needs --profiles redis://… or "
                          "postgresql://…?table=NAME")


def open_profiles(url: str, events: Events, *, key: str, prefix: str = "profile:") -> Profiles:
    """Redis hashes `<prefix><key>` (redis://) or rows of a table (postgresql://…?table=)."""
    scheme = _scheme(url)
    if scheme in POSTGRES_SCHEMES:
        from .postgres_profiles import PostgresProfiles
        return PostgresProfiles(url, key, publish=events.publish)
    if scheme in ("redis", "rediss"):
        from .redis_streams import RedisProfiles, StreamURL
        return RedisProfiles(StreamURL.parse(url).client, prefix)
    raise ScorehouseError(f"unsupported profile store {url!r}: use redis://host:6379/0 or "
                          "postgresql://user@host/db?table=NAME")


def output_server(profiles: str, source: str) -> str:
    """The server the output stream goes to: the profiles' Redis, else the source's broker."""
    return source if _scheme(profiles) in POSTGRES_SCHEMES else profiles


def output_stream(sink: str | None, server: str, default: str) -> str:
    """The output stream's name from --sink: a bare name, or a URL on `server`."""
    if not sink:
        return default
    if "://" not in sink:
        return sink
    if sink.split("?", 1)[0] != server.split("?", 1)[0]:
        raise ScorehouseError(f"--sink {sink} must be on {server.split('?', 1)[0]}, where the "
                              "output stream goes (the profiles' Redis, or with PostgreSQL "
                              "profiles the source's broker); or give a bare name")
    params = parse_qs(urlsplit(sink).query)
    for name in ("stream", "subject", "topic"):
        if params.get(name):
            return params[name][-1]
    return default


def default_output(events: Any, server: str, suffix: str) -> str:
    """`<source>:<suffix>` on Redis; `<source>.<suffix>` on NATS and Kafka (no ':' in topics)."""
    sep = ":" if _scheme(server) in ("redis", "rediss") else "."
    return f"{events.stream}{sep}{suffix}"
