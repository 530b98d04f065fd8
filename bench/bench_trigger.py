"""The trigger recipe's cost: latency an in-transaction scoring trigger adds to an insert.

A PostgreSQL database holds `customer_profile` (10,000 customers, the 13 mixed columns of
bench_runtime's data) and `complaints`. The forest pipeline (100 trees, depth 10) is
packaged, registered and installed with `scorehouse db install`. Each measurement is the
client-side round trip of a single-row, autocommitted `INSERT INTO complaints`, over
`--inserts` inserts on one connection after a warm-up (the model loads once per connection):

1. baseline: no trigger on `complaints`;
2. `scorehouse db trigger … --mode transaction`: the insert bumps the customer's counter,
   re-scores the profile with `scorehouse.score` and writes the score, in the same
   transaction.

Added latency = (2) - (1) at p50 and at p99. Goal: p50 under 2 ms.

Run: python bench/bench_trigger.py [--inserts 2000] [--quick]   (--quick: 300, prints only)
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runtime import TRAIN_ROWS, frame, revision, train  # noqa: E402
from report import machine, write_section  # noqa: E402

ADMIN = os.environ.get("SCOREHOUSE_TEST_PG", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")
GOAL_P50_MS = 2.0
CUSTOMERS = 10_000


def insert_latencies(url: str, n: int, warmup: int = 50) -> np.ndarray:
    """Milliseconds per single-row insert, one connection, autocommit."""
    import psycopg

    rng = np.random.default_rng(0)
    ids = rng.integers(0, CUSTOMERS, n + warmup)
    out = np.empty(n)
    with psycopg.connect(url, autocommit=True) as conn:
        for k, cid in enumerate(ids):
            start = time.perf_counter()
            conn.execute("INSERT INTO complaints (customer_id, channel) VALUES (%s, 'phone')",
                         [int(cid)])
            if k >= warmup:
                out[k - warmup] = (time.perf_counter() - start) * 1e3
    return out


def setup(url: str, columns: list[str]) -> None:
    import psycopg

    from scorehouse.demo.data import TARGET

    data = frame(CUSTOMERS, seed=11).drop(columns=[TARGET])
    types = {c: "double precision" if data[c].dtype.kind == "f" else
             "bigint" if data[c].dtype.kind == "i" else "text" for c in columns}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE customer_profile (customer_id integer PRIMARY KEY, "
                     + ", ".join(f'"{c}" {types[c]}' for c in columns) + ")")
        with conn.cursor().copy("COPY customer_profile FROM STDIN") as copy:
            for i, rec in enumerate(data[columns].astype(object).itertuples(index=False)):
                copy.write_row((i, *(None if v != v else v for v in rec)))
        conn.execute("CREATE TABLE complaints (id serial PRIMARY KEY, customer_id integer, "
                     "channel text)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--inserts", type=int, default=2000)
    ap.add_argument("--quick", action="store_true", help="300 inserts; print only")
    args = ap.parse_args()
    n = 300 if args.quick else args.inserts

    import psycopg

    with tempfile.TemporaryDirectory(prefix="sh-bench-trigger-") as tmp:
        os.environ["SCOREHOUSE_HOME"] = tmp
        import scorehouse as sh
        from scorehouse.demo.data import TARGET
        from scorehouse.sql.postgres import install
        from scorehouse.sql.triggers import Recipe, install_trigger

        data = frame(TRAIN_ROWS, seed=1)
        path = sh.package(train("forest", data), data, name="churn", target=TARGET,
                          path=Path(tmp) / "churn.shz")
        reg = sh.Registry()
        reg.register(path)
        reg.promote("churn/1", "production")
        columns = [c for c in data.columns if c != TARGET]

        name = f"sh_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
        try:
            setup(url, columns)
            install(url, ["churn@production"], registry=reg)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("ALTER TABLE customer_profile ADD COLUMN complaints_count integer")
            baseline = insert_latencies(url, n)
            install_trigger(url, Recipe("churn", "complaints", "customer_profile",
                                        "customer_id", ["complaints_count"], {}, "transaction"))
            scored = insert_latencies(url, n)
            with psycopg.connect(url, autocommit=True) as conn:
                errors = conn.execute("SELECT count(*) FROM customer_profile WHERE "
                                      "churn_error IS NOT NULL").fetchone()[0]
        finally:
            with psycopg.connect(ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    report(baseline, scored, n, errors, args.quick)


def report(base: np.ndarray, trig: np.ndarray, n: int, errors: int, quick: bool) -> None:
    p = lambda a, q: float(np.percentile(a, q))  # noqa: E731
    added50, added99 = p(trig, 50) - p(base, 50), p(trig, 99) - p(base, 99)
    met = "yes" if added50 < GOAL_P50_MS else "NO"
    body = f"""## In-database trigger: latency added to an insert (goal: p50 under {GOAL_P50_MS:g} ms)

`python bench/bench_trigger.py --inserts {n}` on {machine()}, {revision()}. PostgreSQL on the same 2 cores; forest pipeline (100 trees, depth 10, 13 mixed columns) installed with `scorehouse db install`; {n:,} single-row autocommitted inserts into `complaints` on one connection after 50 warm-up inserts, each bumping a counter on one of {CUSTOMERS:,} profiles and re-scoring it in the same transaction (`scorehouse db trigger --mode transaction`). Profiles with a scoring error after the run: {errors}.

| measure | with the scoring trigger | without a trigger | added | goal | met |
|---|---|---|---|---|---|
| insert p50, ms | {p(trig, 50):.2f} | {p(base, 50):.2f} | {added50:.2f} | < {GOAL_P50_MS:g} | {met} |
| insert p99, ms | {p(trig, 99):.2f} | {p(base, 99):.2f} | {added99:.2f} | | |
"""
    print(body)
    if not quick:
        write_section("trigger", body)


if __name__ == "__main__":
    main()
