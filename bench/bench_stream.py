"""Streaming figures: `scorehouse stream` on Redis Streams, throughput and end-to-end latency.

Data: `--customers` profiles (the 13 mixed columns of bench_runtime's data) as Redis hashes,
and `--events` events (complaint / call / upgrade, uniformly over the customers) appended to
a stream before the workers start. Model: the forest pipeline of bench_runtime, packaged
with `scorehouse.package`. Workers are `scorehouse stream` processes in one consumer group.

1. Throughput: the time from the workers' start until every event's score is in the output
   stream, with one worker and with two (a fresh stream and profiles for each).
2. Latency: with one worker running, a producer appends events at half the one-worker rate
   for `--seconds`; latency is scored_at (written by the worker) minus the event id's
   timestamp (set by Redis on XADD), p50 and p99.

Goals: >= 10,000 events/s; p99 < 50 ms at half that rate. No baseline process exists for
this flow, so the figure is absolute (the issue names one).

Run: python bench/bench_stream.py [--events 1000000] [--customers 100000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runtime import TRAIN_ROWS, frame, revision, train  # noqa: E402
from report import machine, write_section  # noqa: E402

URL = os.environ.get("SCOREHOUSE_BENCH_REDIS", "redis://127.0.0.1:6379/13")
REDUCER = {"count": {"complaints": "type=complaint", "support_calls": "type=call"},
           "last": {"plan": "plan"}}
GOAL_RATE, GOAL_P99_MS = 10_000, 50.0


def client():
    import redis
    return redis.Redis.from_url(URL)


def load_profiles(customers: int) -> None:
    from scorehouse.demo.data import TARGET

    r = client()
    pipe = r.pipeline(transaction=False)
    X = frame(customers, seed=21).drop(columns=[TARGET])
    for i, rec in enumerate(X.astype(object).to_dict("records")):
        pipe.hset(f"profile:{i}", mapping={k: str(v) for k, v in rec.items() if v == v})
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def event(rng: np.random.Generator, customers: int) -> dict[str, str]:
    kind = ("complaint", "call", "upgrade")[int(rng.integers(3))]
    ev = {"customer_id": int(rng.integers(customers)), "type": kind}
    if kind == "upgrade":
        ev["plan"] = "gold"
    return {"data": json.dumps(ev)}


def append_events(n: int, customers: int) -> None:
    r, rng = client(), np.random.default_rng(5)
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        pipe.xadd("events", event(rng, customers))
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def workers(artifact: Path, n: int, env: dict[str, str]) -> list[subprocess.Popen]:
    exe = shutil.which("scorehouse", path=str(Path(sys.executable).parent))
    return [subprocess.Popen([exe, "stream", str(artifact), "--trust", "--source",
                              f"{URL}?stream=events", "--key", "customer_id", "--group", "bench",
                              "--consumer", f"w{i}", "--reducer", json.dumps(REDUCER)],
                             env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for i in range(n)]


def stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait(timeout=60)


def throughput(artifact: Path, n_workers: int, events: int, customers: int,
               env: dict[str, str]) -> float:
    """Events/s from the workers' start until every score is in the output stream."""
    r = client()
    r.flushdb()
    load_profiles(customers)
    append_events(events, customers)
    start = time.perf_counter()
    procs = workers(artifact, n_workers, env)
    try:
        while r.xlen("events:scores") < events:
            if any(p.poll() is not None for p in procs):
                raise SystemExit("a worker exited early")
            time.sleep(0.05)
    finally:
        stop(procs)
    # The start includes each worker's import and model load (about 1 s).
    return events / (time.perf_counter() - start)


def latency(artifact: Path, rate: float, seconds: int, customers: int,
            env: dict[str, str]) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, events) from XADD to score written, one worker at `rate` events/s."""
    r = client()
    r.flushdb()
    load_profiles(customers)
    procs = workers(artifact, 1, env)
    rng = np.random.default_rng(9)
    try:
        time.sleep(3.0)  # the worker has loaded the model
        sent, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            due = int((time.perf_counter() - start) * rate)
            pipe = r.pipeline(transaction=False)
            for _ in range(due - sent):
                pipe.xadd("events", event(rng, customers))
            pipe.execute()
            sent = due
            time.sleep(0.002)
        while r.xlen("events:scores") < sent:
            time.sleep(0.05)
    finally:
        stop(procs)
    lat = []
    for _, f in r.xrange("events:scores"):
        added_ms = int(f[b"event_id"].split(b"-")[0])
        scored = datetime.fromisoformat(f[b"scored_at"].decode()).timestamp() * 1000
        lat.append(scored - added_ms)
    a = np.array(lat)
    return float(np.percentile(a, 50)), float(np.percentile(a, 99)), len(a)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="50k events, 10k customers; print only")
    args = ap.parse_args()
    if args.quick:
        args.events, args.customers, args.seconds = 50_000, 10_000, 10

    import scorehouse as sh
    from scorehouse.demo.data import TARGET

    with tempfile.TemporaryDirectory(prefix="sh-bench-stream-") as tmp:
        data = frame(TRAIN_ROWS, seed=1)
        artifact = sh.package(train("forest", data), data, name="churn", target=TARGET,
                              path=Path(tmp) / "churn.shz")
        env = {**os.environ, "SCOREHOUSE_HOME": tmp}
        one = throughput(artifact, 1, args.events, args.customers, env)
        print(f"1 worker: {one:,.0f} events/s", flush=True)
        two = throughput(artifact, 2, args.events, args.customers, env)
        print(f"2 workers: {two:,.0f} events/s", flush=True)
        p50, p99, n = latency(artifact, one / 2, args.seconds, args.customers, env)
        print(f"latency at {one / 2:,.0f}/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms", flush=True)
    client().flushdb()
    report(args, one, two, p50, p99, n)


def report(args: argparse.Namespace, one: float, two: float, p50: float, p99: float,
           n: int) -> None:
    best = max(one, two)
    yes = lambda ok: "yes" if ok else "NO"  # noqa: E731
    body = f"""## Streaming: Redis Streams (goals: >= {GOAL_RATE:,} events/s; p99 < {GOAL_P99_MS:g} ms at half the rate)

`python bench/bench_stream.py --events {args.events} --customers {args.customers} --seconds {args.seconds}` on {machine()}, {revision()}. Redis on the same 2 cores; forest pipeline (100 trees, depth 10, 13 mixed columns); each event updates one profile with a counting/last-value reducer, is scored and written back with the output-stream entry in one Lua call, then acknowledged. Throughput counts from the workers' start (imports and model load included) until the last score is written.

| measure | figure | goal | met |
|---|---|---|---|
| events/s, 1 worker | {one:,.0f} | | |
| events/s, 2 workers | {two:,.0f} | >= {GOAL_RATE:,} (best of the two) | {yes(best >= GOAL_RATE)} |
| latency XADD -> score written at {one / 2:,.0f} events/s, p50 / p99 ms ({n:,} events, {args.seconds} s) | {p50:.1f} / {p99:.1f} | p99 < {GOAL_P99_MS:g} | {yes(p99 < GOAL_P99_MS)} |
"""
    print(body)
    if not args.quick:
        write_section("stream", body)


if __name__ == "__main__":
    main()
