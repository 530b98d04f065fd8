"""Streaming scoring against a real Redis: flow, parity, idempotence, poison events, kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sysconfig
import threading
import time
from collections import Counter

import numpy as np
import pandas as pd
import pytest

import scorehouse
from conftest import unreachable
from scorehouse.demo.data import TARGET
from scorehouse.stream import RedisEvents, RedisProfiles, StreamWorker, from_spec

TOL = 1e-6
SCRIPT = shutil.which("scorehouse", path=sysconfig.get_path("scripts")) or shutil.which("scorehouse")
REDUCER = {"count": {"complaints": "type=complaint", "support_calls": "type=call"},
           "last": {"plan": "plan"}}


@pytest.fixture
def r(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def scorer(churn_artifact):
    return scorehouse.load(churn_artifact, trust=True)


def _profiles(r, churn_data, n: int) -> None:
    X = churn_data.drop(columns=[TARGET]).head(n)
    for i, rec in enumerate(X.to_dict("records")):
        r.hset(f"profile:{i}", mapping={k: str(v) for k, v in rec.items() if v == v})


def _events(r, n: int, customers: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    sent = []
    pipe = r.pipeline()
    for _ in range(n):
        kind = rng.choice(["complaint", "call", "upgrade"])
        ev = {"customer_id": int(rng.integers(customers)), "type": str(kind)}
        if kind == "upgrade":
            ev["plan"] = "gold"
        sent.append(ev)
        pipe.xadd("events", {"data": json.dumps(ev)})
    pipe.execute()
    return sent


def _worker(redis_url, scorer, name="w1", **kw) -> StreamWorker:
    return StreamWorker(scorer, RedisEvents(f"{redis_url}?stream=events", "g", name,
                                            claim_idle_ms=kw.pop("claim_idle_ms", 30_000)),
                        RedisProfiles(redis_url), from_spec(REDUCER), key="customer_id",
                        output_stream="scores", **kw)


def _expected_counts(r, churn_data, sent, customers):
    X = churn_data.drop(columns=[TARGET]).head(customers)
    complaints = Counter(e["customer_id"] for e in sent if e["type"] == "complaint")
    calls = Counter(e["customer_id"] for e in sent if e["type"] == "call")
    return {i: (int(X["complaints"].iloc[i]) + complaints[i],
                int(X["support_calls"].iloc[i]) + calls[i]) for i in range(customers)}


def _check_profiles(r, churn_data, sent, customers):
    for i, (complaints, calls) in _expected_counts(r, churn_data, sent, customers).items():
        h = r.hgetall(f"profile:{i}")
        assert (int(h[b"complaints"]), int(h[b"support_calls"])) == (complaints, calls), i


def test_events_update_profiles_and_scores_match_the_native_model(
        r, redis_url, scorer, churn_data, churn_model):
    _profiles(r, churn_data, 40)
    sent = _events(r, 400, 40)
    stats = _worker(redis_url, scorer).run(until_idle=True)
    assert (stats.events, stats.scored, stats.dead) == (400, 400, 0)
    _check_profiles(r, churn_data, sent, 40)
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
    _profiles(r, churn_data, 10)
    sent = _events(r, 60, 10)
    crashed = _worker(redis_url, scorer, "crashes-before-ack")
    crashed.events.ack = lambda ids: None  # the effect is written, the ack never happens
    crashed.run(until_idle=True)
    assert r.xpending("events", "g")["pending"] == 60
    second = _worker(redis_url, scorer, "w2", claim_idle_ms=0)
    stats = second.run(until_idle=True)
    assert stats.duplicates == 60 and stats.scored == 0
    _check_profiles(r, churn_data, sent, 10)
    assert r.xlen("scores") == 60 and r.xpending("events", "g")["pending"] == 0


def test_poison_events_are_dead_lettered_after_n_attempts(r, redis_url, scorer, churn_data):
    _profiles(r, churn_data, 5)
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
    _profiles(r, churn_data, 30)
    sent = _events(r, 600, 30)
    workers = [_worker(redis_url, scorer, f"w{i}", batch=20) for i in range(2)]
    threads = [threading.Thread(target=w.run, kwargs={"until_idle": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(w.stats.events > 0 for w in workers)
    assert sum(w.stats.scored for w in workers) == 600
    _check_profiles(r, churn_data, sent, 30)


def test_kill_9_mid_run_then_another_worker_finishes_exactly_once(
        r, redis_url, churn_artifact, churn_data, tmp_path):
    _profiles(r, churn_data, 100)
    sent = _events(r, 6000, 100)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREHOUSE_")}
    env["SCOREHOUSE_HOME"] = str(tmp_path)
    args = [SCRIPT, "stream", str(churn_artifact), "--trust", "--source",
            f"{redis_url}?stream=events", "--key", "customer_id", "--sink",
            f"{redis_url}?stream=scores", "--group", "g", "--batch", "50",
            "--reducer", json.dumps(REDUCER)]
    first = subprocess.Popen([*args, "--consumer", "doomed"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while r.xlen("scores") < 1500:
        assert time.time() < deadline and first.poll() is None, first.stderr.read()
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert r.xlen("scores") < 6000, "the run ended before it could be interrupted"
    time.sleep(1.0)  # the dead consumer's pending events must be idle to be reclaimed
    second = subprocess.run([*args, "--consumer", "rescuer", "--claim-idle-ms", "500",
                             "--until-idle"], env=env, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stderr
    _check_profiles(r, churn_data, sent, 100)
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
        _profiles(r, churn_data, 20)
        sent = _events(r, 3000, 20)
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
        _check_profiles(r, churn_data, sent, 20)
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

NATS_URL = os.environ.get("SCOREHOUSE_TEST_NATS", "nats://127.0.0.1:4222")


@pytest.fixture
def nats_subject():
    """A fresh JetStream subject on a reachable NATS (fails, never skips, under CI=true)."""
    import asyncio
    import uuid

    import nats

    subject = f"sh_test_{uuid.uuid4().hex[:8]}"

    async def check() -> None:
        nc = await nats.connect(NATS_URL, connect_timeout=3)
        await nc.close()

    try:
        asyncio.run(check())
    except Exception as e:  # noqa: BLE001 - any failure means "not reachable"
        unreachable("NATS", NATS_URL, e)
    yield subject

    async def drop() -> None:
        nc = await nats.connect(NATS_URL)
        try:
            await nc.jetstream().delete_stream(subject.upper())
        finally:
            await nc.close()

    asyncio.run(drop())


def _publish(subject: str, payloads: list[bytes]) -> None:
    import asyncio

    import nats

    async def go() -> None:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        try:
            await js.add_stream(name=subject.upper(), subjects=[subject, f"{subject}.dead"])
        except Exception:  # noqa: BLE001 - exists
            pass
        for p in payloads:
            await js.publish(subject, p)
        await nc.close()

    asyncio.run(go())


def _nats_worker(subject, redis_url, scorer, name, **kw):
    from scorehouse.stream.nats_events import NatsEvents

    events = NatsEvents(f"{NATS_URL}?subject={subject}", "g", name,
                        claim_idle_ms=kw.pop("claim_idle_ms", 30_000))
    return StreamWorker(scorer, events, RedisProfiles(redis_url), from_spec(REDUCER),
                        key="customer_id", output_stream="scores", **kw)


def test_nats_jetstream_source_scores_once_and_dead_letters(r, redis_url, scorer, churn_data,
                                                           nats_subject):
    _profiles(r, churn_data, 20)
    rng = np.random.default_rng(3)
    sent = [{"customer_id": int(rng.integers(20)), "type": str(rng.choice(["complaint", "call"]))}
            for _ in range(300)]
    _publish(nats_subject, [json.dumps(e).encode() for e in sent] + [b"{broken"])
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
    _check_profiles(r, churn_data, sent, 20)
    ids = [e[1][b"event_id"] for e in r.xrange("scores")]
    assert len(ids) == len(set(ids)) == 300
    second.events.close()


def test_worker_metrics_for_prometheus(r, redis_url, scorer, churn_data):
    import socket
    import urllib.request

    from scorehouse.stream.metrics import serve_metrics

    _profiles(r, churn_data, 10)
    _events(r, 50, 10)
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

    _profiles(r, churn_data, 15)
    sent = _events(r, 120, 15)
    enricher = StreamWorker(None, RedisEvents(f"{redis_url}?stream=events", "enrich", "e1"),
                            RedisProfiles(redis_url), from_spec(REDUCER), key="customer_id",
                            output_stream="events:enriched")
    enricher.run(until_idle=True)
    _check_profiles(r, churn_data, sent, 15)  # counted once, by the enricher
    assert r.xlen("events:enriched") == 120 and r.hget("profile:0", "churn_score") is None
    # The scoring worker reads the enriched stream; copying the enriched fields is idempotent.
    scoring = StreamWorker(scorer, RedisEvents(f"{redis_url}?stream=events:enriched", "score",
                                               "s1"), RedisProfiles(redis_url),
                           load_reducer(None), key="customer_id", output_stream="scores")
    scoring.run(until_idle=True)
    assert scoring.stats.scored == 120 and r.xlen("scores") == 120
    _check_profiles(r, churn_data, sent, 15)  # and not counted again
    assert r.hget("profile:0", "churn_score") is not None
