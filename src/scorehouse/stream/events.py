"""What every event source hands the worker: an `Event`, and the shape of a message body."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .order import Position

#: Sends `(entity, record)` pairs to a named output stream of the source's broker.
Publish = Callable[[str, list[tuple[str, Mapping[str, Any]]]], None]


@dataclass
class Event:
    """One stream entry: its id, its fields, how often it was delivered, and its place in the
    stream (the order its entity's events take effect in; see `order`)."""

    id: str
    fields: dict[str, str]
    deliveries: int = 1
    position: Position | None = None


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
