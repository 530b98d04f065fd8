"""Kafka as the event source (confluent-kafka), behind the same interface as `RedisEvents`.

`kafka://host:9092[,host2:9092]?topic=events[&dead=events.dead][&<librdkafka option>=…]`.
A consumer group shares the topic's partitions among workers. Kafka keeps one committed
offset per partition and no acknowledgement per message, so this class keeps the events it
handed out and not yet settled (written or dead-lettered), and commits a partition only up
to its first unsettled event: a commit never skips an event. A worker that dies leaves
everything after its partitions' committed offsets to their next owner, whose writes the
profile store's idempotence absorbs. Kafka has no delivery count either: an event left
unsettled (a poison one, a write still contended) is handed out again by this worker after
`claim_idle_ms`, counted here (the count starts again when its partition moves).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ..errors import ScorehouseError
from .events import Event, body_fields, dead_record, json_body
from .order import Position

log = logging.getLogger("scorehouse.stream")

#: Seconds to wait for Kafka to confirm a dead letter or an output record.
CONFIRM_SECONDS = 30.0
#: Seconds a new worker waits for the group to give it partitions.
JOIN_SECONDS = 60.0


class KafkaEvents:
    """A member of consumer group `group` on a Kafka topic."""

    transient: tuple[type[Exception], ...] = ()  # librdkafka reconnects by itself

    def __init__(self, url: str, group: str, consumer: str, *, claim_idle_ms: int = 30_000):
        from confluent_kafka import Consumer, KafkaException, Producer

        parts = urlsplit(url)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        topic = params.pop("topic", None) or params.pop("stream", None)
        if not topic or not parts.netloc:
            raise ScorehouseError("a Kafka source needs servers and ?topic=NAME, e.g. "
                                  "kafka://host:9092?topic=events")
        self.stream = self.topic = topic
        self.dead_topic = params.pop("dead", f"{topic}.dead")
        self.group, self.consumer, self.claim_idle_ms = group, consumer, claim_idle_ms
        common = {"bootstrap.servers": parts.netloc, "client.id": consumer, **params}
        self.c = Consumer({**common, "group.id": group, "enable.auto.commit": False,
                           "auto.offset.reset": "earliest"})
        self.p = Producer({**common, "enable.idempotence": True, "acks": "all"})
        try:
            self.c.list_topics(topic, timeout=10)
        except KafkaException as e:
            raise ScorehouseError(f"cannot reach Kafka at {parts.netloc}: {e}") from None
        self._held: dict[int, dict[int, Event]] = {}  # partition -> offset -> unsettled event
        self._read_to: dict[int, int] = {}  # partition -> offset after the last one read
        self._committed: dict[int, int] = {}
        self._where: dict[str, tuple[int, int]] = {}  # event id -> (partition, offset)
        self._handed: dict[str, float] = {}  # event id -> when it was last handed out
        self._failed: list[str] = []  # delivery errors reported by the producer
        self._joined = False
        self.c.subscribe([topic], on_assign=self._assigned, on_revoke=self._revoked,
                         on_lost=self._revoked)

    # --- reading ----------------------------------------------------------------------------
    def read(self, count: int, block_ms: int) -> list[Event]:
        """Unsettled events due for another try first, then new ones."""
        due = self._due(count)
        if due:
            return due
        first, deadline = None, time.monotonic() + JOIN_SECONDS
        while first is None and time.monotonic() < deadline:
            # Before the group gives this worker its partitions, an empty poll says nothing
            # about the topic: only one made after joining may report "idle".
            joined = self._joined
            first = self.c.poll(block_ms / 1000)
            if joined:
                break
        if first is None:
            return []
        # The first message ends the wait; whatever else is already fetched joins it.
        msgs = [first, *(self.c.consume(count - 1, timeout=0) if count > 1 else [])]
        now = time.monotonic()
        events = []
        for m in msgs:
            if error := m.error():
                if error.fatal():
                    raise ScorehouseError(f"Kafka consumer failed: {m.error()}")
                log.warning("Kafka: %s", m.error())
                continue
            p, o = m.partition(), m.offset()
            assert p is not None and o is not None  # a message without an error has both
            kind, ms = m.timestamp()  # (TIMESTAMP_NOT_AVAILABLE, -1) when it has none
            e = Event(f"{max(ms, 0)}-{p}-{o}", body_fields(m.value() or b""),
                      position=Position(p, (o,)), published_ms=ms if kind and ms >= 0 else None)
            self._held.setdefault(p, {})[o] = e
            self._read_to[p] = max(self._read_to.get(p, 0), o + 1)
            self._where[e.id], self._handed[e.id] = (p, o), now
            events.append(e)
        return events

    def _due(self, count: int) -> list[Event]:
        now = time.monotonic()
        wait = self.claim_idle_ms / 1000
        due = sorted((self._where[i], i) for i, t in self._handed.items() if now - t >= wait)
        events = []
        for (p, o), i in due[:count]:
            e = self._held[p][o]
            e.deliveries += 1
            self._handed[i] = now
            events.append(e)
        return events

    def deliveries(self, event_id: str) -> int:
        """How many times this worker has handed the event out."""
        where = self._where.get(event_id)
        return self._held[where[0]][where[1]].deliveries if where else 1

    # --- settling ---------------------------------------------------------------------------
    def ack(self, ids: list[str]) -> None:
        """Settle events whose effect is written; commit each partition up to its first
        unsettled event."""
        touched = set()
        for i in ids:
            where = self._where.pop(i, None)
            self._handed.pop(i, None)
            if where is not None:  # None: its partition moved to another worker meanwhile
                self._held.get(where[0], {}).pop(where[1], None)
                touched.add(where[0])
        self._commit(touched)

    def _commit(self, partitions: set[int]) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        offsets = []
        for p in partitions:
            held = self._held.get(p)
            upto = min(held) if held else self._read_to.get(p, 0)
            if upto > self._committed.get(p, -1):
                offsets.append(TopicPartition(self.topic, p, upto))
        if not offsets:
            return
        try:
            done = self.c.commit(offsets=offsets, asynchronous=False) or offsets
        except KafkaException as e:
            # Lost the partition in a rebalance: its next owner starts from the last commit.
            log.warning("Kafka commit failed (%s); the events are delivered again", e)
            return
        for tp in done:
            if tp.error is None:
                self._committed[tp.partition] = tp.offset

    def dead_letter(self, event: Event, reason: str) -> None:
        """Produce the event with its reason to the dead-letter topic, then settle it."""
        self.p.produce(self.dead_topic, json_body(dead_record(event, reason)),
                       on_delivery=self._delivered)
        self._confirm(self.dead_topic)
        self.ack([event.id])

    def publish(self, stream: str, entries: list[tuple[str, Mapping[str, Any]]]) -> None:
        """Produce records as JSON to topic `stream`, keyed by entity (one partition each)."""
        for entity, record in entries:
            self.p.produce(stream, json_body(record), key=entity.encode(),
                           on_delivery=self._delivered)
            self.p.poll(0)  # serve delivery reports, so a long batch never fills the queue
        self._confirm(stream)

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._failed.append(str(err))

    def _confirm(self, topic: str) -> None:
        left = self.p.flush(CONFIRM_SECONDS)
        failed, self._failed = self._failed, []
        if left or failed:
            raise ScorehouseError(f"Kafka did not take {left or len(failed)} record(s) for topic "
                                  f"{topic!r}: {failed[0] if failed else 'no confirmation'}; "
                                  "the events stay unsettled and are tried again")

    # --- partitions moving between workers --------------------------------------------------
    def _assigned(self, consumer: Any, partitions: list[Any]) -> None:
        self._joined = True
        for tp in partitions:
            self._forget(tp.partition)

    def _revoked(self, consumer: Any, partitions: list[Any]) -> None:
        self._commit({tp.partition for tp in partitions})
        for tp in partitions:
            self._forget(tp.partition)

    def _forget(self, partition: int) -> None:
        for e in self._held.pop(partition, {}).values():
            self._where.pop(e.id, None)
            self._handed.pop(e.id, None)
        self._read_to.pop(partition, None)
        self._committed.pop(partition, None)

    def close(self) -> None:
        """Leave the group (its partitions go to the other workers at once)."""
        self.p.flush(CONFIRM_SECONDS)
        self.c.close()
