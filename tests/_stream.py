"""What the streaming tests share: the reducer, events, profiles and the checks on them."""

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
from pathlib import Path

import numpy as np

from scorehouse.demo.data import TARGET

TOL = 1e-6
SCRIPT = shutil.which("scorehouse", path=sysconfig.get_path("scripts")) or shutil.which("scorehouse")
REDUCER = {"count": {"complaints": "type=complaint", "support_calls": "type=call"},
           "last": {"plan": "plan"}}


def random_events(n: int, customers: int, seed: int = 0) -> list[dict]:
    """`n` complaints, calls and upgrades spread over `customers` entities."""
    rng = np.random.default_rng(seed)
    sent = []
    for _ in range(n):
        kind = rng.choice(["complaint", "call", "upgrade"])
        ev = {"customer_id": int(rng.integers(customers)), "type": str(kind)}
        if kind == "upgrade":
            ev["plan"] = "gold"
        sent.append(ev)
    return sent


def redis_events(r, n: int, customers: int, seed: int = 0) -> list[dict]:
    """`random_events` appended to the Redis stream `events`."""
    sent = random_events(n, customers, seed)
    pipe = r.pipeline()
    for ev in sent:
        pipe.xadd("events", {"data": json.dumps(ev)})
    pipe.execute()
    return sent


def redis_profiles(r, churn_data, n: int) -> None:
    """The first `n` churn rows as Redis hashes profile:<i>."""
    X = churn_data.drop(columns=[TARGET]).head(n)
    for i, rec in enumerate(X.to_dict("records")):
        r.hset(f"profile:{i}", mapping={k: str(v) for k, v in rec.items() if v == v})


def expected_counts(churn_data, sent, customers) -> dict[int, tuple[int, int]]:
    """customer -> (complaints, support_calls) once every event in `sent` counted once."""
    X = churn_data.drop(columns=[TARGET]).head(customers)
    complaints = Counter(e["customer_id"] for e in sent if e["type"] == "complaint")
    calls = Counter(e["customer_id"] for e in sent if e["type"] == "call")
    return {i: (int(X["complaints"].iloc[i]) + complaints[i],
                int(X["support_calls"].iloc[i]) + calls[i]) for i in range(customers)}


def check_redis_profiles(r, churn_data, sent, customers) -> None:
    """Every event of `sent` counted exactly once in the Redis profiles."""
    for i, (complaints, calls) in expected_counts(churn_data, sent, customers).items():
        h = r.hgetall(f"profile:{i}")
        assert (int(h[b"complaints"]), int(h[b"support_calls"])) == (complaints, calls), i


def cli_env(home: Path) -> dict[str, str]:
    """The environment of a `scorehouse` subprocess with its own home."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SCOREHOUSE_")}
    env["SCOREHOUSE_HOME"] = str(home)
    return env


def pg_connect(pg_url):
    """An autocommit connection to a test database."""
    import psycopg

    return psycopg.connect(pg_url, autocommit=True)


def churn_table(pg_url, churn_data, n: int) -> str:
    """customer_profile: the first `n` churn rows keyed by a bigint customer_id, plus a
    `signup` date the model does not use; returns the profiles URL (…?table=customer_profile)."""
    from psycopg import sql

    X = churn_data.drop(columns=[TARGET]).head(n)
    kinds = {c: {"i": "bigint", "f": "double precision"}.get(X[c].dtype.kind, "text")
             for c in X.columns}
    columns = sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(k))
                                 for c, k in kinds.items())
    with pg_connect(pg_url) as conn:
        conn.execute(sql.SQL("CREATE TABLE customer_profile (customer_id bigint PRIMARY KEY, "
                             "signup date, {})").format(columns))
        insert = sql.SQL("INSERT INTO customer_profile (customer_id, {}) VALUES (%s, {})").format(
            sql.SQL(", ").join(map(sql.Identifier, X.columns)),
            sql.SQL(", ").join(sql.Placeholder() * len(X.columns)))
        conn.cursor().executemany(insert, [[i, *(None if v != v else v for v in rec)]
                                           for i, rec in enumerate(X.itertuples(index=False))])
    return f"{pg_url}?table=customer_profile"


def pg_rows(pg_url, table: str = "customer_profile") -> dict:
    """The rows of a profile table by key."""
    from psycopg import sql
    from psycopg.rows import dict_row

    with pg_connect(pg_url) as conn, conn.cursor(row_factory=dict_row) as cur:
        return {row["customer_id"]: row for row in
                cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))}


def pg_counts(pg_url, churn_data, sent, customers) -> dict[int, dict]:
    """Every event of `sent` counted exactly once in customer_profile; its rows by key."""
    rows = pg_rows(pg_url)
    for i, (complaints, calls) in expected_counts(churn_data, sent, customers).items():
        assert (rows[i]["complaints"], rows[i]["support_calls"]) == (complaints, calls), i
    return rows


def stream_args(artifact, source: str, *options: str) -> list[str]:
    """`scorehouse stream` of the churn artifact with REDUCER, keyed by customer_id."""
    return [SCRIPT, "stream", str(artifact), "--trust", "--source", source, "--key",
            "customer_id", "--group", "g", "--batch", "50", "--reducer", json.dumps(REDUCER),
            *options]


def kill_9_then_rescue(r, args: list[str], home: Path, *, kill_at: int, total: int,
                       settle: float, rescue: tuple[str, ...] = ()) -> None:
    """Run `args` until `kill_at` scores are in the Redis stream `scores`, kill -9 it, wait
    `settle` seconds, then run another worker (`args` + `rescue`) until the source is idle."""
    first = subprocess.Popen([*args, "--consumer", "doomed"], env=cli_env(home),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while r.xlen("scores") < kill_at:
        assert time.time() < deadline and first.poll() is None, first.stderr.read()
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert r.xlen("scores") < total, "the run ended before it could be interrupted"
    time.sleep(settle)
    second = subprocess.run([*args, "--consumer", "rescuer", *rescue, "--until-idle"],
                            env=cli_env(home), capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr


def run_together(workers) -> None:
    """Run workers in threads until the stream is idle; each must have had events."""
    threads = [threading.Thread(target=w.run, kwargs={"until_idle": True}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(w.stats.events > 0 for w in workers)


def nats_publish(subject: str, payloads: list[bytes]) -> list[int]:
    """Publish on JetStream `subject` (a stream SUBJECT keeping it and its .dead made if
    missing); the stream sequence of each message, in order."""
    import asyncio

    import nats

    from conftest import NATS_URL

    async def go() -> list[int]:
        nc = await nats.connect(NATS_URL)
        js = nc.jetstream()
        try:
            await js.add_stream(name=subject.upper(), subjects=[subject, f"{subject}.dead"])
        except Exception:  # noqa: BLE001 - exists
            pass
        acks = [await js.publish(subject, p) for p in payloads]
        await nc.close()
        return [a.seq for a in acks]

    return asyncio.run(go())
