"""Stream order per entity, whatever order events arrive in.

A retried event (refused once, then delivered again) or one reclaimed from a dead worker
reaches the profile after newer events of the same entity. Its counts and sums still apply
(exactly once: the stores refuse an event id seen before), and they do not depend on the
order. A "last" field is different: it must end up with the value of the newest event that
set it. So the profile keeps, in its `_positions` field, where in the stream each such field
was last set (and `*`: the newest event applied at all), and an older event's value for a
field a newer event already set is dropped. The profile then equals the in-order fold of
the events applied so far, in any arrival order.

A `Position` is an event's place in its source: a Redis entry id, a NATS stream sequence
(its "partition" is the stream's creation time, as sequences start again in a stream made
anew), a Kafka (partition, offset). Kafka orders only within a partition: an entity's events
are in order when they are produced with the entity as the message key (one partition each).
Two positions of different partitions have no order; the later arrival wins, as before.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: The profile field holding {field: position text}, plus NEWEST: the newest event applied.
POSITIONS = "_positions"
NEWEST = "*"


@dataclass(frozen=True, order=True)
class Position:
    """Where an event sits in its source; within one partition, a larger offset is newer.

    `offset` is a tuple of integers: (milliseconds, sequence) for a Redis entry id, (stream
    sequence,) for NATS, (offset,) for Kafka.
    """

    partition: int
    offset: tuple[int, ...]

    def __str__(self) -> str:
        return f"{self.partition}:{'-'.join(map(str, self.offset))}"

    @classmethod
    def parse(cls, text: str) -> Position | None:
        """The position `str()` wrote, or None for text that is not one."""
        partition, sep, offset = str(text).partition(":")
        try:
            return cls(int(partition), tuple(int(x) for x in offset.split("-"))) if sep else None
        except ValueError:
            return None

    def after(self, other: Position | None) -> bool:
        """True when an event here comes after one at `other` (None: nothing yet).

        Another partition has no order with this one: the event that arrives later counts
        as the newer one.
        """
        return other is None or other.partition != self.partition or self.offset > other.offset


def positions_of(profile: Mapping[str, Any]) -> dict[str, Position]:
    """The positions a stored profile keeps (its `_positions` field: JSON text or a dict)."""
    raw = profile.get(POSITIONS)
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    if not isinstance(raw, dict):
        return {}
    out = {}
    for field, text in raw.items():
        p = Position.parse(text)
        if p is not None:
            out[field] = p
    return out


def settle(before: Mapping[str, Any], after: dict[str, Any], latest: Iterable[str],
           position: Position) -> tuple[dict[str, Any], bool]:
    """The profile an event at `position` leaves, in stream order; and whether it is the
    newest event applied to the profile.

    `before` is the stored profile, `after` what the reducer made of it, `latest` the fields
    the event sets to a value of its own (a spec's "last" rules). Each such field keeps its
    stored value when a newer event set it; every other change of the reducer (counts,
    sums) stands. `_positions` of the result records the event where it now wins.
    """
    positions = positions_of(before)
    out = dict(after)
    for field in latest:
        if field not in out or field == POSITIONS:
            continue
        if position.after(positions.get(field)):
            positions[field] = position
        elif field in before:
            out[field] = before[field]  # a newer event set it: its value stays
        else:
            del out[field]
    newest = position.after(positions.get(NEWEST))
    if newest:
        positions[NEWEST] = position
    out[POSITIONS] = json.dumps({k: str(v) for k, v in sorted(positions.items())},
                                separators=(",", ":"))
    return out, newest
