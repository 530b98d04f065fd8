"""What every event source hands the worker: an `Event`; what the worker needs of a source
(`Events`); and the shape of a message body."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .order import Position

#: Sends `(entity, record)` pairs to a named output stream of the source's broker.
Publish = Callable[[str, list[tuple[str, Mapping[str, Any]]]], None]


@dataclass
class Event:
    """One stream entry: its id, its fields, how often it was delivered, its place in the
    stream (the order its entity's events take effect in; see `order`), and when the broker
    took it.

    `published_ms` is set by each source from its transport, in milliseconds since the Unix
    epoch: the Redis entry id's time part, the NATS JetStream metadata timestamp, the Kafka
    message timestamp (None when the message has none). The worker's lag metric is the time
    from there to the score written; the id is only an identity.
    """

    id: str
    fields: dict[str, str]
    deliveries: int = 1
    position: Position | None = None
    published_ms: int | None = None


class Events(Protocol):
    """What the worker needs of an event source (Redis Streams, NATS JetStream, Kafka)."""

    stream: str
    consumer: str

    @property
    def transient(self) -> tuple[type[Exception], ...]:
        """Errors of a server restarting: the worker waits and carries on."""

    def read(self, count: int, block_ms: int) -> list[Event]: ...
    def deliveries(self, event_id: str) -> int: ...
    def ack(self, ids: list[str]) -> None: ...
    def dead_letter(self, event: Event, reason: str) -> None: ...
    def publish(self, stream: str, entries: list[tuple[str, Mapping[str, Any]]]) -> None: ...


def body_fields(data: bytes) -> dict[str, str]:
    """A message body as event fields: a JSON object goes under `data`, as Redis events do."""
    try:
        fields = json.loads(data)
    except ValueError:
        # Kept as text, so the worker can name what is wrong when it dead-letters it.
        return {"data": data.decode("utf-8", "replace")}
    if not isinstance(fields, dict):
        return {"data": data.decode()}
    if "data" in fields or "payload" in fields:
        return fields
    return {"data": json.dumps(fields)}


def json_body(record: Mapping[str, Any]) -> bytes:
    """A record as a JSON message body (values JSON cannot hold become text)."""
    return json.dumps(record, default=str).encode()


def dead_record(event: Event, reason: str) -> dict[str, Any]:
    """What a dead-letter stream keeps of a poison event: its fields, id, reason, deliveries."""
    return {**event.fields, "_event_id": event.id, "_reason": reason,
            "_deliveries": event.deliveries}
