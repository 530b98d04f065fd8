"""Streaming scoring: events in, profile lookup and update, score, write back, acknowledge."""

from .redis_streams import RedisEvents, RedisProfiles
from .reducers import from_spec, load_reducer
from .worker import Stats, StreamWorker

__all__ = ["StreamWorker", "Stats", "RedisEvents", "RedisProfiles", "from_spec", "load_reducer"]
