"""What the worker needs of a profile store (`Profiles`), and the named values it trades
with one: the stored profile it reads (`Stored`), the effect of one event it writes
(`Effect`), and what came of that write (`Outcome`, or `Refused` with the store's reason).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple, Protocol

#: Seconds an entity remembers the ids of events already applied.
SEEN_TTL = 7 * 24 * 3600


class Outcome(Enum):
    """What a store's compare-and-set did with one event's effect (as Starlette's `Match`
    names what a route did with a request)."""

    WRITTEN = 1
    #: The event was applied before (a redelivery): nothing written, counted once.
    ALREADY_APPLIED = 0
    #: Another writer changed the profile since it was read: nothing written, redo.
    CONFLICT = -1


@dataclass(frozen=True)
class Refused:
    """The store refused the effect's values (a poison event); `reason` says why."""

    reason: str


#: What `Profiles.apply` answers for one effect.
Applied = Outcome | Refused


class Stored(NamedTuple):
    """A profile as read: `version` is the id of the last event applied ('' for none)."""

    version: str
    fields: dict[str, Any]


class Effect(NamedTuple):
    """One event's effect, written atomically: the profile fields it sets (on the profile
    still at `version`), and the record it appends to `output_stream` (None: no output)."""

    entity: str
    version: str
    event_id: str
    profile: Mapping[str, Any]
    output_stream: str | None
    output: Mapping[str, Any]


class Profiles(Protocol):
    """What the worker needs of a profile store (Redis hashes, a PostgreSQL table)."""


    @property
    def transient(self) -> tuple[type[Exception], ...]:
        """Errors of a server restarting: the worker waits and carries on."""

    def entity_problem(self, entity: str) -> str | None: ...
    def fetch(self, entities: list[str]) -> dict[str, Stored]: ...
    def apply(self, effect: Effect) -> Applied: ...
    def apply_many(self, effects: list[Effect]) -> list[Applied]: ...


def text_value(v: Any) -> str:
    """A value as a profile store keeps text: floats exactly (repr), lists and objects as
    JSON, anything else as `str`."""
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    if isinstance(v, float):
        return repr(v)
    return str(v)
