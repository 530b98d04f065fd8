"""Sinks that publish one JSON message per logged row (`PredictionRecord.to_dict`), keyed
by the row's id: a Kafka topic or a Redis stream.

    kafka://host:9092[,host2:9092]/topic   (or ?topic=name; other query keys are librdkafka
                                            options, e.g. &compression.type=zstd)
    redis://host:6379/0?stream=predictions[&maxlen=1000000]
"""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
import pyarrow as pa

from ....connections import masked, redis
from ....errors import ScorehouseError, UsageError
from ..records import records
from .base import Sink

log = logging.getLogger("scorehouse.monitor.log")

#: Seconds `write` waits for room in librdkafka's local queue, and `close` for delivery.
KAFKA_WAIT = 30.0
#: Entries a Redis stream keeps (approximately: XADD MAXLEN ~) unless `maxlen=` says.
REDIS_MAXLEN = 1_000_000


def messages(batch: pa.RecordBatch) -> list[tuple[str, bytes]]:
    """(id, JSON of the record) per row of a logged batch."""
    return [(r.id, orjson.dumps(r.to_dict(), default=str)) for r in records(batch)]


class KafkaSink(Sink):
    """Rows as messages of a Kafka topic (idempotent producer, acks=all).

    `write` hands the messages to librdkafka; delivery failures reported later are logged
    and counted in `failed` (the logger counts those rows as written).

    Raises (on open):
        UsageError: no servers or no topic in the URL.
        ScorehouseError: confluent-kafka is not installed.
    """

    kind = "kafka"

    def __init__(self, url: str) -> None:
        try:
            from confluent_kafka import Producer
        except ImportError:  # pragma: no cover - an optional extra
            raise ScorehouseError("a Kafka log needs confluent-kafka: "
                                  "pip install 'scorehouse[kafka]'") from None
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query))
        self.topic = params.pop("topic", "") or parts.path.strip("/")
        if not parts.netloc or not self.topic:
            raise UsageError(f"a Kafka log needs servers and a topic: {url!r}; e.g. "
                             "kafka://host:9092/predictions")
        self.failed = 0
        self.producer = Producer({"bootstrap.servers": parts.netloc, "linger.ms": 20,
                                  "enable.idempotence": True, "acks": "all", **params})

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self.failed += 1
            log.error("prediction log: Kafka did not take a row of topic %s: %s",
                      self.topic, error)

    def write(self, batch: pa.RecordBatch) -> None:
        deadline = time.monotonic() + KAFKA_WAIT
        for key, value in messages(batch):
            while True:
                try:
                    self.producer.produce(self.topic, value, key, on_delivery=self._delivered)
                    break
                except BufferError:  # librdkafka's queue is full: let it send, then retry
                    if time.monotonic() > deadline:
                        raise
                    self.producer.poll(0.1)
        self.producer.poll(0)

    def close(self) -> None:
        left = self.producer.flush(KAFKA_WAIT)
        if left:
            self.failed += left
            log.error("prediction log: %d rows not delivered to Kafka topic %s", left,
                      self.topic)


class RedisSink(Sink):
    """Rows as entries of a Redis stream (`XADD <stream> MAXLEN ~ <maxlen>`), fields `id` and
    `record` (the JSON), one pipeline per drain.

    Raises (on open):
        UsageError: no `stream=` in the URL.
        ConnectionFailedError: the server cannot be reached.
    """

    kind = "redis"

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        params = dict(query)
        self.stream = params.get("stream", "")
        if not self.stream:
            raise UsageError(f"a Redis log needs a stream: {masked(url)!r}; e.g. "
                             "redis://host:6379/0?stream=predictions")
        self.maxlen = int(params.get("maxlen") or REDIS_MAXLEN)
        rest = [(k, v) for k, v in query if k not in ("stream", "maxlen")]
        self.client = redis(urlunsplit(parts._replace(query=urlencode(rest))),
                            role="the prediction log's Redis")

    def write(self, batch: pa.RecordBatch) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, value in messages(batch):
            pipe.xadd(self.stream, {"id": key, "record": value}, maxlen=self.maxlen,
                      approximate=True)
        pipe.execute()

    def close(self) -> None:
        self.client.close()


__all__ = ["KafkaSink", "RedisSink", "messages"]
