"""Kafka as the event source, against librdkafka's built-in MOCK cluster: it speaks the Kafka
wire protocol over TCP to every client (also to a `scorehouse` subprocess), with consumer
groups and committed offsets, but it is not a real broker. No Kafka broker can be installed
on the machine these tests were written on. Set SCOREHOUSE_KAFKA_URL=kafka://host:9092 to
run the same tests against a real broker; the test ids say which one ran."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid

import pytest

from _stream import (
    REDUCER,
    check_redis_profiles,
    churn_table,
    cli_env,
    pg_counts,
    random_events,
    redis_profiles,
    stream_args,
)
from scorehouse.stream import RedisProfiles, StreamWorker, from_spec
from scorehouse.stream.kafka_events import KafkaEvents

REAL = os.environ.get("SCOREHOUSE_KAFKA_URL")
PARTITIONS = 4  # what the mock cluster gives a topic it creates on first use
# The mock cluster makes a joining member wait one session timeout after another member
# left (45 s by default); 6 s is also the smallest a real broker accepts by default.
GROUP_OPTIONS = "&session.timeout.ms=6000"




@pytest.fixture
def topic(kafka):
    """A fresh topic of PARTITIONS partitions (with its .dead and .scores topics)."""
    name = f"sh_{uuid.uuid4().hex[:10]}"
    if REAL:  # a real broker may not create topics on first use
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": kafka})
        for f in admin.create_topics([NewTopic(t, num_partitions=PARTITIONS)
                                      for t in (name, f"{name}.dead", f"{name}.scores")]).values():
            f.result(30)
    return name


def _produce(kafka, topic, bodies: list[tuple[bytes, int | None]]) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": kafka})
    for body, partition in bodies:
        kw = {} if partition is None else {"partition": partition}
        p.produce(topic, body, **kw)
    assert p.flush(30) == 0


def _send(kafka, topic, sent: list[dict]) -> None:
    # Keyed by customer like a real producer would be: each customer's events in one partition.
    _produce(kafka, topic, [(json.dumps(e).encode(), e["customer_id"] % PARTITIONS)
                            for e in sent])


def _consume_all(kafka, topic, n: int, timeout: float = 60) -> list:
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": kafka, "group.id": f"reader-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got, deadline = [], time.time() + timeout
    while len(got) < n and time.time() < deadline:
        got += [m for m in c.consume(n - len(got), timeout=1) if not m.error()]
    c.close()
    return got


def _worker(kafka, topic, redis_url, scorer, name, **kw) -> StreamWorker:
    events = KafkaEvents(f"kafka://{kafka}?topic={topic}{GROUP_OPTIONS}", f"g-{topic}", name,
                         claim_idle_ms=kw.pop("claim_idle_ms", 30_000))
    return StreamWorker(scorer, events, RedisProfiles(redis_url), from_spec(REDUCER),
                        key="customer_id", output_stream="scores", **kw)


def _run_until(worker: StreamWorker, done, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while not done(worker.stats):
        assert time.time() < deadline, worker.stats
        worker.step()


def _committed(events: KafkaEvents) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    tps = [TopicPartition(events.topic, p) for p in range(PARTITIONS)]
    return {tp.partition: tp.offset for tp in events.c.committed(tps, timeout=10)}


def _ends(events: KafkaEvents) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    return {p: events.c.get_watermark_offsets(TopicPartition(events.topic, p), timeout=10)[1]
            for p in range(PARTITIONS)}


def test_kafka_redelivery_after_a_crash_counts_once_and_poison_goes_to_the_dead_topic(
        r, redis_url, scorer, churn_data, kafka, topic):
    redis_profiles(r, churn_data, 20)
    sent = random_events(300, 20, seed=7)
    _send(kafka, topic, sent)
    _produce(kafka, topic, [(b"{broken", 1)])
    # A worker that writes every effect but never commits an offset, then leaves the group.
    first = _worker(kafka, topic, redis_url, scorer, "crashes", batch=50, max_attempts=100,
                    claim_idle_ms=3_600_000)
    first.events.ack = lambda ids: None
    _run_until(first, lambda s: s.scored == 300)
    first.events.close()
    # The next member of the group starts from the last commit: the beginning.
    second = _worker(kafka, topic, redis_url, scorer, "rescuer", batch=50, max_attempts=2,
                     claim_idle_ms=0)
    _run_until(second, lambda s: s.duplicates == 300 and s.dead == 1)
    assert second.stats.scored == 0
    check_redis_profiles(r, churn_data, sent, 20)
    ids = [e[1][b"event_id"] for e in r.xrange("scores")]
    assert len(ids) == len(set(ids)) == 300
    dead = [json.loads(m.value()) for m in _consume_all(kafka, f"{topic}.dead", 1)]
    assert len(dead) == 1 and "not JSON" in dead[0]["_reason"] and dead[0]["_deliveries"] == 2
    assert _committed(second.events) == _ends(second.events)  # all settled, all committed
    second.events.close()


def test_kafka_commits_a_partition_only_up_to_its_first_unsettled_event(
        r, redis_url, scorer, churn_data, kafka, topic):
    redis_profiles(r, churn_data, 4)
    good = [json.dumps({"customer_id": c, "type": "call"}).encode() for c in range(4)]
    # Partition 0: two events, a poison one at offset 2, two more; partition 1: three events.
    _produce(kafka, topic, [(good[0], 0), (good[1], 0), (b"{poison", 0), (good[2], 0),
                            (good[3], 0), (good[0], 1), (good[1], 1), (good[2], 1)])
    w = _worker(kafka, topic, redis_url, scorer, "w1", max_attempts=3, claim_idle_ms=3_600_000)
    _run_until(w, lambda s: s.scored == 7 and s.retried == 1)
    # Offsets 3 and 4 of partition 0 are written, but the commit waits at the poison event.
    assert _committed(w.events)[0] == 2 and _committed(w.events)[1] == 3
    w.events.claim_idle_ms = 0  # now the poison event is tried again, then dead-lettered
    _run_until(w, lambda s: s.dead == 1)
    assert _committed(w.events)[0] == 5 and w.stats.scored == 7
    w.events.close()


def test_kafka_source_with_postgresql_profiles_publishes_scores_to_a_topic(
        r, redis_url, pg_url, churn_artifact, churn_data, kafka, topic, tmp_path):
    table = churn_table(pg_url, churn_data, 30)
    sent = random_events(200, 30, seed=11)
    _send(kafka, topic, sent)
    args = stream_args(churn_artifact, f"kafka://{kafka}?topic={topic}{GROUP_OPTIONS}",
                       "--profiles", table, "--group", f"g-{topic}", "--until-idle")
    done = subprocess.run(args, env=cli_env(tmp_path), capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"-> {topic}.scores" in done.stderr  # the default output: on the source's broker
    pg_counts(pg_url, churn_data, sent, 30)
    scores = _consume_all(kafka, f"{topic}.scores", 200)
    records = [json.loads(m.value()) for m in scores]
    assert len({rec["event_id"] for rec in records}) == 200
    assert all(m.key().decode() == rec["entity"] for m, rec in zip(scores, records, strict=True))
