"""Streaming scoring against a real Redis: flow, parity, idempotence, poison events, kill -9."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import numpy as np
import pandas as pd
import pytest

from _stream import (
    REDUCER,
    TOL,
    check_redis_profiles,
    churn_table,
    kill_9_then_rescue,
    nats_publish,
    pg_counts,
    random_events,
    redis_events,
    redis_profiles,
    run_together,
    stream_args,
)
from scorehouse.demo.data import TARGET
from scorehouse.stream import RedisEvents, RedisProfiles, StreamWorker, from_spec


def _worker(redis_url, scorer, name="w1", **kw) -> StreamWorker:
    return StreamWorker(scorer, RedisEvents(f"{redis_url}?stream=events", "g", name,
                                            claim_idle_ms=kw.pop("claim_idle_ms", 30_000)),
                        RedisProfiles(redis_url), from_spec(REDUCER), key="customer_id",
                        output_stream="scores", **kw)


def test_events_update_profiles_and_scores_match_the_native_model(
        r, redis_url, scorer, churn_data, churn_model):
    redis_profiles(r, churn_data, 40)
    sent = redis_events(r, 400, 40)
    stats = _worker(redis_url, scorer).run(until_idle=True)
    assert (stats.events, stats.scored, stats.dead) == (400, 400, 0)
    check_redis_profiles(r, churn_data, sent, 40)
    # The score on each profile is the native model's score of the profile as it is now.
    X = churn_data.drop(columns=[TARGET])
    rows = [{k.decode(): v.decode() for k, v in r.hgetall(f"profile:{i}").items()}
            for i in range(40)]
    frame = pd.DataFrame([{c: h.get(c) for c in X.columns} for h in rows])
    for c in X.columns:
        frame[c] = pd.to_numeric(frame[c]) if X[c].dtype.kind in "if" else \
            frame[c].astype(object).where(frame[c].notna(), np.nan)
    native = churn_model.predict_proba(frame)[:, 1]
    touched = [i for i, h in enumerate(rows) if "churn_score" in h]
    assert len(touched) > 30
    np.testing.assert_allclose([float(rows[i]["churn_score"]) for i in touched],
                               native[touched], atol=TOL)
    out = r.xrange("scores")
    assert len(out) == 400 and len({e[1][b"event_id"] for e in out}) == 400
    assert r.xpending("events", "g")["pending"] == 0


def test_a_redelivered_event_does_not_count_twice(r, redis_url, scorer, churn_data):
    redis_profiles(r, churn_data, 10)
    sent = redis_events(r, 60, 10)
    crashed = _worker(redis_url, scorer, "crashes-before-ack")
    crashed.events.ack = lambda ids: None  # the effect is written, the ack never happens
    crashed.run(until_idle=True)
    assert r.xpending("events", "g")["pending"] == 60
    second = _worker(redis_url, scorer, "w2", claim_idle_ms=0)
    stats = second.run(until_idle=True)
    assert stats.duplicates == 60 and stats.scored == 0
    check_redis_profiles(r, churn_data, sent, 10)
    assert r.xlen("scores") == 60 and r.xpending("events", "g")["pending"] == 0


def test_poison_events_are_dead_lettered_after_n_attempts(r, redis_url, scorer, churn_data):
    redis_profiles(r, churn_data, 5)
    r.hset("profile:3", "tenure", "not a number")
    r.xadd("events", {"data": "{not json"})
    r.xadd("events", {"data": json.dumps({"type": "complaint"})})
    r.xadd("events", {"data": json.dumps({"customer_id": 3, "type": "complaint"})})
    r.xadd("events", {"data": json.dumps({"customer_id": 1, "type": "complaint"})})
    w = _worker(redis_url, scorer, claim_idle_ms=0, max_attempts=2)
    w.run(until_idle=True)
    dead = r.xrange("events:dead")
    reasons = sorted(e[1][b"_reason"].decode() for e in dead)
    assert len(dead) == 3 and w.stats.scored == 1
    assert any("not JSON" in x for x in reasons) and any("no 'customer_id'" in x for x in reasons)
    assert any("column 'tenure'" in x for x in reasons)
    assert r.xpending("events", "g")["pending"] == 0
    assert int(r.hget("profile:3", "complaints")) == int(
        churn_data["complaints"].iloc[3])  # the refused event changed nothing


def test_two_workers_share_a_group(r, redis_url, scorer, churn_data):
    redis_profiles(r, churn_data, 30)
    sent = redis_events(r, 600, 30)
    workers = [_worker(redis_url, scorer, f"w{i}", batch=20) for i in range(2)]
    run_together(workers)
    # As on PostgreSQL (test_stream_postgres): contention leftovers go to a later claim.
    later = _worker(redis_url, scorer, "later", claim_idle_ms=0).run(until_idle=True)
    assert sum(w.stats.scored for w in workers) + later.scored == 600 and later.scored <= 20
    check_redis_profiles(r, churn_data, sent, 30)  # every event applied exactly once


def test_kill_9_mid_run_then_another_worker_finishes_exactly_once(
        r, redis_url, churn_artifact, churn_data, tmp_path):
    redis_profiles(r, churn_data, 100)
    sent = redis_events(r, 6000, 100)
    args = stream_args(churn_artifact, f"{redis_url}?stream=events", "--sink",
                       f"{redis_url}?stream=scores")
    # Reclaimed once idle for 0.5 s.
    kill_9_then_rescue(r, args, tmp_path, kill_at=1500, total=6000, settle=1.0,
                       rescue=("--claim-idle-ms", "500"))
    check_redis_profiles(r, churn_data, sent, 100)
    ids = [e[1][b"event_id"] for e in r.xrange("scores")]
    assert len(ids) == len(set(ids)) == 6000  # every event in the output, once
    assert r.xpending("events", "g")["pending"] == 0


def test_the_worker_carries_on_across_a_redis_restart(scorer, churn_data, tmp_path):

    port = _free_port()
    cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--appendonly", "yes",
           "--appendfsync", "always", "--dir", str(tmp_path), "--save", ""]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    try:
        r = _wait_redis(url)
        redis_profiles(r, churn_data, 20)
        sent = redis_events(r, 3000, 20)
        w = _worker(url, scorer, batch=25, claim_idle_ms=200)
        thread = threading.Thread(target=w.run, kwargs={"until_idle": True})
        thread.start()
        while r.xlen("scores") < 500:
            time.sleep(0.01)
        server.send_signal(signal.SIGKILL)  # no clean shutdown; the AOF has every write
        server.wait()
        time.sleep(0.5)
        server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        r = _wait_redis(url)
        thread.join(timeout=120)
        assert not thread.is_alive()
        if r.xpending("events", "g")["pending"]:  # events in flight at the crash
            time.sleep(0.3)
            w.run(until_idle=True)
        assert w.stats.reconnects > 0
        check_redis_profiles(r, churn_data, sent, 20)
        ids = [e[1][b"event_id"] for e in r.xrange("scores")]
        assert len(ids) == len(set(ids)) == 3000
    finally:
        server.kill()
        server.wait()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_redis(url: str):
    import redis

    client = redis.Redis.from_url(url)
    deadline = time.time() + 20
    while True:
        try:
            client.ping()
            return client
        except redis.ConnectionError:
            assert time.time() < deadline, "redis-server did not start"
            time.sleep(0.05)


# --- NATS JetStream --------------------------------------------------------------------------

from conftest import NATS_URL  # noqa: E402 - beside the tests that use it


@pytest.fixture
def nats_subject(nats_url):
    """A fresh JetStream subject on a reachable NATS (fails, never skips, under CI=true)."""
    import asyncio
    import uuid


    subject = f"sh_test_{uuid.uuid4().hex[:8]}"
    yield subject

    async def drop() -> None:
        import nats.js.errors

        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(subject.upper())
        except nats.js.errors.NotFoundError:  # the test kept its events in a stream of its own
            pass
        finally:
            await nc.close()

    asyncio.run(drop())


def _nats_worker(subject, redis_url, scorer, name, **kw):
    from scorehouse.stream.nats_events import NatsEvents

    events = NatsEvents(f"{NATS_URL}?subject={subject}", "g", name,
                        claim_idle_ms=kw.pop("claim_idle_ms", 30_000))
    return StreamWorker(scorer, events, RedisProfiles(redis_url), from_spec(REDUCER),
                        key="customer_id", output_stream="scores", **kw)


def test_nats_jetstream_source_scores_once_and_dead_letters(r, redis_url, scorer, churn_data,
                                                           nats_subject):
    redis_profiles(r, churn_data, 20)
    rng = np.random.default_rng(3)
    sent = [{"customer_id": int(rng.integers(20)), "type": str(rng.choice(["complaint", "call"]))}
            for _ in range(300)]
    nats_publish(nats_subject, [json.dumps(e).encode() for e in sent] + [b"{broken"])
    # A worker that writes but never acknowledges, then one that gets the redeliveries.
    first = _nats_worker(nats_subject, redis_url, scorer, "crashes", claim_idle_ms=1000,
                         batch=50, max_attempts=100)
    first.events.ack = lambda ids: None
    deadline = time.time() + 60
    while first.stats.scored < 300:
        assert time.time() < deadline, first.stats
        first.step()
    first.events.close()  # gone without acknowledging anything
    second = _nats_worker(nats_subject, redis_url, scorer, "rescuer", claim_idle_ms=1000,
                          max_attempts=2, block_ms=1500)
    deadline = time.time() + 60
    while second.stats.duplicates < 300 or second.stats.dead < 1:
        assert time.time() < deadline, second.stats
        second.step()
    check_redis_profiles(r, churn_data, sent, 20)
    ids = [e[1][b"event_id"] for e in r.xrange("scores")]
    assert len(ids) == len(set(ids)) == 300
    second.events.close()


def _nats_unsettled(subject: str, group: str) -> tuple[int, int]:
    """(messages not yet delivered, delivered but not acknowledged) of a durable consumer."""
    import asyncio

    import nats

    async def go() -> tuple[int, int]:
        nc = await nats.connect(NATS_URL)
        try:
            info = await nc.jetstream().consumer_info(subject.upper(), group)
            return info.num_pending, info.num_ack_pending
        finally:
            await nc.close()

    return asyncio.run(go())


def test_kill_9_of_a_nats_worker_then_another_finishes_exactly_once(
        r, redis_url, churn_artifact, churn_data, nats_subject, tmp_path):
    redis_profiles(r, churn_data, 100)
    sent = random_events(4000, 100, seed=5)
    nats_publish(nats_subject, [json.dumps(e).encode() for e in sent])
    args = stream_args(churn_artifact, f"{NATS_URL}?subject={nats_subject}", "--profiles",
                       redis_url, "--sink", f"{redis_url}?stream=scores", "--claim-idle-ms", "1000")
    # Past the ack wait (1 s) the server delivers the dead worker's events again.
    kill_9_then_rescue(r, args, tmp_path, kill_at=1000, total=4000, settle=1.2)
    check_redis_profiles(r, churn_data, sent, 100)
    ids = [e[1][b"event_id"] for e in r.xrange("scores")]
    assert len(ids) == len(set(ids)) == 4000  # every event in the output, once
    assert _nats_unsettled(nats_subject, "g") == (0, 0)


def test_nats_source_with_postgresql_profiles_publishes_scores_on_nats(
        pg_url, scorer, churn_data, nats_subject):
    import asyncio

    import nats

    from scorehouse.stream.nats_events import NatsEvents
    from scorehouse.stream.postgres_profiles import PostgresProfiles

    table = churn_table(pg_url, churn_data, 20)
    sent = random_events(100, 20, seed=9)
    nats_publish(nats_subject, [json.dumps(e).encode() for e in sent])
    events = NatsEvents(f"{NATS_URL}?subject={nats_subject}", "g", "w1")
    w = StreamWorker(scorer, events, PostgresProfiles(table, "customer_id", events.publish),
                     from_spec(REDUCER), key="customer_id", output_stream=f"{nats_subject}.scores")
    deadline = time.time() + 60
    while w.stats.scored < 100:
        assert time.time() < deadline, w.stats
        w.step()
    events.close()
    pg_counts(pg_url, churn_data, sent, 20)

    async def scores() -> list[str]:
        nc = await nats.connect(NATS_URL)
        js, name = nc.jetstream(), f"{nats_subject.upper()}_SCORES"
        try:
            sub = await js.pull_subscribe(f"{nats_subject}.scores", stream=name)
            msgs = await sub.fetch(200, timeout=2)
            return [json.loads(m.data)["event_id"] for m in msgs]
        finally:
            await js.delete_stream(name)
            await nc.close()

    ids = asyncio.run(scores())
    assert len(ids) == len(set(ids)) == 100


def test_worker_metrics_for_prometheus(r, redis_url, scorer, churn_data):
    import socket
    import urllib.request

    from scorehouse.stream.metrics import serve_metrics

    redis_profiles(r, churn_data, 10)
    redis_events(r, 50, 10)
    r.xadd("events", {"data": "{bad"})
    w = _worker(redis_url, scorer, claim_idle_ms=0, max_attempts=1)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve_metrics(w, port, addr="127.0.0.1")
    w.run(until_idle=True)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values = {line.split(" ")[0]: float(line.split(" ")[-1]) for line in text.splitlines()
              if line.startswith("scorehouse_stream")}
    assert values["scorehouse_stream_events_total"] == 51
    assert values["scorehouse_stream_scored_total"] == 50
    assert values["scorehouse_stream_dead_total"] == 1
    assert values["scorehouse_stream_scoring_seconds_total"] > 0
    assert values['scorehouse_stream_lag_milliseconds{quantile="0.99"}'] > 0


def test_enrich_only_then_a_separate_scoring_worker(r, redis_url, scorer, churn_data):
    from scorehouse.stream import load_reducer

    redis_profiles(r, churn_data, 15)
    sent = redis_events(r, 120, 15)
    enricher = StreamWorker(None, RedisEvents(f"{redis_url}?stream=events", "enrich", "e1"),
                            RedisProfiles(redis_url), from_spec(REDUCER), key="customer_id",
                            output_stream="events:enriched")
    enricher.run(until_idle=True)
    check_redis_profiles(r, churn_data, sent, 15)  # counted once, by the enricher
    assert r.xlen("events:enriched") == 120 and r.hget("profile:0", "churn_score") is None
    # The scoring worker reads the enriched stream; copying the enriched fields is idempotent.
    scoring = StreamWorker(scorer, RedisEvents(f"{redis_url}?stream=events:enriched", "score",
                                               "s1"), RedisProfiles(redis_url),
                           load_reducer(None), key="customer_id", output_stream="scores")
    scoring.run(until_idle=True)
    assert scoring.stats.scored == 120 and r.xlen("scores") == 120
    check_redis_profiles(r, churn_data, sent, 15)  # and not counted again
    assert r.hget("profile:0", "churn_score") is not None


def _nats(coro_fn):
    import asyncio

    import nats

    async def go():
        nc = await nats.connect(NATS_URL)
        try:
            return await coro_fn(nc.jetstream())
        finally:
            await nc.close()

    return asyncio.run(go())


@pytest.mark.parametrize("kept_as", ["exact", "wildcard", "named-in-url"])
def test_nats_finds_the_existing_stream_that_keeps_the_subject(
        r, redis_url, scorer, churn_data, nats_subject, kept_as):
    """A stream made by someone else, under a name scorehouse could not guess: the worker
    finds it (or uses the one named with js_stream), reads its events, dead-letters once."""
    from scorehouse.stream.nats_events import NatsEvents

    theirs = f"ORDERS_{nats_subject.upper()}"
    subjects = {"exact": [nats_subject], "wildcard": [f"{nats_subject}.>", nats_subject],
                "named-in-url": [nats_subject]}[kept_as]
    _nats(lambda js: js.add_stream(name=theirs, subjects=subjects))
    try:
        redis_profiles(r, churn_data, 5)
        sent = [{"customer_id": i % 5, "type": "call"} for i in range(20)]

        async def publish(js):
            for e in sent:
                await js.publish(nats_subject, json.dumps(e).encode())
            await js.publish(nats_subject, b"{broken")
        _nats(publish)
        extra = f"&js_stream={theirs}" if kept_as == "named-in-url" else ""
        events = NatsEvents(f"{NATS_URL}?subject={nats_subject}{extra}", "g", "w1")
        assert events.stream_name == theirs
        worker = StreamWorker(scorer, events, RedisProfiles(redis_url), from_spec(REDUCER),
                              key="customer_id", output_stream="scores", max_attempts=1)
        deadline = time.time() + 60
        while worker.stats.scored < 20 or worker.stats.dead < 1:
            assert time.time() < deadline, worker.stats
            worker.step()
        events.close()
        check_redis_profiles(r, churn_data, sent, 5)
        dead = _nats(lambda js: js.find_stream_name_by_subject(f"{nats_subject}.dead"))
        assert dead  # the dead letter went to a stream that keeps it
    finally:
        for name in {theirs, f"{nats_subject}_DEAD".upper()}:
            try:
                _nats(lambda js, n=name: js.delete_stream(n))
            except Exception:  # noqa: BLE001 - the wildcard stream kept .dead itself
                pass


def test_nats_names_the_stream_to_pass_when_js_stream_is_wrong(nats_subject):
    from scorehouse.errors import ScorehouseError
    from scorehouse.stream.nats_events import NatsEvents

    other = f"OTHER_{nats_subject.upper()}"
    _nats(lambda js: js.add_stream(name=other, subjects=[f"{nats_subject}_elsewhere"]))
    try:
        with pytest.raises(ScorehouseError, match=rf"stream '{other}' does not keep subject "
                                                  rf"'{nats_subject}'.*js_stream=NAME"):
            NatsEvents(f"{NATS_URL}?subject={nats_subject}&js_stream={other}", "g", "w1")
    finally:
        _nats(lambda js: js.delete_stream(other))


@pytest.mark.parametrize(("pattern", "subject", "matches"), [
    ("a.b", "a.b", True), ("a.*", "a.b", True), ("a.*", "a.b.c", False), ("a.>", "a.b.c", True),
    ("a.>", "a", False), (">", "a", True), ("a.b", "a.c", False), ("*.b", "a.b", True),
])
def test_nats_subject_patterns(pattern, subject, matches):
    from scorehouse.stream.nats_events import _subject_matches

    assert _subject_matches(pattern, subject) is matches
