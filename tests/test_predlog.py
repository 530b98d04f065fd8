"""The prediction log (`monitor.log`): records, options, the bounded queue, and every sink
against the real service (Parquet files, PostgreSQL, Redis, librdkafka's mock Kafka)."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client import generate_latest

from scorehouse.errors import UsageError
from scorehouse.monitor.log import (
    Channel,
    LogOptions,
    ParquetSink,
    PredictionLogger,
    PredictionRecord,
    convert,
    new_id,
    read_log,
    records,
    row_id,
    row_ids,
    to_batch,
)
from scorehouse.monitor.log.convert import Call, batches
from scorehouse.monitor.log.gather import values_array
from scorehouse.monitor.log.sinks import recover

SALT = "pepper"


def _rows(features, n=20):
    """`n` input rows: row 1 rejected (tenure unreadable), row 2 flagged (unseen plan)."""
    f = features.head(n).copy().astype(object)
    f = f.where(f.notna(), None)
    f.loc[f.index[1], "tenure"] = "abc"
    f.loc[f.index[2], "plan"] = "diamond"
    return f


# --- records and options ----------------------------------------------------------------------
def test_ids_are_uuid7_sortable_and_row_ids_follow_the_call_id():
    a = new_id()
    time.sleep(0.002)
    b = new_id()
    assert a < b and uuid.UUID(a).version == 7 and uuid.UUID(a).variant == uuid.RFC_4122
    ids = row_ids(a, 1000)
    assert ids[0] == a and len(set(ids)) == 1000 and ids == sorted(ids)
    assert ids[637] == row_id(a, 637) and all(uuid.UUID(i).version == 7 for i in ids[::97])


def test_record_round_trips_through_dict_and_batch():
    r = PredictionRecord(new_id(), dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
                         "churn", 3, "onnx", Channel.SERVE, {"tenure": 4, "plan": "gold"},
                         {"label": "yes", "probability_yes": 0.75},
                         [("unseen_category", "plan")], None, 1.5, "churn-api", "shadow")
    assert PredictionRecord.from_dict(orjson.loads(orjson.dumps(r.to_dict()))) == r
    assert list(records(to_batch([r]))) == [r]


def test_options_parse_from_url_and_environment():
    o = LogOptions.parse("redis://h:6379/0?stream=log&sample=0.25&exclude=age,region"
                         f"&hash=plan&salt={SALT}&flush=0.5&queue=10")
    assert (o.to, o.sample, o.exclude, o.hash, o.flush, o.queue) == (
        "redis://h:6379/0?stream=log", 0.25, ("age", "region"), ("plan",), 0.5, 10)
    env = {"SCOREHOUSE_LOG_TO": "parquet:?sample=0.5", "SCOREHOUSE_LOG_SAMPLE": "0.1",
           "SCOREHOUSE_LOG_ROTATE_MB": "2", "SCOREHOUSE_LOG_HASH": "plan",
           "SCOREHOUSE_LOG_SALT": SALT}
    e = LogOptions.from_env(env)
    assert e is not None and (e.to, e.sample, e.rotate_mb, e.hash) == ("parquet:", 0.1, 2.0,
                                                                       ("plan",))
    assert LogOptions.from_env({}) is None
    for bad in ("parquet:?sample=2", "parquet:?hash=plan", "parquet:?queue=x"):
        with pytest.raises(UsageError):
            LogOptions.parse(bad)


def test_sampling_is_deterministic_by_id():
    ids = [new_id() for _ in range(20_000)]
    a, b = LogOptions(sample=0.3).keep(ids), LogOptions(sample=0.3).keep(list(ids))
    assert (a == b).all() and 0.28 < a.mean() < 0.32
    # The same id is kept by a run in another process too (BLAKE2b, not Python's hash()).
    code = ("import sys; from scorehouse.monitor.log import LogOptions; "
            "print(''.join('1' if k else '0' for k in LogOptions(sample=0.3).keep("
            "sys.argv[1:])))")
    out = subprocess.run([sys.executable, "-c", code, *ids[:200]], capture_output=True,
                         text=True, check=True, env={**os.environ}).stdout.strip()
    assert out == "".join("1" if k else "0" for k in a[:200])


# --- every sink -----------------------------------------------------------------------------------
def _read_parquet(url, n):
    return list(records(read_log(url)))


def _read_postgres(url, n):
    import psycopg

    with psycopg.connect(url.split("?")[0]) as conn:
        rows = conn.execute("SELECT id, time, model, version, runtime, channel, latency_ms, "
                            "reject, inputs, outputs, flags, deployment, role FROM log_t "
                            "ORDER BY id").fetchall()
    keys = ("id", "time", "model", "version", "runtime", "channel", "latency_ms", "reject",
            "inputs", "outputs", "flags", "deployment", "role")
    return [PredictionRecord.from_dict(dict(zip(keys, r, strict=True))) for r in rows]


def _read_redis(url, n):
    import redis

    client = redis.Redis.from_url(url.split("?")[0])
    entries = client.xrange("log_s")
    return [PredictionRecord.from_dict(orjson.loads(e[b"record"])) for _, e in entries]


def _read_kafka(url, n):
    from confluent_kafka import Consumer

    servers, topic = url[len("kafka://"):].split("/")
    c = Consumer({"bootstrap.servers": servers, "group.id": f"r-{uuid.uuid4().hex[:6]}",
                  "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    got, deadline = [], time.time() + 60
    while len(got) < n and time.time() < deadline:
        got += [m for m in c.consume(n - len(got), timeout=1) if not m.error()]
    c.close()
    return [PredictionRecord.from_dict(orjson.loads(m.value())) for m in got]


@pytest.fixture(params=["parquet", "postgresql", "redis", "kafka"])
def sink_url(request, tmp_path):
    """(log URL, reader of its records) for each sink family, on the real service."""
    kind = request.param
    if kind == "parquet":
        return str(tmp_path / "log"), _read_parquet
    if kind == "postgresql":
        return request.getfixturevalue("pg_url") + "?table=log_t", _read_postgres
    if kind == "redis":
        request.getfixturevalue("r")  # flushed before and after
        return request.getfixturevalue("redis_url") + "?stream=log_s", _read_redis
    return f"kafka://{request.getfixturevalue('kafka')}/log_{uuid.uuid4().hex[:8]}", _read_kafka


def test_rows_round_trip_through_every_sink(sink_url, scorer, features):
    url, read = sink_url
    rows = _rows(features)
    logger = PredictionLogger(LogOptions.parse(url, exclude=("age",), hash=("region",),
                                               salt=SALT), channel=Channel.SCORE)
    logger.attach(scorer)
    batch = scorer.predict(rows)                                   # one 20-row call
    singles = [scorer.predict(r) for r in rows.head(3).to_dict("records")]  # 3 one-row calls
    logger.close()
    assert logger.stats.written == 23 and logger.stats.dropped == 0
    got = {r.id: r for r in read(url, 23)}
    assert len(got) == 23
    logged = sorted(got.values(), key=lambda r: r.id)
    assert all(r.model == "churn" and r.channel is Channel.SCORE and r.runtime for r in logged)
    scored = [r for r in logged if r.reject is None]
    rejected = [r for r in logged if r.reject is not None]
    assert len(rejected) == 2 and all("tenure" in r.reject and not r.outputs for r in rejected)
    assert len(scored) == 21 and all(set(r.outputs) == {"label", "probability_no",
                                                         "probability_yes"} for r in scored)
    assert sum(("unseen_category", "plan") in r.flags for r in logged) == 2
    assert all("age" not in r.inputs for r in logged)
    region = features["region"].iloc[0]
    import hashlib
    digest = hashlib.sha256((SALT + str(region)).encode()).hexdigest()
    first_of_batch = logged[0]  # uuid7 ids sort by call then row
    assert first_of_batch.inputs["region"] == digest
    assert first_of_batch.inputs["tenure"] == int(features["tenure"].iloc[0])
    expected = batch.to_pandas()["probability_yes"].to_numpy()
    by_call = [r for r in logged if r.time == first_of_batch.time and r.reject is None]
    assert np.allclose([r.outputs["probability_yes"] for r in by_call], expected)
    assert singles[1].rejects and len(logged) == 23


def test_every_roles_rows_keep_the_deployment_role_and_request_id_in_every_sink(
        sink_url, scorer, features):
    """A deployment logs each role's call under the request's ids: one-row calls (the
    server) and many-row calls (batch) keep `deployment` and `role` in every sink."""
    url, read = sink_url
    one = features.head(1).to_dict("records")[0]
    many = features.iloc[5:9]
    events: list = []
    scorer.add_hook(events.append)
    try:
        for _ in ("champion", "shadow"):
            scorer.predict(one)
        for _ in ("champion", "canary"):
            scorer.predict(many)
    finally:
        scorer.hooks.clear()
    ids = [f"batch-{i}" for i in range(len(many))]
    with PredictionLogger(LogOptions.parse(url)) as logger:
        for event, role in zip(events[:2], ("champion", "shadow"), strict=True):
            logger.log(event, ids=["req-1"], deployment="churn-api", role=role)
        for event, role in zip(events[2:], ("champion", "canary"), strict=True):
            logger.log(event, ids=ids, deployment="churn-api", role=role)
    got = read(url, 2 + 2 * len(many))
    roles = sorted((r.id, r.role) for r in got)
    assert roles == sorted([("req-1", "champion"), ("req-1", "shadow"),
                            *((i, "champion") for i in ids), *((i, "canary") for i in ids)])
    assert {r.deployment for r in got} == {"churn-api"}
    # A call logged outside a deployment has neither (null, not an empty string).
    assert PredictionRecord.from_dict({"id": "x", "time": dt.datetime.now(dt.timezone.utc),
                                       "model": "m", "channel": "serve"}).role is None


def test_given_ids_are_logged_and_sampling_keeps_the_same_ids(tmp_path, scorer, features):
    rows = features.head(400)
    ids = [f"req-{i}" for i in range(400)]
    kept = []
    for run in range(2):
        root = tmp_path / f"run{run}"
        with PredictionLogger(LogOptions(to=str(root), sample=0.5)) as logger:
            event = []
            scorer.add_hook(event.append)
            scorer.predict(rows)
            scorer.hooks.clear()
            assert logger.log(event[0], ids=ids, channel=Channel.SERVE) == "req-0"
        kept.append(sorted(read_log(root).column("id").to_pylist()))
        assert logger.stats.written + logger.stats.sampled_out == 400
    assert kept[0] == kept[1] and 150 < len(kept[0]) < 250
    assert kept[0] == sorted(np.array(ids)[LogOptions(sample=0.5).keep(ids)].tolist())


def test_one_row_calls_gathered_column_wise_give_the_general_paths_records(scorer, features):
    """A drain converts one-row calls column by column (`gather.Run`); the records and
    column types are those of converting each call on its own (`convert._frame`)."""
    rows = _rows(features, 30).to_dict("records")
    rows[4]["monthly_charges"] = None
    events = []
    scorer.add_hook(events.append)
    for r in rows:
        scorer.predict(r)
    scorer.hooks.clear()
    calls = [Call(e, Channel.SERVE, new_id(), [f"k{i}"] if i % 2 else None, 0.5 + i, 1000 + i)
             for i, e in enumerate(events)]
    options = LogOptions(exclude=("age",), hash=("region",), salt=SALT)
    gathered, _ = batches(calls, options)
    alone = []
    for c in calls:
        frame, _ = convert._frame(c, options)
        alone.append(pa.RecordBatch.from_arrays(
            [convert._column([frame[n]], convert._TYPES.get(n)) for n in frame],
            names=list(frame)))
    assert len(gathered) == 2  # one batch of scored rows, one of rejected
    by_id = lambda batches_: sorted((r for b in batches_ for r in records(b)),  # noqa: E731
                                    key=lambda r: r.id)
    assert by_id(gathered) == by_id(alone) and len(by_id(gathered)) == 30
    types = {f.name: f.type for b in alone for f in b.schema if f.type != pa.null()}
    assert {f.name: f.type for b in gathered for f in b.schema if f.type != pa.null()} == types
    # The numpy scalars `values_array` hands to Arrow as they are give their Python values' type.
    for value in (np.int64(3), np.float64(2.5), np.bool_(True), np.str_("a")):
        assert values_array([value, None]).equals(pa.array([value.item(), None]))


def test_a_one_row_table_logs_its_inputs_as_values_not_lists(tmp_path, scorer, features):
    """A one-row table (a batch's last chunk, a stream's one event) holds its columns as
    arrays of one value: logged as the value (they once came out as list<double>)."""
    with PredictionLogger(LogOptions(to=str(tmp_path))) as logger:
        logger.attach(scorer)
        scorer.predict(features.head(1))
        scorer.predict(features.iloc[1:2].to_dict("records")[0])
    scorer.hooks.clear()
    log = read_log(tmp_path)
    assert log.num_rows == 2 and log.schema.field("input.tenure").type == pa.int64()
    assert sorted(log.column("input.tenure").to_pylist()) == sorted(
        features["tenure"].iloc[:2].tolist())


# --- never blocking, never silent ---------------------------------------------------------------
class SlowParquet(ParquetSink):
    """A real Parquet sink whose every write takes `delay` seconds more."""

    def __init__(self, root, delay):
        super().__init__(root)
        self.delay = delay

    def write(self, batch):
        time.sleep(self.delay)
        super().write(batch)


def test_a_slow_sink_drops_and_counts_rows_but_never_blocks_scoring(tmp_path, scorer,
                                                                    features):
    records_ = features.head(50).astype(object)
    records_ = records_.where(records_.notna(), None).to_dict("records")
    options = LogOptions(to=str(tmp_path / "log"), queue=100, flush=0.05)
    logger = PredictionLogger(options, sink=SlowParquet(tmp_path / "log", 0.3))
    events = []
    scorer.add_hook(events.append)
    for r in records_:
        scorer.predict(r)
    scorer.hooks.clear()
    worst = 0.0
    for i in range(3000):
        start = time.perf_counter()
        logger.log(events[i % len(events)])
        worst = max(worst, time.perf_counter() - start)
    logger.close()
    s = logger.stats
    assert s.dropped > 1000 and s.offered == 3000 == s.written + s.dropped
    assert read_log(tmp_path / "log").num_rows == s.written
    assert worst < 0.05  # each call queued or dropped at once, never waiting for the sink
    text = generate_latest(logger.metrics.registry).decode()
    assert f'scorehouse_log_dropped_total{{model="churn",sink="parquet"}} {float(s.dropped)}' \
        in text


def test_a_locked_postgres_table_drops_rows_and_counts_them(pg_url, scorer, features):
    import psycopg

    logger = PredictionLogger(LogOptions(to=pg_url + "?table=log_t", queue=200, flush=0.05))
    logger.attach(scorer, Channel.SQL)
    scorer.predict(features.head(10))
    logger.flush()
    with psycopg.connect(pg_url) as blocker:  # a real slow server: the table is locked
        blocker.execute("LOCK TABLE log_t IN ACCESS EXCLUSIVE MODE")
        start = time.perf_counter()
        for _ in range(100):
            scorer.predict(features.head(10))
        blocked_for = time.perf_counter() - start
        time.sleep(0.5)
    logger.close()
    s = logger.stats
    assert s.dropped > 0 and s.offered == 1010 == s.written + s.dropped
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM log_t").fetchone()[0] == s.written
    assert blocked_for < 30  # 100 scoring calls went on while the sink was stuck


def test_close_flushes_everything_queued(tmp_path, scorer, features):
    logger = PredictionLogger(LogOptions(to=str(tmp_path / "log"), flush=3600))
    logger.attach(scorer)
    for at in range(0, 1000, 100):
        scorer.predict(features.iloc[at:at + 100])
    assert read_log(tmp_path / "log").num_rows == 0  # nothing written yet: all queued
    logger.close()
    assert read_log(tmp_path / "log").num_rows == 1000 == logger.stats.written


# --- Parquet files: atomic, rotated, recovered ------------------------------------------------------
def test_parquet_files_rotate_by_size_and_readers_never_see_a_partial_file(tmp_path, scorer,
                                                                          features):
    root = tmp_path / "log"
    logger = PredictionLogger(LogOptions(to=str(root), rotate_mb=0.05, flush=0.01))
    logger.attach(scorer)
    seen, errors, stop = [], [], threading.Event()

    def poll():
        while not stop.is_set():
            for f in root.glob("model=*/date=*/*.parquet"):
                try:
                    seen.append(pq.ParquetFile(f).metadata.num_rows)
                except Exception as e:  # noqa: BLE001 - a partial file is the failure
                    errors.append(f"{f.name}: {e}")

    reader = threading.Thread(target=poll)
    reader.start()
    for at in range(0, 3000, 100):
        scorer.predict(features.iloc[at:at + 100])
        time.sleep(0.01)
    logger.close()
    stop.set()
    reader.join()
    files = sorted(root.glob("model=churn/date=*/*.parquet"))
    assert not errors and seen and len(files) >= 3
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == 3000
    assert not list(root.rglob(".*"))  # no journal or temporary file left
    times = [pq.read_table(f, columns=["time"]).column("time")[0].as_py() for f in files]
    assert times == sorted(times)  # file names sort by time
    assert read_log(root, model="churn", since=times[-1]).num_rows < 3000


KILLED = r"""
import os, signal, sys, time
from scorehouse.monitor.log import LogOptions, PredictionLogger
logger = PredictionLogger(LogOptions(to=sys.argv[1], flush=0.05))
import numpy as np
from scorehouse.scorer import ScoreEvent
from scorehouse.scorer.result import Result
from scorehouse.runtime import Output
for i in range(5):
    r = Result("churn", 1, "regression", None, 100, np.arange(100), Output(values=np.ones(100)))
    logger.log(ScoreEvent("churn", 1, {"x": np.arange(100.0)}, r))
    time.sleep(0.2)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_kill_9_loses_at_most_the_flush_interval_and_the_journal_is_recovered(tmp_path):
    root = tmp_path / "log"
    run = subprocess.run([sys.executable, "-c", KILLED, str(root)], capture_output=True)
    assert run.returncode == -signal.SIGKILL
    assert read_log(root).num_rows == 0 and list(root.rglob(".*.arrows"))
    assert recover(root)
    table = read_log(root)
    assert table.num_rows == 500 and table.column("input.x").to_pylist()[:2] == [0.0, 1.0]
