"""Streaming scoring with profiles in a real PostgreSQL table, events from a real Redis:
parity, idempotence, refusals, several workers, kill -9, quoted names."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from _stream import (
    REDUCER,
    TOL,
    churn_table,
    kill_9_then_rescue,
    pg_connect,
    pg_counts,
    pg_rows,
    redis_events,
    run_together,
    stream_args,
)
from scorehouse.demo.data import TARGET
from scorehouse.errors import ScorehouseError
from scorehouse.stream import RedisEvents, StreamWorker, from_spec, load_reducer
from scorehouse.stream.postgres_profiles import PostgresProfiles


@pytest.fixture
def table(pg_url, churn_data) -> str:
    """customer_profile: the first 100 churn rows (see `churn_table`); the profiles URL."""
    return churn_table(pg_url, churn_data, 100)


def _worker(redis_url, table, scorer, name="w1", reducer=REDUCER, **kw) -> StreamWorker:
    events = RedisEvents(f"{redis_url}?stream=events", "g", name,
                         claim_idle_ms=kw.pop("claim_idle_ms", 30_000))
    return StreamWorker(scorer, events, PostgresProfiles(table, "customer_id", events.publish),
                        from_spec(reducer), key="customer_id", output_stream="scores", **kw)


def _count(pg_url, what: str) -> int:
    with pg_connect(pg_url) as conn:
        return conn.execute(f"SELECT count(*) FROM {what}").fetchone()[0]


def _output_ids(r) -> list[bytes]:
    return [e[1][b"event_id"] for e in r.xrange("scores")]


def test_scores_written_to_the_table_match_the_python_scorer(r, redis_url, pg_url, table,
                                                             scorer, churn_data):
    scorer.version = 7  # as if resolved from the registry, so the version column is written
    sent = redis_events(r, 400, 40)
    stats = _worker(redis_url, table, scorer).run(until_idle=True)
    assert (stats.events, stats.scored, stats.dead) == (400, 400, 0)
    rows = pg_counts(pg_url, churn_data, sent, 40)
    touched = [row for row in rows.values() if row["churn_event_id"] is not None]
    assert len(touched) > 30
    features = churn_data.drop(columns=[TARGET]).columns
    for row in touched:
        profile = {c: row[c] for c in features}
        expected = scorer.headline(scorer.predict(profile).to_records()[0])
        assert abs(row["churn_score"] - expected) <= TOL, row["customer_id"]
        assert row["churn_version"] == 7 and row["_version"] == row["churn_event_id"]
    with pg_connect(pg_url) as conn:
        kinds = dict(conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                                  "WHERE table_name = 'customer_profile'").fetchall())
    assert kinds["churn_score"] == "double precision" and kinds["_version"] == "text"
    ids = _output_ids(r)
    assert len(ids) == len(set(ids)) == 400  # relayed from the outbox to the source's Redis
    assert _count(pg_url, "customer_profile_outbox") == 0
    assert r.xpending("events", "g")["pending"] == 0


def test_a_redelivered_event_does_not_count_twice_in_the_table(r, redis_url, pg_url, table,
                                                               scorer, churn_data):
    sent = redis_events(r, 60, 10)
    crashed = _worker(redis_url, table, scorer, "crashes-before-ack")
    crashed.events.ack = lambda ids: None  # the effect is committed, the ack never happens
    crashed.run(until_idle=True)
    assert r.xpending("events", "g")["pending"] == 60
    stats = _worker(redis_url, table, scorer, "w2", claim_idle_ms=0).run(until_idle=True)
    assert stats.duplicates == 60 and stats.scored == 0
    pg_counts(pg_url, churn_data, sent, 10)
    assert _count(pg_url, "customer_profile_seen") == 60
    assert r.xlen("scores") == 60 and r.xpending("events", "g")["pending"] == 0


def test_values_the_table_refuses_are_dead_lettered_and_the_rest_goes_through(
        r, redis_url, pg_url, table, scorer, churn_data):
    before = pg_rows(pg_url)
    for ev in [{"customer_id": 1, "type": "complaint"},
               {"customer_id": 2, "type": "call", "signup": "not a date"},
               {"customer_id": 2, "type": "complaint"},
               {"customer_id": "abc", "type": "complaint"},
               {"customer_id": 3, "type": "call", "signup": "2024-02-29"}]:
        r.xadd("events", {"data": json.dumps(ev)})
    reducer = {**REDUCER, "last": {"plan": "plan", "signup": "signup"}}
    w = _worker(redis_url, table, scorer, reducer=reducer, claim_idle_ms=0, max_attempts=2)
    w.run(until_idle=True)
    reasons = sorted(e[1][b"_reason"].decode() for e in r.xrange("events:dead"))
    assert len(reasons) == 2 and w.stats.scored == 3
    assert "customer_id 'abc' is not a valid bigint" in reasons[0]
    assert "refused the profile" in reasons[1] and "date" in reasons[1]
    after = pg_rows(pg_url)
    assert after[1]["complaints"] == before[1]["complaints"] + 1
    assert after[2]["complaints"] == before[2]["complaints"] + 1  # after the refused event
    assert after[2]["support_calls"] == before[2]["support_calls"]  # the refused one: no effect
    assert str(after[3]["signup"]) == "2024-02-29" and after[2]["signup"] is None
    assert r.xpending("events", "g")["pending"] == 0


def test_two_workers_share_a_group_on_one_table(r, redis_url, pg_url, table, scorer, churn_data):
    sent = redis_events(r, 600, 30)
    workers = [_worker(redis_url, table, scorer, f"w{i}", batch=20) for i in range(2)]
    run_together(workers)
    # An entity still contended after every rewrite is left pending for a later claim (by
    # design: at least once); a worker claiming at once stands for "later" here.
    later = _worker(redis_url, table, scorer, "later", claim_idle_ms=0).run(until_idle=True)
    assert sum(w.stats.scored for w in workers) + later.scored == 600
    assert later.scored <= 20, "contention left more than a few events to a later claim"
    pg_counts(pg_url, churn_data, sent, 30)  # every event applied exactly once
    assert len(set(_output_ids(r))) == 600


@pytest.mark.parametrize("rivals", [1, 3, 20])
def test_a_profile_another_writer_changes_meanwhile_is_rewritten_or_left_for_later(
        r, redis_url, pg_url, table, scorer, churn_data, rivals):
    """Another writer changes a profile just before each of this worker's first `rivals`
    writes to it (a real UPDATE of its version on the table): the write conflicts, the worker reads the
    profile again and rewrites after a random wait; past CONFLICT_RETRIES the event stays
    pending, for a later claim. Either way every event counts exactly once."""
    from scorehouse.stream.worker import CONFLICT_RETRIES

    sent = redis_events(r, 40, 5)
    w = _worker(redis_url, table, scorer, "contended", batch=40)
    left = {"n": rivals}
    real = w.profiles.apply_many  # `apply` writes through it too

    def rival_first(effects):  # the rival changes the first profile of each of our writes
        if left["n"] > 0 and effects:
            left["n"] -= 1
            with pg_connect(pg_url) as conn:  # the rival's own connection and transaction
                conn.execute("UPDATE customer_profile SET _version = coalesce(_version, '')"
                             " || '+' WHERE customer_id = %s", (int(effects[0].entity),))
                conn.commit()
        return real(effects)

    w.profiles.apply_many = rival_first
    stats = w.run(until_idle=True)
    assert stats.conflicts >= 1
    later = _worker(redis_url, table, scorer, "later", claim_idle_ms=0).run(until_idle=True)
    if rivals < CONFLICT_RETRIES:
        assert (stats.scored, later.scored) == (40, 0)
    else:
        assert later.scored >= 1 and stats.scored + later.scored == 40
    pg_counts(pg_url, churn_data, sent, 5)
    assert r.xpending("events", "g")["pending"] == 0


def test_kill_9_mid_run_then_another_worker_reflects_every_event_once_in_the_table(
        r, redis_url, pg_url, table, churn_artifact, churn_data, tmp_path):
    sent = redis_events(r, 6000, 100)
    args = stream_args(churn_artifact, f"{redis_url}?stream=events", "--profiles", table,
                       "--sink", "scores")
    kill_9_then_rescue(r, args, tmp_path, kill_at=1500, total=6000, settle=1.0,
                       rescue=("--claim-idle-ms", "500"))
    pg_counts(pg_url, churn_data, sent, 100)
    # At least once: a worker killed between sending its outbox and deleting it repeats it.
    ids = _output_ids(r)
    assert len(set(ids)) == 6000 and len(ids) - 6000 <= 50
    assert _count(pg_url, "customer_profile_outbox") == 0
    assert r.xpending("events", "g")["pending"] == 0


def test_a_missing_table_is_created_and_names_are_only_ever_quoted(r, redis_url, pg_url):
    odd = 'Odd "Profiles"; DROP TABLE bystander; --'
    with pg_connect(pg_url) as conn:
        conn.execute("CREATE TABLE bystander (x int)")
    url = f"{pg_url}?table={quote(odd)}"
    sent = redis_events(r, 50, 5)
    events = RedisEvents(f"{redis_url}?stream=events", "enrich", "e1")
    enricher = StreamWorker(None, events, PostgresProfiles(url, "customer_id", events.publish),
                            from_spec(REDUCER), key="customer_id", output_stream="enriched")
    assert enricher.run(until_idle=True).scored == 50
    rows = pg_rows(pg_url, odd)
    assert {k: (v["complaints"] or 0, v["support_calls"] or 0) for k, v in rows.items()} == {
        str(i): (sum(e["type"] == "complaint" and e["customer_id"] == i for e in sent),
                 sum(e["type"] == "call" and e["customer_id"] == i for e in sent))
        for i in range(5)}
    assert r.xlen("enriched") == 50
    assert _count(pg_url, "bystander") == 0  # still there
    # A scoring worker reading the enriched stream: copying the fields again is idempotent.
    scoring = StreamWorker(None, RedisEvents(f"{redis_url}?stream=enriched", "s", "s1"),
                           PostgresProfiles(url, "customer_id"), load_reducer(None),
                           key="customer_id")
    scoring.run(until_idle=True)
    assert {k: v["complaints"] for k, v in pg_rows(pg_url, odd).items()} == {
        k: v["complaints"] for k, v in rows.items()}


def test_a_table_without_a_unique_key_is_refused_with_the_fix(pg_url):
    with pg_connect(pg_url) as conn:
        conn.execute("CREATE TABLE profiles (customer_id bigint)")
    with pytest.raises(ScorehouseError, match=r"CREATE UNIQUE INDEX ON \"profiles\""):
        PostgresProfiles(f"{pg_url}?table=profiles", "customer_id")
    with pytest.raises(ScorehouseError, match="need \\?table=NAME"):
        PostgresProfiles(pg_url, "customer_id")
