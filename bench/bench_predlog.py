"""Cost of the prediction log: a Scorer on the demo model scoring single rows and 1,000-row
batches with a `PredictionLogger` attached (default Parquet sink, every row logged) against
the same Scorer without it, in alternating rounds of the same run; and the time `log()`
itself takes on the scoring thread (queueing only).

    python bench/bench_predlog.py [--singles 2000] [--batches 40] [--rounds 5] [--no-write]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import scorehouse  # noqa: E402
from scorehouse.demo import churn_frame, train_pipeline  # noqa: E402
from scorehouse.demo.data import TARGET  # noqa: E402
from scorehouse.monitor.log import LogOptions, PredictionLogger, read_log  # noqa: E402


def _round(scorer: scorehouse.Scorer, inputs: list, calls: int) -> float:
    """Seconds for `calls` predict calls cycling through `inputs`."""
    start = time.perf_counter()
    for i in range(calls):
        scorer.predict(inputs[i % len(inputs)])
    return time.perf_counter() - start


def compare(scorer: scorehouse.Scorer, logger: PredictionLogger, inputs: list, calls: int,
            rounds: int) -> tuple[float, float]:
    """(median seconds per call without the log, with it), rounds alternating."""
    hook = logger.hook()
    off: list[float] = []
    on: list[float] = []
    _round(scorer, inputs, max(calls // 10, 1))  # warm up caches and the runtime
    for i in range(rounds):
        # Alternate which side goes first: the machine's load drifts during a run.
        for logged in ((False, True) if i % 2 == 0 else (True, False)):
            scorer.hooks.clear()
            if logged:
                scorer.add_hook(hook)
            (on if logged else off).append(_round(scorer, inputs, calls) / calls)
            logger.flush()  # the next round starts with an empty queue
    scorer.hooks.clear()
    return statistics.median(off), statistics.median(on)


def hot_path(scorer: scorehouse.Scorer, logger: PredictionLogger, inputs: list,
             calls: int) -> float:
    """Median µs `logger.log(event)` takes on the caller's thread (queueing only)."""
    events: list = []
    scorer.add_hook(events.append)
    for x in inputs:
        scorer.predict(x)
    scorer.hooks.clear()
    times = []
    queued = 0
    for i in range(calls):
        event = events[i % len(events)]
        start = time.perf_counter()
        logger.log(event)
        times.append(time.perf_counter() - start)
        queued += event.result.n_read
        if queued >= logger.options.queue // 2:  # never let the queue fill: no drops here
            logger.flush()
            queued = 0
    return statistics.median(times) * 1e6


def measure(args: argparse.Namespace) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        training = churn_frame(20_000, seed=7)
        artifact = scorehouse.package(train_pipeline(training), training, name="churn",
                                      target=TARGET, path=Path(tmp) / "churn.shz")
        scorer = scorehouse.load(artifact, trust=True)
        rows = churn_frame(5_000, seed=11).drop(columns=[TARGET])
        singles = rows.head(500).astype(object).where(rows.head(500).notna(), None)
        singles_list = singles.to_dict("records")
        batches = [rows.iloc[at:at + 1000] for at in range(0, 5000, 1000)]
        root = Path(tmp) / "predictions"
        logger = PredictionLogger(LogOptions(to=str(root)))
        # As a logging server does once its models are loaded (serve.service.prepare): the
        # queued calls would otherwise trigger full collections over every library's objects.
        gc.collect()
        gc.freeze()
        out["single_off"], out["single_on"] = compare(scorer, logger, singles_list,
                                                      args.singles, args.rounds)
        out["batch_off"], out["batch_on"] = compare(scorer, logger, batches, args.batches,
                                                    args.rounds)
        out["log_single_us"] = hot_path(scorer, logger, singles_list[:100], 5000)
        out["log_batch_us"] = hot_path(scorer, logger, batches[:2], 200)
        logger.close()
        out["dropped"] = logger.stats.dropped
        out["written"] = logger.stats.written
        out["read_back"] = read_log(root).num_rows
    return out


def section(args: argparse.Namespace, r: dict[str, float]) -> str:
    from report import machine

    def row(what: str, off: float, on: float, rows: int) -> str:
        over = (on - off) / rows * 1e6
        return (f"| {what} | {rows / off:,.0f} | {rows / on:,.0f} | {off / on:.2f} | "
                f"{over:+.1f} |")

    return f"""## Prediction log: cost of logging every row (issue 21)

`python bench/bench_predlog.py` on {machine()}.

A Scorer on the demo model (trained and packaged on 20,000 rows, default runtime) scoring
single rows (`predict(dict)`, {args.singles:,} calls a round) and 1,000-row DataFrames
({args.batches} calls a round), with a `PredictionLogger` on the default Parquet sink
attached (every row logged: ids, coerced inputs, outputs, flags) and without it; medians of
{args.rounds} alternating rounds in one process, its start-up heap frozen (`gc.freeze()`)
as a logging server's is. The logger's background thread (Arrow
batches, Parquet journal) shares the 2 cores and the GIL with scoring, so its cost is in
the "with log" column.

| calls | rows/s without log | rows/s with log | ratio with / without | overhead, µs per row |
|---|---|---|---|---|
{row("single row", r["single_off"], r["single_on"], 1)}
{row("1,000-row batch", r["batch_off"], r["batch_on"], 1000)}

`PredictionLogger.log` on the scoring thread (uuid7, clock, bounded queue append): median
{r["log_single_us"]:.1f} µs per single-row call, {r["log_batch_us"]:.1f} µs per 1,000-row call
({r["log_batch_us"] / 1000:.3f} µs per row). Rows written {int(r["written"]):,}, dropped
{int(r["dropped"]):,}, read back with `read_log` {int(r["read_back"]):,}.

One-row calls are converted a drain's worth at once, column by column (`gather.Run`). The
issue's serve figure (logging on keeps `serve` at >= 90% of its throughput with logging
off, at 8 connections) is in the serve section (serve-log).
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--singles", type=int, default=2000)
    ap.add_argument("--batches", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    args = ap.parse_args()
    body = section(args, measure(args))
    if not args.no_write:
        from report import write_section

        write_section("predlog", body)
    print(body)


if __name__ == "__main__":
    main()
