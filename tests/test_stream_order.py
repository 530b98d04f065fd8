"""Per entity, events take effect in stream order, whatever order they arrive in: a worker
that dies holding a batch (in process, and kill -9 of a `scorehouse stream`), and a poison
event that recovers on a later delivery. On Redis Streams, NATS JetStream and Kafka (the
librdkafka mock cluster, see test_stream_kafka.py), with Redis and PostgreSQL profiles.
Every profile must equal a pure-Python fold of its events in stream order."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field

import numpy as np
import pytest

import scorehouse
from _stream import (
    SCRIPT,
    TOL,
    churn_table,
    cli_env,
    nats_publish,
    pg_connect,
    pg_rows,
    redis_profiles,
)
from conftest import KAFKA_URL, NATS_URL  # noqa: E402
from scorehouse.demo.data import TARGET
from scorehouse.stream import RedisEvents, RedisProfiles, StreamWorker, from_spec
from scorehouse.stream.order import POSITIONS, Position, settle
from scorehouse.stream.postgres_profiles import PostgresProfiles

PARTITIONS = 4
GROUP_OPTIONS = "&session.timeout.ms=6000"  # see test_stream_kafka.py
REDUCER = {"count": {"complaints": "type=complaint", "support_calls": "type=call"},
           "last": {"plan": "plan", "tenure": "tenure", "monthly_charges": "monthly_charges"},
           "sum": {"data_usage_gb": "usage"}}
PLANS = ["bronze", "silver", "gold", "platinum"]


# --- the reference: a fold in stream order, written without the product's reducer ----------

def order_events(n: int, customers: int, seed: int) -> list[dict]:
    """Events whose "last" fields differ from one event to the next (and are often absent)."""
    rng = np.random.default_rng(seed)
    sent = []
    for _ in range(n):
        ev = {"customer_id": int(rng.integers(customers)),
              "type": str(rng.choice(["complaint", "call", "visit"]))}
        if rng.random() < 0.5:
            ev["plan"] = str(rng.choice(PLANS))
        if rng.random() < 0.3:
            ev["tenure"] = int(rng.integers(1, 100))
        if rng.random() < 0.3:
            ev["usage"] = int(rng.integers(1, 5))
        sent.append(ev)
    return sent


def in_order(seed_rows: dict[int, dict], sent: list[dict]) -> dict[int, dict]:
    """customer -> profile after its events, applied one by one in the order sent."""
    out = {c: dict(p) for c, p in seed_rows.items()}
    for ev in sent:
        p = out[ev["customer_id"]]
        p["complaints"] = int(p["complaints"]) + (ev["type"] == "complaint")
        p["support_calls"] = int(p["support_calls"]) + (ev["type"] == "call")
        p["data_usage_gb"] = float(p["data_usage_gb"]) + ev.get("usage", 0)
        for f in ("plan", "tenure", "monthly_charges"):
            if f in ev:
                p[f] = ev[f]
    return out


def test_settle_makes_any_arrival_order_equal_the_in_order_fold():
    # No service: the declarative reducer through `settle`, each event once, in shuffled
    # orders; positions on two Kafka partitions as well (each entity in one of them).
    reducer = from_spec(REDUCER)
    seeds = {c: {"complaints": 0, "support_calls": 0, "data_usage_gb": 0.0, "plan": "bronze"}
             for c in range(5)}
    for trial in range(30):
        sent = order_events(60, 5, seed=trial)
        expected = in_order(seeds, sent)
        arrived = list(enumerate(sent))
        random.Random(trial).shuffle(arrived)
        got = {c: dict(p) for c, p in seeds.items()}
        newest: dict[int, int] = {}
        for i, ev in arrived:
            c = ev["customer_id"]
            position = Position(c % 2, (i,))
            before = got[c]
            got[c], is_newest = settle(before, reducer(dict(before), ev), reducer.latest(ev),
                                       position)
            if is_newest:
                newest[c] = i
        for c in seeds:
            assert {k: v for k, v in got[c].items() if k != POSITIONS} == pytest.approx(
                expected[c]), (trial, c)
            assert newest.get(c) == max((i for i, e in enumerate(sent) if e["customer_id"] == c),
                                        default=None)


def test_a_position_orders_only_within_its_partition():
    assert Position(0, (5, 1)).after(Position(0, (5, 0))) and Position(0, (5, 1)).after(None)
    assert not Position(0, (4, 9)).after(Position(0, (5, 0)))
    assert not Position(0, (5, 0)).after(Position(0, (5, 0)))  # the same event
    assert Position(1, (1,)).after(Position(2, (9,)))  # no order across partitions: it wins
    assert Position.parse(str(Position(3, (17,)))) == Position(3, (17,))
    assert Position.parse("garbage") is None


# --- sources and stores ---------------------------------------------------------------------



@dataclass
class Source:
    """One event source under test: where it is, how to publish to it, how to read it."""

    kind: str
    url: str  # what `scorehouse stream --source` takes
    group: str
    name: str  # stream, subject or topic
    servers: str = ""
    opened: list = field(default_factory=list)

    def publish(self, sent: list[dict]) -> list[str]:
        """Append events in order; each one's event id suffix (its position in the id)."""
        bodies = [json.dumps(e) for e in sent]
        if self.kind == "redis":
            import redis

            r = redis.Redis.from_url(self.url.split("?")[0])
            return [r.xadd(self.name, {"data": b}).decode() for b in bodies]
        if self.kind == "nats":
            return [f"-{seq}" for seq in nats_publish(self.name, [b.encode() for b in bodies])]
        from confluent_kafka import Producer

        where = [""] * len(sent)

        def delivered(i: int):
            return lambda err, m: where.__setitem__(i, f"-{m.partition()}-{m.offset()}")
        p = Producer({"bootstrap.servers": self.servers})
        for i, (e, b) in enumerate(zip(sent, bodies, strict=True)):
            # As a keyed producer would: each customer's events in one partition.
            p.produce(self.name, b.encode(), partition=e["customer_id"] % PARTITIONS,
                      on_delivery=delivered(i))
        assert p.flush(30) == 0 and all(where)
        return where

    def events(self, consumer: str, claim_idle_ms: int):
        """A consumer of this source in the test's group."""
        from scorehouse.stream.addresses import open_events

        ev = open_events(self.url, self.group, consumer, claim_idle_ms=claim_idle_ms)
        self.opened.append(ev)
        return ev

    def abandon(self, events) -> None:
        """Leave like a dead worker: nothing acknowledged or committed."""
        if self.kind == "nats":
            events.close()
        elif self.kind == "kafka":
            events.c.close()  # the group hands its partitions on; no commit
        self.opened.remove(events)

    def close(self) -> None:
        for ev in self.opened:
            if hasattr(ev, "close"):
                ev.close()


@pytest.fixture(params=["redis", "nats", "kafka"])
def source(request, redis_url):
    if request.param == "redis":
        s = Source("redis", f"{redis_url}?stream=events", "g", "events")
    elif request.param == "nats":
        request.getfixturevalue("nats_url")  # reachable, or fail under CI=true
        subject = f"sh_order_{uuid.uuid4().hex[:8]}"
        s = Source("nats", f"{NATS_URL}?subject={subject}", "g", subject)
    else:
        servers = request.getfixturevalue("kafka")
        topic = f"sh_{uuid.uuid4().hex[:10]}"
        if KAFKA_URL:
            from confluent_kafka.admin import AdminClient, NewTopic

            admin = AdminClient({"bootstrap.servers": servers})
            for f in admin.create_topics([NewTopic(t, num_partitions=PARTITIONS) for t in
                                          (topic, f"{topic}.dead", f"{topic}.scores")]).values():
                f.result(30)
        s = Source("kafka", f"kafka://{servers}?topic={topic}{GROUP_OPTIONS}", f"g-{topic}",
                   topic, servers)
    yield s
    s.close()
    if s.kind == "nats":
        import nats

        async def drop() -> None:
            nc = await nats.connect(NATS_URL)
            for name in (s.name.upper(), f"{s.name.upper()}_SCORES"):
                try:
                    await nc.jetstream().delete_stream(name)
                except Exception:  # noqa: BLE001 - never created
                    pass
            await nc.close()
        asyncio.run(drop())


@dataclass
class Store:
    """One profile store under test, seeded with the first `n` churn rows."""

    kind: str
    url: str  # what `scorehouse stream --profiles` takes
    r: object
    pg_url: str | None

    def open(self, events):
        if self.kind == "redis":
            return RedisProfiles(self.url)
        return PostgresProfiles(self.url, "customer_id", events.publish)

    def output(self, source: Source) -> str | None:
        return "scores" if self.kind == "redis" else None

    def applied(self) -> int:
        """Events applied so far (the store's record of applied event ids)."""
        if self.kind == "redis":
            return sum(self.r.scard(k) for k in self.r.scan_iter("profile:*:_seen"))
        with pg_connect(self.pg_url) as conn:
            if conn.execute("SELECT to_regclass('customer_profile_seen')").fetchone()[0] is None:
                return 0  # no worker has opened the table yet
            return conn.execute("SELECT count(*) FROM customer_profile_seen").fetchone()[0]

    def rows(self) -> dict[int, dict]:
        if self.kind == "redis":
            out = {}
            for k in self.r.scan_iter("profile:*"):
                name = k.decode()
                if not name.endswith(":_seen"):
                    out[int(name.split(":")[1])] = {
                        a.decode(): b.decode() for a, b in self.r.hgetall(k).items()}
            return out
        return {k: {c: v for c, v in row.items() if v is not None}
                for k, row in pg_rows(self.pg_url).items()}

    def forget(self, customer: int, column: str) -> None:
        if self.kind == "redis":
            self.r.hdel(f"profile:{customer}", column)
        else:
            with pg_connect(self.pg_url) as conn:
                conn.execute(f"UPDATE customer_profile SET {column} = NULL "  # noqa: S608
                             "WHERE customer_id = %s", [customer])


@pytest.fixture(params=["redis", "postgresql"])
def store(request, r, redis_url, churn_data):
    n = 30
    if request.param == "redis":
        redis_profiles(r, churn_data, n)
        return Store("redis", redis_url, r, None)
    pg_url = request.getfixturevalue("pg_url")
    return Store("postgresql", churn_table(pg_url, churn_data, n), r, pg_url)


def _seeds(churn_data, n: int) -> dict[int, dict]:
    X = churn_data.drop(columns=[TARGET]).head(n)
    return {i: rec for i, rec in enumerate(X.to_dict("records"))}


def _worker(scorer, source: Source, store: Store, name: str, claim_idle_ms: int,
            **kw) -> StreamWorker:
    events = source.events(name, claim_idle_ms)
    return StreamWorker(scorer, events, store.open(events), from_spec(REDUCER),
                        key="customer_id", output_stream=store.output(source), **kw)


def _run_until(worker: StreamWorker, done, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not done():
        assert time.time() < deadline, worker.stats
        worker.step()


def check_in_order(store: Store, scorer, churn_data, seeds, sent, ids) -> None:
    """Every profile is the in-order fold of its events: counts, sums, "last" fields, the
    score of that profile, and the newest event's id beside the score."""
    expected = in_order(seeds, sent)
    rows = store.rows()
    features = churn_data.drop(columns=[TARGET]).columns
    native = scorer.predict([{c: expected[k][c] for c in features} for k in sorted(expected)])
    scores = dict(zip(sorted(expected), (scorer.headline(a) for a in native.to_records()),
                      strict=True))
    for k, want in expected.items():
        got = rows[k]
        mine = [i for i, e in enumerate(sent) if e["customer_id"] == k]
        assert (int(got["complaints"]), int(got["support_calls"]), got["plan"]) == (
            want["complaints"], want["support_calls"], want["plan"]), k
        assert float(got["tenure"]) == float(want["tenure"]), k
        assert float(got["monthly_charges"]) == pytest.approx(float(want["monthly_charges"])), k
        assert float(got["data_usage_gb"]) == pytest.approx(want["data_usage_gb"], abs=1e-9), k
        if mine:
            assert str(got["churn_event_id"]).endswith(ids[mine[-1]]), k
            assert abs(float(got["churn_score"]) - scores[k]) <= TOL, k


# --- a worker dies holding a batch; another carries on --------------------------------------

def test_a_dead_workers_batch_applied_after_newer_events_ends_in_stream_order(
        scorer, churn_data, source, store):
    n, customers = 300, 30
    seeds = _seeds(churn_data, customers)
    sent = order_events(n, customers, seed=21)
    ids = source.publish(sent)
    doomed = source.events("doomed", 1500)
    held: list = []
    deadline = time.time() + 90
    while not held:  # read, never written: pending with the dead consumer
        assert time.time() < deadline
        held = doomed.read(60, 1000)
    source.abandon(doomed)
    # The rescuer reads newer events first; the dead worker's come back after 1.5 s idle.
    w = _worker(scorer, source, store, "rescuer", 1500, batch=40)
    _run_until(w, lambda: store.applied() == n)
    assert w.stats.dead == 0 and w.stats.scored == n
    check_in_order(store, scorer, churn_data, seeds, sent, ids)
    if store.kind == "redis":
        out = [e[1][b"event_id"] for e in store.r.xrange("scores")]
        assert len(out) == len(set(out)) == n  # every event in the output, once


# --- a poison event recovers on a later delivery -------------------------------------------

def test_a_poison_event_that_recovers_later_does_not_overwrite_newer_fields(
        strict_churn_artifact, churn_data, source, store):
    # The churn model with monthly_charges required (the demo pipeline would impute it).
    scorer = scorehouse.load(strict_churn_artifact, trust=True)
    # Customer 7's profile lacks monthly_charges, which the model requires: e1 (a complaint,
    # plan gold) is refused. e2 (a call, plan silver, monthly_charges 55) is then applied,
    # and e1's next delivery succeeds: it counts, but plan stays silver.
    seeds = _seeds(churn_data, 30)
    store.forget(7, "monthly_charges")
    e1 = {"customer_id": 7, "type": "complaint", "plan": "gold"}
    e2 = {"customer_id": 7, "type": "call", "plan": "silver", "monthly_charges": 55.0}
    w = _worker(scorer, source, store, "w1", 3000, max_attempts=5)
    ids = source.publish([e1])
    _run_until(w, lambda: w.stats.retried >= 1)
    assert store.applied() == 0
    ids += source.publish([e2])
    _run_until(w, lambda: w.stats.scored >= 1)  # e2, before e1 is due again (3 s)
    assert store.applied() == 1
    _run_until(w, lambda: w.stats.scored >= 2)  # e1, redelivered
    assert w.stats.dead == 0
    seeds[7]["monthly_charges"] = None  # forgotten; e2 sets it
    check_in_order(store, scorer, churn_data, seeds, [e1, e2], ids)
    got = store.rows()[7]
    assert got["plan"] == "silver" and int(got["complaints"]) == seeds[7]["complaints"] + 1


# --- kill -9 of `scorehouse stream`, then another worker -----------------------------------

def test_kill_9_of_a_worker_then_a_restart_ends_in_stream_order(
        scorer, churn_data, churn_artifact, source, store, tmp_path):
    n, customers = 1200, 30
    seeds = _seeds(churn_data, customers)
    sent = order_events(n, customers, seed=33)
    ids = source.publish(sent)
    args = [SCRIPT, "stream", str(churn_artifact), "--trust", "--source", source.url,
            "--key", "customer_id", "--group", source.group, "--batch", "40",
            "--claim-idle-ms", "1500",
            "--reducer", json.dumps(REDUCER), "--consumer", "doomed"]
    if store.kind == "postgresql" or source.kind != "redis":
        args += ["--profiles", store.url]
    if store.kind == "redis":
        args += ["--sink", f"{store.url}?stream=scores"]
    doomed = subprocess.Popen(args, env=cli_env(tmp_path), stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while store.applied() < 200:
        assert time.time() < deadline and doomed.poll() is None, doomed.stderr.read()
        time.sleep(0.02)
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    assert store.applied() < n, "the run ended before it could be interrupted"
    # The restarted worker takes new events at once and the dead one's after 1.5 s idle.
    w = _worker(scorer, source, store, "restarted", 1500, batch=40)
    _run_until(w, lambda: store.applied() == n)
    assert w.stats.dead == 0
    check_in_order(store, scorer, churn_data, seeds, sent, ids)
    if store.kind == "redis":
        out = [e[1][b"event_id"] for e in store.r.xrange("scores")]
        assert len(out) == len(set(out)) == n


def test_an_event_the_reducer_cannot_apply_is_dead_lettered_and_the_worker_carries_on(
        r, redis_url, scorer, churn_data):
    # `sum` of a value that is not a number: the reducer raises; that event is poison (it
    # crashed the worker before), and the entity's next event goes through after it.
    redis_profiles(r, churn_data, 3)
    bad = r.xadd("events", {"data": json.dumps({"customer_id": 1, "type": "call",
                                                "usage": "lots"})})
    r.xadd("events", {"data": json.dumps({"customer_id": 1, "type": "complaint", "usage": 2})})
    events = RedisEvents(f"{redis_url}?stream=events", "g", "w1", claim_idle_ms=0)
    w = StreamWorker(scorer, events, RedisProfiles(redis_url), from_spec(REDUCER),
                     key="customer_id", output_stream="scores", max_attempts=2)
    w.run(until_idle=True)
    dead = r.xrange("events:dead")
    assert [d[1][b"_event_id"] for d in dead] == [bad]
    assert b"the reducer failed: ValueError" in dead[0][1][b"_reason"]
    h = r.hgetall("profile:1")
    seed = churn_data.drop(columns=[TARGET]).iloc[1]
    assert int(h[b"complaints"]) == seed["complaints"] + 1
    assert int(h[b"support_calls"]) == seed["support_calls"]  # the dead event: no effect
    assert float(h[b"data_usage_gb"]) == pytest.approx(seed["data_usage_gb"] + 2)
    assert w.stats.scored == 1 and r.xpending("events", "g")["pending"] == 0
