"""Redis Streams as the event source, Redis hashes as profiles, a stream as the output.

Events are read with a consumer group (XREADGROUP), stuck ones of dead consumers are
reclaimed (XAUTOCLAIM), and an event is acknowledged only after its effect is written.
The effect is written by one Lua script that checks, atomically, that the event was not
applied before (a per-entity set of event ids) and that the profile did not change since
it was read (its `_version` field holds the id of the last event applied); so a
redelivered event never counts twice, and no write is based on a stale read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .. import connections
from ..errors import ScorehouseError
from .events import Event, dead_record
from .order import POSITIONS, Position
from .profiles import SEEN_TTL, Applied, Effect, Outcome, Stored, text_value

# KEYS: profile hash, seen set, output stream.
# ARGV: expected version, event id, seen ttl, n profile pairs, pairs..., output pairs...
APPLY = """
if redis.call('SISMEMBER', KEYS[2], ARGV[2]) == 1 then return 0 end
local v = redis.call('HGET', KEYS[1], '_version') or ''
if v ~= ARGV[1] then return -1 end
local n = tonumber(ARGV[4])
local fields = {}
for i = 5, 4 + 2 * n do fields[#fields + 1] = ARGV[i] end
if n > 0 then redis.call('HSET', KEYS[1], unpack(fields)) end
redis.call('HSET', KEYS[1], '_version', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[3]))
local out = {}
for i = 5 + 2 * n, #ARGV do out[#out + 1] = ARGV[i] end
if #out > 0 then redis.call('XADD', KEYS[3], '*', unpack(out)) end
return 1
"""


@dataclass
class StreamURL:
    """redis://host:port/db?stream=events[&group=scorers]: the client URL and stream name."""

    client: str
    stream: str | None
    params: dict[str, str]

    @classmethod
    def parse(cls, url: str, default_stream: str | None = None) -> StreamURL:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ScorehouseError(f"expected a redis:// URL, got {url!r}")
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        client = url.split("?", 1)[0]
        return cls(client, params.pop("stream", default_stream), params)


def connect(url: str) -> Any:
    """A Redis client (bytes in, bytes out) that has answered a PING."""
    return connections.redis(url, health_check_interval=10)


class RedisEvents:
    """A consumer in a group of a Redis stream."""

    def __init__(self, url: str, group: str, consumer: str, *, claim_idle_ms: int = 30_000):
        where = StreamURL.parse(url)
        if not where.stream:
            raise ScorehouseError("the source needs ?stream=NAME, e.g. redis://host/0?stream=events")
        self.stream, self.group, self.consumer = where.stream, group, consumer
        self.claim_idle_ms = claim_idle_ms
        self.r = connect(where.client)
        import redis

        try:
            self.r.xgroup_create(self.stream, group, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._claim_from = "0-0"

    def read(self, count: int, block_ms: int) -> list[Event]:
        """Stuck events reclaimed from dead consumers first, then new ones."""
        claimed = self._reclaim(count)
        if claimed:
            return claimed
        reply = self.r.xreadgroup(self.group, self.consumer, {self.stream: ">"}, count=count,
                                  block=block_ms)
        return [_event(i, f) for _, entries in reply or [] for i, f in entries]

    def _reclaim(self, count: int) -> list[Event]:
        nxt, entries, *_ = self.r.xautoclaim(self.stream, self.group, self.consumer,
                                             self.claim_idle_ms, self._claim_from, count=count)
        self._claim_from = nxt.decode() if isinstance(nxt, bytes) else str(nxt)
        events = [_event(i, f or {}) for i, f in entries]
        if events:
            pending = self.r.xpending_range(self.stream, self.group, events[0].id,
                                            events[-1].id, len(events) * 2)
            times = {p["message_id"].decode(): p["times_delivered"] for p in pending}
            for e in events:
                e.deliveries = times.get(e.id, 1)
        return events

    def deliveries(self, event_id: str) -> int:
        """How many times an event has been delivered (for the dead-letter decision)."""
        p = self.r.xpending_range(self.stream, self.group, event_id, event_id, 1)
        return p[0]["times_delivered"] if p else 1

    def ack(self, ids: list[str]) -> None:
        """Acknowledge events whose effect is written."""
        if ids:
            self.r.xack(self.stream, self.group, *ids)

    def dead_letter(self, event: Event, reason: str) -> None:
        """Move a poison event to `<stream>:dead` with the reason, and acknowledge it."""
        pipe = self.r.pipeline()
        pipe.xadd(f"{self.stream}:dead", dead_record(event, reason))
        pipe.xack(self.stream, self.group, event.id)
        pipe.execute()

    def publish(self, stream: str, entries: list[tuple[str, Mapping[str, Any]]]) -> None:
        """Append records to a stream of this server (the output when profiles live elsewhere)."""
        pipe = self.r.pipeline(transaction=False)
        for _, record in entries:
            pipe.xadd(stream, {k: text_value(v) for k, v in record.items()})
        pipe.execute()

    @property
    def transient(self) -> tuple[type[Exception], ...]:
        """Errors of a Redis restarting: the worker waits and carries on."""
        import redis

        return (redis.ConnectionError, redis.TimeoutError)


class RedisProfiles:
    """Profiles as Redis hashes `<prefix><entity>`; writes are compare-and-set per event."""

    transient = RedisEvents.transient

    def __init__(self, url: str, prefix: str = "profile:"):
        self.r = connect(StreamURL.parse(url).client)
        self.prefix = prefix
        self._apply = self.r.register_script(APPLY)

    def entity_problem(self, entity: str) -> str | None:
        """Why `entity` cannot name a profile: never, any text names a hash."""
        return None

    def fetch(self, entities: list[str]) -> dict[str, Stored]:
        """entity -> (version, fields) for each entity (empty profile when absent)."""
        pipe = self.r.pipeline(transaction=False)
        for e in entities:
            pipe.hgetall(self.prefix + e)
        out = {}
        for e, raw in zip(entities, pipe.execute(), strict=True):
            fields: dict[str, Any] = _text(raw)
            out[e] = Stored(fields.pop("_version", ""), fields)
        return out

    def _call(self, effect: Effect) -> tuple[list, list]:
        entity, version, event_id, profile, output_stream, output = effect
        pairs: list[Any] = []
        for k, v in profile.items():
            # "_" fields are the store's own, but for the positions the worker keeps.
            if (k == POSITIONS or not k.startswith("_")) and v is not None:
                pairs += [k, text_value(v)]
        out: list[Any] = []
        if output_stream:
            for k, v in output.items():
                out += [k, text_value(v)]
        keys = [self.prefix + entity, f"{self.prefix}{entity}:_seen",
                output_stream or f"{self.prefix}_unused"]
        return keys, [version, event_id, SEEN_TTL, len(pairs) // 2, *pairs, *out]

    def apply(self, effect: Effect) -> Applied:
        """Write one event's effect atomically: written, already applied, or a conflict
        (`effect.version` is not the profile's `_version` any more: another writer's).
        Redis takes any text, so it never refuses an effect."""
        keys, args = self._call(effect)
        return Outcome(int(self._apply(keys=keys, args=args)))

    def apply_many(self, effects: list[Effect]) -> list[Applied]:
        """`apply` for many events in one round trip, in order."""
        pipe = self.r.pipeline(transaction=False)
        for effect in effects:
            keys, args = self._call(effect)
            self._apply(keys=keys, args=args, client=pipe)
        return [Outcome(int(x)) for x in pipe.execute()]


def _event(entry_id: bytes, fields: Mapping[Any, Any]) -> Event:
    """A stream entry as an Event; its id `<ms>-<seq>` is its position (one partition), and
    `<ms>` the time Redis appended it."""
    eid = entry_id.decode()
    ms, _, seq = eid.partition("-")
    return Event(eid, _text(fields), position=Position(0, (int(ms), int(seq or 0))),
                 published_ms=int(ms))


def _text(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {(k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes)
                                                          else v) for k, v in raw.items()}
