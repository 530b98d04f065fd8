"""The web console's page time with a large registry: 100 models x 50 versions in PostgreSQL.

A fresh PostgreSQL database holds the registry. One real artifact (the demo's churn
pipeline) is registered through `Registry.register`; the other 4,999 versions are rows
copied from it (same artifact, 100 model names, 50 versions each, written with the
registry's own tables), and every model gets @production and @staging through
`Registry.promote` (3 promotions each, so its history has 53 events). The console
(`scorehouse.ui.create_app`) runs under uvicorn in this process; each page is fetched
`--requests` times over HTTP after 3 warm-up fetches, one at a time, and timed at the
client (the server's render and the registry's queries included).

Goal: every page answers in < 300 ms (p95).

Run: python bench/bench_ui.py [--requests 30] [--quick]   (--quick: 10 requests; print only)
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_runtime import revision  # noqa: E402
from report import machine, write_section  # noqa: E402

ADMIN = os.environ.get("SCOREHOUSE_TEST_PG", "postgresql://postgres:postgres@127.0.0.1:5432/postgres")
MODELS, VERSIONS = 100, 50
GOAL_MS = 300.0
PAGES = [
    ("models list", "/"),
    ("models search", "/?q=model-04"),
    ("model page (50 versions, 53 events)", "/models/model-042"),
    ("version page (lineage, schema, evaluation)", "/models/model-042/versions/25"),
    ("compare two versions", "/models/model-042/compare?a=24&b=50"),
    ("schema fragment (htmx)", "/models/model-042/versions/50/schema"),
    ("deployments", "/deployments"),
]
#: The monitoring page of model-042 over a week of logged traffic (LOGGED_HOURS windows of
#: ROWS_AN_HOUR rows, late labels for every row, one alert rule). "{since}" stands for a time
#: LOGGED_HOURS ago made unique per request: each of those is a first view, computed from
#: the log (the console keeps a view's figures until the log, labels or window change).
LOGGED_HOURS, ROWS_AN_HOUR = 7 * 24, 300
_WEEK = f"a week in hourly windows ({LOGGED_HOURS * ROWS_AN_HOUR:,} rows, labels)"
MONITOR_PAGES = [
    ("monitoring, the default view (a day in hourly windows)", "/models/model-042/monitor"),
    (f"monitoring, {_WEEK}", "/models/model-042/monitor?window=hour&since=7d"),
    ("monitoring, the week in daily windows", "/models/model-042/monitor?window=day&since=7d"),
    ("monitoring, first view of the default (figures computed)",
     "/models/model-042/monitor?window=hour&since={day}"),
    (f"monitoring, first view of {_WEEK.split(' (')[0]} (figures computed)",
     "/models/model-042/monitor?window=hour&since={since}"),
    ("monitoring, first view of the week in daily windows (figures computed)",
     "/models/model-042/monitor?window=day&since={since}"),
]
#: Documents drawn with matplotlib on each request (plots of the baseline, the evaluation,
#: the log): measured, not held to the page goal.
DOCUMENTS = [("model card (HTML with its plots)", "/models/model-042/versions/50/card.html")]


def fill(reg, artifact: Path) -> None:
    """100 models x 50 versions: churn/1 registered, the rest copied rows; aliases promoted."""
    import sqlalchemy as sa

    from scorehouse.registry.tables import events, models, versions

    first = reg.register(artifact)
    now = dt.datetime.now(dt.timezone.utc)
    with reg.engine.begin() as conn:
        row = dict(conn.execute(sa.select(versions)).mappings().one())
        conn.execute(sa.delete(events))
        conn.execute(sa.delete(versions))
        conn.execute(sa.delete(models))
        conn.execute(models.insert(), [
            {"name": f"model-{m:03d}", "description": f"bench model {m}", "last_version": VERSIONS,
             "created_at": now, "updated_at": now} for m in range(MODELS)])
        ids = dict(conn.execute(sa.select(models.c.name, models.c.id)).all())
        rows, regs = [], []
        for mid in ids.values():
            for v in range(1, VERSIONS + 1):
                rows.append({**{k: row[k] for k in row if k != "id"}, "model_id": mid,
                             "version": v, "created_at": now, "created_by": "bench"})
                regs.append({"model_id": mid, "at": now, "user": "bench", "action": "register",
                             "version": v, "reason": ""})
        conn.execute(versions.insert(), rows)
        conn.execute(events.insert(), regs)
    for m in range(MODELS):
        name = f"model-{m:03d}"
        reg.promote(f"{name}/{VERSIONS - 2}", "production", reason="first launch")
        reg.promote(f"{name}/{VERSIONS - 1}", "production", reason="better holdout AUC")
        reg.promote(f"{name}/{VERSIONS}", "staging", reason="candidate")
    assert first.version == 1


def time_pages(url: str, n: int) -> dict[str, np.ndarray]:
    import httpx

    out = {}
    with httpx.Client(base_url=url, timeout=60) as http:
        for label, path in PAGES + MONITOR_PAGES + DOCUMENTS:
            for _ in range(3):
                assert http.get(_fresh(path)).status_code == 200, path
            ms = np.empty(n)
            for i in range(n):
                at = _fresh(path)
                start = time.perf_counter()
                r = http.get(at)
                ms[i] = (time.perf_counter() - start) * 1e3
                assert r.status_code == 200
            out[label] = ms
    return out


_SEQUENCE = iter(range(1, 1_000_000))
_STARTED = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def _fresh(path: str) -> str:
    """`path` with "{since}" / "{day}" as a time a week / a day before the run started, a
    second earlier at each call (a view the console has not computed yet)."""
    now, step = _STARTED, dt.timedelta(seconds=next(_SEQUENCE))
    week = (now - dt.timedelta(hours=LOGGED_HOURS) - step).strftime("%Y-%m-%dT%H:%M:%SZ")
    day = (now - dt.timedelta(hours=24) - step).strftime("%Y-%m-%dT%H:%M:%SZ")
    return path.replace("{since}", week).replace("{day}", day)


def serve(app, port: int):
    import httpx
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    return server


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="10 requests a page; print only")
    args = ap.parse_args()
    n = 10 if args.quick else args.requests
    import psycopg

    with tempfile.TemporaryDirectory(prefix="sh-bench-ui-") as tmp:
        os.environ["SCOREHOUSE_HOME"] = tmp
        import scorehouse as sh
        from scorehouse.demo import churn_frame, train_pipeline
        from scorehouse.demo.data import TARGET
        from scorehouse.ui import UiSettings, create_app

        data = churn_frame(3000, seed=3)
        artifact = sh.package(train_pipeline(data), data, name="churn", target=TARGET,
                              path=Path(tmp) / "churn.shz")
        name = f"console_bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        url = ADMIN.rsplit("/", 1)[0] + f"/{name}"
        try:
            reg = sh.Registry(url, str(Path(tmp) / "artifacts"))
            start = time.perf_counter()
            fill(reg, artifact)
            filled = time.perf_counter() - start
            log_week(reg, Path(tmp))
            port = 18500 + os.getpid() % 1000
            console = UiSettings(log_source=str(Path(tmp) / "log"), labels=str(Path(tmp) / "labels"),
                                 rules=str(Path(tmp) / "rules.toml"))
            server = serve(create_app(console, registry=reg), port)
            try:
                times = time_pages(f"http://127.0.0.1:{port}", n)
            finally:
                server.should_exit = True
            reg.close()
        finally:
            with psycopg.connect(ADMIN, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        size = artifact.stat().st_size
    report(times, n, filled, size, args.quick)


def log_week(reg, home: Path) -> None:
    """A week of model-042@production's traffic in a Parquet prediction log under `home`:
    logged through `PredictionLogger` as it scores, then each call's rows moved to its own
    hour of the last week (through the sink, so files land in their date partitions), late
    labels for every row in `home/labels/model-042.parquet`, and an alert rule."""
    import pandas as pd
    import pyarrow as pa

    from scorehouse.demo import churn_frame
    from scorehouse.demo.data import TARGET
    from scorehouse.monitor import PredictionLogger, read_log
    from scorehouse.monitor.log import Channel, ParquetSink

    scorer = reg.load("model-042@production")
    frames = [churn_frame(ROWS_AN_HOUR, seed=100 + h) for h in range(LOGGED_HOURS)]
    with PredictionLogger(f"parquet:{home / 'scored'}") as logger:
        logger.attach(scorer, Channel.SERVE)
        for frame in frames:
            scorer.predict(frame.drop(columns=[TARGET]))
    table = read_log(home / "scored", model=scorer.name)
    start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=LOGGED_HOURS)
    hour = np.repeat(np.arange(LOGGED_HOURS), ROWS_AN_HOUR)
    jitter = np.random.default_rng(0).integers(0, 3_600_000_000, len(hour))
    times = np.int64(start.timestamp() * 1e6) + hour * 3_600_000_000 + np.sort(jitter)
    moved = table.set_column(table.schema.get_field_index("time"), "time",
                             pa.array(times, pa.timestamp("us", tz="UTC")))
    sink = ParquetSink(home / "log")
    for batch in moved.sort_by("time").to_batches(max_chunksize=ROWS_AN_HOUR):
        sink.write(batch)
    sink.close()
    (home / "labels").mkdir()
    labels = pd.DataFrame({"id": table.column("id").to_pylist(),
                           "label": table.column("prediction.label").to_pylist()})
    labels.loc[labels.index[::7], "label"] = "yes"  # some predictions were wrong
    labels.to_parquet(home / "labels" / "model-042.parquet")
    (home / "rules.toml").write_text('[[rule]]\nname = "drifting"\nfigure = "drift.share"\n'
                                     'op = ">"\nthreshold = 0.2\n')


def report(times: dict[str, np.ndarray], n: int, filled: float, size: int, quick: bool) -> None:
    p = lambda a, q: float(np.percentile(a, q))  # noqa: E731
    documents = {label for label, _ in DOCUMENTS}
    rows = "\n".join(
        f"| {label} | {p(ms, 50):.1f} | {p(ms, 95):.1f} | {ms.max():.1f} | "
        f"{'(a document)' if label in documents else 'yes' if p(ms, 95) < GOAL_MS else 'NO'} |"
        for label, ms in times.items())
    body = f"""## Web console: page time, 100 models x 50 versions in PostgreSQL (goal: < {GOAL_MS:g} ms a page)

`python bench/bench_ui.py --requests {n}` on {machine()}, {revision()}. PostgreSQL on the same 2 cores, a fresh database; {MODELS} models x {VERSIONS} versions (one registered artifact, the other versions rows copied from it; filled in {filled:.1f} s), each model with @production and @staging moved by 3 promotions. The console (`scorehouse ui`'s app) under uvicorn in the benchmark's process; each page fetched {n} times one after another after 3 warm-ups, timed at the client over HTTP (rendering and every registry query included). The version, compare and schema pages read a version's manifest from its artifact ({size / 1e6:.1f} MB) once, then from memory (an artifact never changes under its hash).

Monitoring: model-042@production with a week of traffic in its Parquet prediction log ({LOGGED_HOURS} hours x {ROWS_AN_HOUR} rows, scored and logged by `PredictionLogger`, each call's rows then moved to its own hour of the week through the sink), late labels for every row and one alert rule. A monitoring page's charts are images the browser fetches after the page (drawn when first asked for, then kept), so a page's time is its HTML: the log's windows with drift, quality, traffic and label metrics (`monitor.log_windows`, what `monitor check` reads), the alert rules over them and the table of windows. The console keeps a page's figures until the log gains a closed file, the labels file changes or ten minutes pass: the plain rows are a page seen again, the "first view" rows a `since` never asked before (a page computed from the log).

| page | p50, ms | p95, ms | max, ms | < {GOAL_MS:g} ms (p95) |
|---|---|---|---|---|
{rows}
"""
    print(body)
    if not quick:
        write_section("ui", body)


if __name__ == "__main__":
    main()
