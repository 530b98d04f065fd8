"""Streaming scoring: events in, profile lookup and update, score, write back, acknowledge."""

from .events import Event
from .redis_streams import RedisEvents, RedisProfiles
from .reducers import from_spec, load_reducer
from .worker import Events, Profiles, Stats, StreamWorker

__all__ = ["StreamWorker", "Stats", "Event", "Events", "Profiles", "RedisEvents", "RedisProfiles",
           "from_spec", "load_reducer"]
