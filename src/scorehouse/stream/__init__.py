"""Streaming scoring: events in, profile lookup and update, score, write back, acknowledge.

The entry point is `open_worker(scorer, WorkerOptions(...))`, which returns a `StreamWorker`.
"""

from .events import Event, Events
from .launch import WorkerOptions, open_worker
from .profiles import Effect, Outcome, Profiles, Refused, Stored
from .redis_streams import RedisEvents, RedisProfiles
from .reducers import from_spec, load_reducer
from .worker import Stats, StreamWorker

__all__ = ["open_worker", "WorkerOptions", "StreamWorker", "Stats", "Event", "Events",
           "Profiles", "Effect", "Outcome", "Refused", "Stored", "RedisEvents", "RedisProfiles",
           "from_spec", "load_reducer"]
